"""Reuse algebra: cache d = (x - D)/σ of computed calls and rebuild D' = x' - σ'·d on skipped ones.

For eps-prediction models d is the predicted noise, for flow (CONST) models the velocity, for v-prediction the
implied noise, so holding d is AdaptiveDiffusion's "reuse the noise prediction" for every model family.
Extrapolating d in log σ (linear from the last two computed calls, quadratic from the last three) predicts
instead of holding, which keeps multistep samplers' order when their history is fed these predictions.
"""
from __future__ import annotations

import torch

from . import reuse_modes
from .reuse_modes import ReuseMode, polynomial_in_log_sigma

# reuse name -> polynomial order, for callers that still pass orders (the cache takes a mode or its name)
ORDERS = {name: reuse_modes.get(name).order for name in reuse_modes.names()}


def derivative(x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> torch.Tensor:
    """d = (x - D)/σ, the quantity k-diffusion samplers integrate."""
    return (x - denoised) / sigma


def rebuild_denoised(x: torch.Tensor, sigma: float, d: torch.Tensor) -> torch.Tensor:
    """D' = x' - σ'·d: the denoised output a model predicting d would give at (x', σ')."""
    return x - sigma * d


SPACES = ("eps", "denoised")


class PredictionCache:
    """The last few computed (σ, value) pairs of one sampling run; O(order+1) tensors whatever the step count.

    `space` says what is cached and extrapolated: "eps" caches d = (x - D)/σ (the paper's reuse; smooth along an ODE
    trajectory), "denoised" caches D itself, for samplers that inject fresh noise every step (ancestral, SDE),
    where d carries that noise and jumps from step to step while D stays smooth.
    """

    def __init__(self, mode: ReuseMode | str | int = "hold", space: str = "eps") -> None:
        self.mode = reuse_modes.resolve(mode)
        if space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}; got {space!r}")
        self.space = space
        self._sigmas: list[float] = []
        self._ds: list[torch.Tensor] = []

    @property
    def order(self) -> int:
        return self.mode.order

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
        keep = self.mode.keep
        del self._sigmas[:-keep], self._ds[:-keep]

    def extrapolate(self, sigma: float, order: int | None = None) -> torch.Tensor:
        """The cached quantity (d, or D in "denoised" space) at σ: the reuse mode's extrapolation, or a polynomial
        of the requested order in log σ through the kept calls."""
        if not self._ds:
            raise RuntimeError("no computed call is cached yet; the first step of a run must call the model")
        if order is None:
            return self.mode.extrapolate(self._sigmas, self._ds, sigma)
        return polynomial_in_log_sigma(self._sigmas, self._ds, sigma, order)

    def predict(self, x: torch.Tensor, sigma: float, order: int | None = None) -> torch.Tensor:
        """The denoised output D' for a skipped call at (x, σ)."""
        if self.space == "denoised":
            return self.extrapolate(sigma, order).to(x.dtype)
        if sigma <= 0:
            return x
        return rebuild_denoised(x, sigma, self.extrapolate(sigma, order)).to(x.dtype)

    def disagreement(self, sigma: float, order: int | None = None) -> float | None:
        """Relative gap ||held - extrapolated|| / ||extrapolated|| at σ (in the cache's space), or None when too
        few calls are cached."""
        if len(self._ds) < 2 or sigma <= 0:
            return None
        held = self._ds[-1]
        extrapolated = self.extrapolate(sigma, max(self.order if order is None else order, 1))
        scale = torch.linalg.vector_norm(extrapolated.float()).item()
        if scale == 0:
            return 0.0
        return torch.linalg.vector_norm((held - extrapolated).float()).item() / scale
