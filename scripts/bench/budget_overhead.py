"""What the budget mode's controller costs per sampler call on an SD1.5-shaped UNet (random weights, 32x32 latent,
batch 1, CFG), measured like scripts/bench/overhead.py: the bench wrappers sandwich a plain run, whose outside time
(pure wrapper dispatch) is subtracted.

    OMP_NUM_THREADS=1 python scripts/bench/budget_overhead.py --steps 6
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import comfy_env  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    _root, _nodes, pack = comfy_env.boot_comfyui()
    import torch
    torch.set_num_threads(1)
    from bench import plan as P
    from bench.harness import Harness
    from bench.models import SD15_UNET, load_random
    from bench.overhead import _split

    print("building the SD1.5-shaped random-weight UNet ...", flush=True)
    model = load_random(SD15_UNET, seed=0)
    gen = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 77, 768, generator=gen), {}]]
    negative = [[torch.randn(1, 77, 768, generator=gen), {}]]
    harness = Harness(pack, model, positive, negative, torch.zeros(1, 4, 32, 32), torch.randn(1, 4, 32, 32,
                      generator=gen), cfg=4.0, seed=0, decode={"mean": 0.5, "std": 0.25, "scale": 0.18215})
    plain = P.RunSpec(P.FULL, "euler", "karras", args.steps, label="plain")
    budget = P.RunSpec(P.ADAPTIVE, "euler", "karras", args.steps, label="budget speedup 2",
                       skip=tuple(sorted(dict(criterion="budget", speedup=2.0).items())))
    calls = {"plain": [], "budget speedup 2": []}
    held = 0
    for rep in range(args.repeats):
        for spec in ((plain, budget) if rep % 2 == 0 else (budget, plain)):
            res = harness.run(spec)
            calls[spec.label] += res.calls
            held = max(held, res.controller_bytes or 0)
            print(f"  {spec.label}: {res.model_calls:g} calls, {res.wall:.1f} s", flush=True)
    base_outside, _, base_model = _split(calls["plain"])
    dispatch, model_call = statistics.median(base_outside), statistics.median(base_model)
    computed, skipped, _ = _split(calls["budget speedup 2"])
    per_call = [max(t - dispatch, 0.0) for t in computed] + [max(t - dispatch, 0.0) for t in skipped]
    print(f"\nSD1.5-shaped UNet, 1x4x32x32, cfg 4, euler {args.steps} steps, {args.repeats} interleaved repeats")
    print(f"one model call: {model_call * 1000:.0f} ms; wrapper dispatch subtracted: {dispatch * 1e6:.0f} µs")
    print(f"budget speedup 2: {len(computed)} computed / {len(calls['budget speedup 2'])} sampler calls; overhead per "
          f"computed call {1e6 * statistics.median([max(t - dispatch, 0) for t in computed]):.0f} µs; cost per "
          f"skipped call {1e6 * statistics.median(skipped) if skipped else float('nan'):.0f} µs; per step median "
          f"{1e6 * statistics.median(per_call):.0f} µs = {statistics.median(per_call) / model_call:.2e} of one model "
          f"call (mean {statistics.mean(per_call) / model_call:.2e}); controller holds {held} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
