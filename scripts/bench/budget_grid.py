"""The budget mode's grid (issue 12 "Must show"): every sampler x speedup on a bundled model, next to the baselines.

    OMP_NUM_THREADS=1 python scripts/bench/budget_grid.py --model digits
    OMP_NUM_THREADS=1 python scripts/bench/budget_grid.py --model models/diffusion_models/adaptive_skip_mnist_dit.safetensors

Each cell (sampler, 50 steps, speedup s; N = round(50 / s) model calls) reports PSNR against the same sampler's
50-step output and against a high-accuracy reference (ODE samplers: dpmpp_2m at 200 karras steps over the same σ
range; dpmpp_2m_sde: itself at 200 steps, whose Brownian-tree noise follows the same path; euler_ancestral draws
fresh noise per step, so it has no pathwise reference and only the 50-step column), for:
  budget  the pack's budget mode (criterion "budget", speedup s) through nodes.patch.attach;
  (a)     the same sampler with N model calls (heun: (N + 1) // 2 steps);
  (b)     the best of ComfyUI's strong samplers with N steps, judged against the high-accuracy reference;
  (c)     the best hand-picked mode of the pack before the budget mode at no more calls: calls N x linear/quadratic,
          stride k x quadratic with the largest k whose calls fit N (the error rule needs a δ sweep per cell and
          is left out).
Runs are cached in results/budget_grid_<model>.pt, so a second invocation only samples what is missing
(--fresh-budget re-samples the budget cells, e.g. after changing the rule). Prints markdown tables.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from budget_study import Env, high_reference, make_budget_ctl  # noqa: E402

SAMPLERS = ("euler", "euler_ancestral", "ddim", "dpmpp_2m", "dpmpp_2m_sde", "deis", "ipndm", "uni_pc", "heun")
SPEEDUPS = (2.0, 2.5, 3.0, 3.85)
ODE_PEERS = ("ipndm", "ipndm_v", "deis", "lms", "uni_pc", "dpmpp_2m")  # the strongest at 13-25 calls here
SDE_PEERS = ("dpmpp_2m_sde", "dpmpp_3m_sde", "dpmpp_2m_sde_heun")
TWO_CALL = ("heun",)
WARMUP = 4


SCHEDULER = {"default": "karras"}  # --scheduler


def scheduler_for(sampler: str) -> str:
    return "ddim_uniform" if sampler == "ddim" else SCHEDULER["default"]


def steps_for_calls(sampler: str, calls: int) -> int:
    return (calls + 1) // 2 if sampler in TWO_CALL else calls


def stride_calls(steps: int, stride: int, sampler: str) -> int:
    computed = WARMUP + math.ceil((steps - WARMUP) / stride)
    return 2 * computed - 1 if sampler in TWO_CALL else computed

SDE_SAMPLERS = ("dpmpp_2m_sde",)
SKIPPING = ("euler", "ddim", "dpmpp_2m", "euler_ancestral", "deis", "ipndm", "uni_pc")  # (c): linear and quadratic


def cell(env, args, sampler, s, refs, pack_run):
    """One grid cell: the budget mode and the three baselines at N = round(steps / s) calls."""
    full, high = refs
    steps = args.steps
    sch = scheduler_for(sampler)
    n = max(1, round(steps / s))
    sde = sampler in SDE_SAMPLERS

    def hi(x):
        return env.db(x, high) if high is not None else float("nan")

    if args.budget_source == "pack":
        out, calls, path = pack_run(sampler, ("budget", sampler, s), criterion="budget", speedup=s,
                                    warmup_steps=WARMUP)
        mode = path.note if path is not None else "(cached)"
    else:
        out, calls, _ = env.run(sampler, sch, steps, controller=make_budget_ctl(env, n),
                                key=("budget-study", sampler, s))
        mode = "skip (study)"
    budget = (env.db(out, full), hi(out), calls)
    a_out, a_calls, _ = env.run(sampler, sch, steps_for_calls(sampler, n),
                                key=("plain", sampler, sch, steps_for_calls(sampler, n)))
    a = (env.db(a_out, full), hi(a_out), a_calls)
    b = None
    if high is not None:
        peers = SDE_PEERS if sde else (("ipndm_v", "lms", "dpmpp_2m") if sampler == "ddim" else ODE_PEERS)
        for p in peers:
            po = env.run(p, sch, n, key=("plain", p, sch, n))
            v = (hi(po[0]), env.db(po[0], full), p, po[1])
            b = v if b is None or v[0] > b[0] else b
    c_cands = []
    t = steps_for_calls(sampler, n)  # "calls" counts model-call steps
    for reuse in (("linear", "quadratic") if sampler in SKIPPING else ("linear",)):
        o = pack_run(sampler, ("c", sampler, "calls", t, reuse), criterion="calls", target_calls=t,
                     reuse=reuse, warmup_steps=WARMUP)
        c_cands.append((env.db(o[0], full), hi(o[0]), o[1], f"calls {t} {reuse}"))
    k = next((k for k in range(2, steps) if stride_calls(steps, k, sampler) <= n), None)
    if k is not None:
        o = pack_run(sampler, ("c", sampler, "stride", k), criterion="stride", stride=k,
                     max_consecutive_skips=max(k - 1, 1), reuse="quadratic", warmup_steps=WARMUP)
        c_cands.append((env.db(o[0], full), hi(o[0]), o[1], f"stride {k} quadratic"))
    fitting = [c for c in c_cands if c[2] <= n] or c_cands
    c = max(fitting, key=lambda c: c[0])
    return dict(sampler=sampler, speedup=s, n=n, budget=budget, mode=mode, a=a, b=b, c=c)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="digits",
                    help="comma-separated: digits and/or a flow DiT .safetensors path, run one after the other")
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--speedups", default="3.85,2,3,2.5", help="in the order they are run")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--high-steps", type=int, default=200)
    ap.add_argument("--scheduler", default="", help="scheduler of every sampler but ddim (ddim_uniform); "
                    "default karras on digits, simple on a flow model (its model card's)")
    ap.add_argument("--cfg", type=float, default=0.0, help="default 4 on digits, 3 on a flow model")
    ap.add_argument("--budget-source", choices=("pack", "study"), default="pack",
                    help="pack: criterion 'budget' through nodes.patch.attach; study: core/budget.py's controller "
                         "through the study's own wrapper (before the pack exposes the mode)")
    ap.add_argument("--fresh-budget", nargs="?", const="all", default="",
                    help="re-sample the budget cells (of these comma-separated samplers; all without a value)")
    ap.add_argument("--out", type=Path, default=HERE.parents[1] / "results")
    ap.add_argument("--cached-only", action="store_true",
                    help="sample nothing: print the table of the cells whose runs are all cached")
    args = ap.parse_args(argv)
    tables = []
    for model in args.model.split(","):
        one = argparse.Namespace(**vars(args))
        one.model = model
        one.scheduler = args.scheduler or ("karras" if model == "digits" else "simple")
        one.cfg = args.cfg or (4.0 if model == "digits" else 3.0)
        tables.append(run_model(one))
    print("\n\n".join(tables))
    return 0


def run_model(args) -> str:
    import torch
    SCHEDULER["default"] = args.scheduler
    env = Env(args.model, args.seeds, args.cfg)
    name = "digits" if args.model == "digits" else Path(args.model).stem
    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.out / f"budget_grid_{name}.pt"
    cache = torch.load(cache_path, weights_only=False) if cache_path.is_file() else {}
    if args.fresh_budget:
        fresh = None if args.fresh_budget == "all" else set(args.fresh_budget.split(","))
        cache = {k: v for k, v in cache.items() if k[0] != "budget" or (fresh is not None and k[1] not in fresh)}
    env.cache = cache
    steps = args.steps
    t0 = time.perf_counter()

    def save():
        torch.save({k: (v[0], v[1], None) for k, v in env.cache.items()}, cache_path)

    def pack_run(sampler, key, **skip):
        cfg = env.config_mod.SkipConfig(**skip)
        setup = env.patch.SkipSetup(config=cfg, scheduler=scheduler_for(sampler))
        out = env.run(sampler, scheduler_for(sampler), steps, pack_setup=setup, key=key)
        return out

    rows = []
    refs = {}

    def references(sampler):
        if sampler not in refs:
            sch = scheduler_for(sampler)
            full = env.run(sampler, sch, steps, key=("plain", sampler, sch, steps))[0]
            high = None
            if sampler != "euler_ancestral":  # fresh noise per step: no pathwise reference
                high = high_reference(env, sch, sampler if sampler in SDE_SAMPLERS else None, args.high_steps)
            refs[sampler] = (full, high)
            if not args.cached_only:
                save()
        return refs[sampler]

    if args.cached_only:
        def refuse(*a, key=None, **k):
            if key in env.cache:
                return env.cache[key]
            raise LookupError(key)
        env.run = refuse
    # speedup-major, so a run cut short still has every sampler at the first speedups
    for s in (float(v) for v in args.speedups.split(",")):
        for sampler in args.samplers.split(","):
            try:
                rows.append(cell(env, args, sampler, s, references(sampler), pack_run))
            except LookupError:
                continue  # --cached-only: a run of this cell was not sampled
            if not args.cached_only:
                save()
            r = rows[-1]
            bud, a, b, c = r["budget"], r["a"], r["b"], r["c"]
            print(f"{sampler:16s} {s:4g}x N={r['n']:2d} budget {bud[0]:6.2f}/{bud[1]:6.2f} [{bud[2]}] "
                  f"(a) {a[0]:6.2f}/{a[1]:6.2f} (b) {('%.2f %s' % (b[0], b[2])) if b else '-':>18s} "
                  f"(c) {c[0]:6.2f}/{c[1]:6.2f} {c[3]}  | {r['mode'][:90]}", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s\n")
    order = {n: i for i, n in enumerate(args.samplers.split(","))}
    rows.sort(key=lambda r: (order[r["sampler"]], r["speedup"]))
    table = markdown(rows, name, args)
    print(table, flush=True)
    return table


FUNCTION = {"uni_pc": "sample_unipc", "ddim": "sample_euler"}  # ComfyUI's ddim is euler (on ddim_uniform here)


def mode_of(sampler: str) -> str:
    """What the budget mode does with this sampler (core/budget.choose_mode, as the patch decides it)."""
    from pack_loader import core
    return core("budget").choose_mode(FUNCTION.get(sampler, f"sample_{sampler}"), 2 if sampler in TWO_CALL else 1)[0]


def fmt(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def markdown(rows, name, args) -> str:
    lines = [f"#### {name}: {args.seeds} seeds, {args.steps} steps ({args.scheduler}; ddim: ddim_uniform), cfg "
             f"{args.cfg:g}; PSNR dB vs the {args.steps}-step output / vs the "
             "high-accuracy reference",
             "",
             "| sampler | speedup | calls | budget mode | (a) same sampler | (b) best sampler (vs ref) | "
             "(c) best hand-picked | budget − (a) | budget − (c) | mode |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bud, a, b, c = r["budget"], r["a"], r["b"], r["c"]
        bcell = f"{fmt(b[0])} {b[2]}" if b else "—"
        mode = mode_of(r["sampler"])
        lines.append(f"| {r['sampler']} | {r['speedup']:g} | {bud[2]} | {fmt(bud[0])} / {fmt(bud[1])} | "
                     f"{fmt(a[0])} / {fmt(a[1])} | {bcell} | {fmt(c[0])} / {fmt(c[1])} ({c[3]}) | "
                     f"{bud[0] - a[0]:+.1f} | {bud[0] - c[0]:+.1f} | {mode} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
