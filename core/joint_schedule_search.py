"""Joint search of the sampler and its σ schedule at a fixed number of model calls per sample (EvoTimestepSchedule
with sampler_name = auto): AutoDiffusion's time-step search with the sampler as one more, categorical, gene.

A candidate is a `SamplerSchedule` (sampler name, σ list ending in 0). Every sampler gets the most steps whose model
calls fit in N (heun-type samplers spend 2 calls a step, 1 on the last step to 0, so heun at N = 5 runs 3 steps and
at N = 4 runs 2 steps = 3 calls: never more than N). Budget is counted per candidate with its sampler's own calls.
The search is EvoSearch with its sampler gene (core/schedule_search.py); this module holds what is particular to
ComfyUI's samplers: which are genes, how many steps fit in N calls, and the config in per-sample calls.

Only deterministic samplers are genes: a sampler that draws noise (ancestral, SDE, ddpm, lcm, er_sde, seeds,
sa_solver) makes the fitness of one schedule vary with its noise, so the search would select lucky draws.
The state is plain data (to_dict/from_dict); a resumed search ends where an uninterrupted one does.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .schedule_search import (
    EvoConfig,
    EvoSearch,
    JointState,
    SamplerSchedule,
    resample_logs,
)

__all__ = ["AUTO", "DETERMINISTIC_SAMPLERS", "JointConfig", "JointSearch", "JointState", "SamplerSchedule",
           "resample_logs", "steps_within"]

# ComfyUI's deterministic samplers with a fixed number of model calls per step, in seeding order. Left out, with the
# reason: noise-injecting samplers (see the module docstring); ddim (ComfyUI runs euler for it); the CFG++ variants
# (they change the guidance itself, so they solve another problem than the reference); dpm_fast / dpm_adaptive
# (they choose their own steps, so a schedule does not set their calls).
DETERMINISTIC_SAMPLERS = ("euler", "heun", "heunpp2", "dpm_2", "lms", "dpmpp_2m", "ipndm", "ipndm_v", "deis",
                          "res_multistep", "gradient_estimation", "uni_pc", "uni_pc_bh2")
AUTO = "auto"


def steps_within(calls_for_steps: Callable[[int], int], calls: int) -> int | None:
    """The most steps s (1..calls) whose model calls, calls_for_steps(s), fit in `calls`; None when none fits."""
    best = None
    for s in range(1, calls + 1):
        if calls_for_steps(s) <= calls:
            best = s
    return best


@dataclass(frozen=True)
class JointConfig:
    """`samplers` holds (name, steps, model calls per sample) for every sampler gene, calls <= `calls` (N).
    A candidate costs its sampler's calls x num_seeds of the budget. `sampler_mutation_prob`: chance that a mutated
    child switches sampler. The σ search settings mean what they mean in EvoConfig."""

    calls: int
    samplers: tuple[tuple[str, int, int], ...]
    sigma_min: float
    sigma_max: float
    num_seeds: int = 1
    population: int = 16
    top_k: int = 4
    mutation_prob: float = 0.3
    sampler_mutation_prob: float = 0.25
    crossover_fraction: float = 0.5
    generations: int = 12
    budget: int | None = None
    seed: int = 0
    space: str = "steps"

    def __post_init__(self):
        object.__setattr__(self, "samplers", tuple((str(n), int(s), int(c)) for n, s, c in self.samplers))
        if not self.samplers:
            raise ValueError("the joint search needs at least one sampler")
        for name, steps, calls in self.samplers:
            if steps < 1 or not 1 <= calls <= self.calls:
                raise ValueError(f"sampler {name}: {steps} steps at {calls} model calls does not fit in "
                                 f"{self.calls} calls")
        self.evo_config()  # the σ settings and the genes are checked there

    def evo_config(self) -> EvoConfig:
        """The EvoSearch settings: the sampler gene with costs in budget units (calls x num_seeds), no grid."""
        return EvoConfig(steps=max(s for _, s, _ in self.samplers), sigma_min=self.sigma_min,
                         sigma_max=self.sigma_max, population=self.population, top_k=self.top_k,
                         mutation_prob=self.mutation_prob, crossover_fraction=self.crossover_fraction,
                         generations=self.generations, budget=self.budget, grid=False, seed=self.seed,
                         samplers=tuple((n, s, c * self.num_seeds) for n, s, c in self.samplers),
                         sampler_mutation_prob=self.sampler_mutation_prob, space=self.space)

    def steps_of(self, sampler: str) -> int:
        return next(s for n, s, _ in self.samplers if n == sampler)

    def calls_of(self, sampler: str) -> int:
        """Model calls per sample of this sampler's candidates."""
        return next(c for n, _, c in self.samplers if n == sampler)


class JointSearch(EvoSearch):
    """EvoSearch with the sampler gene, set up from a JointConfig (candidates and results are SamplerSchedules)."""

    def __init__(self, config: JointConfig, evaluate, seeds: dict[str, SamplerSchedule] | None = None,
                 state: JointState | None = None):
        self.joint_config = config
        super().__init__(config.evo_config(), evaluate, seeds=seeds, state=state)
