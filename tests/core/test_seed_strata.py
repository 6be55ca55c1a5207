"""Stratified fitness seeds (core/seed_strata.py) and the weighted fitness they feed (SeedSet.weights in
core/schedule_pipeline.py): the strata, the weights, unbiasedness on a heavy tail, and the pipeline using them."""
from __future__ import annotations

import math

import pytest
import torch
from adaptive_skip_core import fitness as F
from adaptive_skip_core import schedule_search as evolution
from adaptive_skip_core.frechet_fitness import FrechetFitness
from adaptive_skip_core.mixed_fitness import MixedFitness
from adaptive_skip_core.schedule_pipeline import SchedulePipeline, SeedSet
from adaptive_skip_core.seed_strata import SeedStrata, stratify, weighted_mean


def heavy_tail(size: int, seed: int = 0) -> torch.Tensor:
    """Per-seed errors like the digits UNet's: most seeds small, a few (class flips) 20-60x the typical one."""
    g = torch.Generator().manual_seed(seed)
    errors = 0.05 + 0.05 * torch.rand(size, generator=g, dtype=torch.float64)
    flips = torch.randperm(size, generator=g)[:size // 20]
    errors[flips] = 2.0 + 2.0 * torch.rand(len(flips), generator=g, dtype=torch.float64)
    return errors


def test_hard_stratum_is_the_largest_screening_errors_and_the_rest_a_draw_from_the_others():
    errors = heavy_tail(256)
    strata = stratify(errors, num_seeds=16, hard_seeds=8, seed=3)
    worst = set(torch.argsort(errors, descending=True)[:8].tolist())
    assert set(strata.hard) == worst
    assert len(strata.easy) == 8 and not set(strata.easy) & worst
    assert len(set(strata.indices)) == 16 and all(0 <= i < 256 for i in strata.indices)
    assert strata.indices[:8] == list(strata.hard)  # weights follow this order
    assert stratify(errors, 16, 8, seed=3) == strata, "the same seed draws the same seeds"
    assert stratify(errors, 16, 8, seed=4).easy != strata.easy


def test_weights_sum_to_one_and_give_the_hard_seeds_their_pool_share():
    strata = stratify(heavy_tail(256), num_seeds=16, hard_seeds=8)
    w = strata.weights
    assert w.shape == (16,) and float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(w[:8], torch.full((8,), 1 / 256, dtype=torch.float64))
    assert torch.allclose(w[8:], torch.full((8,), 248 / (8 * 256), dtype=torch.float64))
    # no hard stratum: the plain mean of the draw
    plain = stratify(heavy_tail(64), num_seeds=8, hard_seeds=0)
    assert torch.allclose(plain.weights, torch.full((8,), 1 / 8, dtype=torch.float64))
    # the whole pool taken: every seed 1/S, the exact pool mean
    whole = SeedStrata(hard=(0, 1), easy=(2, 3), pool_size=4)
    assert torch.allclose(whole.weights, torch.full((4,), 0.25, dtype=torch.float64))


def test_weighted_mean_is_unbiased_for_the_pool_mean_and_beats_a_random_draw_on_a_heavy_tail():
    """A candidate's errors follow the screening's tail (the seeds that flip for a built-in flip for it more often):
    over many draws the stratified estimate averages to its pool mean, with far less spread than 16 random seeds."""
    screen = heavy_tail(256, seed=1)
    g = torch.Generator().manual_seed(7)
    candidate = screen * (0.5 + torch.rand(256, generator=g, dtype=torch.float64))
    truth = float(candidate.mean())
    strat, plain = [], []
    for draw in range(3000):
        s = stratify(screen, num_seeds=16, hard_seeds=12, seed=draw)
        strat.append(weighted_mean(candidate[s.indices], s.weights))
        plain.append(float(candidate[torch.randperm(256, generator=torch.Generator().manual_seed(draw))[:16]].mean()))
    strat, plain = torch.tensor(strat), torch.tensor(plain)
    stderr = float(strat.std()) / math.sqrt(len(strat))
    assert abs(float(strat.mean()) - truth) < 4 * stderr, (float(strat.mean()), truth, stderr)
    assert abs(float(plain.mean()) - truth) < 4 * float(plain.std()) / math.sqrt(len(plain))
    assert float(strat.std()) < 0.3 * float(plain.std()), (float(strat.std()), float(plain.std()))
    # unweighted, the same seeds over-count the tail: the weights are what makes it unbiased
    biased = [float(candidate[stratify(screen, 16, 12, seed=d).indices].mean()) for d in range(50)]
    assert min(biased) > 3 * truth


def test_bad_strata_are_refused_with_the_fix_named():
    errors = heavy_tail(20)
    with pytest.raises(ValueError, match="hard_seeds must be between 0 and num_seeds"):
        stratify(errors, 8, 9)
    with pytest.raises(ValueError, match="screen more seeds"):
        stratify(errors, 21, 4)
    with pytest.raises(ValueError, match="at least one .* for the random draw"):
        stratify(errors, 8, 8)
    with pytest.raises(ValueError, match="finite"):
        stratify(torch.tensor([1.0, float("nan"), 2.0]), 2, 1)
    with pytest.raises(ValueError, match="3 per-seed errors but 2 seed weights"):
        weighted_mean(torch.ones(3), torch.ones(2) / 2)


def test_weighted_fidelity_is_the_weighted_per_seed_mse_and_uniform_weights_the_plain_score():
    ref = torch.zeros(4, 1, 2, 2)
    out = torch.zeros(4, 1, 2, 2)
    out[3] = 2.0  # one seed's sample is far off: per-seed MSE (0, 0, 0, 4)

    class Fixed:
        calls = 0

        def run(self, schedules):
            return [out for _ in schedules]

    plain = SeedSet(Fixed(), ref).evaluator(F.LatentMSE())([[1.0]])
    uniform = SeedSet(Fixed(), ref, torch.full((4,), 0.25)).evaluator(F.LatentMSE())([[1.0]])
    assert uniform == pytest.approx(plain) and plain == pytest.approx([1.0])
    light = SeedSet(Fixed(), ref, torch.tensor([0.3, 0.3, 0.3, 0.1])).evaluator(F.LatentMSE())([[1.0]])
    assert light == pytest.approx([0.4])
    with pytest.raises(ValueError, match="4 reference samples but 3 weights"):
        SeedSet(Fixed(), ref, torch.ones(3) / 3).evaluator(F.LatentMSE())


def test_a_distribution_distance_refuses_seed_weights_instead_of_ignoring_them():
    real = torch.randn(50, 3)
    features = lambda s: s.flatten(1)[:, :3]  # noqa: E731
    weighted = SeedSet(None, torch.zeros(4, 3, 1, 1), torch.full((4,), 0.25))
    for fitness in (FrechetFitness(features, real, "first3"), MixedFitness(features, real, "first3")):
        assert not fitness.supports_seed_weights
        with pytest.raises(ValueError, match="cannot weight seeds: use fitness fidelity"):
            weighted.evaluator(fitness)
    assert F.LatentMSE().supports_seed_weights


class TwoTargetRunner:
    """Both seeds' samples are the schedule's log-σ vector; seed 0's reference is target A, seed 1's target B, so the
    weighted fitness is pulled toward the target of the heavier seed."""

    def __init__(self):
        self.calls = 0

    def run(self, schedules):
        self.calls += len(schedules)
        return [torch.tensor([[math.log(v) for v in s[:-1]]] * 2) for s in schedules]


def test_the_pipeline_searches_the_weighted_fitness():
    a, b = [14.614642, 4.0, 1.2, 0.4, 0.1], [14.614642, 1.5, 0.3, 0.08, 0.035]
    reference = torch.tensor([[math.log(v) for v in a], [math.log(v) for v in b]])
    builtin = {"karras": [14.614642, 2.0, 0.5, 0.15, 0.03, 0.0]}
    config = evolution.EvoConfig(steps=5, sigma_min=0.0291672, sigma_max=14.614642, seed=1, generations=6)

    def distance(sigmas, target):
        return sum((math.log(x) - math.log(y)) ** 2 for x, y in zip(sigmas[:-1], target))

    finds = {}
    for name, weights in (("a", [0.9, 0.1]), ("b", [0.1, 0.9])):
        fit = SeedSet(TwoTargetRunner(), reference, torch.tensor(weights))
        finds[name] = SchedulePipeline(config, F.LatentMSE(), builtin, fit, 2).run().sigmas
    assert distance(finds["a"], a) < distance(finds["a"], b)
    assert distance(finds["b"], b) < distance(finds["b"], a)
