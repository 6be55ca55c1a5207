"""AutoDiffusion-style evolutionary search (Li et al., ICCV 2023) over skip masks with a fixed call budget.

Where the oracle (core/oracle.py) walks greedily from the full path, this searches the space of K-call masks with
a population: top-k parents, uniform crossover over the free steps, mutation that moves a computed step to a
nearby skipped one, elitism. Every candidate is repaired to exactly K computed steps with step 0 and the warm-up
computed, so nothing invalid is ever evaluated. The first population is seeded with the caller's masks (the stride,
the rule's path, the oracle's path), so the result is never worse than the best seed.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from .oracle import Evaluate, Mask, OracleResult, OracleStep, Progress, _Evaluator, even_starts, fixed_steps


def repair(mask: Sequence[bool], budget: int, fixed: Sequence[bool], rng: random.Random) -> Mask:
    """`mask` with the fixed steps computed and exactly `budget` computed steps (random free steps added/dropped)."""
    out = [bool(m) or f for m, f in zip(mask, fixed)]
    budget = max(budget, sum(fixed))
    free_on = [i for i, (m, f) in enumerate(zip(out, fixed)) if m and not f]
    free_off = [i for i, m in enumerate(out) if not m]
    rng.shuffle(free_on)
    rng.shuffle(free_off)
    while sum(out) > budget and free_on:
        out[free_on.pop()] = False
    while sum(out) < budget and free_off:
        out[free_off.pop()] = True
    return out


def crossover(a: Mask, b: Mask, rng: random.Random) -> Mask:
    return [x if rng.random() < 0.5 else y for x, y in zip(a, b)]


def mutate(mask: Mask, fixed: Sequence[bool], rng: random.Random, reach: int = 3) -> Mask:
    """Move one computed free step by up to `reach` onto a skipped step."""
    out = list(mask)
    movable = [i for i, (m, f) in enumerate(zip(out, fixed)) if m and not f]
    if not movable:
        return out
    i = rng.choice(movable)
    targets = [j for j in range(max(i - reach, 0), min(i + reach, len(out) - 1) + 1) if not out[j] and not fixed[j]]
    if targets:
        j = rng.choice(targets)
        out[i], out[j] = False, True
    return out


def evolve_skip_path(total_steps: int, budget: int, evaluate: Evaluate, warmup_steps: int = 1,
                     seed_masks: Sequence[Sequence[bool]] = (), population: int = 16, parents: int = 4,
                     generations: int = 10, mutation_prob: float = 0.5, seed: int = 0, batch_size: int = 16,
                     progress: Progress | None = None) -> OracleResult:
    """Best K-call mask found for `evaluate(masks) -> errors` (lower is better). Deterministic for a seed."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if population < 2 or not 1 <= parents <= population:
        raise ValueError(f"need population >= 2 and 1 <= parents <= population, got {population} and {parents}")
    rng = random.Random(seed)
    fixed = fixed_steps(total_steps, warmup_steps)
    budget = min(max(budget, sum(fixed)), total_steps)
    ev = _Evaluator(evaluate, batch_size, progress)
    pool = [repair(m, budget, fixed, rng) for m in seed_masks if len(m) == total_steps]
    pool += [repair(m, budget, fixed, rng) for m in even_starts(total_steps, budget, warmup_steps)]
    while len(pool) < population:
        pool.append(repair([False] * total_steps, budget, fixed, rng))
    pool = list({tuple(m): m for m in pool}.values())
    scores = ev(pool)
    ranked = sorted(zip(scores, range(len(pool))), key=lambda p: p[0])
    best_error, best = ranked[0][0], pool[ranked[0][1]]
    trace = [OracleStep(sum(best), best_error, "best seed")]
    for gen in range(generations):
        elite = [pool[i] for _, i in ranked[:parents]]
        children = []
        attempts = 0
        while len(children) < population - len(elite) and attempts < population * 20:
            attempts += 1
            a, b = rng.sample(elite, 2) if len(elite) > 1 else (elite[0], elite[0])
            child = repair(crossover(a, b, rng), budget, fixed, rng)
            if rng.random() < mutation_prob:
                child = mutate(child, fixed, rng)
            if tuple(child) not in ev.memo and child not in children:
                children.append(child)
        if not children:
            break  # the neighbourhood is exhausted
        pool = elite + children
        scores = ev(pool)
        ranked = sorted(zip(scores, range(len(pool))), key=lambda p: p[0])
        if ranked[0][0] < best_error:
            best_error, best = ranked[0][0], pool[ranked[0][1]]
            trace.append(OracleStep(sum(best), best_error, f"generation {gen + 1}"))
    return OracleResult(mask=list(best), error=best_error, trace=trace, evaluations=ev.count)
