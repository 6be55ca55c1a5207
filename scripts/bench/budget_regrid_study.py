"""Study for the budget mode (issue 12, session 3): regular gaps by construction (re-gridding) and the order per gap.

    OMP_NUM_THREADS=1 python scripts/bench/budget_regrid_study.py --model <flow .safetensors> --samplers euler \
        --budgets 17,13 --variants current,index,regrid

Every variant runs through core/budget.py's BudgetController in budget_study's own PREDICT_NOISE wrapper (no
patch), on ComfyUI's real samplers; PSNR against the same sampler's 50-step output and against the high-accuracy
reference, next to (a) N steps of the sampler. Plain runs and references come from the grid's cache
(results/budget_grid_<model>.pt) when present; the study's own runs are cached in results/budget_regrid_<model>.pt.

Variants (N calls of a `steps`-step run):
  current     calls at regular gaps along the axis (log σ; σ on flow models) of the run's own schedule
  index       calls at regular gaps in step index of the run's own schedule (gaps of 2 and 3 where N-1 ∤ steps-1)
  regrid      the user's scheduler at M = (N - 1)·k + 1 steps, a call every k-th step (every gap exactly k steps),
              k = round((steps - 1) / (N - 1)); regrid_lo / regrid_hi: k rounded down / up
  regrid_axis the same M-step schedule, calls at regular gaps along the axis
  order:<rule> order per gap (see OrderController)
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

from budget_study import Env, costs_for, high_reference  # noqa: E402

SDE = ("dpmpp_2m_sde", "euler_ancestral")


def regrid_k(steps: int, n: int, how: str = "round") -> int:
    exact = (steps - 1) / max(n - 1, 1)
    if how == "near":  # the k whose M = (n - 1)·k + 1 is closest to steps (ties: the larger M)
        return min((abs((n - 1) * k + 1 - steps), -k, k) for k in (math.floor(exact), math.ceil(exact)))[2]
    if how == "interp":
        return max(1, round(exact))
    k = {"round": round(exact), "lo": math.floor(exact), "hi": math.ceil(exact)}[how]
    return max(1, k)


def interpolated(env: Env, sampler: str, sch: str, steps: int, m: int):
    """The run's own `steps`-step schedule (KSampler's, penultimate σ dropped for uni_pc) interpolated to m steps
    along the axis (core/budget_run.resample_schedule)."""
    import importlib
    run = importlib.import_module(env.budget.__name__.rsplit(".", 1)[0] + ".budget_run")
    trimmed = sampler == "uni_pc"
    sig = [float(s) for s in env.sigmas(sch, steps + 1 if trimmed else steps)]
    if trimmed:
        sig = sig[:-2] + sig[-1:]
    axis = "log" if env.model_name == "digits" else "sigma"
    return run.resample_schedule(sig, m, trimmed, axis)


def controller(env: Env, budget: int, abscissa: str, placement: str, order: int = 2, order_rule: str = ""):
    B = env.budget

    def factory(sigmas, fn, batch):
        costs = costs_for(env, fn, sigmas)
        space = env.steps_mod.reuse_space(fn, "quadratic")
        cls = B.BudgetController
        kw = {}
        if order_rule:
            cls = order_controller(B)
            kw = {"rule": order_rule}
        return cls(sigmas, costs, budget, warmup=1, space=space, abscissa=abscissa, placement=placement,
                   order=order, **kw)
    return factory


def order_controller(B):
    class OrderController(B.BudgetController):
        """Order per gap: at each call the extrapolation order for the next gap is chosen from the disagreement of
        the quadratic and linear predictions of the call just made (what each would have predicted for it)."""

        def __init__(self, *a, rule: str = "", **k):
            super().__init__(*a, **k)
            self.rule = rule
            self.use = self.order
            self.orders = []

        def store(self, x, denoised, sigma):
            if sigma > 0 and self._stored_step != self._last and self._pending_gap and len(self._nodes) >= 3:
                lam = self._at(sigma)
                value = self._value(x, denoised, sigma)
                e2 = float(B.rel_err(self._extrapolate(lam, 2), value).mean())
                e1 = float(B.rel_err(self._extrapolate(lam, 1), value).mean())
                if self.rule == "backtest":
                    self.use = 2 if e2 <= e1 else 1
            super().store(x, denoised, sigma)

        def _extrapolate(self, lam, order=None):
            if order is None:
                order = self.use
            return super()._extrapolate(lam, order)

        def predict(self, x, sigma):
            self.orders.append(self.use)
            return super().predict(x, sigma)
    return OrderController


def main(argv=None) -> int:
    import torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="digits")
    ap.add_argument("--samplers", default="euler,dpmpp_2m")
    ap.add_argument("--budgets", default="17,13")
    ap.add_argument("--variants", default="current,index,regrid")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", type=Path, default=HERE.parents[1] / "results")
    ap.add_argument("--tag", default="", help="suffix of the study's cache file (parallel processes need their own)")
    args = ap.parse_args(argv)
    flow = args.model != "digits"
    name = "digits" if not flow else Path(args.model).stem
    env = Env(args.model, args.seeds, 3.0 if flow else 4.0)
    axis = "sigma" if flow else "log"
    grid_path = args.out / f"budget_grid_{name}.pt"
    own_path = args.out / f"budget_regrid_{name}{args.tag}.pt"
    grid = torch.load(grid_path, weights_only=False) if grid_path.is_file() else {}
    own = torch.load(own_path, weights_only=False) if own_path.is_file() else {}
    env.cache = {**grid, **own}
    t0 = time.perf_counter()

    def save():
        keep = {k: (v[0], v[1], None) for k, v in env.cache.items() if k not in grid}
        torch.save(keep, own_path)

    for sampler in args.samplers.split(","):
        sch = "ddim_uniform" if sampler == "ddim" else ("simple" if flow else "karras")
        full = env.run(sampler, sch, args.steps, key=("plain", sampler, sch, args.steps))[0]
        high = None
        if sampler != "euler_ancestral":
            high = high_reference(env, sch, sampler if sampler == "dpmpp_2m_sde" else None)

        def hi(x):
            return env.db(x, high) if high is not None else float("nan")
        for n in (int(b) for b in args.budgets.split(",")):
            a = env.run(sampler, sch, n, key=("plain", sampler, sch, n))[0]
            print(f"{sampler} N={n}: (a) {env.db(a, full):6.2f}/{hi(a):6.2f}", flush=True)
            for v in args.variants.split(","):
                steps, placement, order_rule, order, sigmas = args.steps, "axis", "", 2, None
                ax = axis
                if v == "current":
                    pass
                elif v in ("index", "front"):
                    placement = v
                elif v == "front_idx":
                    placement, ax = "front", "index"
                elif v.startswith("front_idx_order:"):
                    placement, ax, order_rule = "front", "index", v.split(":", 1)[1]
                elif v == "front_linear":
                    placement, order = "front", 1
                elif v.startswith("regrid"):
                    how = {"regrid_lo": "lo", "regrid_hi": "hi", "regrid_near": "near"}.get(v, "round")
                    k = regrid_k(args.steps, n, how)
                    steps = (n - 1) * k + 1
                    placement = "axis" if v.endswith("_axis") else "index"
                    order = 1 if v == "regrid_linear" else 2
                    if v.startswith("regrid_interp"):
                        sigmas = interpolated(env, sampler, sch, args.steps, steps)
                elif v.startswith("linear"):
                    order = 1
                    placement = "index" if v == "linear_index" else "axis"
                elif v.startswith("order:"):
                    order_rule = v.split(":", 1)[1]
                else:
                    raise SystemExit(f"unknown variant {v}")
                key = ("study", sampler, n, v, steps)
                out, calls, ctl = env.run(sampler, sch, steps, key=key, sigmas=sigmas,
                                          controller=controller(env, n, ax, placement, order, order_rule))
                extra = ""
                if steps != args.steps:
                    m = env.run(sampler, sch, steps, key=("plain", sampler, sch, steps))[0]
                    extra = f"  M={steps} steps plain: {env.db(m, full):6.2f}/{hi(m):6.2f}"
                if ctl is not None and getattr(ctl, "orders", None):
                    extra += f"  mean order {sum(ctl.orders) / len(ctl.orders):.2f}"
                print(f"    {v:12s} {env.db(out, full):6.2f}/{hi(out):6.2f} [{calls}]  "
                      f"-(a) {env.db(out, full) - env.db(a, full):+6.2f}{extra}", flush=True)
                save()
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
