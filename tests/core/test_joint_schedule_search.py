"""The joint sampler + schedule search (core/joint_schedule_search.py) with no host: an analytic runner whose
"samples" are the schedule's log σ plus a per-sampler offset, so only one sampler can reach the target."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from adaptive_skip_core import fitness as F
from adaptive_skip_core.joint_schedule_search import (DETERMINISTIC_SAMPLERS, JointConfig, JointSearch, JointState,
                                                      SamplerSchedule, resample_logs, steps_within)
from adaptive_skip_core.schedule_pipeline import SchedulePipeline, SearchSettings, SeedSet, search_key

LO, HI = 0.0291672, 14.614642
TARGET = [HI, 3.1, 0.9, 0.31, 0.12]  # 5 nonzero σ: reachable by a 5-step sampler
OFFSET = {"one_call": 0.0, "biased": 0.7, "two_call": 0.0}


def heun_calls(steps: int) -> int:
    return 2 * steps - 1  # 2 calls a step, 1 on the last step to 0


def config(**kw) -> JointConfig:
    genes = [("one_call", 5, 5), ("biased", 5, 5), ("two_call", steps_within(heun_calls, 5), 5)]
    base = dict(calls=5, samplers=genes, sigma_min=LO, sigma_max=HI, num_seeds=2, population=8, top_k=3,
                generations=6, seed=3)
    base.update(kw)
    return JointConfig(**base)


class SamplerRunner:
    """Each candidate's sample: its log σ (stretched to 5 values) plus its sampler's offset; counts calls by the
    candidate's own sampler, as the adapter's runner does."""

    def __init__(self, cfg: JointConfig):
        self.cfg, self.calls, self.seen = cfg, 0, []

    def run(self, schedules):
        out = []
        for c in schedules:
            assert isinstance(c, SamplerSchedule)
            self.seen.append(c)
            self.calls += self.cfg.calls_of(c.sampler) * self.cfg.num_seeds
            logs = resample_logs([math.log(s) for s in c.sigmas[:-1]], 5, math.log(LO))
            out.append(torch.tensor([[v + OFFSET[c.sampler] for v in logs]] * self.cfg.num_seeds))
        return out

    @staticmethod
    def reference(k=2):
        return torch.tensor([[math.log(s) for s in TARGET]] * k)


def karras(steps: int) -> tuple[float, ...]:
    rho, lo, hi = 7.0, LO, HI
    vals = [(hi ** (1 / rho) + i / max(steps - 1, 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
            for i in range(steps)]
    return tuple(vals) + (0.0,)


def pairs(cfg: JointConfig) -> dict[str, SamplerSchedule]:
    out = {}
    for name, steps, _ in cfg.samplers:
        out[f"{name}+karras"] = SamplerSchedule(name, karras(steps))
        out[f"{name}+uniform"] = SamplerSchedule(name, tuple(math.exp(math.log(HI) + i / max(steps - 1, 1)
                                                                     * (math.log(LO) - math.log(HI)))
                                                            for i in range(steps)) + (0.0,))
    return out


def search(cfg, seeds=None, state=None):
    runner = SamplerRunner(cfg)
    evaluate = SeedSet(runner, SamplerRunner.reference(cfg.num_seeds)).evaluator(F.make_fitness())
    return JointSearch(cfg, evaluate, seeds=seeds if seeds is not None else pairs(cfg), state=state), runner


def test_steps_within_counts_calls_per_sampler():
    assert steps_within(lambda s: s, 4) == 4
    assert steps_within(heun_calls, 4) == 2 and heun_calls(2) == 3  # never more than N: 3 calls at N = 4
    assert steps_within(heun_calls, 5) == 3 and heun_calls(3) == 5
    assert steps_within(lambda s: 3 * s, 2) is None
    with pytest.raises(ValueError, match="does not fit in 5 calls"):
        config(samplers=[("two_call", 3, 6)])


def test_no_noise_injecting_sampler_is_a_gene():
    for name in DETERMINISTIC_SAMPLERS:
        assert "ancestral" not in name and "sde" not in name and name not in ("ddpm", "lcm", "er_sde", "seeds_2",
                                                                             "seeds_3", "sa_solver", "ddim")


def test_every_pair_is_seeded_in_the_first_generation_beyond_the_population():
    cfg = config(generations=1, population=2, top_k=2)
    s, runner = search(cfg)
    result = s.run()
    seeds = pairs(cfg)
    assert len(seeds) == 6 > cfg.population
    assert set(result.seed_fitness) == set(seeds)  # all six pairs scored as given
    for c in seeds.values():  # each evaluated as given (up to exp(log(σ)) rounding)
        assert any(e.sampler == c.sampler and e.sigmas == pytest.approx(c.sigmas, rel=1e-9) for e in runner.seen)
    assert result.evaluated == len(seeds)


def test_calls_are_counted_with_each_candidates_sampler_and_the_budget_holds():
    cfg = config(samplers=[("one_call", 5, 5), ("two_call", 2, 3)], calls=5, generations=8, budget=200)
    s, runner = search(cfg)
    s.run()
    used = sum(cfg.calls_of(e.sampler) * cfg.num_seeds for e in s.state.archive)
    assert s.state.calls_used == used == runner.calls <= 200
    assert {e.sampler for e in s.state.archive} == {"one_call", "two_call"}
    # a two_call candidate costs 3 x 2 = 6, a one_call one 5 x 2 = 10: the budget was spent by those rates
    assert used > 200 - 10


def test_the_search_picks_the_sampler_that_can_reach_the_target():
    cfg = config(generations=12)
    s, _ = search(cfg, seeds={k: v for k, v in pairs(cfg).items() if k.startswith("biased")})  # seeded wrong
    result = s.run()
    best = result.sigmas
    assert isinstance(best, SamplerSchedule) and best.sampler in ("one_call", "two_call")
    assert best.steps == cfg.steps_of(best.sampler) and best.sigmas[-1] == 0.0
    assert all(a > b for a, b in zip(best.sigmas, best.sigmas[1:]))
    biased = min(e.fitness for e in s.state.archive if e.sampler == "biased")
    assert result.fitness < biased / 4


def test_state_round_trips_and_a_resumed_search_ends_as_an_uninterrupted_one():
    cfg = config(generations=5)
    whole, _ = search(cfg)
    expected = whole.run()
    part, _ = search(replace(cfg, generations=2))
    part.run()
    saved = JointState.from_dict(json.loads(json.dumps(part.state.to_dict())))
    assert saved.to_dict() == part.state.to_dict()
    resumed, _ = search(cfg, state=saved)
    got = resumed.run()
    assert got.sigmas == expected.sigmas and got.fitness == expected.fitness
    with pytest.raises(ValueError, match="other settings for seed"):
        search(replace(cfg, seed=9), state=JointState.from_dict(part.state.to_dict()))
    with pytest.raises(ValueError, match="joint"):
        JointState.from_dict({"format": "adaptive_skip.evo_state"})


def test_pipeline_returns_the_sampler_with_the_schedule():
    cfg = config(generations=6)
    fit_runner, val_runner = SamplerRunner(cfg), SamplerRunner(cfg)
    fit = SeedSet(fit_runner, SamplerRunner.reference())
    seeds = pairs(cfg)
    find = SchedulePipeline(cfg, F.make_fitness(), seeds, fit, 2, lambda: SeedSet(val_runner,
                                                                                  SamplerRunner.reference()), 2).run()
    assert find.validated and find.sampler in ("one_call", "two_call", "biased")
    assert len(find.sigmas) == cfg.steps_of(find.sampler) + 1
    assert set(find.baseline_fitness) == set(seeds)
    assert find.model_calls == fit_runner.calls + val_runner.calls
    if find.pick in seeds:
        assert (find.sampler, tuple(find.sigmas)) == (seeds[find.pick].sampler, seeds[find.pick].sigmas)


def test_the_sampler_genes_are_in_the_cache_key():
    base = SearchSettings(sampler_name="auto", steps=5, cfg=3.0, num_seeds=8, budget=4000, seed=0, population=16,
                          top_k=4, mutation_prob=0.3, generations=25, reference_steps=200,
                          reference_sampler="dpmpp_2m", validation_seeds=8)
    args = ("m" * 64, "p" * 64, "n" * 64, (4, 4, 4))
    a = replace(base, samplers=(("euler", 5, 5), ("heun", 3, 5)))
    b = replace(base, samplers=(("euler", 5, 5),))
    assert len({search_key(*args, s) for s in (base, a, b)}) == 3
    assert "samplers" not in base.key_parts()  # a fixed sampler's key is the one saved before
