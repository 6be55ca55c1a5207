"""core/frechet.py: the Fréchet distance of Gaussian fits, against closed forms, and its small-batch verdict."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptive_skip_core.frechet import frechet, frechet_distance, frechet_from_stats, psd_sqrt


def test_closed_form_for_diagonal_gaussians():
    mu_a, mu_b = np.array([0.0, 1.0]), np.array([2.0, 1.0])
    cov_a, cov_b = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    # Diagonal: d² = |dmu|² + sum (sqrt(a_i) - sqrt(b_i))²
    assert frechet_from_stats(mu_a, cov_a, mu_b, cov_b) == pytest.approx(4 + (1 - 3) ** 2 + (2 - 1) ** 2)


def test_non_commuting_covariances_match_the_scipy_free_reference():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((4, 4))
    cov_a, cov_b = m @ m.T + np.eye(4), np.diag([1.0, 2.0, 3.0, 4.0])
    # Tr((A B)^½) from the eigenvalues of A B (real, positive for SPD A, B)
    cross = np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real).sum()
    expect = np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    assert frechet_from_stats(np.zeros(4), cov_a, np.zeros(4), cov_b) == pytest.approx(expect, rel=1e-9)
    root = psd_sqrt(cov_a)
    assert np.allclose(root @ root, cov_a)


def test_same_distribution_is_near_zero_and_a_shift_is_seen():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4000, 3)), rng.standard_normal((4000, 3))
    same = frechet(a, b)
    assert same.stable and same.note == "" and same.distance < 0.01
    shifted = frechet(a, torch.as_tensor(b + 0.5))
    assert shifted.distance == pytest.approx(0.75, abs=0.05)


def test_a_batch_too_small_is_said_plainly():
    rng = np.random.default_rng(2)
    small = frechet(rng.standard_normal((10, 16)), rng.standard_normal((500, 16)))
    assert not small.stable and "only 10 samples for 16 features" in small.note
    with pytest.raises(ValueError, match="only 10 samples"):
        frechet_distance(rng.standard_normal((10, 16)), rng.standard_normal((500, 16)), require_stable=True)
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="same feature model"):
        frechet(np.zeros((5, 3)), np.zeros((5, 4)))
