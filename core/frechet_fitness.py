"""The Fréchet fitness: how far the features of a candidate's decoded samples are from those of real images (the
FID signal AutoDiffusion searched with), instead of how far its latents are from a many-step reference.

The caller supplies `features`: a function from a candidate's samples (K, C, H, W) to features (K, D) -- decode
(a VAE, or the exact latent map of a bundled model) then a feature network (CLIP vision, or the pack's digits/MNIST
classifiers). The real images' features are fitted once. The identity (cache key part) holds the feature model's
name and a digest of the real features, so another reference set or feature model never reuses a saved result.
With K <= D the candidate's covariance is singular: distances are then biased upward alike for every candidate
(they still rank candidates scored on the same K seeds), and `stability_note` says so for the record.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .fitness import Fitness, register
from .frechet import frechet_from_stats, gaussian_fit

Features = Callable[[torch.Tensor], torch.Tensor]


def feature_digest(feats: torch.Tensor | np.ndarray) -> str:
    """16 hex digits identifying a feature set (its shape and values)."""
    a = np.ascontiguousarray(torch.as_tensor(feats).detach().cpu().double().numpy())
    return hashlib.sha256(f"{a.shape}".encode() + a.tobytes()).hexdigest()[:16]


@register
class FrechetFitness(Fitness):
    """Fréchet distance between Gaussian fits of a candidate's sample features and the real images' features."""

    name = "frechet"
    label = "Fréchet distance to real images"
    help = ("Fréchet distance of the decoded samples' features to real reference images (AutoDiffusion's FID "
            "signal); needs reference_images and a feature model.")

    def __init__(self, features: Features | None = None, real_features: torch.Tensor | None = None,
                 feature_name: str = "") -> None:
        if features is None or real_features is None or not feature_name:
            raise ValueError("the frechet fitness needs a feature function, the real images' features and the "
                             "feature model's name; connect reference IMAGEs and a feature model")
        real = torch.as_tensor(real_features).detach().cpu().double()
        if real.ndim != 2 or len(real) < 2:
            raise ValueError(f"real features must be (N >= 2, D); got {tuple(real.shape)}: connect more reference "
                             "images")
        self.features, self.feature_name = features, feature_name
        self.real_rows, self.dim = real.shape
        self.digest = feature_digest(real)
        self._mu, self._cov = gaussian_fit(real.numpy())

    def params(self) -> dict:
        return {"features": self.feature_name, "reference": self.digest, "rows": self.real_rows}

    def stability_note(self, samples_per_candidate: int) -> str:
        """Empty when the sets are big enough for a stable distance, else what is biased and what to do."""
        small = min(samples_per_candidate, self.real_rows)
        if small > self.dim:
            return ""
        return (f"Fréchet distance on {samples_per_candidate} samples per candidate and {self.real_rows} real images "
                f"with {self.dim} features: the covariance is singular, so the values are biased upward (alike for "
                f"every candidate scored on the same seeds); use more than {self.dim} seeds and reference images for "
                "a stable distance")

    def describe(self, samples_per_candidate: int) -> str:
        """The metric as a saved record names it."""
        return (f"{self.label} ({self.feature_name} features, {self.real_rows} real images, reference "
                f"{self.digest}), {samples_per_candidate} seeds")

    def distance(self, samples: torch.Tensor) -> float:
        feats = torch.as_tensor(self.features(samples)).detach().cpu().double().numpy()
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"the feature function gave shape {feats.shape}; the real features have {self.dim}")
        if len(feats) < 2:
            raise ValueError("the frechet fitness needs at least 2 seeds per candidate (num_seeds >= 2)")
        if not np.isfinite(feats).all():
            return math.inf  # a candidate whose samples blew up (NaN/inf features) loses; it must not crash
        return frechet_from_stats(*gaussian_fit(feats), self._mu, self._cov)

    def score(self, outputs: Sequence[torch.Tensor], reference: torch.Tensor) -> list[float]:
        return [self.distance(o) for o in outputs]
