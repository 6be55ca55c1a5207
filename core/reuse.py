"""Reuse algebra: cache d = (x - D)/σ of computed calls and rebuild D' = x' - σ'·d on skipped ones.

For eps-prediction models d is the predicted noise, for flow (CONST) models the velocity, for v-prediction the
implied noise, so holding d is AdaptiveDiffusion's "reuse the noise prediction" for every model family.
Extrapolating d in log σ (linear from the last two computed calls, quadratic from the last three) predicts
instead of holding, which keeps multistep samplers' order when their history is fed these predictions.
"""
from __future__ import annotations

import math

import torch

ORDERS = {"hold": 0, "linear": 1, "quadratic": 2}


def derivative(x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> torch.Tensor:
    """d = (x - D)/σ, the quantity k-diffusion samplers integrate."""
    return (x - denoised) / sigma


def rebuild_denoised(x: torch.Tensor, sigma: float, d: torch.Tensor) -> torch.Tensor:
    """D' = x' - σ'·d: the denoised output a model predicting d would give at (x', σ')."""
    return x - sigma * d


def lagrange_weights(points: list[float], at: float) -> list[float]:
    """Weights w_j with f(at) ≈ Σ w_j f(points[j]) for the polynomial through the points."""
    weights = []
    for j, pj in enumerate(points):
        w = 1.0
        for k, pk in enumerate(points):
            if k != j:
                w *= (at - pk) / (pj - pk)
        weights.append(w)
    return weights


SPACES = ("eps", "denoised")


class PredictionCache:
    """The last few computed (σ, value) pairs of one sampling run; O(order+1) tensors whatever the step count.

    `space` says what is cached and extrapolated: "eps" caches d = (x - D)/σ (the paper's reuse; smooth along an ODE
    trajectory), "denoised" caches D itself, for samplers that inject fresh noise every step (ancestral, SDE),
    where d carries that noise and jumps from step to step while D stays smooth.
    """

    def __init__(self, order: int = 0, space: str = "eps") -> None:
        if order not in (0, 1, 2):
            raise ValueError(f"order must be 0 (hold), 1 (linear) or 2 (quadratic), got {order!r}")
        if space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}; got {space!r}")
        self.order = order
        self.space = space
        self._sigmas: list[float] = []
        self._ds: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self._ds)

    @property
    def last_sigma(self) -> float | None:
        return self._sigmas[-1] if self._sigmas else None

    def store(self, x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> None:
        """Remember a computed call; a call at an already cached σ replaces that entry."""
        if sigma <= 0:
            return  # d is undefined at σ = 0 and no sampler needs it there
        d = derivative(x, denoised, sigma).detach() if self.space == "eps" else denoised.detach().clone()
        if self._sigmas and self._sigmas[-1] == sigma:
            self._sigmas.pop()
            self._ds.pop()
        self._sigmas.append(sigma)
        self._ds.append(d)
        keep = max(self.order + 1, 2)  # two kept even for hold, so the error criterion can compare
        del self._sigmas[:-keep], self._ds[:-keep]

    def predict_d(self, sigma: float, order: int | None = None) -> torch.Tensor:
        """The cached quantity (d, or D in "denoised" space) at σ, extrapolated in log σ at the requested order
        or the highest one available."""
        if not self._ds:
            raise RuntimeError("no computed call is cached yet; the first step of a run must call the model")
        order = self.order if order is None else order
        n = min(order + 1, len(self._ds))
        if n == 1 or sigma <= 0:
            return self._ds[-1]
        points = [math.log(s) for s in self._sigmas[-n:]]
        weights = lagrange_weights(points, math.log(sigma))
        out = self._ds[-n] * weights[0]
        for w, d in zip(weights[1:], self._ds[-n + 1:]):
            out = out + w * d
        return out

    def predict(self, x: torch.Tensor, sigma: float, order: int | None = None) -> torch.Tensor:
        """The denoised output D' for a skipped call at (x, σ)."""
        if self.space == "denoised":
            return self.predict_d(sigma, order).to(x.dtype)
        if sigma <= 0:
            return x
        return rebuild_denoised(x, sigma, self.predict_d(sigma, order)).to(x.dtype)

    def disagreement(self, sigma: float, order: int) -> float | None:
        """Relative gap ||held - extrapolated|| / ||extrapolated|| at σ (in the cache's space), or None when too
        few calls are cached."""
        if len(self._ds) < 2 or sigma <= 0:
            return None
        held = self._ds[-1]
        extrapolated = self.predict_d(sigma, max(order, 1))
        scale = torch.linalg.vector_norm(extrapolated.float()).item()
        if scale == 0:
            return 0.0
        return torch.linalg.vector_norm((held - extrapolated).float()).item() / scale
