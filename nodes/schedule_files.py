"""The schedule library on disk and in ComfyUI's scheduler dropdown: its folders (the user's
`models/adaptive_skip_schedules`, registered with folder_paths so extra_model_paths.yaml can add more, then the pack's
own `schedules/`), every saved schedule as a scheduler name ("evo_<file name>"), the cache lookup of a search, and
a saved schedule mapped to a model's σ range."""
from __future__ import annotations

import logging
import math
import os

import comfy.samplers
import folder_paths
import torch

from ..core.schedule_library import EXTENSION, ScheduleRecord, load_record
from ..core.sigmas import resample_log_sigmas, resample_log_steps

logger = logging.getLogger(__name__)

FOLDER = "adaptive_skip_schedules"
PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_DIR = os.path.join(PACK_DIR, "schedules")
SCHEDULER_PREFIX = "evo_"


def register_schedule_folder() -> None:
    """Register the library with folder_paths: the user folder first (new schedules go there), then the shipped one."""
    user = os.path.join(folder_paths.models_dir, FOLDER)
    if FOLDER in folder_paths.folder_names_and_paths:
        paths, _ = folder_paths.folder_names_and_paths[FOLDER]
    else:
        paths = [user]
    for path in (user, SHIPPED_DIR):
        if path not in paths:
            paths.append(path)
    folder_paths.folder_names_and_paths[FOLDER] = (paths, {EXTENSION})


def user_folder() -> str:
    """Where new schedules are saved: the first library folder that is not the pack's shipped one."""
    register_schedule_folder()
    for path in folder_paths.get_folder_paths(FOLDER):
        if os.path.abspath(path) != os.path.abspath(SHIPPED_DIR):
            return path
    return os.path.join(folder_paths.models_dir, FOLDER)


def library_files() -> list[str]:
    register_schedule_folder()
    return [f for f in folder_paths.get_filename_list(FOLDER) if not os.path.basename(f).startswith(".")]


def library_path(name: str) -> str:
    register_schedule_folder()
    path = folder_paths.get_full_path(FOLDER, name)
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths(FOLDER))
        raise ValueError(f"schedule {name!r} is not in the schedule library ({folders}); "
                         "pick one from the list or save it with EvoTimestepSchedule")
    return path


def scheduler_name(filename: str) -> str:
    return SCHEDULER_PREFIX + os.path.splitext(filename)[0].replace(os.sep, "/")


def fit_to_model(record: ScheduleRecord, sigma_min: float, sigma_max: float,
                 steps: int = 0) -> tuple[torch.Tensor, list[str]]:
    """The saved schedule mapped to a model's σ range (log σ) when it differs from the one it was found for, and
    stretched log-linearly to `steps` (0 keeps the saved count); with what was done, for the report."""
    sigmas = torch.tensor(record.sigmas, dtype=torch.float32)
    notes = []
    if not (math.isclose(sigma_min, record.sigma_min, rel_tol=1e-4)
            and math.isclose(sigma_max, record.sigma_max, rel_tol=1e-4)):
        sigmas = resample_log_sigmas(sigmas, sigma_min, sigma_max, record.sigma_min, record.sigma_max)
        notes.append(f"mapped in log sigma from [{record.sigma_min:.4g}, {record.sigma_max:.4g}] to "
                     f"[{sigma_min:.4g}, {sigma_max:.4g}]")
    if steps and steps != record.steps:
        sigmas = resample_log_steps(sigmas, steps)
        notes.append(f"stretched from {record.steps} to {steps} steps")
    return sigmas, notes


def _scheduler_handler(name: str, record: ScheduleRecord):
    """fn(model_sampling, steps) for comfy.samplers.SchedulerHandler(use_ms=True): the saved schedule mapped to the
    model's σ range (log σ) and to the requested step count (log-linear, as Align Your Steps does).

    The handler is not told the sampler: for dpm_2, dpm_2_ancestral, uni_pc and uni_pc_bh2 ComfyUI's KSampler asks
    for steps + 1 values and drops the second-to-last, so those get a changed schedule (README says so; SamplerCustom
    with LoadTimestepSchedule runs the saved one exactly)."""
    def handler(model_sampling, steps: int) -> torch.Tensor:
        if steps != record.steps:
            logger.info("AdaptiveSkip scheduler %s: saved for %d steps, stretched to %d in log sigma",
                        name, record.steps, steps)
        return fit_to_model(record, float(model_sampling.sigma_min), float(model_sampling.sigma_max), steps)[0]
    return handler


def register_scheduler(filename: str, record: ScheduleRecord) -> str | None:
    """Add (or update) one saved schedule as a scheduler name in every KSampler dropdown. Returns the name."""
    name = scheduler_name(filename)
    handlers, names = comfy.samplers.SCHEDULER_HANDLERS, comfy.samplers.SCHEDULER_NAMES
    if name in handlers and name not in names:
        return None
    if name in names and not name.startswith(SCHEDULER_PREFIX):
        return None
    handlers[name] = comfy.samplers.SchedulerHandler(_scheduler_handler(name, record), use_ms=True)
    if name not in names:
        names.append(name)  # the same list object as KSampler.SCHEDULERS, which validation checks
    return name


def register_schedule_library() -> list[str]:
    """Called from registration.on_load(): the library folder, and every readable saved schedule as a scheduler."""
    register_schedule_folder()
    added = []
    for filename in library_files():
        try:
            record = load_record(library_path(filename))
        except ValueError as err:
            logger.warning("AdaptiveSkip: schedule %s not offered as a scheduler: %s", filename, err)
            continue
        name = register_scheduler(filename, record)
        if name:
            added.append(name)
    if added:
        logger.info("AdaptiveSkip: %d saved schedule(s) added to the scheduler list: %s", len(added), ", ".join(added))
    return added


def find_cached(key: str) -> tuple[str, ScheduleRecord] | None:
    """The saved schedule whose search had exactly this cache key, if any."""
    for filename in library_files():
        try:
            path = library_path(filename)
            with open(path, encoding="utf-8") as f:
                if key not in f.read():
                    continue
            record = load_record(path)
        except (OSError, ValueError):
            continue
        if record.cache_key == key:
            return filename, record
    return None

