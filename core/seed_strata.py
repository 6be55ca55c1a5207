"""Stratified fitness seeds: an unbiased, low-variance estimate of a heavy-tailed mean error from few seeds.

A schedule's mean error over many seeds is carried by a few seeds with very large errors (on the digits UNet the
worst 3 of 32 held-out seeds hold 51-82% of a find's summed error; at N = 8 they are large differences within the
same digit, not class flips: BENCHMARKS.md, session 6). A random fitness set of 16 seeds
holds about as few of those as it holds by chance, so the search cannot see them. Instead: screen a large pool of S
seeds once (e.g. a built-in schedule's error per seed against the reference), take the h seeds with the largest
screening error as a hard stratum enumerated completely, and draw the other K - h fitness seeds at random from the
remaining S - h. Weighted by 1/S (hard) and (S - h) / ((K - h) S) (easy), the weighted mean error of any schedule on
the K seeds is an unbiased estimate of its mean over the whole pool, with the tail counted exactly instead of by luck.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SeedStrata:
    """K fitness seeds of a pool of `pool_size`: `hard` (the seeds with the largest screening error) then `easy` (a random draw), as pool
    indices, and the weight of each (same order as `indices`; they sum to 1)."""

    hard: tuple[int, ...]
    easy: tuple[int, ...]
    pool_size: int

    @property
    def indices(self) -> list[int]:
        return list(self.hard) + list(self.easy)

    @property
    def weights(self) -> torch.Tensor:
        s, h, e = self.pool_size, len(self.hard), len(self.easy)
        hard = torch.full((h,), 1.0 / s, dtype=torch.float64)
        easy = torch.full((e,), (s - h) / (e * s) if e else 0.0, dtype=torch.float64)
        return torch.cat([hard, easy])


def stratify(screen_errors: Sequence[float] | torch.Tensor, num_seeds: int, hard_seeds: int,
             seed: int = 0) -> SeedStrata:
    """Choose `num_seeds` of the screened pool: the `hard_seeds` with the largest screening error (ties: the lower
    index) and `num_seeds - hard_seeds` drawn without replacement from the rest with torch.Generator(seed)."""
    errors = torch.as_tensor(screen_errors, dtype=torch.float64).flatten()
    s = errors.numel()
    if not 0 <= hard_seeds <= num_seeds:
        raise ValueError(f"hard_seeds must be between 0 and num_seeds ({num_seeds}), got {hard_seeds}")
    if num_seeds > s:
        raise ValueError(f"num_seeds ({num_seeds}) must not exceed the screened pool ({s} seeds): screen more seeds")
    if hard_seeds == num_seeds and hard_seeds < s:
        raise ValueError(f"hard_seeds ({hard_seeds}) must leave at least one of the {num_seeds} fitness seeds for the "
                         "random draw from the rest of the pool, else the estimate ignores it")
    if not torch.isfinite(errors).all():
        raise ValueError("screen_errors must be finite (a NaN or inf screening error cannot be ranked)")
    # stable sort on -error: the largest first, ties by index, so the choice does not depend on the sort algorithm
    order = sorted(range(s), key=lambda i: (-float(errors[i]), i))
    hard = tuple(sorted(order[:hard_seeds]))
    rest = sorted(order[hard_seeds:])
    draw = torch.randperm(len(rest), generator=torch.Generator().manual_seed(int(seed)))[:num_seeds - hard_seeds]
    easy = tuple(rest[int(i)] for i in draw)
    return SeedStrata(hard, easy, s)


def weighted_mean(per_seed: torch.Tensor, weights: torch.Tensor) -> float:
    """sum_i w_i e_i of one candidate's per-seed errors (K,) and the strata weights (K,)."""
    per_seed = per_seed.detach().double().flatten()
    weights = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if per_seed.numel() != weights.numel():
        raise ValueError(f"{per_seed.numel()} per-seed errors but {weights.numel()} seed weights")
    return float((per_seed * weights).sum())
