"""The Fréchet fitness (core/frechet_fitness.py) through the Fitness seam: registry, identity, scores, stability."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptive_skip_core.fitness import FITNESSES, make_fitness
from adaptive_skip_core.frechet import frechet
from adaptive_skip_core.frechet_fitness import FrechetFitness, feature_digest


def _flatten(samples):
    return samples.flatten(1)[:, :3]


def test_registered_and_scores_match_the_plain_distance():
    assert FITNESSES.get("frechet") is FrechetFitness
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(400, 3, generator=gen)
    fit = make_fitness("frechet", features=_flatten, real_features=real, feature_name="first3")
    near = torch.randn(64, 3, 1, 1, generator=gen)
    far = torch.randn(64, 3, 1, 1, generator=gen) * 2 + 1
    scores = fit.score([near, far], reference=torch.zeros(1))
    assert scores[0] < scores[1]
    assert scores[1] == pytest.approx(frechet(_flatten(far), real).distance, rel=1e-9)


def test_identity_names_the_features_and_the_reference_set():
    real = torch.randn(50, 3)
    a = FrechetFitness(_flatten, real, "first3")
    assert a.identity.startswith("frechet:") and a.params()["reference"] == feature_digest(real)
    assert FrechetFitness(_flatten, real.clone(), "first3").identity == a.identity
    assert FrechetFitness(_flatten, real + 1e-3, "first3").identity != a.identity
    assert FrechetFitness(_flatten, real, "clip_vision:x").identity != a.identity


def test_small_batches_are_said_plainly_and_bad_inputs_name_the_fix():
    fit = FrechetFitness(_flatten, torch.randn(500, 3), "first3")
    assert fit.stability_note(64) == ""
    assert "singular" in fit.stability_note(3) and "more than 3 seeds" in fit.stability_note(3)
    with pytest.raises(ValueError, match="reference IMAGEs"):
        FrechetFitness()
    with pytest.raises(ValueError, match="num_seeds >= 2"):
        fit.score([torch.zeros(1, 3, 1, 1)], torch.zeros(1))
    with pytest.raises(ValueError, match="more reference"):
        FrechetFitness(_flatten, torch.zeros(1, 3), "first3")
    assert np.isfinite(fit.score([torch.randn(8, 3, 1, 1)], torch.zeros(1))[0])


def test_a_candidate_with_non_finite_features_loses_instead_of_crashing():
    import math

    import torch
    from adaptive_skip_core.frechet_fitness import FrechetFitness
    real = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    fit = FrechetFitness(features=lambda s: s.reshape(len(s), -1)[:, :3], real_features=real, feature_name="id")
    good = torch.randn(6, 3, 1, 1, generator=torch.Generator().manual_seed(1))
    bad = good.clone()
    bad[2, 0] = float("nan")
    scores = fit.score([good, bad], torch.zeros(1))
    assert math.isfinite(scores[0]) and scores[1] == math.inf
