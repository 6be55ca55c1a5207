"""Fréchet distance between Gaussian fits of two feature sets (FID, Heusel et al. 2017), with a stability verdict.

d² = |mu_a - mu_b|² + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^½ S_b S_a^½)^½). Only symmetric eigendecompositions are used
(float64), so no complex square roots appear. A covariance fitted to n rows has rank at most n - 1: with n <= D
(feature dimension) it is singular and the distance is biased upward by an amount that depends on n, so distances
are comparable only at equal set sizes. `frechet` says so in `note` instead of returning a silently biased number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class FrechetResult:
    distance: float   # d² (FID convention: the squared Fréchet distance)
    rows_a: int
    rows_b: int
    dim: int
    stable: bool      # both sets have more rows than feature dimensions
    note: str         # empty when stable, else why the value is biased and what to do

    def __float__(self) -> float:
        return self.distance


def _as_rows(x: ArrayLike, name: str) -> np.ndarray:
    a = torch.as_tensor(x).detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, float)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a (rows, features) matrix; got shape {a.shape}")
    if len(a) < 2:
        raise ValueError(f"{name} has {len(a)} row(s); a Fréchet distance needs at least 2 samples per set "
                         "(and more than the feature dimension for a stable one)")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def psd_sqrt(mat: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues clipped to 0)."""
    vals, vecs = np.linalg.eigh((mat + mat.T) / 2.0)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def gaussian_fit(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return feats.mean(0), np.atleast_2d(np.cov(feats, rowvar=False))


def frechet_from_stats(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    root_a = psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((root_a @ cov_b @ root_a + (root_a @ cov_b @ root_a).T) / 2),
                            0.0, None)).sum()
    d2 = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(d2, 0.0)


def frechet(feats_a: ArrayLike, feats_b: ArrayLike) -> FrechetResult:
    """The Fréchet distance of two (N, D) and (M, D) feature sets, with whether N and M are large enough."""
    a, b = _as_rows(feats_a, "the first feature set"), _as_rows(feats_b, "the second feature set")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the feature sets have {a.shape[1]} and {b.shape[1]} features; extract both with the "
                         "same feature model")
    dim = a.shape[1]
    d2 = frechet_from_stats(*gaussian_fit(a), *gaussian_fit(b))
    small = min(len(a), len(b))
    stable = small > dim
    note = "" if stable else (
        f"only {small} samples for {dim} features: the covariance is singular (rank <= {small - 1}), so the "
        f"distance is biased upward and comparable only between sets of the same size; use more than {dim} "
        "samples per set for a stable distance")
    return FrechetResult(d2, len(a), len(b), dim, stable, note)


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike, require_stable: bool = False) -> float:
    """d² only; with require_stable a batch too small for a stable distance raises ValueError saying so."""
    result = frechet(feats_a, feats_b)
    if require_stable and not result.stable:
        raise ValueError(result.note)
    return result.distance
