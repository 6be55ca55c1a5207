"""Evolutionary search of a BLOCK_PLAN at a block-compute budget (AutoDiffusion's architecture stage).

The genome is the steps x blocks mask. Every candidate holds exactly K = kept_calls(cost_target) block calls with
at least one block per step, so all candidates cost the same and their fitness alone ranks them. The first
population is seeded with uniform plans (the same blocks dropped at every step: several spreads of the dropped
blocks) and random plans; then top-k parents, crossover (whole steps from either parent, AutoDiffusion's per-step
genes, or single entries) and mutation (move kept calls to other blocks of the same step, or between steps),
elitism. The result is never worse than the best seed; the best uniform seed's fitness is returned next to it,
because "beats the uniform plan" is the claim a user wants checked.

With skipped="reuse" (a skipped block adds its residual from the last step it ran) the first step runs every block
(nothing to reuse yet) and the search, its uniform seeds (the same blocks dropped at every later step) and its
operators work on the remaining steps with the remaining budget.
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .block_plan import (PASS_THROUGH, REUSE, BlockId, BlockPlan, BlockPlanError, check_reuse_budget,
                         evenly_dropped, kept_calls)

Mask = list[list[bool]]
Fitness = Callable[[list[BlockPlan]], Sequence[float]]  # lower is better, one value per plan
Progress = Callable[[int, int], None]  # (evaluated so far, planned evaluations)
ALL_UNIFORM = 16  # up to this many uniform plans, all of them seed the search


@dataclass(frozen=True)
class BlockSearchConfig:
    cost_target: float
    population: int = 16
    parents: int = 4
    generations: int = 8
    mutation_prob: float = 0.7
    seed: int = 0

    def __post_init__(self) -> None:
        kept_calls(self.cost_target, 1, 1)  # validates the range
        if self.population < 2 or not 1 <= self.parents <= self.population:
            raise BlockPlanError(f"need population >= 2 and 1 <= parents <= population, got {self.population} "
                                 f"and {self.parents}")
        if self.generations < 0:
            raise BlockPlanError(f"generations must be >= 0, got {self.generations}")


@dataclass
class BlockSearchResult:
    best: BlockPlan
    fitness: float
    best_uniform: BlockPlan
    uniform_fitness: float
    evaluated: int
    history: list[float] = field(default_factory=list)  # best fitness after the seeds and after each generation


def repair(mask: Mask, keep: int, rng: random.Random) -> Mask:
    """`mask` with exactly `keep` entries on and at least one per step (random entries added or dropped)."""
    out = [list(row) for row in mask]
    for row in out:
        if not any(row):
            row[rng.randrange(len(row))] = True
    on = [(s, b) for s, row in enumerate(out) for b, v in enumerate(row) if v]
    off = [(s, b) for s, row in enumerate(out) for b, v in enumerate(row) if not v]
    rng.shuffle(on)
    rng.shuffle(off)
    count = len(on)
    per_step = [sum(row) for row in out]
    for s, b in on:
        if count <= keep:
            break
        if per_step[s] > 1:
            out[s][b] = False
            per_step[s] -= 1
            count -= 1
    for s, b in off[:max(keep - count, 0)]:
        out[s][b] = True
    return out


def repair_weighted(mask: Mask, budget: float, weights: Sequence[float], rng: random.Random) -> Mask:
    """`mask` with at least one block per step, its weighted block compute at most `budget` and no further block
    that fits: random entries dropped while over, then random free entries added while they fit."""
    out = [list(row) for row in mask]
    for row in out:
        if not any(row):
            row[min(range(len(row)), key=lambda b: weights[b])] = True  # the cheapest block keeps the step a model
    used = sum(w for row in out for w, on in zip(weights, row) if on)
    on = [(s, b) for s, row in enumerate(out) for b, v in enumerate(row) if v]
    rng.shuffle(on)
    for s, b in on:
        if used <= budget + 1e-9:
            break
        if sum(out[s]) > 1:
            out[s][b] = False
            used -= weights[b]
    off = [(s, b) for s, row in enumerate(out) for b, v in enumerate(row) if not v]
    rng.shuffle(off)
    for s, b in off:
        if used + weights[b] <= budget + 1e-9:
            out[s][b] = True
            used += weights[b]
    return out


def crossover(a: Mask, b: Mask, rng: random.Random) -> Mask:
    if rng.random() < 0.5:  # whole steps from either parent
        return [list(ra if rng.random() < 0.5 else rb) for ra, rb in zip(a, b)]
    return [[x if rng.random() < 0.5 else y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]


def mutate(mask: Mask, rng: random.Random, moves: int = 1) -> Mask:
    """Move `moves` kept calls: within a step to another block, or to another step (same block count overall)."""
    out = [list(row) for row in mask]
    for _ in range(moves):
        on = [(s, b) for s, row in enumerate(out) for b, v in enumerate(row) if v and sum(row) > 1]
        if rng.random() < 0.5:
            pool = on
            if not pool:
                continue
            s, b = rng.choice(pool)
            targets = [(s, j) for j, v in enumerate(out[s]) if not v]
        else:
            pool = [(s, b) for s, row in enumerate(out) for b, v in enumerate(row) if v and sum(row) > 1]
            if not pool:
                continue
            s, b = rng.choice(pool)
            targets = [(t, j) for t, row in enumerate(out) for j, v in enumerate(row) if not v and t != s]
        if targets:
            t, j = rng.choice(targets)
            out[s][b], out[t][j] = False, True
    return out


def uniform_seeds(steps: int, n: int, cost: float) -> list[Mask]:
    """Uniform plans at this cost: the same blocks dropped at every step. Every choice of dropped blocks when there
    are at most `ALL_UNIFORM` of them, else the dropped blocks at the end, the start, and evenly spread. (When
    cost x blocks is not whole, repair later adds or drops the few calls left over at random steps.)"""
    drop = n - max(1, min(n, round(cost * n)))
    if drop == 0:
        return [[[True] * n for _ in range(steps)]]
    if math.comb(n, drop) <= ALL_UNIFORM:
        choices = [list(c) for c in itertools.combinations(range(n), drop)]
    else:
        choices = [list(range(n - drop, n)), list(range(drop))]
        choices += [evenly_dropped(n, drop, off) for off in (0.0, 0.25, 0.5, 0.75)]
    seen, out = set(), []
    for dropped in choices:
        key = tuple(sorted(dropped))
        if key not in seen:
            seen.add(key)
            out.append([[i not in key for i in range(n)] for _ in range(steps)])
    return out


def search_block_plan(steps: int, blocks: Sequence[BlockId], model: str, fitness: Fitness,
                      config: BlockSearchConfig, sigmas: Sequence[float] = (), weights: Sequence[float] = (),
                      seed_plans: Sequence[BlockPlan] = (), progress: Progress | None = None,
                      skipped: str = PASS_THROUGH) -> BlockSearchResult:
    """The best plan found at config.cost_target for `fitness` (lower is better). Deterministic for a seed.

    With `weights` (the relative compute of each block, e.g. a block whose context stream is pre_only costs less)
    the budget is weighted: every candidate's weighted cost is at most cost_target and no further block fits
    (candidates then differ slightly in cost; the plan's `cost` says which). Without, every candidate holds exactly
    kept_calls(cost_target) block calls. skipped="reuse": plans whose skipped blocks reuse their last residual, with
    every block at the first step (module docstring)."""
    if skipped == REUSE:
        return _search_reuse(steps, blocks, model, fitness, config, sigmas, weights, seed_plans, progress)
    if skipped != PASS_THROUGH:
        raise BlockPlanError(f"skipped {skipped!r} must be {PASS_THROUGH!r} or {REUSE!r}")
    n = len(blocks)
    if steps < 1 or n < 1:
        raise BlockPlanError(f"a block plan needs >= 1 step and >= 1 block, got {steps} x {n}")
    if weights and (len(weights) != n or min(weights) <= 0):
        raise BlockPlanError(f"weights need one positive value per block ({n}), got {list(weights)}")
    rng = random.Random(config.seed)
    keep = kept_calls(config.cost_target, steps, n)
    fix = repair
    if weights:
        budget = config.cost_target * sum(weights) * steps
        if budget + 1e-9 < steps * min(weights):
            raise BlockPlanError(f"cost_target {config.cost_target} cannot keep one block per step with these "
                                 "weights; raise cost_target")

        def fix(mask: Mask, _keep: int, generator: random.Random) -> Mask:
            return repair_weighted(mask, budget, weights, generator)
    cache: dict[tuple, float] = {}
    planned = config.population * (config.generations + 1)

    def plan_of(mask: Mask) -> BlockPlan:
        return BlockPlan(tuple(tuple(r) for r in mask), tuple(blocks), model, sigmas=tuple(sigmas),
                         weights=tuple(weights))

    def score(masks: list[Mask]) -> list[float]:
        new = [m for m in {_key(m): m for m in masks if _key(m) not in cache}.values()]
        if new:
            values = list(fitness([plan_of(m) for m in new]))
            if len(values) != len(new):
                raise BlockPlanError(f"the fitness returned {len(values)} values for {len(new)} plans")
            for m, v in zip(new, values):
                cache[_key(m)] = float(v)
            if progress is not None:
                progress(len(cache), planned)
        return [cache[_key(m)] for m in masks]

    uniform = [fix(m, keep, rng) for m in uniform_seeds(steps, n, config.cost_target)]
    uniform_scores = score(uniform)
    u_best = min(range(len(uniform)), key=lambda i: uniform_scores[i])
    pool = uniform + [fix([list(r) for r in p.mask], keep, rng) for p in seed_plans if p.steps == steps
                      and len(p.blocks) == n]
    while len(pool) < config.population:
        pool.append(fix([[False] * n for _ in range(steps)], keep, rng))  # random plans
    pool = list({_key(m): m for m in pool}.values())
    ranked = sorted(zip(score(pool), range(len(pool))))
    history = [ranked[0][0]]
    for _ in range(config.generations):
        elite = [pool[i] for _, i in ranked[:config.parents]]
        children, attempts = [], 0
        seen = {_key(m) for m in elite}
        while len(children) < config.population - len(elite) and attempts < config.population * 20:
            attempts += 1
            a, b = rng.sample(elite, 2) if len(elite) > 1 else (elite[0], elite[0])
            child = crossover(a, b, rng)
            if rng.random() < config.mutation_prob or _key(child) in seen:
                child = mutate(child, rng, moves=1 + rng.randrange(2))
            child = fix(child, keep, rng)
            if _key(child) not in seen:
                seen.add(_key(child))
                children.append(child)
        pool = elite + children
        ranked = sorted(zip(score(pool), range(len(pool))))
        history.append(ranked[0][0])
    best = pool[ranked[0][1]]
    return BlockSearchResult(best=plan_of(best), fitness=ranked[0][0], best_uniform=plan_of(uniform[u_best]),
                             uniform_fitness=uniform_scores[u_best], evaluated=len(cache), history=history)


def _key(mask: Mask) -> tuple:
    return tuple(tuple(row) for row in mask)


def _search_reuse(steps, blocks, model, fitness: Fitness, config: BlockSearchConfig, sigmas, weights, seed_plans,
                  progress) -> BlockSearchResult:
    """The reuse search: step 0 runs every block; steps 1.. are searched with the budget left (same total)."""
    n = len(blocks)
    keep = kept_calls(config.cost_target, steps, n)
    check_reuse_budget(keep, steps, n)
    w = list(weights) or [1.0] * n
    total = config.cost_target * sum(w) * steps
    if steps == 1 or (not weights and keep == steps * n) or (weights and total >= sum(w) * steps - 1e-9):
        plan = BlockPlan(((True,) * n,) * steps, tuple(blocks), model, sigmas=tuple(sigmas), weights=tuple(weights),
                         skipped=REUSE)
        value = float(next(iter(fitness([plan]))))
        return BlockSearchResult(plan, value, plan, value, 1, [value])
    rest = (keep - n) / ((steps - 1) * n) if not weights else (total - sum(w)) / (sum(w) * (steps - 1))
    inner = BlockSearchConfig(cost_target=min(1.0, rest), population=config.population, parents=config.parents,
                              generations=config.generations, mutation_prob=config.mutation_prob, seed=config.seed)

    def full(plan: BlockPlan) -> BlockPlan:
        return BlockPlan(((True,) * n,) + plan.mask, tuple(blocks), model, sigmas=tuple(sigmas),
                         weights=tuple(weights), skipped=REUSE)

    # step-caching seeds (FORA-like): every block at every k-th step, the budget's rest spread by repair
    periodic = [BlockPlan(tuple((True,) * n if s % k == 0 else (True,) + (False,) * (n - 1)
                                for s in range(1, steps)), tuple(blocks), model) for k in (2, 3)]
    result = search_block_plan(steps - 1, blocks, model, lambda plans: fitness([full(p) for p in plans]), inner,
                               weights=weights, progress=progress,
                               seed_plans=periodic + [BlockPlan(p.mask[1:], p.blocks, p.model) for p in seed_plans
                                                      if p.steps == steps])
    return BlockSearchResult(best=full(result.best), fitness=result.fitness, best_uniform=full(result.best_uniform),
                             uniform_fitness=result.uniform_fitness, evaluated=result.evaluated,
                             history=result.history)
