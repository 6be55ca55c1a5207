"""Reuse modes as registered strategies: what a skipped call returns, built from the computed calls cached.

A reuse mode is an object registered under its name (the value of the node's `reuse` dropdown). It owns its cache
policy (`keep`: how many computed calls the run's PredictionCache holds) and its extrapolation (`extrapolate`: the
cached quantity at a new σ from the kept (σ, value) pairs). The cache applies it in either space (d or D).

Adding one: a new module in this folder that subclasses `ReuseMode` and calls `register(...)`;
`REGISTRY.discover` imports it after the built-ins (so their dropdown order never changes). Nothing else needs editing.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..registry import Registry


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


def polynomial_in_log_sigma(sigmas: Sequence[float], values: Sequence[torch.Tensor], at: float,
                            order: int) -> torch.Tensor:
    """The polynomial of degree `order` (or the highest the points allow) through the last points, in log σ."""
    n = min(order + 1, len(values))
    if n == 1 or at <= 0:
        return values[-1]
    weights = lagrange_weights([math.log(s) for s in sigmas[-n:]], math.log(at))
    out = values[-n] * weights[0]
    for w, d in zip(weights[1:], values[-n + 1:]):
        out = out + w * d
    return out


class ReuseMode:
    """Base class: a polynomial of degree `order` in log σ through the last computed calls (0 holds the last)."""

    name = ""
    help = ""  # one tooltip sentence, shown after "name: "
    order = 0  # degree used by extrapolate; the error criterion compares against at least degree 1
    extrapolates = True  # False for holding: noise-injecting samplers then still reuse d, not D

    @property
    def keep(self) -> int:
        """Computed calls to keep: enough for the extrapolation, and two even for hold (the error criterion
        compares held and extrapolated predictions)."""
        return max(self.order + 1, 2)

    def extrapolate(self, sigmas: Sequence[float], values: Sequence[torch.Tensor], at: float) -> torch.Tensor:
        """The cached quantity at σ = `at` from the kept pairs (oldest first, at least one)."""
        return polynomial_in_log_sigma(sigmas, values, at, self.order)


REGISTRY: Registry[ReuseMode] = Registry("reuse")
register, get, names = REGISTRY.register, REGISTRY.get, REGISTRY.names


def resolve(mode: "ReuseMode | str | int") -> ReuseMode:
    """A mode from a mode, its name, or a polynomial order (0 hold, 1 linear, 2 quadratic; older callers)."""
    if isinstance(mode, ReuseMode):
        return mode
    if isinstance(mode, int) and not isinstance(mode, bool):
        for m in REGISTRY.values():
            if type(m).extrapolate is ReuseMode.extrapolate and m.order == mode:
                return m
        raise ValueError(f"order must be 0 (hold), 1 (linear) or 2 (quadratic), got {mode!r}")
    return get(mode)


def tooltip() -> str:
    """The reuse widget's tooltip, one sentence per registered mode."""
    return "What a skipped step uses. " + REGISTRY.tooltip()


from . import polynomial  # noqa: E402,F401  built-ins, in dropdown order
REGISTRY.discover(__name__, __path__, ("polynomial",))
