"""The settings of a sigma-schedule search (core/schedule_search.py) and its candidate with a sampler gene:
plain data, checked when made, so a bad setting is refused before any model call."""
from __future__ import annotations

import math
from dataclasses import dataclass

# What the search varies: every σ (steps), a 2-parameter monotone warp of the seeds (warp), or warps of the seeds and
# of every sampler's linear-in-σ schedules (warp_linear); core/schedule_warp.search_class gives each its class.
SPACES = ("steps", "warp", "warp_linear")


@dataclass(frozen=True)
class SamplerSchedule:
    """One candidate of a search with a sampler gene: a sampler and its σ schedule (steps + 1 values ending in 0)."""

    sampler: str
    sigmas: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1


@dataclass(frozen=True)
class EvoConfig:
    """Search settings. `budget` and `calls_per_candidate` are in model calls (the caller decides the unit,
    e.g. per-sample calls: N steps x calls per step x seeds). A mutation moves each free step with probability
    `mutation_prob` (at least one); a moved step is redrawn anywhere in range with probability `reset_prob`
    (AutoDiffusion's mutation), otherwise nudged by a Gaussian of `mutation_scale` in log σ that shrinks 10% a
    generation. `crossover_fraction` of the children mix two parents step by step. `grid` adds a coarse grid of
    smooth schedules (GRID_POWERS x GRID_LAST) to the first generation, next to the seeds, so the search starts from
    big and small first steps and from several last σ, not only from the built-ins' shapes.

    `space` "warp" searches warps of the seeds instead of every σ (core/schedule_warp.py, WarpSearch).
    `samplers`, when given, is the sampler gene: (name, steps, cost of one candidate in budget units) per sampler,
    `steps` the most of them (calls_per_candidate is then unused); `sampler_mutation_prob` is the chance that a
    mutated child switches sampler."""

    steps: int
    sigma_min: float
    sigma_max: float
    population: int = 16
    top_k: int = 4
    mutation_prob: float = 0.3
    mutation_scale: float = 0.3
    reset_prob: float = 0.2
    crossover_fraction: float = 0.5
    generations: int = 12
    min_log_gap: float = 0.02
    budget: int | None = None
    calls_per_candidate: int = 1
    fix_first: bool = True
    grid: bool = True
    seed: int = 0
    samplers: tuple[tuple[str, int, int], ...] = ()
    sampler_mutation_prob: float = 0.25
    space: str = "steps"

    def __post_init__(self):
        def need(ok: bool, message: str):
            if not ok:
                raise ValueError(message)

        object.__setattr__(self, "samplers", tuple((str(n), int(s), int(c)) for n, s, c in self.samplers))
        need(isinstance(self.steps, int) and self.steps >= 1, f"steps must be an integer >= 1, got {self.steps!r}")
        need(0 < self.sigma_min < self.sigma_max and math.isfinite(self.sigma_max),
             f"need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min!r}, sigma_max={self.sigma_max!r}")
        need(self.population >= 2, f"population must be at least 2, got {self.population}")
        need(1 <= self.top_k <= self.population,
             f"top_k must be between 1 and population ({self.population}), got {self.top_k}")
        need(0.0 <= self.mutation_prob <= 1.0, f"mutation_prob must be in [0, 1], got {self.mutation_prob}")
        need(self.mutation_scale > 0, f"mutation_scale (log σ) must be > 0, got {self.mutation_scale}")
        need(0.0 <= self.reset_prob <= 1.0, f"reset_prob must be in [0, 1], got {self.reset_prob}")
        need(0.0 <= self.crossover_fraction <= 1.0,
             f"crossover_fraction must be in [0, 1], got {self.crossover_fraction}")
        need(self.generations >= 1, f"generations must be at least 1, got {self.generations}")
        need(self.calls_per_candidate >= 1, f"calls_per_candidate must be at least 1, got {self.calls_per_candidate}")
        need(self.budget is None or self.budget >= 0, f"budget must be >= 0 model calls or None, got {self.budget}")
        need(0.0 <= self.sampler_mutation_prob <= 1.0,
             f"sampler_mutation_prob must be in [0, 1], got {self.sampler_mutation_prob}")
        need(self.space in SPACES, f"space must be one of {SPACES}, got {self.space!r}")
        if self.samplers:
            names = [n for n, _, _ in self.samplers]
            need(len(set(names)) == len(names), f"a sampler is listed twice: {names}")
            need(all(s >= 1 and c >= 1 for _, s, c in self.samplers),
                 f"every sampler gene needs >= 1 step and >= 1 call: {self.samplers}")
            need(self.steps == max(s for _, s, _ in self.samplers),
                 f"steps ({self.steps}) must be the most steps of the sampler genes {self.samplers}")
        span = math.log(self.sigma_max) - math.log(self.sigma_min)
        need(self.min_log_gap > 0 and (self.steps - 1) * self.min_log_gap <= span,
             f"min_log_gap {self.min_log_gap} leaves no room for {self.steps} steps in log σ range {span:.3f}; "
             f"use a gap below {span / max(self.steps - 1, 1):.4f}")

    def steps_of(self, sampler: str | None) -> int:
        """Steps of a candidate of this sampler (None: the plain search's `steps`)."""
        return self.steps if sampler is None else next(s for n, s, _ in self.samplers if n == sampler)

    def cost_of(self, sampler: str | None) -> int:
        """Budget units one candidate of this sampler costs."""
        return self.calls_per_candidate if sampler is None else next(c for n, _, c in self.samplers if n == sampler)
