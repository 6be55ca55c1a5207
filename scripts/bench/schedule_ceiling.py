"""In-sample ceiling of the general sampler + σ space (issue 14): any sampler gene x any decreasing σ schedule.

    OMP_NUM_THREADS=1 python scripts/bench/schedule_ceiling.py --model digits --steps 6 --seconds 900

What it measures: the search is run ON the seeds it is scored on (--seeds K from --seed, default the benchmark's
128 held-out seeds from 10000), so its figure is an upper bound of what any schedule reaches there, not a result.
The space is every sampler gene (--samplers) with every σ_1 > ... > σ_{S-1} in log σ (S: the gene's steps at N
calls; σ_0 = σ_max and the final 0 fixed, the log gaps >= the pack's min_log_gap, σ_{S-1} >= σ_min, as the pack's
EvoSearch keeps them). Scoring as scripts/bench/autodiffusion_schedule.py: latent MSE against the 100-step and
50-step dpmpp_2m karras runs of the same seeds, the baseline the best built-in (sampler, scheduler) pair of the
genes picked with hindsight on those seeds, every sample drawn by the pack's CandidateRunner (all seeds of a set
and up to --batch candidates in one lock-step run; `--check` shows its samples equal the study caches').
The optimiser (PatternSearch, pure): multi-start compass search in log σ with the Hooke-Jeeves pattern move and two
random directions per round, the step halved after a round without progress; starts are the best built-in pairs
and the best schedules cached by the session-6 studies (their warp finds). `--fit-seeds K --fit-seed S`: search on
those seeds instead, score on the held-out ones (the out-of-sample check).
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[1]
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

MIN_LOG_GAP = 0.02  # core.schedule_search.EvoConfig.min_log_gap
STUDY_CACHES = ("/tmp/hu_study", "/tmp/hu_study/b", "/tmp/hu_study/c", "/tmp/schedule_space_study")  # read only
SESSION_SAMPLERS = ("dpmpp_2m", "ipndm", "ipndm_v", "deis", "uni_pc", "uni_pc_bh2")  # session 6's oracle genes


# --- the optimiser's pure parts ---------------------------------------------------------------------------------
def repair(free: Sequence[float], lo: float, hi: float, gap: float = MIN_LOG_GAP) -> list[float]:
    """The free log σ values (σ_1..σ_{S-1}) made valid: sorted descending, within [lo, hi - gap], neighbours (and
    σ_0 = hi) at least `gap` apart. Raises ValueError when the range cannot hold them."""
    if not free:
        return []
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo < gap * len(free):
        raise ValueError(f"log σ range [{lo}, {hi}] cannot hold {len(free)} free values {gap} apart below σ_max")
    xs = sorted((min(max(float(v), lo), hi - gap) if math.isfinite(v) else lo for v in free), reverse=True)
    prev = hi
    for i in range(len(xs)):  # push down from σ_max
        xs[i] = min(xs[i], prev - gap)
        prev = xs[i]
    xs[-1] = max(xs[-1], lo)
    for i in range(len(xs) - 2, -1, -1):  # and up from σ_min
        xs[i] = max(xs[i], xs[i + 1] + gap)
    return xs


@dataclass
class Start:
    """One multi-start point: a sampler gene, its free log σ values, its fitness and its current step."""

    sampler: str
    x: list[float]
    f: float = math.inf
    step: float = 0.2
    last_move: list[float] | None = None
    origin: str = ""


@dataclass
class PatternSearch:
    """Multi-start compass search over (sampler, free log σ), minimising a batched `evaluate`.

    evaluate(list of (sampler, free log σ)) -> list of fitness values (lower is better; one call per round, so the
    caller can batch every candidate of a round into one sampling run). Each round, for each of the `active` best
    starts: ±step on every coordinate, the pattern move (the last accepted move repeated) and `random_moves`
    Gaussian moves; a start moves only to a strictly better candidate, else its step halves. Stops when the
    evaluation budget is spent, every step is below `min_step`, or `should_stop()` says so."""

    lo: float
    hi: float
    evaluate: Callable[[list[tuple[str, list[float]]]], list[float]]
    step: float = 0.2
    min_step: float = 0.005
    active: int = 2
    random_moves: int = 2
    seed: int = 0
    gap: float = MIN_LOG_GAP
    starts: list[Start] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    evaluations: int = 0
    cache: dict = field(default_factory=dict)

    def __post_init__(self):
        if not (self.step > 0 and self.min_step > 0):
            raise ValueError(f"step ({self.step}) and min_step ({self.min_step}) must be > 0")
        if self.active < 1 or self.random_moves < 0:
            raise ValueError(f"active ({self.active}) must be >= 1 and random_moves ({self.random_moves}) >= 0")
        if not self.hi > self.lo:
            raise ValueError(f"sigma range: log sigma_max {self.hi} must be above log sigma_min {self.lo}")
        self.rng = random.Random(self.seed)

    def _key(self, sampler: str, x: Sequence[float]) -> tuple:
        return sampler, tuple(round(v, 9) for v in x)

    def _score(self, cands: list[tuple[str, list[float]]]) -> list[float]:
        todo = list(dict.fromkeys(self._key(s, x) for s, x in cands if self._key(s, x) not in self.cache))
        if todo:
            values = self.evaluate([(s, list(x)) for s, x in todo])
            if len(values) != len(todo):
                raise ValueError(f"evaluate returned {len(values)} values for {len(todo)} candidates")
            self.evaluations += len(todo)
            self.cache.update(zip(todo, (float(v) for v in values)))
        return [self.cache[self._key(s, x)] for s, x in cands]

    def add_starts(self, starts: dict[str, tuple[str, Sequence[float]]]) -> None:
        """name -> (sampler, free log σ): repaired, scored in one batch, kept best first."""
        if not starts:
            raise ValueError("the search needs at least one start (sampler, free log sigma values)")
        new = [Start(s, repair(x, self.lo, self.hi, self.gap), step=self.step, origin=name)
               for name, (s, x) in starts.items()]
        for st, f in zip(new, self._score([(st.sampler, st.x) for st in new])):
            st.f = f
        self.starts = sorted(self.starts + new, key=lambda st: st.f)
        self.history.append(self.best.f)

    @property
    def best(self) -> Start:
        return min(self.starts, key=lambda st: st.f)

    def _moves(self, st: Start) -> list[list[float]]:
        out = []
        for i in range(len(st.x)):
            for sign in (1.0, -1.0):
                x = list(st.x)
                x[i] += sign * st.step
                out.append(x)
        if st.last_move is not None:
            out.append([v + m for v, m in zip(st.x, st.last_move)])
        for _ in range(self.random_moves if st.x else 0):
            out.append([v + self.rng.gauss(0.0, st.step) for v in st.x])
        return [repair(x, self.lo, self.hi, self.gap) for x in out]

    def round(self) -> bool:
        """One round; False when nothing is left to search (every active step below min_step, or no free σ)."""
        live = [st for st in sorted(self.starts, key=lambda s: s.f) if st.step >= self.min_step and st.x]
        live = live[:self.active]
        if not live:
            return False
        proposals = [(st, x) for st in live for x in self._moves(st)]
        values = self._score([(st.sampler, x) for st, x in proposals])
        for st in live:
            mine = [(f, x) for (s, x), f in zip(proposals, values) if s is st]
            f, x = min(mine, key=lambda fx: fx[0])
            if f < st.f:
                st.last_move = [a - b for a, b in zip(x, st.x)]
                st.x, st.f = x, f
            else:
                st.step *= 0.5
                st.last_move = None
        self.history.append(self.best.f)
        return True

    def run(self, max_evaluations: int, should_stop: Callable[[], bool] = lambda: False,
            report: Callable[[PatternSearch], None] | None = None) -> Start:
        if max_evaluations < 1:
            raise ValueError(f"max_evaluations must be >= 1, got {max_evaluations}")
        if not self.starts:
            raise ValueError("add_starts first: the search has no start")
        while self.evaluations < max_evaluations and not should_stop() and self.round():
            if report is not None:
                report(self)
        return self.best


def free_logs(sigmas: Sequence[float]) -> list[float]:
    """log σ_1..σ_{S-1} of a schedule σ_0..σ_{S-1}, 0."""
    return [math.log(float(v)) for v in list(sigmas)[1:-1]]


def to_sigmas(sigma_max: float, free: Sequence[float]) -> tuple[float, ...]:
    return (float(sigma_max), *(math.exp(v) for v in free), 0.0)


# --- the host part ------------------------------------------------------------------------------------------------
class SampleCache:
    """(sampler, σ rounded to 9 decimals) -> samples of one seed set at one N: the study caches read (never
    written), new samples drawn by `runner` in batches of `batch` candidates and kept in `path`."""

    def __init__(self, runner, path: Path, read: Sequence[Path] = (), batch: int = 24):
        self.runner, self.path, self.batch = runner, path, batch
        self.cache = {}
        for p in read:
            if p.is_file():
                self.cache.update(torch.load(p))
        self.own = torch.load(path) if path.is_file() else {}
        self.cache.update(self.own)
        self.sampled = self.near_hits = 0

    @staticmethod
    def key(sampler: str, sigmas: Sequence[float]) -> tuple:
        return sampler, tuple(round(float(v), 9) for v in sigmas)

    def near(self, key: tuple, rel: float = 1e-6) -> tuple:
        """`key` itself, else a cached key of the same sampler whose σ agree within `rel` (float32 rounding: the
        study caches hold some pairs under σ that differ in the last decimals from ComfyUI's own, session 6)."""
        if key in self.cache:
            return key
        for other in self.cache:
            if other[0] == key[0] and len(other[1]) == len(key[1]) and all(
                    abs(a - b) <= rel * max(abs(a), abs(b), 1e-12) for a, b in zip(other[1], key[1])):
                self.near_hits += 1
                self.cache[key] = self.cache[other]
                return key
        return key

    def run(self, schedules: list) -> list[torch.Tensor]:
        keys = [self.near(self.key(s.sampler, s.sigmas)) for s in schedules]
        todo = list({k: s for k, s in zip(keys, schedules) if k not in self.cache}.items())
        for i in range(0, len(todo), self.batch):
            part = todo[i:i + self.batch]
            outs = self.runner.run([s for _, s in part])
            for (k, _), o in zip(part, outs):
                self.cache[k] = self.own[k] = o
            self.sampled += len(part)
        if todo:
            torch.save(self.own, self.path.with_suffix(".part"))
            self.path.with_suffix(".part").replace(self.path)
        return [self.cache[k] for k in keys]


def mse(a, b) -> float:
    return float(((a.float() - b.float()) ** 2).mean())


def per_seed(a, b) -> torch.Tensor:
    return ((a.float() - b.float()) ** 2).flatten(1).mean(1)


def references(bench, k: int, seed: int, cache: Path, steps: tuple[int, int], read: Sequence[Path] = ()):
    """(100-step, 50-step) dpmpp_2m karras runs of k seeds from `seed`: a study cache file when one holds them
    (folders `read`, never written), else sampled and kept in `cache`."""
    names = [f"{bench.name}-{kind}-{k}-{seed}-refs-{steps[0]}-{steps[1]}.pt" for kind in ("held", "fit", "test")]
    for folder in (*read, cache):
        for name in names:
            if (folder / name).is_file():
                ref, full = torch.load(folder / name)
                if ref is not None and full is not None:
                    return ref.detach(), full.detach(), folder / name
    runner = bench.runner(k, seed)
    ref, full = runner.sample(bench.ref_sigmas, "dpmpp_2m"), runner.sample(bench.full_sigmas, "dpmpp_2m")
    path = cache / names[0]
    torch.save((ref, full), path)
    return ref, full, path


def study_files(read: Sequence[Path], name: str, k: int, seed: int, n: int) -> list[Path]:
    return [folder / f"{name}-{kind}-{k}-{seed}-n{n}.pt" for folder in read for kind in ("held", "fit", "test")]


def best_of(outs: dict, ref) -> tuple[str, float]:
    errs = {p: mse(o, ref) for p, o in outs.items()}
    p = min(errs, key=lambda q: (errs[q], q))
    return p, errs[p]


def ceiling_cell(bench, args, n: int) -> dict:
    joint = bench.joint
    genes = tuple(g for g in bench.builtins.joint_genes(n) if g[0] in args.samplers)
    pairs = bench.builtins.joint_baselines(bench.model, genes)
    lo, hi = math.log(bench.info.sigma_min), math.log(bench.info.sigma_max)
    sets = {"held": (args.seeds, args.seed)}
    if args.fit_seeds:
        sets["fit"] = (args.fit_seeds, args.fit_seed)
    data = {}
    for key, (k, seed) in sets.items():
        ref, full, ref_path = references(bench, k, seed, args.cache, (args.reference_steps, args.full_steps),
                                          args.study_caches)
        runner = bench.runner(k, seed)
        runner.candidates_per_call = args.batch
        memo = SampleCache(runner, args.cache / f"{bench.name}-{k}-{seed}-n{n}.pt",
                           study_files(args.study_caches, bench.name, k, seed, n), batch=args.batch)
        data[key] = (memo, ref, full)
        print(f"{bench.name} N={n} {key}: {k} seeds from {seed}, references {ref_path}; {len(memo.cache)} cached "
              "samples", flush=True)
    memo, ref, full = data["held"]
    t0 = time.perf_counter()
    pair_outs = dict(zip(pairs, memo.run(list(pairs.values()))))
    base = {"high": best_of(pair_outs, ref), "full": best_of(pair_outs, full)}
    print(f"  {len(pairs)} pairs of {len(genes)} genes ({memo.sampled} sampled, {memo.near_hits} cached under σ "
          f"within 1e-6, {time.perf_counter() - t0:.0f} s): best vs "
          f"{args.reference_steps}-step {base['high'][0]} {base['high'][1]:.5g}, vs {args.full_steps}-step "
          f"{base['full'][0]} {base['full'][1]:.5g}", flush=True)
    steps_of = {g[0]: g[1] for g in genes}
    search_key = "fit" if args.fit_seeds else "held"
    s_memo, s_ref, s_full = data[search_key]
    target = s_ref if args.objective == "high" else s_full

    def evaluate(cands):
        scheds = [joint.SamplerSchedule(s, to_sigmas(bench.info.sigma_max, x)) for s, x in cands]
        return [mse(o, target) for o in s_memo.run(scheds)]

    # starts: the best pair of each sampler on the search seeds, and the best cached schedules (session 6's finds)
    s_pairs = dict(zip(pairs, s_memo.run(list(pairs.values()))))
    errs = {p: mse(o, target) for p, o in s_pairs.items()}
    starts, seen = {}, set()
    for p in sorted(errs, key=errs.get):
        if pairs[p].sampler not in seen and len(seen) < args.pair_starts:
            seen.add(pairs[p].sampler)
            starts[p] = (pairs[p].sampler, free_logs(pairs[p].sigmas))
    pair_keys = {SampleCache.key(s.sampler, s.sigmas) for s in pairs.values()}
    cached = [(mse(o, target), key) for key, o in s_memo.cache.items()
              if key[0] in steps_of and len(key[1]) == steps_of[key[0]] + 1 and key not in pair_keys]
    for f, (sampler, sig) in sorted(cached)[:args.cached_starts]:
        starts[f"cached {sampler} {f:.4g}"] = (sampler, free_logs(sig))
    search = PatternSearch(lo, hi, evaluate, step=args.step, min_step=args.min_step, active=args.active,
                           seed=n)
    search.add_starts(starts)
    print(f"  starts ({search_key} seeds, vs {args.objective}): " + "; ".join(
        f"{st.origin} -> {st.sampler} {st.f:.5g}" for st in search.starts), flush=True)
    deadline = t0 + args.seconds  # the cell's wall budget: pairs, starts and search

    def report(s):
        b = s.best
        print(f"    round {len(s.history) - 1}: best {b.sampler} {b.f:.5g} ({b.origin}), steps "
              + ", ".join(f"{st.sampler} {st.step:.3g}" for st in sorted(s.starts, key=lambda q: q.f)[:args.active])
              + f"; {s.evaluations} evaluations, {s_memo.sampled} sampled, {time.perf_counter() - t0:.0f} s",
              flush=True)

    best = search.run(args.max_evaluations, lambda: time.perf_counter() > deadline, report)
    found = joint.SamplerSchedule(best.sampler, to_sigmas(bench.info.sigma_max, best.x))
    out = memo.run([found])[0]
    row = {"N": n, "sampler": best.sampler, "sigmas": [round(v, 5) for v in found.sigmas], "search": search_key,
           "evaluations": search.evaluations, "seconds": time.perf_counter() - t0, "base": base}
    for r, rr in (("high", ref), ("full", full)):
        row[r] = mse(out, rr)
        row[f"{r}_gain"] = base[r][1] / row[r]
    row["median_gain"] = float(per_seed(pair_outs[base["high"][0]], ref).median() / per_seed(out, ref).median())
    print(f"  CEILING {bench.name} N={n} [searched on {search_key}, objective {args.objective}]: {best.sampler} "
          f"vs {args.reference_steps}-step {row['high']:.5g} ({row['high_gain']:.2f}x over {base['high'][0]}), vs "
          f"{args.full_steps}-step {row['full']:.5g} ({row['full_gain']:.2f}x over {base['full'][0]}); median per "
          f"seed {row['median_gain']:.2f}x; {search.evaluations} candidates, {row['seconds']:.0f} s; sigmas "
          f"{row['sigmas']}", flush=True)
    return row


def check(bench, args, n: int, names: Sequence[str]) -> None:
    """Fresh samples of the named pairs (drawn now, in one batch) against the study caches' samples of them."""
    genes = bench.builtins.joint_genes(n)
    pairs = bench.builtins.joint_baselines(bench.model, genes)
    ref, full, _ = references(bench, args.seeds, args.seed, args.cache, (args.reference_steps, args.full_steps),
                              args.study_caches)
    cached = SampleCache(None, args.cache / "unused.pt",
                         study_files(args.study_caches, bench.name, args.seeds, args.seed, n)).cache
    runner = bench.runner(args.seeds, args.seed)
    runner.candidates_per_call = args.batch
    outs = runner.run([pairs[p] for p in names])
    for p, o in zip(names, outs):
        old = cached.get(SampleCache.key(pairs[p].sampler, pairs[p].sigmas))
        diff = "not cached" if old is None else (f"cached {mse(old, ref):.6g}, max |diff| "
                                                 f"{float((o - old).abs().max()):.3g}")
        print(f"  check N={n} {p}: batched now vs {args.reference_steps}-step {mse(o, ref):.6g} / "
              f"{args.full_steps}-step {mse(o, full):.6g}; {diff}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="digits", choices=["digits", "mnist_dit"])
    ap.add_argument("--steps", nargs="+", type=int, default=[6])
    ap.add_argument("--samplers", nargs="+", default=list(SESSION_SAMPLERS))
    ap.add_argument("--seeds", type=int, default=128, help="held-out seeds (scored; searched unless --fit-seeds)")
    ap.add_argument("--seed", type=int, default=10_000)
    ap.add_argument("--fit-seeds", type=int, default=0, help="search on these seeds instead (out-of-sample check)")
    ap.add_argument("--fit-seed", type=int, default=1000)
    ap.add_argument("--objective", default="high", choices=["high", "full"],
                    help="the reference the search minimises: high (100-step) or full (50-step)")
    ap.add_argument("--seconds", type=float, default=900,
                    help="wall budget of each N: its pairs, starts and search (the round under way ends)")
    ap.add_argument("--max-evaluations", type=int, default=5000)
    ap.add_argument("--step", type=float, default=0.2, help="first compass step in log σ")
    ap.add_argument("--min-step", type=float, default=0.005)
    ap.add_argument("--active", type=int, default=2, help="starts searched each round (the best ones)")
    ap.add_argument("--pair-starts", type=int, default=3, help="best pairs (one per sampler) used as starts")
    ap.add_argument("--cached-starts", type=int, default=3, help="best cached non-pair schedules used as starts")
    ap.add_argument("--batch", type=int, default=24, help="candidates per lock-step sampling run")
    ap.add_argument("--reference-steps", type=int, default=100)
    ap.add_argument("--full-steps", type=int, default=50)
    ap.add_argument("--check", nargs="*", default=[], metavar="PAIR", help="only compare these pairs' fresh "
                    "samples with the study caches' (at the first --steps)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hc_ceiling"))
    ap.add_argument("--study-caches", nargs="*", type=Path, default=[Path(p) for p in STUDY_CACHES],
                    help="session-6 study caches read for references and samples (never written)")
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    import comfy_env
    comfy_env.boot_comfyui()
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)
    torch.set_num_threads(1)
    import bench.autodiffusion_schedule as AS
    bench = AS.Bench.__new__(AS.Bench)
    bench.load(args.model, args)
    if args.check:
        check(bench, args, args.steps[0], args.check)
        return 0
    rows = [ceiling_cell(bench, args, n) for n in args.steps]
    print(f"\n| N | best pair vs {args.reference_steps}-step | ceiling vs {args.reference_steps}-step | gain | best "
          f"pair vs {args.full_steps}-step | ceiling | gain | median per-seed gain | searched on | candidates, s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = r["base"]
        print(f"| {r['N']} | {b['high'][0]} {b['high'][1]:.4g} | {r['sampler']} {r['high']:.4g} | "
              f"{r['high_gain']:.2f}x | {b['full'][0]} {b['full'][1]:.4g} | {r['full']:.4g} | {r['full_gain']:.2f}x | "
              f"{r['median_gain']:.2f}x | {r['search']} | {r['evaluations']}, {r['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        sys.exit(main())
