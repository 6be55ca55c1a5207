"""The schedule search as EvoTimestepSchedule runs it, host-free: evolution on the fitness seeds, the built-ins
scored exactly, then the best finds and every built-in re-scored on fresh validation seeds, where a find must beat
the best built-in by MIN_GAIN to be returned (AutoDiffusion, ICCV 2023, made robust to seed overfitting).

The caller brings the sampling: a `SeedSet` pairs a runner (`run(schedules) -> [samples]`, `calls`) with the
reference samples of its seeds. The adapter's runner is ComfyUI's sampler; a test's can be anything.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import torch

from .fitness import DEFAULT_FITNESS, LEGACY_NAMES, Fitness
from .joint_schedule_search import JointConfig, JointState, SamplerSchedule
from .schedule_search import EvoConfig, EvoResult, EvoSearch, EvoState
from .schedule_warp import search_class
from .seed_strata import weighted_mean

CACHE_VERSION = 2
VALIDATED_FINDS = 4  # the search's best finds re-scored on the validation seeds
# A find must beat the best built-in's fitness + validation error by this factor to replace it: the finds were
# selected on the fitness seeds (biased in their favour), and a 0.7% edge there was a 10% loss on held-out seeds
# (ipndm_v, 10 steps, scripts/schedule_report.py). The real wins measured were 1.2x-5x.
MIN_GAIN = 1.05


@dataclass(frozen=True)
class SearchSettings:
    """EvoTimestepSchedule's inputs that decide the result (everything in the cache key, model and conds aside)."""

    sampler_name: str
    steps: int
    cfg: float
    num_seeds: int
    budget: int
    seed: int
    population: int
    top_k: int
    mutation_prob: float
    generations: int
    reference_steps: int
    reference_sampler: str  # resolved: never "auto"
    validation_seeds: int
    fitness: str = DEFAULT_FITNESS  # Fitness.identity
    samplers: tuple = ()  # sampler_name auto: the (name, steps, calls) genes searched
    search_space: str = "steps"  # core.schedule_search.SPACES

    def key_parts(self) -> dict:
        """The settings as cache-key parts. The default fitness (under its old name too), an empty sampler
        set and the default search space are left out, so their keys are the ones saved before those joined the
        settings (saved records and the
        shipped cache keep hitting); any other fitness's identity is in the key, so it is never served the
        default's result."""
        parts = asdict(self)
        if self.fitness == DEFAULT_FITNESS or self.fitness in LEGACY_NAMES:
            del parts["fitness"]
        if not self.samplers:
            del parts["samplers"]
        if self.search_space == "steps":
            del parts["search_space"]
        return parts


def cache_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def search_key(model_id: str, positive_digest: str, negative_digest: str, shape: Sequence[int],
               settings: SearchSettings) -> str:
    """The cache key of a search: the model's fingerprint, both conditionings, the latent shape and the settings."""
    return cache_key(version=CACHE_VERSION, model=model_id, positive=positive_digest, negative=negative_digest,
                     shape=list(shape), **settings.key_parts())


class Runner(Protocol):
    calls: int

    def run(self, schedules: Sequence[Sequence[float]]) -> list[torch.Tensor]: ...


@dataclass
class SeedSet:
    """A runner over fixed seeds and the reference samples for the same seeds. `weights` (one per seed, summing to
    1; core/seed_strata.py) makes the fitness a weighted mean over the seeds; None: every seed alike, as before."""

    runner: Runner
    reference: torch.Tensor
    weights: torch.Tensor | None = None

    def evaluator(self, fitness: Fitness) -> Callable[[list[list[float]]], list[float]]:
        if self.weights is None:
            return lambda candidates: fitness.score(self.runner.run(candidates), self.reference)
        if not fitness.supports_seed_weights:
            raise ValueError(f"fitness {fitness.name} scores the seed set as a whole (a distribution distance), so "
                             "it cannot weight seeds: use fitness fidelity with stratified seeds, or drop the weights")
        weights = torch.as_tensor(self.weights, dtype=torch.float64).flatten()
        if weights.numel() != self.reference.shape[0]:
            raise ValueError(f"SeedSet has {self.reference.shape[0]} reference samples but {weights.numel()} weights")
        return lambda candidates: [weighted_mean(e, weights)
                                   for e in fitness.per_seed(self.runner.run(candidates), self.reference)]


def builtin_fitness(search: EvoSearch, result: EvoResult, baselines: dict[str, list[float]],
                    evaluate) -> dict[str, float]:
    """Every built-in's fitness on the search's seeds: the search's own score where it took the schedule as it is,
    else (another length, or repaired) the schedule scored exactly as it is with `evaluate`."""
    exact = {k: v for k, v in baselines.items() if k not in result.seed_fitness or k in search.repaired_seeds}
    fitness = {k: v for k, v in result.seed_fitness.items() if k in baselines and k not in exact}
    if exact:
        fitness.update(zip(exact, evaluate(list(exact.values()))))
    return fitness


def validate_finds(search: EvoSearch, baselines: dict[str, list[float]], baseline_fitness: dict[str, float],
                   evaluate_validation, num_seeds: int, validation_seeds: int, most_baselines: int | None = None):
    """Re-score the search's best finds and every built-in on fresh validation seeds and rank them by mean error
    over fitness + validation samples; the best find is returned only if it beats the best built-in by MIN_GAIN,
    so a schedule that only suits the fitness seeds (e.g. one that sends a rare sample to another mode) or wins
    by noise loses to the built-in. `most_baselines` re-scores only that many built-ins, the best on the fitness
    seeds (None: all). Returns (name, sigmas, {name: combined fitness}) for the finds and built-ins re-scored."""
    finds = {f"search #{i + 1}": (sigmas, fit) for i, (sigmas, fit, _)
             in enumerate(search.ranked(VALIDATED_FINDS, include_seeds=False))}
    if most_baselines is not None:
        kept = sorted(baselines, key=lambda name: (baseline_fitness[name], name))[:max(most_baselines, 1)]
        baselines = {name: baselines[name] for name in kept}
    candidates = dict(finds)
    candidates.update({name: (baselines[name], baseline_fitness[name]) for name in baselines})
    scores = evaluate_validation([sigmas for sigmas, _ in candidates.values()])
    combined = {name: (num_seeds * fit + validation_seeds * val) / (num_seeds + validation_seeds)
                for (name, (_, fit)), val in zip(candidates.items(), scores)}
    best = lambda names: min(names, key=lambda name: (combined[name], name))
    pick = best(baselines) if baselines else None
    if finds and (pick is None or combined[best(finds)] * MIN_GAIN < combined[pick]):
        pick = best(finds)
    return pick, candidates[pick][0], combined


def split_candidate(candidate) -> tuple[str | None, list[float]]:
    """(sampler, sigmas) of a joint search's SamplerSchedule; (None, sigmas) of a plain schedule."""
    if isinstance(candidate, SamplerSchedule):
        return candidate.sampler, [float(v) for v in candidate.sigmas]
    return None, [float(v) for v in candidate]


@dataclass(frozen=True)
class ScheduleFind:
    """What the pipeline returns: the pick, its fitness, every built-in's, and the search's own result."""

    pick: str               # "search #i" or the name of the built-in that was kept
    sigmas: list[float]
    fitness: float          # over fitness + validation seeds when validated
    baseline_fitness: dict[str, float]
    result: EvoResult       # the evolution's result on the fitness seeds
    model_calls: int        # the search's and the validation's, references excluded
    validated: bool
    sampler: str | None = None  # the joint search's pick (sampler_name auto); None for a fixed sampler


class SchedulePipeline:
    """Evolution, exact built-in scores and validation for one schedule search. `search` stays readable after an
    interruption (the adapter saves `search.state` to resume). `fit` holds `num_seeds` seeds; `validation` is called
    once, after the evolution, for the `validation_seeds` fresh ones (None or 0 seeds turns validation off)."""

    def __init__(self, config: EvoConfig | JointConfig, fitness: Fitness, baselines: dict, fit: SeedSet,
                 num_seeds: int, validation: Callable[[], SeedSet] | None = None, validation_seeds: int = 0,
                 state: EvoState | JointState | None = None, validated_baselines: int | None = None):
        """A JointConfig searches sampler and schedule together (baselines are then SamplerSchedules).
        `validated_baselines`: how many built-ins (the best on the fitness seeds) the validation re-scores (None:
        every one; the others keep their fitness-seed score in the find)."""
        self.config, self.fitness, self.baselines, self.fit = config, fitness, baselines, fit
        self.validated_baselines = validated_baselines
        self.num_seeds, self.validation, self.validation_seeds = num_seeds, validation, validation_seeds
        self.evaluate = fit.evaluator(fitness)
        evo = config.evo_config() if isinstance(config, JointConfig) else config
        self.search = search_class(evo.space)(evo, self.evaluate, seeds=baselines, state=state)

    def run(self) -> ScheduleFind:
        fit_calls = self.fit.runner.calls
        result = self.search.run()
        baseline_fitness = builtin_fitness(self.search, result, self.baselines, self.evaluate)
        calls = self.fit.runner.calls - fit_calls
        if self.validation is None or self.validation_seeds <= 0:
            sampler, sigmas = split_candidate(result.sigmas)
            return ScheduleFind("search #1", sigmas, result.fitness, baseline_fitness, result, calls, False, sampler)
        held = self.validation()
        before = held.runner.calls
        pick, found, combined = validate_finds(self.search, self.baselines, baseline_fitness,
                                               held.evaluator(self.fitness), self.num_seeds, self.validation_seeds,
                                               self.validated_baselines)
        calls += held.runner.calls - before
        sampler, sigmas = split_candidate(found)
        return ScheduleFind(pick, sigmas, combined[pick], {k: combined.get(k, baseline_fitness[k])
                                                           for k in self.baselines}, result, calls, True, sampler)
