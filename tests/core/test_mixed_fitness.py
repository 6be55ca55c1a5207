"""The mixed fitness (core/mixed_fitness.py): fidelity and Fréchet distance, each normalised by the reference's."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from adaptive_skip_core.fitness import FITNESSES, make_fitness
from adaptive_skip_core.frechet_fitness import FrechetFitness
from adaptive_skip_core.mixed_fitness import MixedFitness
from adaptive_skip_core.schedule_pipeline import SearchSettings, search_key


def _first3(samples):
    return samples.flatten(1)[:, :3]


def _setup(seed=0):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(300, 3, generator=gen)
    reference = torch.randn(40, 3, 1, 1, generator=gen) * 1.5 + 0.5  # a many-step run that misses the real set
    return real, reference, gen


def test_registered_after_frechet_and_the_reference_itself_scores_one_minus_w():
    assert FITNESSES.names()[:3] == ("fidelity", "frechet", "mixed")
    real, reference, _ = _setup()
    for w in (0.5, 0.2):
        fit = make_fitness("mixed", features=_first3, real_features=real, feature_name="first3", weight=w)
        assert fit.score([reference.clone()], reference)[0] == pytest.approx(1 - w, rel=1e-9)


def test_it_is_the_weighted_sum_of_the_two_normalised_terms():
    real, reference, gen = _setup()
    fit = MixedFitness(_first3, real, "first3", weight=0.3)
    fd = FrechetFitness(_first3, real, "first3")
    cand = reference + 0.4 * torch.randn(reference.shape, generator=gen)
    mse = float(((cand - reference) ** 2).mean())
    variance = float(((reference - reference.mean(0, keepdim=True)) ** 2).mean())
    expected = 0.3 * mse / variance + 0.7 * fd.distance(cand) / fd.distance(reference)
    assert fit.score([cand], reference)[0] == pytest.approx(expected, rel=1e-9)
    # dimensionless: scaling the latents and the reference together leaves the fidelity term unchanged
    scaled = MixedFitness(lambda s: _first3(s / 10), real, "first3", weight=1.0)
    assert scaled.score([cand * 10], reference * 10)[0] == pytest.approx(mse / variance, rel=1e-6)


def test_it_ranks_between_its_two_parts():
    """A candidate closer to the real set but far from the reference wins on frechet, loses on fidelity; mixed
    with w = 1 and w = 0 reproduces each ranking."""
    real, reference, gen = _setup(1)
    faithful = reference + 0.05 * torch.randn(reference.shape, generator=gen)
    realistic = torch.randn(40, 3, 1, 1, generator=gen)  # drawn like the real set, unrelated to the reference
    pair = [faithful, realistic]
    fid = MixedFitness(_first3, real, "first3", weight=1.0).score(pair, reference)
    fre = MixedFitness(_first3, real, "first3", weight=0.0).score(pair, reference)
    assert fid[0] < fid[1] and fre[1] < fre[0]


def test_identity_differs_from_frechet_and_with_the_weight_and_goes_into_the_cache_key():
    real, _, _ = _setup()
    a, b = MixedFitness(_first3, real, "first3"), MixedFitness(_first3, real, "first3", weight=0.25)
    f = FrechetFitness(_first3, real, "first3")
    assert a.identity.startswith("mixed:") and len({a.identity, b.identity, f.identity}) == 3
    assert a.params()["weight"] == 0.5 and a.params()["reference"] == f.params()["reference"]
    base = SearchSettings(sampler_name="dpmpp_2m", steps=5, cfg=3.0, num_seeds=8, budget=4000, seed=0, population=16,
                          top_k=4, mutation_prob=0.3, generations=25, reference_steps=200,
                          reference_sampler="dpmpp_2m", validation_seeds=8)
    args = ("m" * 64, "p" * 64, "n" * 64, (4, 4, 4))
    keys = {search_key(*args, replace(base, fitness=x.identity)) for x in (a, b, f)}
    assert len(keys) == 3
    assert "0.5 x latent MSE" in a.describe(8)


def test_bad_references_and_weights_are_refused_with_the_fix():
    real, reference, _ = _setup()
    fit = MixedFitness(_first3, real, "first3")
    with pytest.raises(ValueError, match="many-step reference samples of the same seeds"):
        fit.score([reference], torch.zeros(1))
    same = reference[:1].expand(6, -1, -1, -1).clone()
    with pytest.raises(ValueError, match="num_seeds >= 2"):
        fit.score([same], same)
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]"):
        MixedFitness(_first3, real, "first3", weight=1.5)
    bad = reference.clone()
    bad[0, 0] = float("nan")
    assert fit.score([reference, bad], reference)[1] == math.inf
