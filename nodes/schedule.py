"""EvoTimestepSchedule (the AutoDiffusion schedule search node and its run) and the mappings of the schedule nodes.

The schedule library is a folder of JSON files: the user's `models/adaptive_skip_schedules` (registered with
folder_paths, so extra_model_paths.yaml can add more) and the pack's own `schedules/`. Every saved schedule is
also a scheduler name ("evo_<file name>") in the stock KSampler dropdown. The library's files and dropdown:
schedule_files.py; the loaders LoadTimestepSchedule / TimestepScheduleFromText: schedule_loaders.py (re-exported
here, as are the names other modules and scripts read from this one).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, replace

import comfy.model_management
import comfy.samplers
import comfy.utils
import torch

from ..core.fitness import DEFAULT_FITNESS, Fitness, make_fitness
from ..core.frechet_fitness import FrechetFitness
from ..core.joint_schedule_search import AUTO, JointConfig, JointState
from ..core.schedule_library import (
    ScheduleRecord,
    default_name,
    describe,
    format_sigmas,
    now_iso,
    safe_name,
    save_record,
)
from ..core.schedule_pipeline import (
    VALIDATED_FINDS,
    SchedulePipeline,
    SearchSettings,
    SeedSet,
)
from ..core.schedule_pipeline import search_key as settings_key
from ..core.schedule_search import SPACES, EvoConfig, EvoState
from .builtin_schedules import (
    builtin_baselines,
    joint_baselines,
    joint_genes,
    sampler_calls,
)
from .frechet_features import FEATURE_CHOICES, FRECHET_INPUTS, build_fitness
from .model_identity import conditioning_digest, model_identity, model_info
from .schedule_files import (  # noqa: F401
    FOLDER,
    PACK_DIR,
    SCHEDULER_PREFIX,
    SHIPPED_DIR,
    find_cached,
    fit_to_model,
    library_files,
    library_path,
    register_schedule_folder,
    register_schedule_library,
    register_scheduler,
    scheduler_name,
    user_folder,
)
from .schedule_loaders import (  # noqa: F401
    DENOISE_INPUT,
    LoadTimestepSchedule,
    TimestepScheduleFromText,
    denoise_tail,
)
from .schedule_output import sampler_output, schedule_output  # noqa: F401
from .schedule_runner import CandidateRunner

logger = logging.getLogger(__name__)

CATEGORY = "sampling/adaptive_skip"
STATE_EXTENSION = ".evostate"
REFERENCE_AUTO = "auto"


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
                "search_space": (list(SPACES), {"default": SPACES[0], "tooltip": (
                    "steps: every sigma is a gene (the default; free, but fits its fitness seeds). warp: each "
                    "candidate is one smooth warp of a built-in schedule (2 numbers: how long sigma stays high, "
                    "where it ends), searched from the best built-ins; fewer ways to overfit the fitness seeds. "
                    "warp_linear: warp, with every sampler's schedules linear in sigma (stopping early) added to "
                    "the first generation: for flow models at <= 6 steps, where it finds samplers whose built-in "
                    "schedules are poor (measured on one DiT; it lost at 8 steps).")}),
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
               clip_vision=None, search_space=SPACES[0]):
        if top_k > population:
            raise ValueError(f"top_k ({top_k}) must not exceed population ({population}); lower top_k")
        if sampler_name not in comfy.samplers.KSampler.SAMPLERS and sampler_name != AUTO:
            raise ValueError(f"sampler_name {sampler_name!r} is not a ComfyUI sampler (or auto)")
        if search_space not in SPACES:
            raise ValueError(f"search_space {search_space!r} is not one of {', '.join(SPACES)}")
        genes = joint_genes(steps) if sampler_name == AUTO else ()
        if sampler_name == AUTO and not genes:
            raise ValueError(f"sampler_name auto: no deterministic sampler fits in steps = {steps} model calls")
        settings = SearchSettings(
            sampler_name=sampler_name, steps=steps, cfg=cfg, num_seeds=num_seeds, budget=budget, seed=seed,
            population=population, top_k=top_k, mutation_prob=mutation_prob, generations=generations,
            reference_steps=reference_steps, reference_sampler=_resolve_reference(sampler_name, reference_sampler),
            validation_seeds=validation_seeds, samplers=genes, search_space=search_space)
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
            return schedule_output(torch.tensor(record.sigmas, dtype=torch.float32),
                           describe(record) + f"\n(from the schedule library: {filename}; no search run)",
                           record.sampler)
        record, filename = run_search(model, positive, negative, latent_image, settings, candidates_per_call, key,
                                      save_as, model_id, fitness=scorer)
        report = describe(record) + (f"\n{note}" if note else "") + f"\n(saved as {filename})"
        return schedule_output(torch.tensor(record.sigmas, dtype=torch.float32), report, record.sampler)


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
    return schedule_output(sigmas, format_sigmas(sigmas.tolist()) + "\n" + note, sampler)



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
                             seed=st.seed, space=st.search_space)
    else:
        config = EvoConfig(steps=st.steps, sigma_min=info.sigma_min, sigma_max=info.sigma_max,
                           population=st.population, top_k=st.top_k, mutation_prob=st.mutation_prob,
                           generations=st.generations, budget=st.budget, calls_per_candidate=calls_per_candidate,
                           seed=st.seed, space=st.search_space)
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
