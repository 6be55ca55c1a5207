"""Evolutionary schedule search (core/schedule_search.py) with cheap synthetic fitness functions."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from adaptive_skip_core.schedule_search import EvoConfig, EvoSearch, EvoState, is_valid_schedule, search

SIGMA_MIN, SIGMA_MAX = 0.0291672, 14.614642
TARGET = [14.614642, 3.1, 0.9, 0.31, 0.12]  # a known optimum, last σ well above σ_min (as searches often find)


def distance_fitness(candidates):
    """Squared distance in log σ to TARGET: minimum 0 at TARGET."""
    return [sum((math.log(a) - math.log(b)) ** 2 for a, b in zip(c[:-1], TARGET)) for c in candidates]


def config(**kw):
    base = dict(steps=5, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, population=16, top_k=4, generations=25, seed=3)
    base.update(kw)
    return EvoConfig(**base)


def sd15_seeds(steps):
    """SD1.5's built-in schedules at 5 or 8 steps (recorded; the pack takes them from ComfyUI)."""
    return json.loads((Path(__file__).with_name("sd15_builtin_schedules.json")).read_text())["steps"][str(steps)]


def test_finds_known_optimum_and_beats_every_seed():
    result = search(config(), distance_fitness, seeds=sd15_seeds(5))
    assert result.fitness < 2e-3, result
    assert all(abs(math.log(a) - math.log(b)) < 0.05 for a, b in zip(result.sigmas, TARGET))
    assert result.sigmas[-1] == 0.0
    assert set(result.seed_fitness) >= {"karras", "exponential", "simple", "sgm_uniform", "beta", "ays"}
    assert result.fitness <= min(result.seed_fitness.values())


def test_every_candidate_ever_evaluated_is_valid():
    cfg = config(steps=8, min_log_gap=0.05, mutation_scale=2.0, mutation_prob=1.0, generations=15)
    seen = []

    def fitness(candidates):
        seen.extend(candidates)
        return [sum(c[:-1]) for c in candidates]  # pushes every σ down onto σ_min: stresses the gap repair

    search(cfg, fitness, seeds=sd15_seeds(8))
    assert len(seen) > 100
    for c in seen:
        assert is_valid_schedule(c, cfg), c
        assert len(c) == 9 and c[-1] == 0.0 and c[0] == SIGMA_MAX
        assert all(a > b for a, b in zip(c, c[1:]))
    assert len({tuple(c) for c in seen}) == len(seen), "a candidate was evaluated twice"


def test_repair_makes_bad_lists_valid():
    s = EvoSearch(config(steps=4, min_log_gap=0.1), distance_fitness)
    for logs in ([0.0, 0.0, 0.0, 0.0], [-9.0, 9.0, -9.0, 9.0], [1.0, 1.0 + 1e-12, 1.0, -3.55]):
        fixed = s.repair(logs)
        assert is_valid_schedule(s.to_sigmas(fixed), s.config), fixed


def test_deterministic_for_a_seed_and_varies_with_it():
    a = search(config(), distance_fitness, seeds=sd15_seeds(5))
    b = search(config(), distance_fitness, seeds=sd15_seeds(5))
    c = search(config(seed=4), distance_fitness, seeds=sd15_seeds(5))
    assert a == b
    assert a.sigmas != c.sigmas


def test_resume_from_json_matches_uninterrupted_run():
    full = search(config(), distance_fitness, seeds=sd15_seeds(5))

    class Cancelled(Exception):
        pass

    saved, calls = {}, {"n": 0}

    def flaky(candidates):  # cancelled in the middle of generation 7
        calls["n"] += 1
        if calls["n"] == 7:
            raise Cancelled
        return distance_fitness(candidates)

    with pytest.raises(Cancelled):
        search(config(), flaky, seeds=sd15_seeds(5), on_generation=lambda st: saved.update(st.to_dict()))
    state = EvoState.from_dict(json.loads(json.dumps(saved)))
    assert state.generation == 6
    resumed = search(config(), distance_fitness, seeds=sd15_seeds(5), state=state)
    assert resumed == full


def test_extending_generations_continues_the_same_course():
    short = EvoSearch(config(generations=10), distance_fitness, seeds=sd15_seeds(5))
    short.run()
    state = EvoState.from_dict(json.loads(json.dumps(short.state.to_dict())))
    longer = search(config(generations=20), distance_fitness, seeds=sd15_seeds(5), state=state)
    assert longer == search(config(generations=20), distance_fitness, seeds=sd15_seeds(5))


def test_resume_refuses_other_settings():
    s = EvoSearch(config(generations=2), distance_fitness)
    s.run()
    with pytest.raises(ValueError, match="seed"):
        EvoSearch(config(seed=99), distance_fitness, state=s.state)


def test_budget_in_model_calls_is_respected():
    asked = []

    def fitness(candidates):
        asked.append(len(candidates))
        return distance_fitness(candidates)

    result = search(config(budget=230, calls_per_candidate=7, generations=100), fitness, seeds=sd15_seeds(5))
    assert sum(asked) * 7 <= 230 and result.calls_used <= 230
    assert sum(asked) == 230 // 7 and result.evaluated == 32
    with pytest.raises(ValueError, match="budget"):
        search(config(budget=6, calls_per_candidate=7), fitness)


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="top_k"):
        config(top_k=0)
    with pytest.raises(ValueError, match="min_log_gap"):
        config(steps=50, min_log_gap=0.5)
    with pytest.raises(ValueError, match="sigma_min"):
        config(sigma_min=20.0)


def test_one_step_and_wrong_length_seeds():
    result = search(config(steps=1, generations=3), distance_fitness, seeds={"karras": [14.6, 0.0],
                                                                             "bad": [14.6, 1.0, 0.0]})
    assert result.sigmas == [SIGMA_MAX, 0.0] and result.evaluated == 1
    s = EvoSearch(config(steps=1), distance_fitness, seeds={"bad": [14.6, 1.0, 0.0]})
    assert "bad" in s.state.skipped_seeds


def test_nan_fitness_is_never_chosen():
    def fitness(candidates):
        return [math.nan if i % 2 else v for i, v in enumerate(distance_fitness(candidates))]

    result = search(config(generations=5), fitness, seeds=sd15_seeds(5))
    assert math.isfinite(result.fitness)


def test_ranked_lists_the_best_finds_with_or_without_seeds():
    s = EvoSearch(config(generations=4), distance_fitness, seeds=sd15_seeds(5))
    s.run()
    everything = s.ranked(1000)
    assert len(everything) == len(s.state.archive)
    assert [f for _, f, _ in everything] == sorted(f for _, f, _ in everything)
    finds = s.ranked(3, include_seeds=False)
    assert len(finds) == 3 and not {origin for _, _, origin in finds} & set(sd15_seeds(5))
    assert finds[0][0] == s.result().sigmas or finds[0][1] >= s.result().fitness
