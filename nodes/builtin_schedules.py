"""ComfyUI's own schedules, computed by ComfyUI, as the stock KSampler gives them: the baselines a searched schedule
is compared with and the seeds of the search's first generation. Also the model calls a sampler makes."""
from __future__ import annotations

from collections.abc import Sequence

import comfy.samplers
import torch
from comfy_extras.nodes_align_your_steps import AlignYourStepsScheduler

from ..core.joint_schedule_search import DETERMINISTIC_SAMPLERS, SamplerSchedule, steps_within
from ..core.sampler_steps import calls_per_step, sampler_function_name
from .model_identity import model_info

# The host schedulers compared with a searched schedule, in this order (it is the order of the search's seeds, so
# it is part of what a seed reproduces), then Align Your Steps where ComfyUI has levels for the model family.
# ComfyUI also has ddim_uniform and linear_quadratic: adding them here seeds the search differently, so a saved
# search would no longer reproduce; do it together with a CACHE_VERSION bump.
COMPARED_SCHEDULERS = ("simple", "normal", "sgm_uniform", "karras", "exponential", "beta", "kl_optimal")


def _host_schedule(model, name: str, steps: int, ays_family: str | None) -> torch.Tensor | None:
    if name == "ays":
        return AlignYourStepsScheduler.execute(ays_family, steps, 1.0).result[0] if ays_family else None
    if name not in comfy.samplers.SCHEDULER_HANDLERS or (name == "kl_optimal" and steps < 2):
        return None  # kl_optimal divides by steps - 1
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), name, steps).float().cpu()


def builtin_baselines(model, sampler_name: str, steps: int) -> dict[str, torch.Tensor]:
    """Every built-in schedule at `steps` steps as the stock KSampler would compute it for this sampler."""
    ays_family = model_info(model).ays_family
    discard = sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    n = steps + 1 if discard else steps  # as KSampler: one more step, then the penultimate σ dropped
    out = {}
    for name in COMPARED_SCHEDULERS + ("ays",):
        sigmas = _host_schedule(model, name, n, ays_family)
        if sigmas is not None and discard:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        if sigmas is not None and len(sigmas) == steps + 1:  # beta drops repeated steps
            out[name] = sigmas
    return out


def sampler_calls(sampler_name: str, sigmas: Sequence[float]) -> int | None:
    """Model calls the sampler makes for one sample over this schedule, or None when it is not fixed."""
    per_step = calls_per_step(sampler_function_name(comfy.samplers.sampler_object(sampler_name)))
    if per_step is None:
        return None
    values = [float(v) for v in sigmas]
    return sum(per_step(i, values) for i in range(len(values) - 1))


def joint_genes(calls: int) -> tuple[tuple[str, int, int], ...]:
    """(sampler, steps, model calls) for every deterministic sampler this ComfyUI has and whose calls are known,
    each at the most steps whose calls fit in `calls` (sampler_name auto)."""
    genes = []
    for name in DETERMINISTIC_SAMPLERS:
        if name not in comfy.samplers.KSampler.SAMPLERS:
            continue
        def cost(steps, name=name):
            return sampler_calls(name, [float(steps - i) for i in range(steps)] + [0.0])
        if cost(1) is None:
            continue
        steps = steps_within(cost, calls)
        if steps is not None:
            genes.append((name, steps, cost(steps)))
    return tuple(genes)


def joint_baselines(model, genes) -> dict[str, SamplerSchedule]:
    """Every sampler x built-in scheduler pair of the genes, named "sampler+scheduler", at the gene's steps."""
    out = {}
    for name, steps, _ in genes:
        for scheduler, sigmas in builtin_baselines(model, name, steps).items():
            out[f"{name}+{scheduler}"] = SamplerSchedule(name, tuple(float(v) for v in sigmas.tolist()))
    return out
