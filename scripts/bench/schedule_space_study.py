"""Study (issue 14): schedule search spaces and search strength side by side, on one bundled model.

    OMP_NUM_THREADS=1 python scripts/bench/schedule_space_study.py --model mnist_dit --steps 4 5 6 \
        --variants warp/2/48 warp_linear/2/144

The same setting as scripts/bench/autodiffusion_schedule.py (its Bench: the same fitness, validation and held-out
seeds, the same 100-step and 50-step dpmpp_2m karras references, every sampler x built-in scheduler pair at <= N
calls seeded, EvoTimestepSchedule's pipeline with its validation and 5% rule), with the search space, the number of
parents and the budget given per variant as SPACE/TOP_K/EXTRA (budget = every pair + EXTRA candidates; SPACE: steps,
warp, warp_linear, or the study's warp_sigma / warp_refine, see study_searches). The pairs' samples are shared by the
variants and, like every sample, cached on disk (--cache), so a re-run samples only what is new. Gains are against the best pair on the held-out seeds among the --held-pairs best on the fitness seeds, as
in the benchmark. `--fitness-sets held` runs each variant with the HELD-OUT seeds as its fitness seeds, no validation:
what the space reaches when it is scored on the test itself (an upper bound, not a result).
`--held-sets SEED:K ...` scores every variant on several held-out sets (K seeds from SEED each), then on their pooled
seeds, where the best pair is picked again (a pooled gain is never a mean of the sets' gains).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[1]
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
import comfy_env
from pack_loader import pack_module

import bench.autodiffusion_schedule as AS

# --- the study's search variants (measured, not shipped: see HW.bench.md / BENCHMARKS.md) ---------------------------
SIGMA_STEP = 0.2  # warp_sigma: first per-σ step in log σ
LOCAL_STEP = 0.1  # warp_refine: first per-σ step in log σ, once the warps have had their generations
WARP_GENERATIONS = 3  # warp_refine: generations of WarpSearch's own moves before the per-σ moves join in


def _per_sigma_moves(search, best, step: float, add, g: int) -> None:
    """Compass moves of each free log σ of `best` by ±step on its own, repaired to stay valid."""
    root = best.origin.split(" of ")[-1]
    for i in range(1 if search.config.fix_first else 0, len(best.logs)):
        for move in (step, -step):
            logs = list(best.logs)
            logs[i] += move
            add(best.sampler, search.repair(logs), f"g{g}-sigma{i}({move:+.3f}) of {root}")


def _warp_moves(search, W, parents, step: float, add, g: int) -> None:
    for parent in parents:
        root = parent.origin.split(" of ")[-1]
        for da, dd in W.MOVES:
            a, d = da * W.WARP_POWER * step, dd * W.WARP_SHIFT * step
            add(parent.sampler, search.repair(W.warp_logs(parent.logs, a, d)), f"g{g}-warp({a:+.2f},{d:+.2f}) of {root}")


def _failures(history) -> int:
    return sum(1 for before, after in itertools.pairwise(history) if not after < before)


def study_searches(W) -> dict:
    """Variant name -> search class (W: the pack's core.schedule_warp). warp_sigma: from the first generation,
    per-σ compass moves of the best + the warp moves of every parent, every step halved after each generation
    without progress. warp_refine: WarpSearch's own candidates for WARP_GENERATIONS generations, then the same
    pattern search at the last warp step."""

    class PerSigmaSearch(W.WarpSearch):
        def next_generation(self, rng, add):
            g, step = self.state.generation, 0.5 ** _failures(self.state.history)
            parents = self.parents()
            _per_sigma_moves(self, parents[0], SIGMA_STEP * step, add, g)
            _warp_moves(self, W, parents, step, add, g)

    class RefineSearch(W.WarpSearch):
        def next_generation(self, rng, add):
            g = self.state.generation
            if g <= WARP_GENERATIONS:
                super().next_generation(rng, add)
                return
            shrinks = _failures(self.state.history[WARP_GENERATIONS:])
            parents = self.parents()
            _per_sigma_moves(self, parents[0], LOCAL_STEP * 0.5 ** shrinks, add, g)
            _warp_moves(self, W, parents, 0.5 ** (WARP_GENERATIONS - 1 + shrinks), add, g)

    return {"steps": W.EvoSearch, "warp": W.WarpSearch, "warp_linear": W.LinearWarpSearch,
            "warp_sigma": PerSigmaSearch, "warp_refine": RefineSearch}


class DiskMemo(AS.Memo):
    """AS.Memo whose samples persist in a file (a re-run with the same seeds samples only new schedules)."""

    def __init__(self, runner, path: Path):
        super().__init__(runner)
        self.path = path
        self.cache = torch.load(path) if path.is_file() else {}
        self.sampled = 0

    def run(self, schedules):
        before = len(self.cache)
        out = super().run(schedules)
        if len(self.cache) != before:
            self.sampled += len(self.cache) - before
            part = self.path.with_suffix(".part")
            torch.save(self.cache, part)
            part.replace(self.path)  # atomic: another process may read it
        return out


class StudyBench(AS.Bench):
    """AS.Bench with its references cached on disk."""

    def __init__(self, name: str, args, cache: Path):
        self.load(name, args)
        self.searches = study_searches(pack_module("core.schedule_warp"))
        self.fitness = self._fitnesses["fidelity"]
        self.cache = cache
        sets = {"fit": (args.fit_seeds, AS.FIT_SEED), "val": (args.validation_seeds, AS.VAL_SEED)}
        self.held_keys = []
        for seed, k in held_sets(args):
            key = "held" if not self.held_keys else f"held@{seed}"  # "held": the first set (the oracle's)
            sets[key] = (k, seed)
            self.held_keys.append(key)
        self.sets = {}
        for key, (k, seed) in sets.items():
            runner = self.runner(k, seed)
            kind = key.split("@")[0]  # the cache files of every held-out set are named "held"
            path = cache / f"{name}-{kind}-{k}-{seed}-refs-{args.reference_steps}-{args.full_steps}.pt"
            if path.is_file():
                ref, full = (None if t is None else t.detach() for t in torch.load(path))
            else:  # as AS.Bench samples them: ordinary dpmpp_2m runs
                ref = runner.sample(self.ref_sigmas, "dpmpp_2m")
                full = runner.sample(self.full_sigmas, "dpmpp_2m") if kind == "held" else None
                torch.save((ref, full), path.with_suffix(".part"))
                path.with_suffix(".part").replace(path)
            self.sets[key] = (runner, ref, full, f"{name}-{kind}-{k}-{seed}")
        self.memos = {}

    def memo(self, key: str, n: int) -> DiskMemo:
        """The cached runner of seed set `key` at N = n (one file per N: two processes may run other N)."""
        if (key, n) not in self.memos:
            runner, _, _, stem = self.sets[key]
            self.memos[key, n] = DiskMemo(runner, self.cache / f"{stem}-n{n}.pt")
        return self.memos[key, n]

    def seed_set(self, key: str, n: int):
        return self.pipeline.SeedSet(self.memo(key, n), self.sets[key][1])


def scores(outs: dict, ref: torch.Tensor) -> dict:
    return {p: AS.mse(o, ref) for p, o in outs.items()}


def held_sets(args) -> list[tuple[int, int]]:
    """(first seed, seed count) of each held-out set: --held-sets SEED:K ..., else --held-seed / --held-seeds."""
    if not args.held_sets:
        return [(args.held_seed, args.held_seeds)]
    out = []
    for spec in args.held_sets:
        seed, sep, k = spec.partition(":")
        if not sep or not seed.isdigit() or not k.isdigit() or int(k) < 1:
            raise SystemExit(f"--held-sets: {spec!r} is not SEED:K (e.g. 10000:32, K >= 1)")
        out.append((int(seed), int(k)))
    for (a, k), (b, m) in itertools.combinations(sorted(out), 2):
        if b < a + k:
            raise SystemExit(f"--held-sets: {a}:{k} and {b}:{m} share seeds; pooled seeds must be distinct")
    return out


def pooled(per_set: list[dict]) -> dict:
    """Each sample list concatenated over the sets (per_set: one {name: tensor of that set's seeds} per set, the
    same names in each)."""
    return {name: torch.cat([outs[name] for outs in per_set]) for name in per_set[0]}


def reference_gap(outs: dict, ref: torch.Tensor, full: torch.Tensor) -> dict:
    """Why a schedule can be closer to the 100-step run (`ref`) yet farther from the 50-step one (`full`): per
    name, its MSE to both, and the cosine between its error (out - ref) and the 50-step run's own (full - ref),
    whose MSE is under "full-step run". ||out - full||² = ||out - ref||² + ||full - ref||² - 2 <out - ref, full - ref>:
    an error that points along the 50-step run's own lands close to it. Means over seeds; cosine per seed, then
    its median."""
    gap = (full.float() - ref.float()).flatten(1)
    out = {"full-step run": {"high": AS.mse(full, ref), "full": 0.0, "cosine": 1.0,
                       "median_high": float(AS.per_seed(full, ref).median())}}
    for name, o in outs.items():
        err = (o.float() - ref.float()).flatten(1)
        cos = torch.nn.functional.cosine_similarity(err, gap, dim=1)
        out[name] = {"high": AS.mse(o, ref), "full": AS.mse(o, full), "cosine": float(cos.median()),
                     "median_high": float(AS.per_seed(o, ref).median())}
    return out


def cell(pair_outs: dict, find_out: torch.Tensor, ref: torch.Tensor, high_ref: torch.Tensor) -> dict:
    """The find against the best pair ON THESE seeds (picked with hindsight) for one reference `ref`: the pair,
    both MSEs, the gain, and the median per-seed gain against the pair that is best for the high-accuracy reference
    `high_ref` (the benchmark's median column)."""
    errs = scores(pair_outs, ref)
    pair = min(errs, key=lambda p: (errs[p], p))
    find_err = AS.mse(find_out, ref)
    high = scores(pair_outs, high_ref)
    high_pair = min(high, key=lambda p: (high[p], p))
    per_find, per_pair = AS.per_seed(find_out, high_ref), AS.per_seed(pair_outs[high_pair], high_ref)
    gain = errs[pair] / find_err if find_err > 0 else float("inf")
    return {"pair": pair, "pair_mse": errs[pair], "mse": find_err, "gain": gain,
            "median_gain": float(per_pair.median() / per_find.median())}


def run_variant(bench: StudyBench, n: int, pairs: dict, space: str, top_k: int, extra: int, fit_key: str,
                validate: bool, generations: int):
    genes = bench.genes(n)
    gene_calls = {name: calls for name, _, calls in genes}
    seeding = sum(gene_calls[p.sampler] for p in pairs.values())
    args = bench.args
    k = {"fit": args.fit_seeds, "held": args.held_seeds}[fit_key]
    config = bench.joint.JointConfig(calls=n, samplers=genes, sigma_min=bench.info.sigma_min,
                                     sigma_max=bench.info.sigma_max, num_seeds=k, population=args.population,
                                     top_k=top_k, generations=generations, budget=(seeding + extra * n) * k, seed=n,
                                     space=bench.searches[space].space)
    fit_set = bench.seed_set(fit_key, n)
    memo = fit_set.runner
    sampled_before = memo.sampled
    t0 = time.perf_counter()
    # the pipeline builds its own search for "steps" / "warp" (until it dispatches through search_class): build it
    # with one of those, then put the variant's own search in its place
    shell = replace(config, space="steps" if space == "steps" else "warp")
    pipe = bench.pipeline.SchedulePipeline(shell, bench.fitness, pairs, fit_set, k,
                                           (lambda: bench.seed_set("val", n)) if validate else None,
                                           args.validation_seeds if validate else 0,
                                           validated_baselines=args.validated_pairs)
    evo = config.evo_config()
    pipe.search = bench.searches[space](evo, pipe.evaluate, seeds=pairs)
    find = pipe.run()
    seconds = time.perf_counter() - t0
    calls = find.result.calls_used + ((min(4, find.result.evaluated - len(pairs)) + args.validated_pairs)
                                      * args.validation_seeds * n if validate else 0)
    print(f"    {space}/{top_k}/{extra} [{fit_key}] best fitness per generation: "
          + " ".join(f"{v:.4g}" for v in pipe.search.state.history), flush=True)
    return find, seconds, calls, memo.sampled - sampled_before


def study(bench: StudyBench, n: int, variants: list[str], oracle: list[str]) -> list[dict]:
    args = bench.args
    genes = bench.genes(n)
    pairs = bench.builtins.joint_baselines(bench.model, genes)
    fit_memo, fit_ref = bench.memo("fit", n), bench.sets["fit"][1]
    fit_scores = scores(dict(zip(pairs, fit_memo.run(list(pairs.values())))), fit_ref)
    top = sorted(pairs, key=lambda p: (fit_scores[p], p))[:args.held_pairs]
    held = {}  # held-out set -> (the top pairs' samples, 100-step reference, 50-step run)
    for key in bench.held_keys:
        _, ref, full, _ = bench.sets[key]
        held[key] = (dict(zip(top, bench.memo(key, n).run([pairs[p] for p in top]))), ref, full)
    held_outs, held_ref, held_full = held["held"]
    refs = {"high": held_ref, "full": held_full}
    best = {r: min(scores(held_outs, ref).items(), key=lambda kv: kv[1]) for r, ref in refs.items()}
    print(f"{bench.name} N={n}: {len(pairs)} pairs; best on fit seeds {top[0]} {fit_scores[top[0]]:.4g}; best "
          f"held-out pair vs {args.reference_steps}-step {best['high'][0]} {best['high'][1]:.4g}, vs "
          f"{args.full_steps}-step {best['full'][0]} {best['full'][1]:.4g}", flush=True)
    rows = []
    for variant in variants:
        space, top_k, extra = variant.split("/")
        for fit_key in oracle:
            find, seconds, calls, sampled = run_variant(bench, n, pairs, space, int(top_k), int(extra), fit_key,
                                                        fit_key == "fit" and args.validation_seeds > 0,
                                                        args.generations)
            found = bench.joint.SamplerSchedule(find.sampler, tuple(find.sigmas))
            best_find = find.result.sigmas  # the evolution's best on its fitness seeds (before validation)
            out, raw = bench.memo("held", n).run([found, best_find])
            row = {"variant": variant, "fit": fit_key, "pick": find.pick, "sampler": find.sampler,
                   "sigmas": [round(float(v), 5) for v in find.sigmas], "seconds": seconds, "calls": calls,
                   "evaluated": find.result.evaluated, "fit_best": find.result.fitness,
                   "fit_pair": min(find.result.seed_fitness.values())}
            for r, ref in refs.items():
                err, raw_err = AS.mse(out, ref), AS.mse(raw, ref)
                row[r] = {"search": err, "gain": best[r][1] / err, "raw": raw_err, "raw_gain": best[r][1] / raw_err}
            per_find, per_best = AS.per_seed(out, held_ref), AS.per_seed(held_outs[best["high"][0]], held_ref)
            row["median_gain"] = float(per_best.median() / per_find.median())
            rows.append(row)
            h, f = row["high"], row["full"]
            print(f"  {variant:<18} [{fit_key}] {find.sampler} ({find.pick}): vs {args.reference_steps}-step "
                  f"{h['search']:.4g} ({h['gain']:.2f}x; evolution's best {h['raw']:.4g}, {h['raw_gain']:.2f}x), vs "
                  f"{args.full_steps}-step {f['search']:.4g} ({f['gain']:.2f}x); median per seed "
                  f"{row['median_gain']:.2f}x; on its fitness seeds best {row['fit_best']:.4g} vs best pair "
                  f"{row['fit_pair']:.4g} ({row['fit_pair'] / row['fit_best']:.2f}x); {row['evaluated']} candidates, "
                  f"{calls} calls, {seconds:.0f} s ({sampled} sampled now); sigmas {row['sigmas']}", flush=True)
            if len(held) > 1 or args.reference_gap:
                row["sets"] = held_cells(bench, n, held, found)
    return rows


def held_cells(bench: StudyBench, n: int, held: dict, found) -> dict:
    """The find on every held-out set and on their pooled seeds, each against the best pair on those seeds."""
    args = bench.args
    per_set = {}
    for key, (pair_outs, ref, full) in held.items():
        out = bench.memo(key, n).run([found])[0]
        per_set[bench.sets[key][3]] = ({**pair_outs, None: out}, ref, full)
    if len(per_set) > 1:
        samples = pooled([outs for outs, _, _ in per_set.values()])
        refs = pooled([{"ref": ref, "full": full} for _, ref, full in per_set.values()])
        per_set["pooled"] = (samples, refs["ref"], refs["full"])
    cells = {}
    for name, (outs, ref, full) in per_set.items():
        pair_outs = {p: o for p, o in outs.items() if p is not None}
        high, low = cell(pair_outs, outs[None], ref, ref), cell(pair_outs, outs[None], full, ref)
        cells[name] = {"high": high, "full": low}
        print(f"    {name} ({len(ref)} seeds): vs {args.reference_steps}-step {high['mse']:.4g}, best pair "
              f"{high['pair']} {high['pair_mse']:.4g}, {high['gain']:.2f}x; vs {args.full_steps}-step "
              f"{low['mse']:.4g}, best pair {low['pair']} {low['pair_mse']:.4g}, {low['gain']:.2f}x; median per "
              f"seed {high['median_gain']:.2f}x", flush=True)
        if args.reference_gap:
            shown = {"find": outs[None], **{str(p): pair_outs[p] for p in dict.fromkeys((high["pair"], low["pair"]))}}
            for who, g in reference_gap(shown, ref, full).items():
                who = f"{args.full_steps}-step run" if who == "full-step run" else who
                print(f"      {name} {who}: vs {args.reference_steps}-step {g['high']:.4g} (per-seed median "
                      f"{g['median_high']:.4g}), vs {args.full_steps}-step {g['full']:.4g}, median cosine of its "
                      f"error with the {args.full_steps}-step run's {g['cosine']:+.2f}", flush=True)
    return cells


def print_reference_gaps(bench: StudyBench) -> None:
    """How far the full-step run is from the high-accuracy reference on each held-out set, per seed too (the
    gains against the full-step run measure that gap as well as the find's error)."""
    args = bench.args
    for key in bench.held_keys:
        _, ref, full, stem = bench.sets[key]
        per = AS.per_seed(full, ref)
        print(f"    {stem}: {args.full_steps}-step run vs {args.reference_steps}-step MSE {AS.mse(full, ref):.4g} (per "
              f"seed median {float(per.median()):.4g}, max {float(per.max()):.4g}; its worst 10% of seeds hold "
              f"{AS.top_share(per):.0%} of it)", flush=True)


GRID_LAST = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
GRID_POWER = (0.7, 0.85, 1.0, 1.15, 1.3, 1.5)


def grid_oracle(bench: StudyBench, n: int, samplers: list[str]) -> None:
    """A global check of the smooth schedules, scored on the HELD-OUT seeds themselves: for each sampler, σ_i =
    σ_max - (σ_max - σ_last) u_i^p over u_i = i / (steps - 1), on the GRID_LAST x GRID_POWER grid (σ_last as a
    fraction of σ_max). An in-sample upper bound of this family, not a result."""
    held_memo, (_, held_ref, _, _) = bench.memo("held", n), bench.sets["held"]
    steps_of = {name: steps for name, steps, _ in bench.genes(n)}
    hi = bench.info.sigma_max
    for sampler in samplers:
        steps = steps_of[sampler]
        cands = {}
        for last in GRID_LAST:
            for p in GRID_POWER:
                sig = [hi - (hi - last * hi) * (i / (steps - 1)) ** p for i in range(steps)] + [0.0]
                cands[(last, p)] = bench.joint.SamplerSchedule(sampler, tuple(sig))
        errs = {key: AS.mse(o, held_ref) for key, o in zip(cands, held_memo.run(list(cands.values())))}
        best = min(errs, key=errs.get)
        print(f"  grid oracle N={n} {sampler} ({steps} steps): best on held-out seeds sigma_last {best[0]} x "
              f"sigma_max, power {best[1]}: {errs[best]:.4g}; worst {max(errs.values()):.4g}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mnist_dit", choices=["digits", "mnist_dit"])
    ap.add_argument("--steps", nargs="+", type=int, default=[4, 5, 6])
    ap.add_argument("--samplers", nargs="+", default=["all"])
    ap.add_argument("--variants", nargs="*", default=["warp/2/48", "warp_refine/2/48"],
                    help="SPACE/TOP_K/EXTRA each")
    ap.add_argument("--fit-seeds", type=int, default=16)
    ap.add_argument("--validation-seeds", type=int, default=8)
    ap.add_argument("--validated-pairs", type=int, default=4)
    ap.add_argument("--held-seeds", type=int, default=32)
    ap.add_argument("--held-seed", type=int, default=AS.HELD_SEED, help="first held-out seed")
    ap.add_argument("--held-sets", nargs="*", default=[], metavar="SEED:K",
                    help="several held-out sets (K seeds from SEED each), scored each and pooled; the first is the "
                         "one the summary line and --fitness-sets held use (default: --held-seed / --held-seeds)")
    ap.add_argument("--held-pairs", type=int, default=8)
    ap.add_argument("--population", type=int, default=12)
    ap.add_argument("--generations", type=int, default=40, help="a cap; the budget ends the search first")
    ap.add_argument("--reference-steps", type=int, default=100)
    ap.add_argument("--full-steps", type=int, default=50)
    ap.add_argument("--reference-gap", action="store_true",
                    help="per held-out set: the find's and the best pairs' errors against both references, and how "
                         "their errors line up with the 50-step run's own error against the 100-step run")
    ap.add_argument("--fitness-sets", nargs="+", default=["fit"], choices=["fit", "held"],
                    help="seeds each variant searches on: fit (then validation; the result) and/or held (the oracle)")
    ap.add_argument("--grid-oracle", nargs="*", default=[], help="samplers for grid_oracle (none: skip it)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/schedule_space_study"))
    args = ap.parse_args(argv)
    args.held_seed, args.held_seeds = held_sets(args)[0]  # the first held-out set is "held"
    args.cache.mkdir(parents=True, exist_ok=True)
    comfy_env.boot_comfyui()
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    bench = StudyBench(args.model, args, args.cache)
    print(f"{args.model}: references ready in {time.perf_counter() - t0:.0f} s; fit {args.fit_seeds} + val "
          f"{args.validation_seeds} seeds, held-out " + ", ".join(f"{k} from {seed}" for seed, k in held_sets(args)),
          flush=True)
    print_reference_gaps(bench)
    for n in args.steps:
        if args.grid_oracle:
            grid_oracle(bench, n, args.grid_oracle)
        if args.variants:
            study(bench, n, args.variants, args.fitness_sets)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        sys.exit(main())
