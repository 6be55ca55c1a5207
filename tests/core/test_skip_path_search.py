"""Evolutionary skip-mask search: valid candidates only, never worse than its seeds, deterministic."""
from __future__ import annotations

import itertools
import random

import pytest

from adaptive_skip_core.skip_path_search import evolve_skip_path, mutate, repair
from adaptive_skip_core.oracle import even_starts


def target_error(target):
    def evaluate(masks):
        seen.extend(masks)
        return [sum(abs(a - b) for a, b in zip(sorted(i for i, m in enumerate(mask) if m), target)) for mask in masks]
    seen: list = []
    evaluate.seen = seen
    return evaluate


def test_finds_a_known_optimum_and_keeps_every_candidate_valid():
    n, k = 20, 7
    target = [0, 1, 2, 3, 9, 14, 19]  # an irregular best path
    evaluate = target_error(target)
    result = evolve_skip_path(n, k, evaluate, warmup_steps=4, population=16, parents=4, generations=40, seed=1)
    assert [i for i, m in enumerate(result.mask) if m] == target and result.error == 0
    for mask in evaluate.seen:
        assert sum(mask) == k and all(mask[:4])


def test_never_worse_than_the_seeds_and_deterministic():
    n, k = 30, 10
    evaluate = target_error([0, 1, 2, 3, 5, 8, 12, 17, 23, 29])
    seed_mask = [i in (0, 1, 2, 3, 6, 9, 13, 18, 22, 28) for i in range(n)]
    seed_error = evaluate([seed_mask])[0]
    a = evolve_skip_path(n, k, evaluate, warmup_steps=4, seed_masks=[seed_mask], generations=5, seed=3)
    b = evolve_skip_path(n, k, target_error([0, 1, 2, 3, 5, 8, 12, 17, 23, 29]), warmup_steps=4,
                         seed_masks=[seed_mask], generations=5, seed=3)
    assert a.error <= seed_error and a.mask == b.mask and a.error == b.error
    assert a.error <= min(evaluate(even_starts(n, k, 4)))


@pytest.mark.parametrize("budget", [1, 4, 9, 20])
def test_repair_and_mutate_keep_budget_and_fixed_steps(budget):
    rng = random.Random(0)
    fixed = [i < 4 for i in range(20)]
    for bits in itertools.islice(itertools.product([False, True], repeat=20), 0, 2**20, 4099):
        mask = repair(list(bits), budget, fixed, rng)
        assert sum(mask) == max(budget, 4) and all(mask[:4])
        moved = mutate(mask, fixed, rng)
        assert sum(moved) == sum(mask) and all(moved[:4])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="population"):
        evolve_skip_path(10, 5, lambda m: [0.0] * len(m), population=1)
