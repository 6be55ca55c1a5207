"""A smaller, smoother schedule search space: monotone warps of the seeded (built-in) schedules.

The per-σ search (EvoSearch) moves every σ on its own; on a few fitness seeds it finds schedules that suit those
seeds and lose on others (scripts/bench/autodiffusion_schedule.py measured 0.24x-1.08x of the best built-in on
held-out seeds). Here a candidate is a warp of a parent schedule with two numbers: a time warp u -> u^exp(a) of its
log σ over the step index u = i / (N - 1) (a > 0 keeps σ high longer: smaller early steps, bigger late ones) and a
log-σ shift d·u that moves the end of the schedule (d > 0 stops at a higher last σ), the first σ kept at σ_max. Warps of warps are warps, so every
candidate stays one smooth deformation of a built-in.

WarpSearch: generation 0 scores the seeds only; generation g >= 1 warps each of the top_k parents by the 8
compass moves (±a, ±d and the diagonals) of a step that halves every generation (a pattern search per parent).
It keeps EvoSearch's state, budget, resume and sampler gene (a warp keeps its parent's sampler).

LinearWarpSearch (space "warp_linear"): the same, with generation 0 also holding, for every sampler gene, the
schedules linear in σ from σ_max down to a last σ of LINEAR_LAST x σ_max (bent by u^p, p in LINEAR_POWER). The
warps start from the best pairs, and the best pairs are often all of one sampler (ipndm on the MNIST flow DiT), so a
sampler whose built-in schedules are poor but which does well on another schedule was never warped: on the DiT at
N = 6 dpmpp_2m on σ linear to 0.3 (its last step returns the denoised sample) beats every ipndm warp found. Made for
flow models (σ_max = 1, σ linear in time); on other models they are 6 more candidates per sampler.
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence

from .schedule_search import EvoSearch

WARP_POWER = 0.4  # first step in a: u^exp(±0.4), i.e. u^1.49 / u^0.67
WARP_SHIFT = 0.5  # first step in d: the last σ moved by e^±0.5 (x1.65)
MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))


def warp_logs(logs: Sequence[float], a: float, d: float) -> list[float]:
    """The log-σ schedule warped: value i = ℓ(u_i^exp(a)) + d·u_i with ℓ the piecewise-linear schedule over
    u = i / (n - 1); the first value is unchanged (a = d = 0 returns the schedule itself)."""
    xs = [float(v) for v in logs]
    n = len(xs)
    if n < 2:
        return xs
    power = math.exp(a)
    out = [xs[0]]
    for i in range(1, n):
        u = i / (n - 1)
        t = (u ** power) * (n - 1)
        j = min(int(t), n - 2)
        out.append(xs[j] + (xs[j + 1] - xs[j]) * (t - j) + d * u)
    return out


class WarpSearch(EvoSearch):
    """EvoSearch over warps of the seeds (config.space == "warp"); see the module docstring."""

    space = "warp"

    def first_generation(self, rng: random.Random, add: Callable[[str | None, list[float], str], bool]) -> None:
        for name, sampler, logs in self.seeds:  # the seeds alone: every candidate after them is a warp of one
            add(sampler, logs, name)
        if not self.seeds:  # nothing to warp: EvoSearch's smooth grid as the parents
            super().first_generation(rng, add)

    def next_generation(self, rng: random.Random, add: Callable[[str | None, list[float], str], bool]) -> None:
        g = self.state.generation
        step = 0.5 ** (g - 1)
        for parent in self.parents():
            for da, dd in MOVES:
                a, d = da * WARP_POWER * step, dd * WARP_SHIFT * step
                root = parent.origin.split(" of ")[-1]  # the seed it descends from
                add(parent.sampler, self.repair(warp_logs(parent.logs, a, d)),
                    f"g{g}-warp({a:+.2f},{d:+.2f}) of {root}")


LINEAR_LAST = (0.15, 0.25, 0.35)  # warp_linear: last σ of the linear schedules, as a fraction of σ_max
LINEAR_POWER = (1.0, 1.2)  # and their bend u^p (p > 1: smaller steps first)


def linear_logs(sigma_max: float, steps: int, last: float, power: float) -> list[float]:
    """log σ_i of σ_i = σ_max - (σ_max - last·σ_max)·u_i^power over u_i = i / (steps - 1): linear in σ for power 1."""
    if steps == 1:
        return [math.log(sigma_max)]
    return [math.log(sigma_max - (1.0 - last) * sigma_max * (i / (steps - 1)) ** power) for i in range(steps)]


class LinearWarpSearch(WarpSearch):
    """WarpSearch whose generation 0 also holds every sampler gene's linear-in-σ schedules (space "warp_linear");
    see the module docstring."""

    space = "warp_linear"

    def first_generation(self, rng: random.Random, add: Callable[[str | None, list[float], str], bool]) -> None:
        super().first_generation(rng, add)
        c = self.config
        genes = [(n, s) for n, s, _ in c.samplers] or [(None, c.steps)]
        for (sampler, steps), last, power in itertools.product(genes, LINEAR_LAST, LINEAR_POWER):
            add(sampler, self.repair(linear_logs(c.sigma_max, steps, last, power)),
                f"{sampler or 'sigmas'}+linear({last:g},{power:g})")


SEARCHES = {"steps": EvoSearch, "warp": WarpSearch, "warp_linear": LinearWarpSearch}


def search_class(space: str) -> type[EvoSearch]:
    """The search class of `space` (one of core.schedule_search.SPACES)."""
    if space not in SEARCHES:
        raise ValueError(f"search space {space!r} is not one of {', '.join(SEARCHES)}")
    return SEARCHES[space]
