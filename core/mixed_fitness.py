"""The mixed fitness (issue 14's optional third choice): fidelity and the Fréchet distance in one number.

    mixed = w · MSE(candidate, reference) / Var(reference) + (1 - w) · FD(candidate) / FD(reference)

Both terms are made dimensionless by the reference samples of the same seeds (the many-step run the fidelity
fitness compares with): the latent MSE by the reference's variance over seeds and elements (0 = the reference
itself, about 2 = an unrelated sample of the same distribution), the Fréchet distance to the real images by the
reference's own Fréchet distance on the same seeds (1 = as close to the real images as the many-step run; below 1 =
closer, which few-step sampling of a small model can be). A candidate equal to the reference scores 1 - w. Each
seed set (fitness, validation) is normalised by its own reference, so their scores average as the pipeline does.
w = 0.5 weighs the two equally; it is a parameter, so it is in the cache key.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .fitness import register
from .frechet_fitness import FrechetFitness, feature_digest

DEFAULT_WEIGHT = 0.5


@register
class MixedFitness(FrechetFitness):
    """w · MSE / Var(reference) + (1 - w) · FD / FD(reference): see the module docstring."""

    name = "mixed"
    label = "fidelity + Fréchet (each normalised by the reference's)"
    help = ("mixed: half latent MSE to the many-step reference (over the reference's variance), half Fréchet "
            "distance to reference_images (over the many-step reference's own); needs what frechet needs.")

    def __init__(self, features=None, real_features=None, feature_name: str = "",
                 weight: float = DEFAULT_WEIGHT) -> None:
        super().__init__(features, real_features, feature_name)
        if not 0.0 <= float(weight) <= 1.0:
            raise ValueError(f"the mixed fitness weight must be in [0, 1], got {weight!r}")
        self.weight = float(weight)
        self._reference_scales: dict[str, tuple[float, float]] = {}

    def params(self) -> dict:
        return {**super().params(), "weight": self.weight}

    def describe(self, samples_per_candidate: int) -> str:
        return (f"{self.weight:g} x latent MSE / reference variance + {1 - self.weight:g} x Fréchet distance / the "
                f"reference's ({self.feature_name} features, {self.real_rows} real images, reference "
                f"{self.digest}), {samples_per_candidate} seeds")

    def reference_scales(self, reference: torch.Tensor) -> tuple[float, float]:
        """(variance, Fréchet distance) of the reference samples: the two normalisers, computed once per set."""
        key = feature_digest(reference.flatten(1) if reference.ndim > 1 else reference)
        if key not in self._reference_scales:
            ref = reference.detach().float()
            variance = float(((ref - ref.mean(0, keepdim=True)) ** 2).mean())
            distance = self.distance(ref)
            power = float((ref ** 2).mean())
            if not (variance > 1e-9 * max(power, 1e-30) and math.isfinite(distance) and distance > 0):
                raise ValueError(f"the mixed fitness cannot normalise by this reference (variance {variance:.3g}, "
                                 f"Fréchet distance {distance:.3g}): it needs several different reference samples "
                                 "(num_seeds >= 2) that decode to finite features")
            self._reference_scales[key] = (variance, distance)
        return self._reference_scales[key]

    def score(self, outputs: Sequence[torch.Tensor], reference: torch.Tensor) -> list[float]:
        reference = torch.as_tensor(reference)
        if outputs and tuple(reference.shape) != tuple(outputs[0].shape):
            raise ValueError(f"the mixed fitness needs the many-step reference samples of the same seeds (shape "
                             f"{tuple(outputs[0].shape)}), got {tuple(reference.shape)}")
        variance, distance = self.reference_scales(reference)
        ref = reference.detach().float()
        out = []
        for o in outputs:
            mse = float(((o.detach().float() - ref) ** 2).mean())
            fd = self.distance(o)
            out.append(self.weight * mse / variance + (1 - self.weight) * fd / distance)
        return [v if math.isfinite(v) else math.inf for v in out]
