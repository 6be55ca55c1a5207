"""LoadTimestepSchedule and TimestepScheduleFromText: SIGMAS from the schedule library or from pasted text, with
KSampler's denoise convention for img2img."""
from __future__ import annotations

import torch

from ..core.schedule_library import describe, format_sigmas, load_record
from ..core.sigmas import parse_sigma_text, resample_log_steps, validate_sigmas
from .model_identity import model_info
from .schedule_files import fit_to_model, library_files, library_path
from .schedule_output import schedule_output
from .skip_library import file_fingerprint

CATEGORY = "sampling/adaptive_skip"


def _model_range(model) -> tuple[float, float]:
    ms = model.get_model_object("model_sampling")
    return float(ms.sigma_min), float(ms.sigma_max)


def denoise_tail(sigmas: torch.Tensor, denoise: float) -> tuple[torch.Tensor, str]:
    """KSampler's denoise convention (comfy.samplers.KSampler.set_steps): the schedule stretched in log sigma to
    steps / denoise steps, of which the last steps + 1 sigmas are kept; denoise 0 gives an empty schedule."""
    steps = len(sigmas) - 1
    if denoise <= 0.0:
        return torch.FloatTensor([]), "denoise 0: no step"
    total = max(int(steps / denoise), steps)  # KSampler: int(steps / denoise)
    full = resample_log_steps(sigmas, total) if total != steps else sigmas
    return full[-(steps + 1):], f"denoise {denoise:g}: the last {steps} of {total} steps"


# The schedule loaders' img2img input, as KSampler's denoise (appended after their older inputs).
DENOISE_INPUT = {
    "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
        "For img2img, as KSampler's denoise: below 1 the schedule is stretched in log sigma to steps / denoise "
        "steps and its last steps are returned (the same number of model calls). 1 keeps it whole; 0 returns "
        "no step.")}),
}


class LoadTimestepSchedule:
    """SIGMAS from the schedule library, mapped to the connected model's sigma range."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "schedule": (library_files(), {"tooltip": (
                    "A saved schedule (JSON in models/adaptive_skip_schedules or the pack's schedules folder).")}),
                "model": ("MODEL", {"tooltip": (
                    "The model to sample with: the schedule is mapped to its sigma range in log sigma when the "
                    "range differs from the one it was found for.")}),
            },
            "optional": {
                "steps": ("INT", {"default": 0, "min": 0, "max": 1000, "tooltip": (
                    "0 keeps the saved step count; another value stretches the schedule log-linearly "
                    "(it was searched for its own step count, so expect less benefit).")}),
                "allow_other_model_type": ("BOOLEAN", {"default": False, "tooltip": (
                    "A schedule found for another model type is refused unless this is on.")}),
                **DENOISE_INPUT,
            },
        }

    RETURN_TYPES = ("SIGMAS", "STRING", "SAMPLER")
    RETURN_NAMES = ("sigmas", "report", "sampler")
    OUTPUT_TOOLTIPS = ("The schedule for this model: steps + 1 values ending in 0.",
                       "The schedule as text, with the fitness and baselines saved with it.",
                       "The sampler the schedule was searched for (saved with it), for SamplerCustom.")
    FUNCTION = "load"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["sigmas", "schedule", "timesteps", "load schedule", "speed"]
    DESCRIPTION = "Load a schedule saved by EvoTimestepSchedule (or shipped with the pack) as SIGMAS."

    @classmethod
    def IS_CHANGED(cls, schedule, **_):
        """The file's content hash: a schedule overwritten in the library is read again, not served from the cache."""
        return file_fingerprint(library_path(schedule))

    def load(self, schedule, model, steps=0, allow_other_model_type=False, denoise=1.0):
        record = load_record(library_path(schedule))
        info = model_info(model)
        if record.model_type != info.model_type and not allow_other_model_type:
            raise ValueError(f"schedule {schedule!r} was found for model type {record.model_type}, but this model is "
                             f"{info.model_type}; search one for this model with EvoTimestepSchedule, or turn on "
                             "allow_other_model_type to map it to this model's sigma range anyway")
        sigmas, notes = fit_to_model(record, info.sigma_min, info.sigma_max, steps)
        sigmas = validate_sigmas(sigmas, info.sigma_min, info.sigma_max, name=f"schedule {schedule!r}")
        if denoise < 1.0:
            sigmas, note = denoise_tail(sigmas, denoise)
            notes.append(note)
        text = describe(record)
        if notes:
            text = format_sigmas(sigmas.tolist()) + f"\n({'; '.join(notes)})\n" + text
        return schedule_output(sigmas, text, record.sampler)


class TimestepScheduleFromText:
    """SIGMAS from a pasted list, so a shared workflow carries its schedule and reproduces without searching."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "default": "14.61, 3.2, 0.9, 0.2, 0", "tooltip": (
                    "Sigmas separated by commas, spaces or new lines, strictly decreasing and ending in 0 "
                    "(the first line of EvoTimestepSchedule's report).")}),
            },
            "optional": {
                "model": ("MODEL", {"tooltip": (
                    "When connected, the schedule must lie inside this model's sigma range.")}),
                **DENOISE_INPUT,
            },
        }

    RETURN_TYPES = ("SIGMAS", "STRING")
    RETURN_NAMES = ("sigmas", "text")
    OUTPUT_TOOLTIPS = ("The schedule as SIGMAS (steps + 1 values).", "The schedule as normalised text.")
    FUNCTION = "parse"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["sigmas", "text sigmas", "custom schedule", "paste schedule", "timesteps"]
    DESCRIPTION = "Turn a pasted list of sigmas into SIGMAS, checked for order, the final 0 and the model's range."

    def parse(self, text, model=None, denoise=1.0):
        values = parse_sigma_text(text, name="text")
        lo, hi = _model_range(model) if model is not None else (None, None)
        sigmas = validate_sigmas(values, lo, hi, name="text")
        if denoise < 1.0:
            sigmas, _ = denoise_tail(sigmas, denoise)
        return (sigmas, format_sigmas(sigmas.tolist()))

