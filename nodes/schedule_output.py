"""What the schedule nodes return: SIGMAS, the report and the SAMPLER the schedule is for."""
from __future__ import annotations

import logging

import comfy.samplers
import torch

logger = logging.getLogger(__name__)


def sampler_output(name: str) -> tuple[object, str]:
    """ComfyUI's SAMPLER for a saved sampler name (as KSamplerSelect builds it), and a note when this ComfyUI
    lacks that sampler (euler is returned then, and the report says so)."""
    if name in comfy.samplers.KSampler.SAMPLERS:
        return comfy.samplers.sampler_object(name), ""
    note = (f"sampler {name!r} of this schedule is not in this ComfyUI; the sampler output is euler (update "
            "ComfyUI, or pick a sampler with KSamplerSelect)")
    logger.warning("AdaptiveSkip: %s", note)
    return comfy.samplers.sampler_object("euler"), note


def schedule_output(sigmas: torch.Tensor, report: str, sampler_name: str) -> dict:
    """Node result (SIGMAS, report, SAMPLER) plus the report as UI text (shown by the frontend and collected by
    the headless runner)."""
    sampler, note = sampler_output(sampler_name)
    if note:
        report += "\n" + note
    return {"ui": {"text": [report]}, "result": (sigmas, report, sampler)}

