"""Schedules and per-step call counts the budget tests share (a helper module, not a test)."""
from __future__ import annotations


def karras(n: int, lo: float = 0.03, hi: float = 14.6, rho: float = 7.0) -> list[float]:
    return [(hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for i in range(n)] + [0.0]


def one_call(step, sigmas):
    return 1


def heun_calls(step, sigmas):
    return 1 if sigmas[step + 1] == 0 else 2
