"""Study for the budget mode (issue 12, session 4): does `calls` + hold beat fewer dpmpp_2m_sde steps because of
the scheduler? On the flow DiT the main benchmark (karras, cfg 3, 4 seeds) saw hold win by 4-7 dB, the budget grid
(simple, cfg 3, 8 seeds) saw it lose. This runs both schedulers on the same seeds.

    OMP_NUM_THREADS=1 python scripts/bench/budget_sde_study.py --model <flow .safetensors> --budgets 13,17

Per scheduler: PSNR against dpmpp_2m_sde's own 50-step output and against it at 200 steps of the same scheduler
(the same Brownian-tree path), for N steps of dpmpp_2m_sde, the pack's `calls` N x hold / linear (warm-up 4, through
nodes.patch.attach) and the budget mode (which resamples to N steps of the scheduler).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from budget_study import Env  # noqa: E402

SAMPLER = "dpmpp_2m_sde"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--budgets", default="13,17")
    ap.add_argument("--schedulers", default="karras,simple")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=3.0)
    args = ap.parse_args(argv)
    env = Env(args.model, args.seeds, args.cfg)
    t0 = time.perf_counter()
    for sch in args.schedulers.split(","):
        full = env.run(SAMPLER, sch, args.steps)[0]
        high = env.run(SAMPLER, sch, 200)[0]
        print(f"## {SAMPLER}/{sch}, cfg {args.cfg:g}, {args.seeds} seeds: 50 steps vs 200 {env.db(full, high):.2f} dB")
        for n in (int(b) for b in args.budgets.split(",")):
            fewer = env.run(SAMPLER, sch, n)[0]
            print(f"  N={n}: {n} steps {env.db(fewer, full):6.2f}/{env.db(fewer, high):6.2f}", flush=True)
            for label, skip in (("calls hold", dict(criterion="calls", target_calls=n, reuse="hold")),
                                ("calls linear", dict(criterion="calls", target_calls=n, reuse="linear")),
                                ("budget", dict(criterion="budget", speedup=args.steps / n))):
                cfg = env.config_mod.SkipConfig(warmup_steps=4, **skip)
                setup = env.patch.SkipSetup(config=cfg, scheduler=sch)
                out, calls, _ = env.run(SAMPLER, sch, args.steps, pack_setup=setup)
                print(f"    {label:14s} {env.db(out, full):6.2f}/{env.db(out, high):6.2f} [{calls}]", flush=True)
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
