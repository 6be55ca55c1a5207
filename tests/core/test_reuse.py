"""Reuse algebra: rebuilding D' from the cached derivative, and extrapolation in log σ."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_skip_core.reuse import PredictionCache, derivative, rebuild_denoised
from adaptive_skip_core.reuse_modes import lagrange_weights


def test_rebuild_inverts_derivative():
    x = torch.randn(2, 4, 3, 3)
    d_true = torch.randn_like(x)
    denoised = rebuild_denoised(x, 2.5, d_true)
    assert torch.allclose(derivative(x, denoised, 2.5), d_true, atol=1e-6)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_extrapolation_is_exact_for_polynomials_in_log_sigma(order):
    a, b, c = (torch.randn(1, 4, 2, 2) for _ in range(3))

    def eps(sigma):
        s = math.log(sigma)
        return a + (b * s if order >= 1 else 0) + (c * s * s if order >= 2 else 0)

    cache = PredictionCache(order)
    for sigma in (9.0, 5.0, 3.0):
        x = torch.randn(1, 4, 2, 2)
        cache.store(x, x - sigma * eps(sigma), sigma)
    x_new = torch.randn(1, 4, 2, 2)
    got = cache.predict(x_new, 1.7)
    assert torch.allclose(got, x_new - 1.7 * eps(1.7), atol=1e-4)


def test_cache_keeps_few_entries_and_replaces_same_sigma():
    cache = PredictionCache(2)
    x = torch.zeros(1, 1)
    for sigma in (10.0, 8.0, 6.0, 4.0, 4.0):
        cache.store(x, x - sigma, sigma)
    assert len(cache) == 3 and cache.last_sigma == 4.0


def test_sigma_zero_returns_x_and_lagrange_weights_sum_to_one():
    cache = PredictionCache(1)
    cache.store(torch.ones(1), torch.zeros(1), 1.0)
    assert torch.equal(cache.predict(torch.full((1,), 3.0), 0.0), torch.full((1,), 3.0))
    assert abs(sum(lagrange_weights([0.1, 0.5, 0.9], 0.3)) - 1) < 1e-12


def test_predict_without_any_call_fails_clearly():
    with pytest.raises(RuntimeError, match="first step of a run must call the model"):
        PredictionCache(0).predict(torch.zeros(1), 1.0)


def test_denoised_space_extrapolates_d_not_eps():
    """For noise-injecting samplers D is cached and extrapolated; the x of the skipped call does not enter."""
    cache = PredictionCache(1, space="denoised")
    d0, d1 = torch.full((1, 2), 1.0), torch.full((1, 2), 2.0)
    cache.store(torch.randn(1, 2), d0, 4.0)
    cache.store(torch.randn(1, 2), d1, 2.0)
    got = cache.predict(torch.randn(1, 2), 1.0)  # linear in log σ: log 1 is one more log-step past log 2
    assert torch.allclose(got, torch.full((1, 2), 3.0), atol=1e-6)
    with pytest.raises(ValueError, match="space must be one of eps, denoised"):
        PredictionCache(0, space="velocity")
