"""Issue-14 study: the two-stage search against timesteps alone AT EQUAL WALL TIME, and plan transfer, on the
bundled MNIST flow DiT.

    python scripts/architecture_wall_time.py                   # N = 3 4 5 6, k = 1, then the transfer study
    python scripts/architecture_wall_time.py --ns 4 --no-transfer
    python scripts/architecture_wall_time.py --skipped reuse --ns 3 4 5 8 10 --k 1 2 --no-transfer \
        --out docs/architecture_wall_time_reuse   # skipped blocks reuse their last residual

Equal wall time. For each N: "timesteps only" is stage 1 (EvoTimestepSchedule) at N steps with every block, and
the built-in `simple` schedule at N. "Two-stage" is stage 1 at M = N + k steps plus a block plan whose wall time
equals timesteps-only at N. The plan's block budget comes from wall time measured side by side on this machine:
sampling at M steps costs M x (a + b x c) for block cost c (a: the per-call work outside the blocks -- embedding,
final layer, CFG, the sampler; b: every block -- on the bundled DiT the four joint blocks, the last of which has a
pre_only context stream; printed and saved per row as a_s_per_step / b_s_per_step), so the
kept block calls K are the most for which the fitted M-step time stays at or below the N-step time. The plan is
searched at K calls (fitness: latent MSE to the same M-step schedule with every block, on --fit-seeds seeds); next
to it the best uniform plan and random plans of the same K. Every point is scored on --eval held-out seeds (classes
cycling 0-9): Fréchet distance of MNIST-classifier features to the 1,000 held-out real digits, PSNR of the decoded
digits against a --reference-steps run with every block, and the wall time of one batch of --timing-batch samples,
measured interleaved with every other point of the same N (best of --timing-rounds).

Transfer. At --transfer-steps of `simple`, costs --transfer-costs: a plan searched on classes 0-4 (fit seeds 0..9)
is scored on held-out seeds of classes 5-9, against the plan searched on classes 5-9 themselves, the best uniform
plan and random plans of the same cost (Fréchet distance against the real held-out digits of classes 5-9).
Writes docs/architecture_wall_time.json and .png.

Another model: --model-file and --cond-file (e.g. the 12-block Wan-detected DiT of scripts/train_mnist_wan.py,
/tmp/wan_study/adaptive_skip_mnist_wan.safetensors and _cond.safetensors); the bundled DiT is the default.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PACK = HERE.parent
sys.path.insert(0, str(HERE))
import architecture_report as report  # noqa: E402

sys.path.remove(str(HERE))
HOLDOUT_SEED = report.HOLDOUT_SEED


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", nargs="*", type=int, default=[3, 4, 5, 6], help="none: the transfer study only")
    parser.add_argument("--k", nargs="+", type=int, default=[1], help="extra steps of the two-stage result")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--eval", type=int, default=100)
    parser.add_argument("--fit-seeds", type=int, default=10)
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--random-plans", type=int, default=2)
    parser.add_argument("--reference-steps", type=int, default=100)
    parser.add_argument("--stage1-budget", type=int, default=1500)
    parser.add_argument("--timing-batch", type=int, default=40)
    parser.add_argument("--timing-rounds", type=int, default=3)
    parser.add_argument("--stage1-file", default="", help="JSON {steps: sigmas} of stage-1 results: read, and "
                                                            "written as stage 1 runs (a stopped run resumes; two runs "
                                                            "with --ns in opposite orders share the work)")
    parser.add_argument("--weights", nargs="+", type=float, default=None,
                        help="relative compute per block for a weighted plan search at the matched cost (e.g. "
                             "1 1 1 0.905: the MNIST DiT's last joint block, pre_only context stream, by MACs)")
    report.add_skipped_argument(parser)
    report.add_model_arguments(parser)
    parser.add_argument("--outside-share", type=float, default=None,
                        help="match the budget by the cost model with this fixed share of a full step's time spent "
                             "outside the blocks (e.g. 0.05) instead of the timing calibration, whose CPU times "
                             "move K by several calls on a loaded machine; the points are still timed")
    parser.add_argument("--no-transfer", action="store_true")
    parser.add_argument("--transfer-steps", type=int, default=8)
    parser.add_argument("--transfer-costs", nargs="+", type=float, default=[0.75, 0.5])
    parser.add_argument("--merge", nargs="+", default=None, help="only merge these JSON results into --out")
    parser.add_argument("--out", default=str(PACK / "docs" / "architecture_wall_time"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        data = {"meta": parts[0]["meta"], "rows": [r for p in parts for r in p["rows"]],
                "transfer": [r for p in parts for r in p.get("transfer", [])]}
        out.with_suffix(".json").write_text(json.dumps(data, indent=1))
        plot(data, out.with_suffix(".png"))
        return 0
    torch.set_num_threads(1)
    study = report.load_study(PACK, args.sampler, args.cfg, args.model_file, args.cond_file)
    pack, bp, core_plan, plan_search = study.pack, study.bp, study.core_plan, study.plan_search
    frechet, mf, classifier, real_all = study.frechet, study.mf, study.classifier, study.real
    model, table, info = study.model, study.table, study.info
    held, held_labels, runner, digits = study.held, study.held_labels, study.runner, study.digits
    nblocks = len(info.blocks)
    print(f"model {info.identity}; real held-out digits {len(held)}", flush=True)

    def simple(steps: int):
        import comfy.samplers
        return comfy.samplers.calculate_sigmas(study.model_sampling, "simple", steps).float().cpu()

    def patched(plan):
        return model if plan is None else bp.apply_plans(model, [plan])

    def search(sigmas, keep: int, fit_classes=range(10), weights=(), cost=None):
        steps = len(sigmas) - 1
        fit = runner(sigmas, args.fit_seeds, 0, fit_classes)
        target = fit.full()

        def fitness(plans):
            values = []
            for start in range(0, len(plans), 8):
                values += [float(((o - target) ** 2).mean()) for o in fit.plans(plans[start:start + 8])]
            return values
        config = plan_search.BlockSearchConfig(cost_target=cost or keep / (steps * nblocks),
                                               population=args.population, parents=max(2, args.population // 4),
                                               generations=args.generations)
        start = time.perf_counter()
        result = plan_search.search_block_plan(steps, info.blocks, info.identity, fitness, config,
                                               sigmas=[float(s) for s in sigmas], weights=weights,
                                               skipped=args.skipped)
        randoms = [core_plan.random_plan(steps, info.blocks, info.identity, keep / (steps * nblocks),
                                         random.Random(100 + r), skipped=args.skipped)
                   for r in range(args.random_plans)]
        print(f"  search M={steps} K={keep}: {result.evaluated} plans in {time.perf_counter() - start:.0f}s; "
              f"fitness found {result.fitness:.4g}, uniform {result.uniform_fitness:.4g}", flush=True)
        return result, randoms

    def timing(points: dict, rounds: int) -> tuple[dict, dict]:
        """Best-of-rounds (wall time, process CPU time) of one --timing-batch batch per point, interleaved. On a
        shared machine the wall time carries the other processes' load; with one thread, this process's CPU time
        is the wall time the run takes on an idle core, so the matching uses it (both are reported)."""
        wall, cpu = {key: math.inf for key in points}, {key: math.inf for key in points}
        runs = {key: (runner(sig, args.timing_batch, 0), patched(plan)) for key, (sig, plan) in points.items()}
        for _ in range(rounds):
            for key, (run, mdl) in runs.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                run._run(mdl, 1)
                cpu[key] = min(cpu[key], time.process_time() - start_cpu)
                wall[key] = min(wall[key], time.perf_counter() - start)
        return cpu, wall

    def quality(sigmas, plan, reference, real, classes=range(10)) -> dict:
        img = digits(runner(sigmas, args.eval, HOLDOUT_SEED, classes)._run(patched(plan), 1))
        fd = frechet.frechet(mf.mnist_features(classifier, img), real)
        psnr = float((10 * torch.log10(1.0 / ((img - reference) ** 2).flatten(1).mean(1))).mean())
        return {"frechet": fd.distance, "frechet_stable": fd.stable, "psnr": psnr}

    start_all = time.perf_counter()
    reference = digits(runner(simple(args.reference_steps), args.eval, HOLDOUT_SEED).full())
    ref_fd = frechet.frechet(mf.mnist_features(classifier, reference), real_all).distance
    print(f"reference {args.reference_steps} steps: FD {ref_fd:.2f}", flush=True)
    meta = {"args": vars(args), "reference_frechet": ref_fd, "model": info.identity}
    rows, transfer = [], []
    stage1_cache: dict[int, torch.Tensor] = {}

    saved_stage1 = json.loads(Path(args.stage1_file).read_text()) if args.stage1_file and Path(
        args.stage1_file).is_file() else {}

    def read_stage1_file() -> None:  # another run (e.g. --ns in the other order) may have added entries
        if args.stage1_file and Path(args.stage1_file).is_file():
            saved_stage1.update({k: v for k, v in json.loads(Path(args.stage1_file).read_text()).items()
                                 if k not in saved_stage1})

    def stage1(steps: int):
        if steps not in stage1_cache:
            read_stage1_file()
        if steps not in stage1_cache and str(steps) in saved_stage1:
            stage1_cache[steps] = torch.tensor(saved_stage1[str(steps)], dtype=torch.float32)
            print(f"stage 1, N={steps}: from {args.stage1_file}", flush=True)
        if steps not in stage1_cache:
            ns = argparse.Namespace(sampler=args.sampler, cfg=args.cfg, stage1_budget=args.stage1_budget,
                                    reference_steps=args.reference_steps)
            stage1_cache[steps] = report.stage1(pack, model, table, 10, ns, steps, study.latent)
            if args.stage1_file:
                saved_stage1[str(steps)] = stage1_cache[steps].tolist()
                read_stage1_file()
                part = Path(args.stage1_file).with_suffix(f".{os.getpid()}.tmp")
                part.write_text(json.dumps(saved_stage1))
                os.replace(part, args.stage1_file)  # whole-file replace: a concurrent reader never sees half
        meta.setdefault("stage1_sigmas", {})[str(steps)] = stage1_cache[steps].tolist()
        return stage1_cache[steps]

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "transfer": transfer},
                                                       indent=1))

    for n in args.ns:
        for k in args.k:
            m = n + k
            s_n, s_m = stage1(n), stage1(m)
            one_per_step = core_plan.BlockPlan(tuple(tuple(b == 0 for b in range(nblocks)) for _ in range(m)),
                                               info.blocks, info.identity)
            t, _ = timing({"n": (s_n, None), "m_full": (s_m, None), "m_min": (s_m, one_per_step)},
                          args.timing_rounds)
            # M-step time at cost c, linear in c between the 1-block-per-step plan and every block
            c_min = 1.0 / nblocks
            slope = (t["m_full"] - t["m_min"]) / (1.0 - c_min)
            c_star = c_min + (t["n"] - t["m_min"]) / slope if slope > 0 else 0.0
            overhead = t["m_min"] - c_min * slope  # the M-step time at no blocks: per-call work outside them
            fit = {"a_s_per_step": overhead / m, "b_s_per_step": slope / m, "outside_share": overhead / t["m_full"]}
            if args.outside_share is not None:  # the cost model with a fixed outside-block share s = a / (a + b):
                # N (a + b) = M (a + b c)  =>  c = (N / M) / (1 - s) - s / (1 - s)
                share = args.outside_share
                c_star = ((n / m) - share) / (1.0 - share)
            keep = min(m * nblocks, math.floor(c_star * m * nblocks + 1e-9))
            print(f"N={n} M={m}: t(N)={t['n']:.3f}s t(M,full)={t['m_full']:.3f}s t(M,1/step)={t['m_min']:.3f}s "
                  f"-> c*={c_star:.3f}, K={keep} of {m * nblocks}; outside-block share "
                  f"{overhead / t['m_full']:.2f}; fit per step a={fit['a_s_per_step']:.4f}s (outside the blocks) "
                  f"b={fit['b_s_per_step']:.4f}s (every block)", flush=True)
            least = core_plan.min_block_calls(m, nblocks, args.skipped)
            if keep < least:
                print(f"  N={n}, k={k}: no {args.skipped} plan ({least} block calls at least) fits the wall time "
                      f"(K={keep}); skipped", flush=True)
                continue
            result, randoms = search(s_m, keep)
            weighted = {}
            if args.weights:  # the same matched budget, spent by weight: the last block costs less of it
                w_result, _ = search(s_m, keep, weights=tuple(args.weights), cost=min(1.0, c_star))
                weighted = {"two-stage (weighted search)": (s_m, w_result.best, m)}
            points = {**weighted, "timesteps only (searched)": (s_n, None, n), "timesteps only (simple)": (simple(n), None, n),
                      "searched, every block, N+k": (s_m, None, m), "two-stage": (s_m, result.best, m),
                      "uniform plan": (s_m, result.best_uniform, m)}
            points.update({f"random plan {r}": (s_m, p, m) for r, p in enumerate(randoms)})
            times, walls = timing({key: (sig, plan) for key, (sig, plan, _) in points.items()}, args.timing_rounds)
            for key, (sig, plan, steps) in points.items():
                row = {"label": key, "family": key.split(" (")[0].split(" plan ")[0].removesuffix(", N+k"),
                       "n": n, "k": k, "steps": steps, "cost": plan.cost if plan is not None else 1.0,
                       "keep": keep if plan is not None else steps * nblocks, "seconds": times[key],
                       "wall_seconds": walls[key],
                       "c_star": c_star, **fit, **quality(sig, plan, reference, real_all),
                       "plan": plan.to_dict()["mask"] if plan is not None else None}
                if key.startswith("random"):
                    row["family"] = "random plan"
                if "weighted" in key:
                    row["family"] = "two-stage, weighted search"
                rows.append(row)
                print(f"  {key:30s} steps {steps} cost {row['cost']:.3f} FD {row['frechet']:7.2f} PSNR "
                      f"{row['psnr']:6.2f} dB  cpu {row['seconds']:.3f}s wall {row['wall_seconds']:.3f}s",
                      flush=True)
            save()
    if not args.no_transfer:
        sig = simple(args.transfer_steps)
        seen, unseen = range(5), range(5, 10)
        ref_unseen = digits(runner(simple(args.reference_steps), args.eval, HOLDOUT_SEED, unseen).full())
        real_unseen = mf.mnist_features(classifier, torch.as_tensor(held[held_labels >= 5]))
        for cost in args.transfer_costs:
            keep = core_plan.kept_calls(cost, args.transfer_steps, nblocks)
            on_seen, randoms = search(sig, keep, seen)
            on_unseen, _ = search(sig, keep, unseen)
            plans = {"searched on classes 0-4 (transferred)": on_seen.best,
                     "searched on classes 5-9 (in-distribution)": on_unseen.best,
                     "best uniform (picked on 0-4)": on_seen.best_uniform,
                     **{f"random plan {r}": p for r, p in enumerate(randoms)}}
            for label, plan in plans.items():
                row = {"label": label, "cost": plan.cost, "steps": args.transfer_steps,
                       **quality(sig, plan, ref_unseen, real_unseen, unseen), "plan": plan.to_dict()["mask"]}
                transfer.append(row)
                print(f"  transfer c={cost}: {label:42s} FD {row['frechet']:7.2f} PSNR {row['psnr']:6.2f} dB",
                      flush=True)
            save()
    meta["seconds"] = round(time.perf_counter() - start_all, 1)
    save()
    plot({"meta": meta, "rows": rows, "transfer": transfer}, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')} in {meta['seconds']:.0f}s")
    return 0


def plot(data: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, ref_fd = data["rows"], data["meta"]["reference_frechet"]
    styles = {"timesteps only": ("k", "s"), "searched, every block": ("tab:purple", "*"),
              "two-stage": ("tab:green", "D"), "two-stage, weighted search": ("tab:olive", "P"), "uniform plan": ("tab:orange", "^"), "random plan": ("tab:gray", "x")}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, label in ((axes[0], "frechet", "Fréchet distance to real digits (lower better)"),
                           (axes[1], "psnr", "PSNR vs high-accuracy reference, dB (higher better)")):
        for fam, (colour, marker) in styles.items():
            for variant in ("searched", "simple", None):
                pts = sorted((r["seconds"], r[key]) for r in rows if r["family"] == fam and
                             (variant is None or f"({variant})" in r["label"]))
                if not pts or (fam == "timesteps only") != (variant is not None):
                    continue
                name = fam + (f" ({variant} schedule)" if variant else "")
                ax.plot(*zip(*pts), marker=marker, color=colour if variant != "simple" else "tab:brown",
                        label=name, linestyle="" if fam in ("random plan", "uniform plan") else "-")
        for r in rows:
            if r["family"] == "two-stage":
                ax.annotate(f"N={r['n']}+{r['k']}", (r["seconds"], r[key]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        if key == "frechet":
            ax.axhline(ref_fd, color="k", linestyle=":", linewidth=1, label="high-accuracy reference")
            ax.set_yscale("log")
        ax.set_xlabel("time of one batch, s (process CPU time, one thread; measured interleaved)", fontsize=9)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    skipped = data["meta"]["args"].get("skipped", "pass_through")
    model_file = data["meta"]["args"].get("model_file")
    name = f"MNIST flow model {data['meta'].get('model')}" if model_file else "MNIST flow DiT"
    fig.suptitle(name + ": two-stage (N+k steps + block plan) vs timesteps only (N steps) at equal wall time"
                 + ("; skipped blocks reuse their last residual" if skipped == "reuse" else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
