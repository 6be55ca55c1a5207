"""EvoTimestepSchedule, LoadTimestepSchedule and TimestepScheduleFromText: searched sigma schedules (classic API).

The schedule library is a folder of JSON files: the user's `models/adaptive_skip_schedules` (registered with
folder_paths, so extra_model_paths.yaml can add more) and the pack's own `schedules/`. Every saved schedule is
also a scheduler name ("evo_<file name>") in the stock KSampler dropdown.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, replace

import torch

import comfy.model_management
import comfy.samplers
import comfy.utils
import folder_paths

from ..core.fitness import DEFAULT_FITNESS, Fitness, make_fitness
from ..core.frechet_fitness import FrechetFitness
from ..core.joint_schedule_search import AUTO, JointConfig, JointState
from ..core.schedule_library import (EXTENSION, ScheduleRecord, default_name, describe, format_sigmas, load_record,
                                     now_iso, safe_name, save_record)
from ..core.schedule_pipeline import (VALIDATED_FINDS, SchedulePipeline, SearchSettings, SeedSet,
                                      search_key as settings_key)
from ..core.schedule_search import EvoConfig, EvoState
from ..core.sigmas import parse_sigma_text, resample_log_sigmas, resample_log_steps, validate_sigmas
from .builtin_schedules import builtin_baselines, joint_baselines, joint_genes, sampler_calls
from .frechet_features import FEATURE_CHOICES, FRECHET_INPUTS, build_fitness
from .model_identity import conditioning_digest, model_identity, model_info
from .schedule_runner import CandidateRunner
from .skip_library import file_fingerprint

logger = logging.getLogger(__name__)

CATEGORY = "sampling/adaptive_skip"
FOLDER = "adaptive_skip_schedules"
PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_DIR = os.path.join(PACK_DIR, "schedules")
SCHEDULER_PREFIX = "evo_"
STATE_EXTENSION = ".evostate"
REFERENCE_AUTO = "auto"


# --- library folders and the scheduler dropdown ------------------------------------------------------------------
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


# --- nodes ---------------------------------------------------------------------------------------------------------
def _reference_choices() -> list[str]:
    return [REFERENCE_AUTO] + list(comfy.samplers.KSampler.SAMPLERS)


def _resolve_reference(sampler_name: str, reference_sampler: str) -> str:
    """auto: the same sampler when it calls the model once per step, else dpmpp_2m (accurate at 200 steps);
    dpmpp_2m when the sampler itself is searched (sampler_name auto)."""
    if reference_sampler != REFERENCE_AUTO:
        return reference_sampler
    if sampler_name == AUTO:
        return "dpmpp_2m"
    calls = sampler_calls(sampler_name, [2.0, 1.0, 0.5, 0.0])
    return sampler_name if calls == 3 else "dpmpp_2m"


class EvoTimestepSchedule:
    """Search the sigma schedule that makes an N-step sampler closest to a many-step reference (AutoDiffusion)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to find a schedule for (use the unpatched model)."}),
                "positive": ("CONDITIONING", {"tooltip": "Conditioning the fitness samples use."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative conditioning the fitness samples use."}),
                "latent_image": ("LATENT", {"tooltip": "Gives the latent shape (its first item; an empty latent "
                                                       "for txt2img). Its batch size is ignored: see num_seeds."}),
                "sampler_name": (list(comfy.samplers.KSampler.SAMPLERS) + [AUTO], {
                    "default": "dpmpp_2m", "tooltip": (
                        "The sampler the schedule is for. auto: search the sampler too, among ComfyUI's "
                        "deterministic samplers (no ancestral/SDE: their noise would make the fitness noisy), every "
                        "sampler x built-in scheduler pair at the same model calls seeded; the sampler output "
                        "gives the one found.")}),
                "steps": ("INT", {"default": 5, "min": 1, "max": 100, "tooltip": (
                    "N: sampler steps of the schedule to find (with sampler_name auto: model calls per sample, "
                    "so heun-type samplers get about N/2 steps). Searching pays off most at 3-10 steps.")}),
                "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "Classifier-free guidance scale used when sampling; 1 turns CFG off."}),
                "num_seeds": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": (
                    "K: noise seeds (seed, seed+1, ...) every candidate is scored on, run as one batch. More seeds "
                    "generalise better and cost proportionally more model calls.")}),
                "budget": ("INT", {"default": 20000, "min": 1, "max": 10_000_000, "step": 100, "tooltip": (
                    "Search budget in per-sample model calls (one candidate costs steps x calls per step x "
                    "num_seeds; the many-step reference is extra). The search stops at the budget or after "
                    "'generations', whichever comes first.")}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "tooltip": (
                    "Seeds the search's random choices and the noise: fitness samples use seed .. seed+K-1, "
                    "validation samples the next ones. The same inputs give the same schedule.")}),
            },
            "optional": {
                "population": ("INT", {"default": 16, "min": 2, "max": 512, "tooltip": (
                    "Candidates per generation (the built-in schedules are added to the first one).")}),
                "top_k": ("INT", {"default": 4, "min": 1, "max": 512, "tooltip": (
                    "Parents: the best k schedules found so far breed each new generation.")}),
                "mutation_prob": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": (
                    "Chance that a mutation moves each step's sigma (at least one always moves).")}),
                "generations": ("INT", {"default": 25, "min": 1, "max": 1000, "tooltip": (
                    "At most this many generations, the first (built-ins plus a grid of smooth schedules) "
                    "included; the budget usually ends the search first.")}),
                "reference_steps": ("INT", {"default": 200, "min": 10, "max": 2000, "tooltip": (
                    "Steps of the reference each candidate is compared with.")}),
                "reference_sampler": (_reference_choices(), {"default": REFERENCE_AUTO, "tooltip": (
                    "Sampler of the reference. auto: the same sampler when it calls the model once per step, "
                    "otherwise dpmpp_2m.")}),
                "validation_seeds": ("INT", {"default": 8, "min": 0, "max": 256, "tooltip": (
                    "Fresh seeds (after the fitness seeds) on which the search's best finds and every built-in are "
                    "scored again; over fitness + validation seeds a find must beat the best built-in by 5% to be "
                    "returned, so a schedule that only suits the fitness seeds loses to the built-in. 0 turns "
                    "validation off.")}),
                "candidates_per_call": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": (
                    "Candidates whose model calls share one batch (batch = candidates x num_seeds, x2 with CFG). "
                    "Lower it if memory runs out; 1 runs candidates one by one.")}),
                "save_as": ("STRING", {"default": "", "tooltip": (
                    "File name for the schedule library; empty names it after model type, sampler, steps and "
                    "the search. Saved schedules appear in LoadTimestepSchedule and as 'evo_<name>' schedulers.")}),
                **FRECHET_INPUTS,
            },
        }

    RETURN_TYPES = ("SIGMAS", "STRING", "SAMPLER")
    RETURN_NAMES = ("sigmas", "report", "sampler")
    OUTPUT_TOOLTIPS = ("The best schedule found: steps + 1 values ending in 0, for SamplerCustom, "
                       "SamplerCustomAdvanced or AdaptiveSkipKSampler's sigmas input.",
                       "The schedule as text (pasteable into TimestepScheduleFromText), its fitness, and the "
                       "fitness of every built-in schedule at the same step count.",
                       "The sampler the schedule is for (the one found with sampler_name auto), for "
                       "SamplerCustom / SamplerCustomAdvanced.")
    FUNCTION = "search"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["schedule search", "autodiffusion", "timesteps", "sigmas", "optimal steps", "few steps",
                      "speed", "faster sampling", "align your steps"]
    DESCRIPTION = ("Evolutionary timestep-schedule search (AutoDiffusion, ICCV 2023): finds the N-step sigma schedule "
                   "whose result is closest to a 200-step reference for your model, sampler and prompt. The built-in "
                   "schedules start the search, so the result is never worse than the best of them on the fitness "
                   "seeds. Results are saved and reused: the same inputs return instantly. With sampler_name auto the "
                   "sampler is searched too (at N model calls) and returned as the SAMPLER output.")

    def search(self, model, positive, negative, latent_image, sampler_name, steps, cfg, num_seeds, budget, seed,
               population=16, top_k=4, mutation_prob=0.3, generations=25, reference_steps=200,
               reference_sampler=REFERENCE_AUTO, validation_seeds=8, candidates_per_call=8, save_as="",
               fitness=DEFAULT_FITNESS, features=FEATURE_CHOICES[0], reference_images=None, vae=None,
               clip_vision=None):
        if top_k > population:
            raise ValueError(f"top_k ({top_k}) must not exceed population ({population}); lower top_k")
        if sampler_name not in comfy.samplers.KSampler.SAMPLERS and sampler_name != AUTO:
            raise ValueError(f"sampler_name {sampler_name!r} is not a ComfyUI sampler (or auto)")
        genes = joint_genes(steps) if sampler_name == AUTO else ()
        if sampler_name == AUTO and not genes:
            raise ValueError(f"sampler_name auto: no deterministic sampler fits in steps = {steps} model calls")
        settings = SearchSettings(
            sampler_name=sampler_name, steps=steps, cfg=cfg, num_seeds=num_seeds, budget=budget, seed=seed,
            population=population, top_k=top_k, mutation_prob=mutation_prob, generations=generations,
            reference_steps=reference_steps, reference_sampler=_resolve_reference(sampler_name, reference_sampler),
            validation_seeds=validation_seeds, samplers=genes)
        unaffordable = _budget_buys_nothing(model, settings)
        if unaffordable is not None:
            return unaffordable
        scorer = build_fitness(fitness, features, reference_images, vae=vae, clip_vision=clip_vision)
        settings = replace(settings, fitness=scorer.identity)
        note = scorer.stability_note(num_seeds) if isinstance(scorer, FrechetFitness) else ""
        model_id = model_identity(model)
        key = search_key(model_id, positive, negative, latent_image, settings)
        hit = find_cached(key)
        if hit is not None:
            filename, record = hit
            logger.info("AdaptiveSkip EvoTimestepSchedule: same inputs as %s, returned from the schedule library",
                        filename)
            return _output(torch.tensor(record.sigmas, dtype=torch.float32),
                           describe(record) + f"\n(from the schedule library: {filename}; no search run)",
                           record.sampler)
        record, filename = run_search(model, positive, negative, latent_image, settings, candidates_per_call, key,
                                      save_as, model_id, fitness=scorer)
        report = describe(record) + (f"\n{note}" if note else "") + f"\n(saved as {filename})"
        return _output(torch.tensor(record.sigmas, dtype=torch.float32), report, record.sampler)


def _budget_buys_nothing(model, st: SearchSettings) -> dict | None:
    """When the budget cannot pay for one candidate (steps x num_seeds model calls): ComfyUI's karras schedule (or
    the first built-in), unsearched and unscored, with a report naming the budget to set. None when it can.
    With sampler_name auto: dpmpp_2m's karras schedule at N steps when the budget cannot pay for N calls per seed."""
    sampler = "dpmpp_2m" if st.sampler_name == AUTO else st.sampler_name
    baselines = builtin_baselines(model, sampler, st.steps)
    if not baselines:
        return None
    per_sample = st.steps if st.sampler_name == AUTO else (
        sampler_calls(sampler, next(iter(baselines.values())).tolist()) or st.steps)
    cost = per_sample * st.num_seeds
    if st.budget >= cost:
        return None
    name = "karras" if "karras" in baselines else next(iter(baselines))
    sigmas = baselines[name].float()
    note = (f"budget {st.budget} cannot pay for one candidate ({per_sample} model calls per seed x {st.num_seeds} "
            f"num_seeds = {cost}): returned ComfyUI's {name} schedule, not searched and not scored. Raise budget "
            f"to at least {cost} (a search needs a few hundred candidates) or lower num_seeds.")
    logger.warning("AdaptiveSkip EvoTimestepSchedule: %s", note)
    return _output(sigmas, format_sigmas(sigmas.tolist()) + "\n" + note, sampler)


def sampler_output(name: str) -> tuple[object, str]:
    """ComfyUI's SAMPLER for a saved sampler name (as KSamplerSelect builds it), and a note when this ComfyUI
    lacks that sampler (euler is returned then, and the report says so)."""
    if name in comfy.samplers.KSampler.SAMPLERS:
        return comfy.samplers.sampler_object(name), ""
    note = (f"sampler {name!r} of this schedule is not in this ComfyUI; the sampler output is euler (update "
            "ComfyUI, or pick a sampler with KSamplerSelect)")
    logger.warning("AdaptiveSkip: %s", note)
    return comfy.samplers.sampler_object("euler"), note


def _output(sigmas: torch.Tensor, report: str, sampler_name: str) -> dict:
    """Node result (SIGMAS, report, SAMPLER) plus the report as UI text (shown by the frontend and collected by
    the headless runner)."""
    sampler, note = sampler_output(sampler_name)
    if note:
        report += "\n" + note
    return {"ui": {"text": [report]}, "result": (sigmas, report, sampler)}


def search_key(model_id: str, positive, negative, latent_image, settings: SearchSettings) -> str:
    """The cache key of a search: the model's fingerprint, both conditionings, the latent shape and the settings."""
    return settings_key(model_id, conditioning_digest(positive), conditioning_digest(negative),
                        latent_image["samples"].shape[1:], settings)


def _warn_if_patched(model) -> None:
    sources = (getattr(model, "wrappers", None) or {},
               model.model_options.get("transformer_options", {}).get("wrappers") or {})
    if any(fns for src in sources for keyed in src.values() for fns in (keyed or {}).values()):
        logger.warning("AdaptiveSkip EvoTimestepSchedule: the model carries sampling wrappers (a cache or skip patch?);"
                       " the search shares model calls between candidates, which such patches may not expect. "
                       "Connect the unpatched model for a clean search.")


def run_search(model, positive, negative, latent_image, settings: SearchSettings, candidates_per_call: int, key: str,
               save_as: str, model_id: str, fitness: Fitness | None = None) -> tuple[ScheduleRecord, str]:
    """The search behind EvoTimestepSchedule: references on ComfyUI's sampler, the pipeline (evolution, built-ins,
    validation), saving. `fitness` defaults to the registered one named by settings.fitness (whose identity must
    be the one in the settings, hence in `key`). Cancel keeps the progress (a .evostate file next to the library)
    so running the same inputs again resumes."""
    st, info = settings, model_info(model)
    started = time.perf_counter()
    shape = list(latent_image["samples"].shape[1:])
    _warn_if_patched(model)
    fitness = fitness or make_fitness(st.fitness)
    if fitness.identity != st.fitness:
        raise ValueError(f"fitness {fitness.identity!r} is not the one in the search settings ({st.fitness!r}); "
                         "build SearchSettings with fitness=fitness.identity")
    joint = st.sampler_name == AUTO
    if joint:  # every sampler x scheduler pair; a candidate's calls are its sampler's (at most N per sample)
        baselines = joint_baselines(model, st.samplers)
        per_sample = st.steps
    else:
        baselines = {k: v.tolist() for k, v in builtin_baselines(model, st.sampler_name, st.steps).items()}
        per_sample = sampler_calls(st.sampler_name, next(iter(baselines.values()))) if baselines else None
    calls_per_candidate = (per_sample or st.steps) * st.num_seeds
    ref_per_sample = sampler_calls(st.reference_sampler, [2.0] * st.reference_steps + [0.0]) or st.reference_steps
    total = (ref_per_sample * (st.num_seeds + st.validation_seeds) + st.budget
             + (per_sample or st.steps) * st.validation_seeds * (VALIDATED_FINDS + len(baselines)))
    pbar = comfy.utils.ProgressBar(total)
    ref_sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras",
                                                 st.reference_steps)
    ref_calls = []

    def seed_set(num, first_seed) -> SeedSet:
        runner = CandidateRunner(model, positive, negative, st.cfg, st.reference_sampler if joint else st.sampler_name,
                                 latent_image, num, first_seed, candidates_per_call,
                                 on_call=lambda rows: pbar.update(rows))
        reference = runner.sample(ref_sigmas, st.reference_sampler)
        ref_calls.append(runner.calls)
        return SeedSet(runner, reference)

    fit = seed_set(st.num_seeds, st.seed)
    if joint:
        config = JointConfig(calls=st.steps, samplers=st.samplers, sigma_min=info.sigma_min, sigma_max=info.sigma_max,
                             num_seeds=st.num_seeds, population=st.population, top_k=st.top_k,
                             mutation_prob=st.mutation_prob, generations=st.generations, budget=st.budget,
                             seed=st.seed)
    else:
        config = EvoConfig(steps=st.steps, sigma_min=info.sigma_min, sigma_max=info.sigma_max,
                           population=st.population, top_k=st.top_k, mutation_prob=st.mutation_prob,
                           generations=st.generations, budget=st.budget, calls_per_candidate=calls_per_candidate,
                           seed=st.seed)
    validation = (lambda: seed_set(st.validation_seeds, st.seed + st.num_seeds)) if st.validation_seeds > 0 else None

    def pipeline(state=None):
        return SchedulePipeline(config, fitness, baselines, fit, st.num_seeds, validation, st.validation_seeds,
                                state=state)

    state_path = os.path.join(user_folder(), f".{key[:16]}{STATE_EXTENSION}")
    state = _load_state(state_path, JointState if joint else EvoState)
    try:
        run = pipeline(state)
    except ValueError as err:  # progress saved under other settings: start afresh
        logger.warning("AdaptiveSkip: not resuming %s: %s", state_path, err)
        run = pipeline()
    if state is not None:
        logger.info("AdaptiveSkip EvoTimestepSchedule: resuming a cancelled search at generation %d", state.generation)
    try:
        find = run.run()
    except comfy.model_management.InterruptProcessingException:
        _save_state(state_path, run.search.state)
        logger.info("AdaptiveSkip EvoTimestepSchedule: cancelled after %d generations; progress kept in %s",
                    run.search.state.generation, state_path)
        raise
    metric = (fitness.describe(st.num_seeds) if isinstance(fitness, FrechetFitness) else
              f"{fitness.label} vs {st.reference_steps}-step {st.reference_sampler} (karras), {st.num_seeds} seeds")
    if joint:
        metric += f", sampler searched with the schedule at <= {st.steps} model calls"
    if find.validated:
        metric += f" + {st.validation_seeds} validation seeds"
    seconds = time.perf_counter() - started
    result, ref_cost = find.result, sum(ref_calls)
    sampler = find.sampler or st.sampler_name
    extra = {}
    if joint:
        extra = {"sampler_calls": sampler_calls(sampler, find.sigmas),
                 "evaluated_per_sampler": run.search.sampler_counts()}
    record = ScheduleRecord(
        sigmas=[float(v) for v in torch.tensor(find.sigmas, dtype=torch.float32).tolist()],
        sampler=sampler, model_type=info.model_type, sigma_min=info.sigma_min, sigma_max=info.sigma_max,
        model_id=model_id, fitness=find.fitness, fitness_metric=metric,
        baselines={k: float(v) for k, v in find.baseline_fitness.items()},
        search={**asdict(st), "fitness_name": fitness.name, "fitness_params": fitness.params(),
                "latent_shape": shape, "picked": find.pick, "fitness_on_search_seeds": result.fitness,
                "generations_run": result.generations, "evaluated": result.evaluated,
                "model_calls": find.model_calls, "reference_calls": ref_cost, "seconds": round(seconds, 2), **extra},
        cache_key=key, created=now_iso())
    if save_as.strip():
        name = safe_name(save_as)
    elif joint:
        name = safe_name(f"{info.model_type}_auto_{sampler}_{st.steps}calls_{key[:8]}")
    else:
        name = default_name(info.model_type, st.sampler_name, st.steps, key)
    path = save_record(record, user_folder(), name)
    if os.path.exists(state_path):
        os.unlink(state_path)
    filename = os.path.basename(path)
    register_scheduler(filename, record)
    logger.info("AdaptiveSkip EvoTimestepSchedule: %s %d steps, %s fitness %.4g (best built-in %.4g), %d candidates, "
                "%d model calls + %d for references, %.1f s; saved %s", sampler, record.steps, find.pick,
                find.fitness, min(find.baseline_fitness.values()) if find.baseline_fitness else float("nan"),
                result.evaluated, find.model_calls, ref_cost, seconds, path)
    return record, filename


def _load_state(path: str, kind=EvoState):
    """The saved progress (an EvoState, or a JointState for sampler_name auto), or None."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return kind.from_dict(json.load(f))
    except (OSError, ValueError) as err:
        logger.warning("AdaptiveSkip: ignoring unreadable search progress %s: %s", path, err)
        return None


def _save_state(path: str, state) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(state.to_dict(), f)


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
        return _output(sigmas, text, record.sampler)


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


NODE_CLASS_MAPPINGS = {
    "EvoTimestepSchedule": EvoTimestepSchedule,
    "LoadTimestepSchedule": LoadTimestepSchedule,
    "TimestepScheduleFromText": TimestepScheduleFromText,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "EvoTimestepSchedule": "Evolutionary Timestep Schedule (AdaptiveSkip)",
    "LoadTimestepSchedule": "Load Timestep Schedule (AdaptiveSkip)",
    "TimestepScheduleFromText": "Timestep Schedule From Text (AdaptiveSkip)",
}
