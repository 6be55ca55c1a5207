"""The warp search space (core/schedule_warp.py): 2-parameter monotone warps of the seeded schedules."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from adaptive_skip_core import fitness as F
from adaptive_skip_core.joint_schedule_search import JointConfig, SamplerSchedule
from adaptive_skip_core.schedule_pipeline import SchedulePipeline, SeedSet
from adaptive_skip_core.schedule_search import (
    SPACES,
    EvoConfig,
    EvoSearch,
    EvoState,
    JointState,
    is_valid_schedule,
)
from adaptive_skip_core.schedule_warp import (
    LINEAR_LAST,
    LINEAR_POWER,
    MOVES,
    SEARCHES,
    LinearWarpSearch,
    WarpSearch,
    linear_logs,
    search_class,
    warp_logs,
)

LO, HI = 0.0291672, 14.614642
KARRAS = [HI, 2.0, 0.5, 0.15, 0.03]


def config(**kw) -> EvoConfig:
    base = {"steps": 5, "sigma_min": LO, "sigma_max": HI, "population": 8, "top_k": 2, "generations": 8, "seed": 1,
            "space": "warp", "calls_per_candidate": 5}
    base.update(kw)
    return EvoConfig(**base)


def log_distance(target_logs):
    return lambda cands: [sum((math.log(a) - b) ** 2 for a, b in zip(c[:-1], target_logs)) for c in cands]


def test_a_zero_warp_is_the_schedule_and_the_parameters_do_what_they_say():
    logs = [math.log(v) for v in KARRAS]
    assert warp_logs(logs, 0.0, 0.0) == pytest.approx(logs, abs=1e-12)
    slow = warp_logs(logs, 0.4, 0.0)  # u^1.49: σ stays high longer
    assert slow[0] == logs[0] and slow[-1] == pytest.approx(logs[-1])
    assert all(s > v for s, v in zip(slow[1:-1], logs[1:-1]))
    fast = warp_logs(logs, -0.4, 0.0)
    assert all(s < v for s, v in zip(fast[1:-1], logs[1:-1]))
    raised = warp_logs(logs, 0.0, 0.5)
    assert raised[0] == logs[0] and raised[-1] == pytest.approx(logs[-1] + 0.5)
    assert all(b - a > 0 for a, b in zip(logs[1:], raised[1:]))


def test_the_first_generation_is_the_seeds_and_every_later_candidate_a_valid_warp():
    target = warp_logs([math.log(v) for v in KARRAS], 0.3, 0.4)
    seen = []

    def evaluate(cands):
        seen.append(list(cands))
        return log_distance(target)(cands)

    s = WarpSearch(config(generations=3), evaluate, seeds={"karras": KARRAS + [0.0]})
    s.run()
    assert len(seen[0]) == 1 and seen[0][0] == pytest.approx(KARRAS + [0.0])
    assert len(seen[1]) == len(MOVES)  # one parent in generation 1: its 8 compass warps
    for generation in seen:
        for cand in generation:
            assert is_valid_schedule(cand, s.config)
    assert all(e.origin.endswith("of karras") for e in s.state.archive[1:])


def test_the_pattern_search_reaches_a_warp_of_a_seed_that_no_seed_is():
    target = warp_logs([math.log(v) for v in KARRAS], 0.3, 0.4)
    s = WarpSearch(config(), log_distance(target), seeds={"karras": KARRAS + [0.0]})
    result = s.run()
    assert result.fitness < result.seed_fitness["karras"] / 20


def test_warps_keep_their_parents_sampler_and_the_state_resumes():
    cfg = JointConfig(calls=5, samplers=[("a", 5, 5), ("b", 3, 5)], sigma_min=LO, sigma_max=HI, num_seeds=2,
                      population=8, top_k=2, generations=5, seed=2, space="warp")
    seeds = {"a+k": SamplerSchedule("a", tuple(KARRAS) + (0.0,)), "b+k": SamplerSchedule("b", (HI, 0.5, 0.05, 0.0))}
    target = [math.log(v) for v in (HI, 3.0, 0.3, 0.04)]

    def evaluate(cands):
        out = []
        for c in cands:
            assert isinstance(c, SamplerSchedule) and len(c.sigmas) - 1 == cfg.steps_of(c.sampler)
            logs = [math.log(v) for v in c.sigmas[:-1]]
            out.append(sum((x - t) ** 2 for x, t in zip(logs, target)) + (0.0 if c.sampler == "b" else 1.0))
        return out

    whole = WarpSearch(cfg.evo_config(), evaluate, seeds=seeds)
    expected = whole.run()
    assert {e.sampler for e in whole.state.archive} == {"a", "b"}
    for e in whole.state.archive[2:]:  # a warp is one of its seed's sampler's schedules
        assert e.origin.endswith(f"of {e.sampler}+k")
    part = WarpSearch(replace(cfg, generations=2).evo_config(), evaluate, seeds=seeds)
    part.run()
    saved = JointState.from_dict(json.loads(json.dumps(part.state.to_dict())))
    got = WarpSearch(cfg.evo_config(), evaluate, seeds=seeds, state=saved).run()
    assert got.sigmas == expected.sigmas and got.fitness == expected.fitness
    with pytest.raises(ValueError, match="other settings for space"):
        WarpSearch(replace(cfg, space="steps").evo_config(), evaluate, seeds=seeds,
                   state=JointState.from_dict(part.state.to_dict()))
    with pytest.raises(ValueError, match="joint"):
        JointState.from_dict(EvoState(config=config()).to_dict())


def test_an_unknown_space_is_refused():
    with pytest.raises(ValueError, match="space must be one of"):
        config(space="bezier")


class Runner:
    def __init__(self, target):
        self.target, self.calls, self.seen = target, 0, []

    def run(self, schedules):
        self.seen.extend(schedules)
        self.calls += len(schedules)
        return [torch.tensor([[math.log(v) for v in s[:-1]]]) for s in schedules]


def test_the_pipeline_runs_the_warp_space_and_validates_only_the_best_builtins():
    target = warp_logs([math.log(v) for v in KARRAS], 0.3, 0.4)
    ref = torch.tensor([target])
    builtins = {"karras": KARRAS + [0.0], "far": [HI, 10.0, 8.0, 6.0, 4.0, 0.0], "near": [HI, 3.0, 0.6, 0.1, 0.03, 0.0]}
    fit, val = Runner(target), Runner(target)
    find = SchedulePipeline(config(), F.LatentMSE(), builtins, SeedSet(fit, ref), 1,
                            lambda: SeedSet(val, ref), 1, validated_baselines=2).run()
    assert find.pick == "search #1" and find.validated
    assert find.fitness < min(find.baseline_fitness.values()) / 5
    validated = [s for s in val.seen if s in builtins.values()]
    assert len(validated) == 2 and builtins["far"] not in validated  # the worst on the fitness seeds is skipped
    assert set(find.baseline_fitness) == set(builtins)


# --- warp_linear: the warps, with every sampler's linear-in-σ schedules in generation 0 ---------------------------
FLOW_LO, FLOW_HI = 0.002, 1.0


def flow_joint(**kw) -> JointConfig:
    base = {"calls": 5, "samplers": [("a", 5, 5), ("b", 4, 5)], "sigma_min": FLOW_LO, "sigma_max": FLOW_HI,
            "num_seeds": 2, "population": 8, "top_k": 2, "generations": 6, "seed": 4, "space": "warp_linear"}
    base.update(kw)
    return JointConfig(**base)


FLOW_SEEDS = {"a+simple": SamplerSchedule("a", (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)),
              "a+karras": SamplerSchedule("a", (1.0, 0.45, 0.15, 0.04, 0.01, 0.0)),
              "b+karras": SamplerSchedule("b", (1.0, 0.3, 0.06, 0.01, 0.0))}


def test_linear_schedules_start_at_sigma_max_fall_linearly_and_end_where_asked():
    logs = linear_logs(FLOW_HI, 5, 0.25, 1.0)
    sig = [math.exp(v) for v in logs]
    assert sig[0] == pytest.approx(FLOW_HI) and sig[-1] == pytest.approx(0.25 * FLOW_HI)
    steps = [a - b for a, b in zip(sig, sig[1:])]
    assert steps == pytest.approx([steps[0]] * 4)  # power 1: equal steps in σ
    bent = [math.exp(v) for v in linear_logs(FLOW_HI, 5, 0.25, 1.2)]
    assert bent[0] == sig[0] and bent[-1] == pytest.approx(sig[-1])
    assert all(b > s for b, s in zip(bent[1:-1], sig[1:-1]))  # u^1.2: smaller steps first
    assert linear_logs(FLOW_HI, 1, 0.25, 1.0) == [0.0]


def test_generation_0_adds_every_samplers_linear_schedules_all_valid():
    cfg = flow_joint()
    seen = []

    def evaluate(cands):
        seen.append(list(cands))
        return [float(i) for i in range(len(cands))]

    s = LinearWarpSearch(cfg.evo_config(), evaluate, seeds=FLOW_SEEDS)
    s.run()
    first = seen[0]
    for got, seed in zip(first[:3], FLOW_SEEDS.values()):  # the seeds first, as given (log σ round trip)
        assert got.sampler == seed.sampler and got.sigmas == pytest.approx(seed.sigmas)
    grid = first[3:]
    assert len(grid) == 2 * len(LINEAR_LAST) * len(LINEAR_POWER)
    for sampler in ("a", "b"):
        mine = [c for c in grid if c.sampler == sampler]
        assert len(mine) == len(LINEAR_LAST) * len(LINEAR_POWER)
        assert all(c.steps == cfg.steps_of(sampler) for c in mine)
        lasts = sorted(round(c.sigmas[-2], 6) for c in mine)
        assert lasts == sorted(round(v * FLOW_HI, 6) for v in LINEAR_LAST for _ in LINEAR_POWER)
    for generation in seen:
        for c in generation:
            body = [float(v) for v in c.sigmas]
            padded = SamplerSchedule(c.sampler, tuple(body))
            assert body[0] == FLOW_HI and body[-1] == 0.0
            assert all(x > y for x, y in zip(body, body[1:]))
            assert FLOW_LO <= body[-2] and padded.steps == cfg.steps_of(c.sampler)
    assert all(" of " in e.origin for e in s.state.archive[len(first):])  # after generation 0: warps only


def test_warp_linear_finds_a_sampler_whose_built_ins_are_all_poor():
    """b's only built-in is poor, so plain warps start from a's schedules; b on σ linear to 0.3 is the optimum."""
    cfg = flow_joint(generations=5)
    target = [math.log(v) for v in (1.0, 0.78, 0.54, 0.3)]  # b (4 steps): σ linear from 1 to 0.3

    def evaluate(cands):
        out = []
        for c in cands:
            logs = [math.log(v) for v in c.sigmas[:-1]]
            if c.sampler == "b":
                out.append(0.1 * sum((x - t) ** 2 for x, t in zip(logs, target)))
            else:
                out.append(0.5 + 0.1 * sum((x - math.log(v)) ** 2 for x, v in zip(logs, (1.0, 0.8, 0.6, 0.4, 0.2))))
        return out

    plain = WarpSearch(replace(cfg, space="warp").evo_config(), evaluate, seeds=FLOW_SEEDS).run()
    linear = LinearWarpSearch(cfg.evo_config(), evaluate, seeds=FLOW_SEEDS).run()
    assert plain.sigmas.sampler == "a" and plain.fitness >= 0.5
    assert linear.sigmas.sampler == "b" and linear.fitness < 0.01


def test_warp_linear_is_deterministic_and_resumes_to_the_same_result():
    cfg = flow_joint(generations=6)

    def evaluate(cands):
        return [sum((math.log(v) + 0.6 * i) ** 2 for i, v in enumerate(c.sigmas[:-1])) + (c.sampler == "a")
                for c in cands]

    first = LinearWarpSearch(cfg.evo_config(), evaluate, seeds=FLOW_SEEDS).run()
    again = LinearWarpSearch(cfg.evo_config(), evaluate, seeds=FLOW_SEEDS)
    assert again.run() == first
    part = LinearWarpSearch(replace(cfg, generations=2).evo_config(), evaluate, seeds=FLOW_SEEDS)
    part.run()
    saved = JointState.from_dict(json.loads(json.dumps(part.state.to_dict())))
    resumed = LinearWarpSearch(cfg.evo_config(), evaluate, seeds=FLOW_SEEDS, state=saved)
    assert resumed.run() == first
    assert [(e.sampler, e.logs) for e in resumed.state.archive] == [(e.sampler, e.logs) for e in again.state.archive]


def test_every_space_has_its_search_class_and_a_mismatch_is_refused():
    assert set(SEARCHES) == set(SPACES)
    for space in SPACES:
        assert search_class(space).space == space
    assert search_class("warp_linear") is LinearWarpSearch and search_class("steps") is EvoSearch
    with pytest.raises(ValueError, match="not one of"):
        search_class("bezier")
    with pytest.raises(ValueError, match=r"search_class\('warp_linear'\)"):
        EvoSearch(config(space="warp_linear"), log_distance([0.0] * 5))
