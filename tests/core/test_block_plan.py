"""BLOCK_PLAN record and its evolutionary search (host-free): validation, text round trip, budgets, search quality."""
from __future__ import annotations

import json
import random

import pytest
import torch

from adaptive_skip_core.block_plan import (BlockPlan, BlockPlanError, evenly_dropped, full_plan, kept_calls,
                                           min_block_calls, random_plan, uniform_plan)
from adaptive_skip_core.block_plan_reuse import ResidualCache, chunk_labels
from adaptive_skip_core.block_plan_search import (BlockSearchConfig, crossover, mutate, repair, search_block_plan,
                                                  uniform_seeds)

BLOCKS = tuple(("double_block", i) for i in range(6))
MODEL = "SD3/OpenAISignatureMMDITWrapper/double_block x6"


def test_cost_counts_block_calls_and_weights():
    plan = BlockPlan(((True, True, False), (True, False, False)), BLOCKS[:3], MODEL)
    assert plan.block_calls == 3 and plan.cost == pytest.approx(0.5)
    weighted = BlockPlan(plan.mask, BLOCKS[:3], MODEL, weights=(2.0, 1.0, 1.0))
    assert weighted.cost == pytest.approx((2 + 1 + 2) / 8)
    assert full_plan(4, BLOCKS, MODEL).cost == 1.0


def test_text_round_trip_is_exact_and_readable():
    plan = random_plan(5, BLOCKS, MODEL, 0.6, random.Random(2), sigmas=(1.0, 0.8, 0.5, 0.3, 0.1, 0.0), note="x",
                       sampler="dpmpp_2m")
    text = plan.to_text()
    assert BlockPlan.from_text(text) == plan
    data = json.loads(text)
    assert data["mask"][0] == "".join("1" if v else "0" for v in plan.mask[0])
    assert data["blocks"][0] == ["double_block", 0] and data["sampler"] == "dpmpp_2m"


@pytest.mark.parametrize("mask, fix", [
    (((True, False),), "one entry per block"),
    ((), "at least one step"),
])
def test_wrong_shape_is_refused(mask, fix):
    with pytest.raises(BlockPlanError, match=fix):
        BlockPlan(mask, BLOCKS[:3], MODEL)


def test_bad_text_is_refused_with_the_fix():
    with pytest.raises(BlockPlanError, match="not JSON"):
        BlockPlan.from_text("{not json")
    with pytest.raises(BlockPlanError, match="not a BLOCK_PLAN"):
        BlockPlan.from_text(json.dumps({"mask": ["11"]}))
    data = full_plan(2, BLOCKS[:2], MODEL).to_dict()
    data["mask"] = ["12", "11"]
    with pytest.raises(BlockPlanError, match="strings of 0 and 1"):
        BlockPlan.from_dict(data)
    data["mask"] = ["10", "11"]  # cost entry still says 1.0
    with pytest.raises(BlockPlanError, match="edited inconsistently"):
        BlockPlan.from_dict(data)
    data["version"] = 99
    with pytest.raises(BlockPlanError, match="update ComfyUI-AdaptiveSkip"):
        BlockPlan.from_dict(data)


def test_plan_for_another_model_or_step_count_names_the_fix():
    plan = full_plan(4, BLOCKS, MODEL)
    plan.check_for(MODEL, BLOCKS, 4)
    with pytest.raises(BlockPlanError, match="EvoArchitectureSearch"):
        plan.check_for("Flux/Flux/double_block x6", BLOCKS, 4)
    with pytest.raises(BlockPlanError, match="EvoArchitectureSearch"):
        plan.check_for(MODEL, BLOCKS[:5], 4)
    with pytest.raises(BlockPlanError, match="4-step SIGMAS"):
        plan.check_for(MODEL, BLOCKS, 8)


def test_plan_makers_hold_their_budget():
    assert kept_calls(0.5, 10, 6) == 30 and kept_calls(0.01, 10, 6) == 10
    with pytest.raises(BlockPlanError, match="cost_target"):
        kept_calls(0.0, 10, 6)
    rng = random.Random(0)
    for cost in (0.3, 0.5, 0.8):
        plan = random_plan(7, BLOCKS, MODEL, cost, rng)
        assert plan.block_calls == kept_calls(cost, 7, 6) and all(any(row) for row in plan.mask)
    u = uniform_plan(3, BLOCKS, MODEL, dropped=[1, 4])
    assert all(row == (True, False, True, True, False, True) for row in u.mask)
    assert sorted(evenly_dropped(6, 3)) == [1, 3, 5] and len(set(evenly_dropped(8, 5, 0.25))) == 5


def test_operators_keep_the_budget_and_a_block_per_step():
    rng = random.Random(4)
    for _ in range(200):
        a = repair([[rng.random() < 0.5 for _ in range(6)] for _ in range(5)], 14, rng)
        b = repair([[rng.random() < 0.2 for _ in range(6)] for _ in range(5)], 14, rng)
        for m in (a, b, repair(crossover(a, b, rng), 14, rng), mutate(a, rng, moves=2)):
            assert sum(map(sum, m)) == 14 and all(any(r) for r in m)
    assert len(uniform_seeds(4, 4, 0.5)) == 6  # every choice of 2 dropped blocks of 4
    assert len(uniform_seeds(4, 12, 0.5)) >= 3  # C(12, 6) is too many: spread choices only
    for seed in uniform_seeds(4, 6, 0.5) + uniform_seeds(4, 12, 0.5):
        assert len({tuple(row) for row in seed}) == 1 and sum(seed[0]) == len(seed[0]) // 2


def _distance_to(target):
    """Fitness: number of entries differing from a hidden target plan (lower is better)."""
    calls = []

    def fitness(plans):
        calls.extend(plans)
        return [sum(x != y for ra, rb in zip(p.mask, target) for x, y in zip(ra, rb)) for p in plans]
    fitness.calls = calls
    return fitness


def test_search_beats_every_uniform_plan_when_the_best_plan_varies_by_step():
    steps, n = 6, 6
    rng = random.Random(7)
    # Early steps need the first blocks, late steps the last ones: no uniform plan can match it.
    target = [[(b < 3) if s < 3 else (b >= 3) for b in range(n)] for s in range(steps)]
    fitness = _distance_to(target)
    config = BlockSearchConfig(cost_target=0.5, population=24, parents=6, generations=40, seed=1)
    result = search_block_plan(steps, BLOCKS, MODEL, fitness, config)
    assert result.best.block_calls == 18
    assert result.fitness < result.uniform_fitness
    assert result.fitness <= 4  # near the optimum (0) in 41 generations
    assert result.history == sorted(result.history, reverse=True)  # elitism: never worse
    assert all(p.block_calls == 18 for p in fitness.calls)
    again = search_block_plan(steps, BLOCKS, MODEL, _distance_to(target), config)
    assert again.best == result.best  # deterministic for a seed
    assert rng  # (the rng above only documents that the target is fixed)


def test_search_at_full_cost_returns_the_full_plan_and_validates_the_fitness():
    result = search_block_plan(3, BLOCKS, MODEL, lambda plans: [0.0] * len(plans),
                               BlockSearchConfig(cost_target=1.0, generations=2))
    assert result.best == full_plan(3, BLOCKS, MODEL)
    with pytest.raises(BlockPlanError, match="returned 1 values"):
        search_block_plan(3, BLOCKS, MODEL, lambda plans: [0.0], BlockSearchConfig(cost_target=0.5))


def test_weighted_search_holds_the_weighted_budget_and_spends_it():
    """A cheaper block (e.g. an MMDiT's last joint block, whose context stream is pre_only) costs less of the
    budget: every candidate stays within cost_target by weight, no further block fits, and the search can keep more
    cheap blocks than an unweighted budget of the same target allows."""
    steps, weights = 5, (1.0, 1.0, 1.0, 1.0, 1.0, 0.5)
    target = [[b == 5 or b < 2 for b in range(6)] for _ in range(steps)]  # 2 full blocks + the cheap one per step
    fitness = _distance_to(target)
    config = BlockSearchConfig(cost_target=2.5 / 5.5, population=16, parents=4, generations=20, seed=3)
    result = search_block_plan(steps, BLOCKS, MODEL, fitness, config, weights=weights)
    budget = config.cost_target * sum(weights) * steps
    for plan in fitness.calls:
        used = sum(w for row in plan.mask for w, on in zip(weights, row) if on)
        assert used <= budget + 1e-9 and all(any(row) for row in plan.mask)
        assert all(used + weights[b] > budget + 1e-9 for row in plan.mask for b, on in enumerate(row) if not on)
    assert result.best.weights == weights and result.best.cost <= config.cost_target + 1e-9
    assert result.fitness == 0  # the weighted optimum: 15 block calls, more than kept_calls' 14 at this target
    assert result.best.block_calls == 15 > kept_calls(config.cost_target, steps, 6)
    with pytest.raises(BlockPlanError, match="one positive value per block"):
        search_block_plan(steps, BLOCKS, MODEL, fitness, config, weights=(1.0, 2.0))


# --- skipped = "reuse": a skipped block adds its residual from the last step it ran -------------------------------
def test_old_plan_text_loads_as_pass_through_and_reuse_round_trips_as_version_2():
    old = json.dumps({"format": "adaptive_skip.block_plan", "version": 1, "model": MODEL,
                      "blocks": [list(b) for b in BLOCKS[:2]], "mask": ["11", "10"], "cost": 0.75})
    plan = BlockPlan.from_text(old)  # a plan file written before the field existed
    assert plan.skipped == "pass_through"
    assert plan.to_dict()["version"] == 1 and "skipped" not in plan.to_dict()  # older packs still read it
    reuse = BlockPlan(plan.mask, plan.blocks, MODEL, skipped="reuse")
    data = reuse.to_dict()
    assert data["version"] == 2 and data["skipped"] == "reuse"  # an older pack refuses it instead of passing through
    assert BlockPlan.from_dict(data) == reuse and reuse != plan
    assert "reuse their last residual" in reuse.summary() and "pass their input on" in plan.summary()


def test_reuse_plans_run_every_block_at_the_first_step():
    with pytest.raises(BlockPlanError, match="first mask row to all 1"):
        BlockPlan(((True, False), (True, True)), BLOCKS[:2], MODEL, skipped="reuse")
    with pytest.raises(BlockPlanError, match="must be one of"):
        BlockPlan(((True, True),), BLOCKS[:2], MODEL, skipped="cache")
    for seed in range(5):
        plan = random_plan(6, BLOCKS, MODEL, 0.5, random.Random(seed), skipped="reuse")
        assert all(plan.mask[0]) and all(any(r) for r in plan.mask) and plan.block_calls == 18
    uniform = uniform_plan(4, BLOCKS, MODEL, dropped=[1, 4], skipped="reuse")
    assert all(uniform.mask[0]) and all(r == uniform.mask[1] for r in uniform.mask[1:]) and uniform.mask[1][1] is False
    with pytest.raises(BlockPlanError, match="raise cost_target to at least 0.306"):
        random_plan(6, BLOCKS, MODEL, 0.2, random.Random(0), skipped="reuse")  # needs 6 + 5 of 36 calls
    assert (min_block_calls(6, 6, "reuse"), min_block_calls(6, 6, "pass_through")) == (11, 6)
    least = random_plan(6, BLOCKS, MODEL, 11 / 36, random.Random(0), skipped="reuse")  # the minimum itself fits
    assert least.block_calls == 11 and all(least.mask[0]) and all(sum(r) == 1 for r in least.mask[1:])


def test_reuse_search_keeps_the_first_step_whole_and_the_budget_exact():
    steps, n = 5, 6  # 18 of 30 calls: 6 at step 0, 3 at each later step (a whole uniform plan exists)
    target = [[True] * n] + [[(s + b) % 2 == 0 for b in range(n)] for s in range(1, steps)]  # varies by step
    fitness = _distance_to(target)
    config = BlockSearchConfig(cost_target=0.6, population=16, parents=4, generations=25, seed=2)
    result = search_block_plan(steps, BLOCKS, MODEL, fitness, config, skipped="reuse")
    assert all(p.skipped == "reuse" and all(p.mask[0]) and p.block_calls == 18 for p in fitness.calls)
    assert result.best.skipped == "reuse" and result.best_uniform.skipped == "reuse"
    assert all(result.best_uniform.mask[1] == r for r in result.best_uniform.mask[1:])
    assert result.fitness < result.uniform_fitness
    with pytest.raises(BlockPlanError, match="raise cost_target"):
        search_block_plan(steps, BLOCKS, MODEL, fitness, BlockSearchConfig(cost_target=0.2), skipped="reuse")
    with pytest.raises(BlockPlanError, match="must be 'pass_through' or 'reuse'"):
        search_block_plan(steps, BLOCKS, MODEL, fitness, config, skipped="cache")


def _args(img, txt, uuids):
    return {"img": img, "txt": txt, "vec": torch.ones(img.shape[0], 3), "transformer_options": {"uuids": uuids}}


def test_residual_cache_keys_rows_by_conditioning_and_shape():
    cache, block = ResidualCache(), ("double_block", 0)
    ints = torch.Generator().manual_seed(0)  # small integers: the residual arithmetic is exact

    def rand(*shape):
        return torch.randint(-8, 8, shape, generator=ints).float()
    img, txt = rand(4, 5, 2), rand(4, 3, 2)
    args = _args(img, txt, ["c", "u"])  # cond rows 0-1, uncond rows 2-3
    labels = chunk_labels(args["transformer_options"], 4)
    assert cache.available(block, labels, args, 4) == [False] * 4  # nothing stored yet
    out = {"img": img * 2 + 1, "txt": txt - 3}
    cache.update(block, labels, args, out, [True, False, True, True])  # row 1 did not run
    assert cache.available(block, labels, args, 4) == [True, False, True, True]
    new = _args(rand(4, 5, 2), rand(4, 3, 2), ["c", "u"])
    got = cache.reused(block, labels, new)
    assert torch.equal(got["img"][0], new["img"][0] + (img[0] + 1)) and torch.equal(got["txt"][3], new["txt"][3] - 3)
    assert got["vec"] is new["vec"]  # what the block does not return passes through
    # the same conditionings in the other order (or split into separate calls): each gets its own residual
    swapped = _args(torch.zeros(4, 5, 2), torch.zeros(4, 3, 2), ["u", "c"])
    sl = chunk_labels(swapped["transformer_options"], 4)
    assert cache.available(block, sl, swapped, 4) == [True, True, True, False]
    assert torch.equal(cache.reused(block, sl, swapped)["img"][:2], (img * 2 + 1 - img)[2:])
    alone = _args(torch.zeros(2, 5, 2), torch.zeros(2, 3, 2), ["u"])
    assert cache.available(block, chunk_labels(alone["transformer_options"], 2), alone, 2) == [True, True]
    # another conditioning, another token count, or a call without uuids: no residual, never someone else's
    other = _args(torch.zeros(2, 5, 2), torch.zeros(2, 3, 2), ["x"])
    assert cache.available(block, chunk_labels(other["transformer_options"], 2), other, 2) == [False, False]
    longer = _args(torch.zeros(4, 7, 2), torch.zeros(4, 3, 2), ["c", "u"])
    assert cache.available(block, labels, longer, 4) == [False] * 4
    assert chunk_labels({}, 4) == (("rows", 4),)


def test_residual_cache_learns_the_streams_a_block_returns():
    cache, block = ResidualCache(), ("double_block", 3)
    args = _args(torch.full((2, 5, 2), 0.5), torch.randn(2, 3, 2), ["c"])
    labels = chunk_labels(args["transformer_options"], 2)
    cache.update(block, labels, args, {"img": args["img"] + 1, "txt": None}, [True, True])  # pre_only: no txt
    later = _args(torch.zeros(2, 5, 2), torch.full((2, 3, 2), 7.0), ["c"])
    assert cache.available(block, labels, later, 2) == [True, True]
    got = cache.reused(block, labels, later)
    assert torch.equal(got["img"], torch.ones(2, 5, 2)) and torch.equal(got["txt"], later["txt"])
