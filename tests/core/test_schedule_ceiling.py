"""The schedule-ceiling optimiser's pure parts (scripts/bench/schedule_ceiling.py): valid σ kept, a convex toy
reached, the best never worse, bad settings refused; no ComfyUI needed."""
from __future__ import annotations

import math
import random

import pytest
from bench.schedule_ceiling import MIN_LOG_GAP, PatternSearch, free_logs, repair, to_sigmas

LO, HI = math.log(0.03), math.log(14.6)


def _valid(xs, lo=LO, hi=HI, gap=MIN_LOG_GAP):
    chain = [hi, *xs]
    return all(a - b >= gap - 1e-12 for a, b in zip(chain, chain[1:])) and all(lo - 1e-12 <= v for v in xs)


def test_repair_gives_decreasing_in_range_values_from_any_input():
    rng = random.Random(0)
    for _ in range(500):
        xs = [rng.uniform(LO - 3, HI + 3) for _ in range(rng.randint(1, 9))]
        if rng.random() < 0.2:
            xs[rng.randrange(len(xs))] = rng.choice([math.nan, math.inf, -math.inf])
        out = repair(xs, LO, HI)
        assert len(out) == len(xs) and _valid(out), (xs, out)


def test_repair_keeps_a_valid_schedule_unchanged():
    xs = [2.0, 1.0, 0.0, -1.0, -3.0]
    assert repair(xs, LO, HI) == xs


def test_repair_refuses_a_range_too_small_for_the_steps():
    with pytest.raises(ValueError, match="cannot hold 5 free values"):
        repair([0.0] * 5, 0.0, 0.05)


def test_free_logs_and_to_sigmas_round_trip_with_sigma_max_and_zero_fixed():
    sig = (14.6, 3.0, 0.5, 0.04, 0.0)
    back = to_sigmas(14.6, free_logs(sig))
    assert back[0] == 14.6 and back[-1] == 0.0 and back[1:-1] == pytest.approx(sig[1:-1], rel=1e-12)


def _toy(target, offsets):
    calls = []

    def evaluate(cands):
        calls.append(len(cands))
        return [offsets[s] + sum((a - b) ** 2 for a, b in zip(x, target)) for s, x in cands]
    return evaluate, calls


def test_a_convex_toy_reaches_its_optimum_on_the_better_sampler():
    target = [1.5, 0.2, -1.0, -2.5]
    evaluate, calls = _toy(target, {"a": 0.0, "b": 0.05})
    search = PatternSearch(LO, HI, evaluate, step=0.4, min_step=1e-4, active=2)
    search.add_starts({"a0": ("a", [0.0, -0.5, -1.5, -3.0]), "b0": ("b", list(target))})
    best = search.run(5000)
    assert best.sampler == "a" and best.f < 1e-6
    assert best.x == pytest.approx(target, abs=1e-3)
    assert all(c >= 1 for c in calls) and search.evaluations == sum(calls)


def test_the_optimum_on_the_sigma_min_bound_is_reached_and_kept_valid():
    target = [0.5, LO - 1.0]  # the second value wants to go below σ_min
    evaluate, _ = _toy(target, {"a": 0.0})
    search = PatternSearch(LO, HI, evaluate, step=0.5, min_step=1e-4)
    search.add_starts({"a": ("a", [1.0, 0.0])})
    best = search.run(3000)
    assert _valid(best.x) and best.x == pytest.approx([0.5, LO], abs=1e-3)


def test_the_best_found_never_gets_worse_on_a_rugged_objective():
    def evaluate(cands):
        return [random.Random(hash((s, tuple(round(v, 6) for v in x)))).random() for s, x in cands]
    search = PatternSearch(LO, HI, evaluate, step=0.3, min_step=1e-3, active=2, seed=3)
    search.add_starts({"a": ("a", [1.0, 0.0, -1.0]), "b": ("b", [2.0, 0.5, -2.0])})
    search.run(400)
    h = search.history
    assert len(h) > 2 and all(b <= a for a, b in zip(h, h[1:]))
    assert search.best.f == min(search.cache.values())  # every better candidate was taken
    for st in search.starts:
        assert _valid(st.x)


def test_candidates_already_scored_are_not_evaluated_again():
    evaluate, calls = _toy([0.0, -1.0], {"a": 0.0})
    search = PatternSearch(LO, HI, evaluate, step=0.25, min_step=0.01)
    search.add_starts({"a": ("a", [1.0, -0.5]), "same": ("a", [1.0, -0.5])})
    assert calls == [1]
    search.run(10_000)
    assert search.evaluations == len(search.cache)


@pytest.mark.parametrize("kwargs, match", [
    ({"step": 0.0}, "step"), ({"min_step": -1.0}, "min_step"), ({"active": 0}, "active"),
    ({"random_moves": -1}, "random_moves"), ({"lo": 1.0, "hi": 1.0}, "sigma range")])
def test_bad_settings_are_refused_with_the_setting_named(kwargs, match):
    base = {"lo": LO, "hi": HI, "evaluate": lambda c: [0.0] * len(c)}
    with pytest.raises(ValueError, match=match):
        PatternSearch(**{**base, **kwargs})


def test_a_search_without_starts_or_budget_or_with_a_short_evaluate_is_refused():
    search = PatternSearch(LO, HI, lambda c: [0.0] * len(c))
    with pytest.raises(ValueError, match="add_starts first"):
        search.run(10)
    with pytest.raises(ValueError, match="at least one start"):
        search.add_starts({})
    search.add_starts({"a": ("a", [0.0])})
    with pytest.raises(ValueError, match="max_evaluations"):
        search.run(0)
    short = PatternSearch(LO, HI, lambda c: [0.0])
    with pytest.raises(ValueError, match="returned 1 values for 2"):
        short.add_starts({"a": ("a", [0.0]), "b": ("b", [1.0])})
