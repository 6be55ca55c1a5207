"""Controller overhead on a realistically shaped model: a random-weight SD1.5 UNet (860M parameters), 32x32
latent, batch 1, CFG, a few euler steps. Only timing is meaningful here (the weights are random).

Overhead of a sampler call = time spent in the PREDICT_NOISE wrapper stack outside the model call. The same
bench wrappers sandwich a plain run, whose outside time (pure wrapper dispatch) is subtracted, so the number is
what AdaptiveSkip's wrapper adds: deciding, caching d, and on skipped calls rebuilding D from the cache.
"""
from __future__ import annotations

import statistics
from typing import Any

import torch

from . import plan as P
from .harness import Harness
from .models import SD15_UNET, load_random


def _split(calls: list[tuple[float, float | None]]) -> tuple[list[float], list[float], list[float]]:
    """(outside time of computed calls, whole time of skipped calls, model call times)."""
    computed = [total - inner for total, inner in calls if inner is not None]
    skipped = [total for total, inner in calls if inner is None]
    model = [inner for _, inner in calls if inner is not None]
    return computed, skipped, model


def measure_sd15_overhead(pack, steps: int, repeats: int = 2, log=print) -> dict[str, Any]:
    """Run plain and AdaptiveSkip sampling on the SD1.5-shaped UNet, interleaved, and report overhead fractions."""
    log("SD1.5-shaped UNet: building random weights (860M parameters) ...")
    model = load_random(SD15_UNET, seed=0)
    gen = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 77, 768, generator=gen), {}]]
    negative = [[torch.randn(1, 77, 768, generator=gen), {}]]
    latent = torch.zeros(1, 4, 32, 32)
    noise = torch.randn(1, 4, 32, 32, generator=gen)
    harness = Harness(pack, model, positive, negative, latent, noise, cfg=4.0, seed=0,
                      decode={"mean": 0.5, "std": 0.25, "scale": 0.18215})
    target = max(2, steps // 2 + 1)
    specs = [
        P.RunSpec(P.FULL, "euler", "karras", steps, label=f"plain euler {steps} steps"),
        P.RunSpec(P.ADAPTIVE, "euler", "karras", steps, label=f"calls {target} quadratic",
                  skip=tuple(sorted(dict(criterion="calls", target_calls=target, warmup_steps=2,
                                         reuse="quadratic").items()))),
        P.RunSpec(P.ADAPTIVE, "euler", "karras", steps, label="official δ=0.05 hold",
                  skip=tuple(sorted(dict(criterion="official", threshold=0.05, reuse="hold").items()))),
    ]
    calls: dict[str, list[tuple[float, float | None]]] = {s.label: [] for s in specs}
    walls: dict[str, list[float]] = {s.label: [] for s in specs}
    bytes_held: dict[str, int] = {}
    for rep in range(repeats):
        for spec in (specs if rep % 2 == 0 else specs[::-1]):
            res = harness.run(spec)
            calls[spec.label] += res.calls
            walls[spec.label].append(res.wall)
            if res.controller_bytes is not None:
                bytes_held[spec.label] = res.controller_bytes
            log(f"  {spec.label}: {res.model_calls:g} calls, {res.wall:.2f} s")
    base_outside, _, base_model = _split(calls[specs[0].label])
    dispatch = statistics.median(base_outside)
    model_call = statistics.median(base_model)
    report: dict[str, Any] = {"unet": "SD1.5 shape, random weights", "latent": "1x4x32x32", "cfg": 4.0,
                              "steps": steps, "repeats": repeats, "model_call_s": model_call,
                              "wrapper_dispatch_us": 1e6 * dispatch, "runs": {}}
    for spec in specs[1:]:
        computed, skipped, model = _split(calls[spec.label])
        per_call = [max(t - dispatch, 0.0) for t in computed] + [max(t - dispatch, 0.0) for t in skipped]
        report["runs"][spec.label] = {
            "sampler_calls": len(calls[spec.label]), "computed_calls": len(computed), "skipped_calls": len(skipped),
            "overhead_per_computed_call_us": 1e6 * statistics.median([max(t - dispatch, 0.0) for t in computed]),
            "cost_per_skipped_call_us": 1e6 * statistics.median(skipped) if skipped else None,
            "overhead_per_step_us": 1e6 * statistics.median(per_call),
            "overhead_per_step_mean_us": 1e6 * statistics.mean(per_call),
            "overhead_fraction_of_model_call": statistics.median(per_call) / model_call,
            "controller_bytes": bytes_held.get(spec.label),
            "wall_s_median": statistics.median(walls[spec.label]),
            "calls_outer_inner_s": calls[spec.label],
        }
    report["plain_wall_s_median"] = statistics.median(walls[specs[0].label])
    report["plain_calls_outer_inner_s"] = calls[specs[0].label]
    del harness, model
    return report


def overhead_markdown(report: dict[str, Any]) -> str:
    lines = [f"SD1.5-shaped random-weight UNet, latent {report['latent']}, cfg {report['cfg']}, euler "
             f"{report['steps']} steps, {report['repeats']} interleaved repeats. One model call (CFG batch of 2): "
             f"{report['model_call_s'] * 1000:.0f} ms; bench wrapper dispatch (subtracted): "
             f"{report['wrapper_dispatch_us']:.0f} µs.", "",
             "| setting | calls computed/asked | overhead per computed call | cost per skipped call | "
             "overhead per step (median; mean) | fraction of one model call | controller bytes |",
             "|---|---|---|---|---|---|---|"]
    for label, r in report["runs"].items():
        skipped = f"{r['cost_per_skipped_call_us']:.0f} µs" if r["cost_per_skipped_call_us"] is not None else "—"
        mean_us = r.get("overhead_per_step_mean_us", r["overhead_per_step_us"])
        lines.append(f"| {label} | {r['computed_calls']}/{r['sampler_calls']} | {r['overhead_per_computed_call_us']:.0f} µs"
                     f" | {skipped} | {r['overhead_per_step_us']:.0f} µs; {mean_us:.0f} µs"
                     f" | {r['overhead_fraction_of_model_call']:.2e} | "
                     f"{r['controller_bytes']} |")
    return "\n".join(lines)
