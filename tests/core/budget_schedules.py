"""Schedules, per-step call counts and the euler driver the budget tests share (a helper module, not a test)."""
from __future__ import annotations

import torch


def karras(n: int, lo: float = 0.03, hi: float = 14.6, rho: float = 7.0) -> list[float]:
    return [(hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for i in range(n)] + [0.0]


def one_call(step, sigmas):
    return 1


def heun_calls(step, sigmas):
    return 1 if sigmas[step + 1] == 0 else 2


def flow_simple(n: int, shift: float = 3.0) -> list[float]:
    """A flow model's `simple` schedule shape: σ = shift·t / (1 + (shift - 1)·t), t uniform, ending in 0."""
    ts = [1 - i / n for i in range(n)]
    return [shift * t / (1 + (shift - 1) * t) for t in ts] + [0.0]


def drive(ctl, sigmas, d_of):
    """An euler loop (x ← x + (σ' - σ)·d) with d = d_of(step, σ) for real calls and the controller's prediction
    for skipped ones; returns (x, the steps that called)."""
    x = torch.zeros(1, 2, dtype=torch.float64)
    calls = []
    for i in range(len(sigmas) - 1):
        s = sigmas[i]
        if ctl.decide(i):
            calls.append(i)
            den = x - s * d_of(i, s)
            ctl.store(x, den, s)
        else:
            den = ctl.predict(x, s)
        x = x + (sigmas[i + 1] - s) * (x - den) / s
    return x, calls


def gaps_of(calls):
    return [b - a for a, b in zip(calls, calls[1:])]


def budget_run_calls(ctl, sigmas):
    """The steps a budget run's SkipController (decide/store/predict/path) computes over `sigmas`, driven with a
    constant latent."""
    x = torch.zeros(1, 2)
    for i, s in enumerate(sigmas[:-1]):
        if ctl.decide(i, x, s):
            ctl.store(x, x * 0.5, s)
        else:
            ctl.predict(x, s)
    return [i for i, c in enumerate(ctl.path.computed) if c]
