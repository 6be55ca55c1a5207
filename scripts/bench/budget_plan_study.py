"""Study for the budget mode (issue 12, session 4): explicit call plans, the start-up, the order and the space.

    OMP_NUM_THREADS=1 python scripts/bench/budget_plan_study.py --model <flow .safetensors> --samplers euler \
        --budgets 13 --variants front,start=1+1,o=3even

Every variant runs through core/budget.py's BudgetController (a subclass whose only change is which steps call:
an explicit plan) in budget_study's own PREDICT_NOISE wrapper, on ComfyUI's real samplers; PSNR against the same
sampler's 50-step output and against the high-accuracy reference, next to (a) N calls' worth of steps of the
sampler. Plain runs and references come from the grid's cache (results/budget_grid_<model>.pt) when present; the
study's own runs are cached in results/budget_plan_<model><tag>.pt.

A variant is '+'-joined tokens (N calls of a `steps`-step run; heun: k = (N + 1) // 2 computed steps, both calls of
a computed step real, the last step one call):
  front           the budget mode's plan: whole-step gaps q or q + 1, the q + 1 gaps first (core/budget.front_plan)
  long=<where>    where the r long gaps go: first (default), last, mid, second (after the first gap)
  start=a:b:...   the first gaps fixed at a, b, ... steps; the rest spread as the front plan spreads it
  end=a:b:...     the last gaps fixed likewise
  exact=i:j:...   diagnostic: the skipped steps of gaps i, j, ... call the model (not kept as nodes)
  o=<order>       extrapolation order: 1, 2 (default), 3, 3even (cubic where the last four nodes are evenly spaced
                  in step index, else quadratic)
  ax=<axis>       abscissa of the extrapolation: index (default), sigma, log
  D               extrapolate D instead of d (eps space)
  resample        heun only: the sampler on the run's schedule resampled to k steps (the budget mode today)
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from budget_study import Env, costs_for, high_reference  # noqa: E402

TWO_CALL = ("heun",)


def spread(steps_left: int, gaps: int, long: str) -> list[int]:
    """`gaps` whole-step gaps summing to steps_left, q or q + 1 each, the q + 1 ones placed by `long`."""
    if gaps <= 0:
        return []
    q, r = divmod(steps_left, gaps)
    if long == "first":
        where = set(range(r))
    elif long == "last":
        where = set(range(gaps - r, gaps))
    elif long == "second":
        where = set(range(1, r + 1)) if r < gaps else set(range(gaps))
    elif long == "mid":
        lo = (gaps - r) // 2
        where = set(range(lo, lo + r))
    else:
        raise SystemExit(f"unknown long={long}")
    return [q + 1 if j in where else q for j in range(gaps)]


def plan_steps(steps: int, computed: int, long: str = "first", start: tuple[int, ...] = (),
               end: tuple[int, ...] = ()) -> list[int]:
    """The steps that call: `computed` of `steps` steps, the first and last among them."""
    if computed >= steps:
        return list(range(steps))
    middle = spread(steps - 1 - sum(start) - sum(end), computed - 1 - len(start) - len(end), long)
    gaps = list(start) + middle + list(end)
    out = [0]
    for g in gaps:
        out.append(out[-1] + g)
    if out[-1] != steps - 1 or len(out) != computed:
        raise SystemExit(f"bad plan {gaps} for {computed} of {steps}")
    return out


def plan_controller(B):
    class PlanController(B.BudgetController):
        """BudgetController calling exactly the steps of `plan`; order "3even": cubic on evenly spaced nodes."""

        def __init__(self, *a, plan=(), order_rule="", exact=(), **k):
            super().__init__(*a, **k)
            self.plan = set(plan)
            self.order_rule = order_rule
            self.exact = set(exact)  # skipped steps that call the model anyway, not kept as nodes (a diagnostic)
            self._real = False

        def _decide(self, step):
            self._real = not self._nodes or step in self.plan
            return self._real or step in self.exact

        def store(self, x, denoised, sigma):
            if self._real:
                super().store(x, denoised, sigma)

        def _extrapolate(self, lam, order=None):
            if order is None and self.order_rule == "3even":
                nodes = self._nodes[-4:]
                xs = [l for l, _ in nodes]
                gaps = [a - b for a, b in zip(xs, xs[1:])]
                even = len(nodes) == 4 and max(gaps) - min(gaps) < 1e-9
                order = 3 if even else min(2, len(nodes) - 1)
            return super()._extrapolate(lam, order)
    return PlanController


def parse(variant: str) -> dict:
    spec = {"end": (), "exact": (), "long": "first", "start": (), "order": 2, "rule": "", "ax": "index", "D": False, "resample": False}
    for tok in variant.split("+"):
        if tok in ("front", ""):
            continue
        if tok == "D":
            spec["D"] = True
        elif tok == "resample":
            spec["resample"] = True
        elif tok.startswith("long="):
            spec["long"] = tok[5:]
        elif tok.startswith("start="):
            spec["start"] = tuple(int(v) for v in tok[6:].split(":"))
        elif tok.startswith("end="):
            spec["end"] = tuple(int(v) for v in tok[4:].split(":"))
        elif tok.startswith("exact="):  # gap j's skipped steps call the model (not as nodes)
            spec["exact"] = tuple(int(v) for v in tok[6:].split(":"))
        elif tok.startswith("o="):
            v = tok[2:]
            spec["order"], spec["rule"] = (3, "3even") if v == "3even" else (int(v), "")
        elif tok.startswith("ax="):
            spec["ax"] = tok[3:]
        else:
            raise SystemExit(f"unknown token {tok!r} in {variant!r}")
    return spec


def main(argv=None) -> int:
    import torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="digits")
    ap.add_argument("--samplers", default="euler")
    ap.add_argument("--budgets", default="13")
    ap.add_argument("--variants", default="front")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--scheduler", default="", help="default karras on digits, simple on a flow model")
    ap.add_argument("--out", type=Path, default=HERE.parents[1] / "results")
    ap.add_argument("--tag", default="", help="suffix of the study's cache file (parallel processes need their own)")
    args = ap.parse_args(argv)
    flow = args.model != "digits"
    name = "digits" if not flow else Path(args.model).stem
    default_sch = args.scheduler or ("simple" if flow else "karras")
    env = Env(args.model, args.seeds, 3.0 if flow else 4.0)
    B = env.budget
    run_mod = importlib.import_module(B.__name__.rsplit(".", 1)[0] + ".budget_run")
    Plan = plan_controller(B)
    grid_path = args.out / f"budget_grid_{name}.pt"
    own_path = args.out / f"budget_plan_{name}{args.tag}.pt"
    grid = torch.load(grid_path, weights_only=False) if grid_path.is_file() and default_sch == (
        "simple" if flow else "karras") else {}
    own = torch.load(own_path, weights_only=False) if own_path.is_file() else {}
    env.cache = {**grid, **own}
    t0 = time.perf_counter()

    def save():
        torch.save({k: (v[0], v[1], None) for k, v in env.cache.items() if k not in grid}, own_path)

    for sampler in args.samplers.split(","):
        sch = "ddim_uniform" if sampler == "ddim" else default_sch
        full = env.run(sampler, sch, args.steps, key=("plain", sampler, sch, args.steps))[0]
        high = None
        if sampler != "euler_ancestral":
            sde = sampler if sampler == "dpmpp_2m_sde" else None
            high = high_reference(env, sch, sde)

        def hi(x):
            return env.db(x, high) if high is not None else float("nan")
        for n in (int(b) for b in args.budgets.split(",")):
            k = (n + 1) // 2 if sampler in TWO_CALL else n
            a = env.run(sampler, sch, k, key=("plain", sampler, sch, k))[0]
            print(f"{sampler}/{sch} N={n}: (a) {env.db(a, full):6.2f}/{hi(a):6.2f}", flush=True)
            for v in args.variants.split(","):
                spec = parse(v)
                key = ("plan", sampler, sch, n, v)
                if spec["resample"]:
                    sig = [float(s) for s in env.sigmas(sch, args.steps)]
                    axis = "sigma" if flow else "log"
                    new = run_mod.resample_schedule(sig, k, False, axis)
                    out, calls, _ = env.run(sampler, sch, k, key=key, sigmas=new)
                else:
                    plan = plan_steps(args.steps, k, spec["long"], spec["start"], spec["end"])
                    exact = [i for j in spec["exact"] for i in range(plan[j] + 1, plan[j + 1])]

                    def factory(sigmas, fn, batch, plan=plan, spec=spec, exact=exact):
                        costs = costs_for(env, fn, sigmas)
                        space = "denoised" if spec["D"] else env.steps_mod.reuse_space(fn, "quadratic")
                        return Plan(sigmas, costs, len(costs) * 3, warmup=1, space=space, abscissa=spec["ax"],
                                    placement="front", order=spec["order"], plan=plan, order_rule=spec["rule"], exact=exact)
                    out, calls, _ = env.run(sampler, sch, args.steps, key=key, controller=factory)
                print(f"    {v:28s} {env.db(out, full):6.2f}/{hi(out):6.2f} [{calls}]  "
                      f"-(a) {env.db(out, full) - env.db(a, full):+6.2f}", flush=True)
                save()
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
