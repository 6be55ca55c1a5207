"""Evolutionary search of sigma schedules (AutoDiffusion, Li et al., ICCV 2023), made sound and resumable, with an
optional categorical sampler gene.

A candidate is a strictly decreasing list of N nonzero σ in [σ_min, σ_max] followed by 0 (N sampler steps). The
search works on log σ. Every candidate it proposes is repaired to be valid (sorted, inside the range, neighbours at
least `min_log_gap` apart in log σ), so no duplicate or unordered steps ever reach the model, unlike the official
code. The last nonzero σ is searched too; the first stays at σ_max (fix_first) so the initial noise is unchanged.

With `samplers` set (EvoTimestepSchedule's sampler_name auto, see core/joint_schedule_search.py) a candidate is a
`SamplerSchedule`: a sampler gene, each sampler with its own step count and cost, and that sampler's σ genes. A
child may switch sampler; its schedule is then resampled in log σ to the new sampler's step count.

The caller supplies `evaluate(list_of_candidates) -> list_of_fitness` (lower is better) and batches it as it
likes; one call per generation. The state is plain data (to_dict/from_dict, JSON-safe); the random numbers of
generation g come from Random(f"evo/{seed}/{g}") (f"joint/..." with samplers), so a search resumed from a saved
state, or re-run after an interrupted evaluation, gives exactly the result of an uninterrupted run.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict

from .schedule_config import SPACES, EvoConfig, SamplerSchedule
from .schedule_state import (JOINT_STATE_FORMAT, JOINT_STATE_VERSION, STATE_FORMAT, STATE_VERSION, Entry, EvoResult,
                             EvoState, JointState)

Evaluate = Callable[[list], Sequence[float]]
# The first generation's grid: log σ_i = log σ_max + (log σ_last - log σ_max) (i / (N - 1))^p, with σ_last this far
# up the log range from σ_min. p < 1 takes a big first step, p > 1 small early steps.
GRID_POWERS = (0.5, 0.75, 1.0, 1.5)
GRID_LAST = (0.0, 0.2, 0.4)
# Settings that may change when a saved search is resumed (they extend or shorten it, not change its course).
RESUMABLE_CHANGES = ("generations", "budget")
# The settings, state and result types live in schedule_config / schedule_state; importable from here too.
__all__ = ["SPACES", "EvoConfig", "SamplerSchedule", "STATE_FORMAT", "JOINT_STATE_FORMAT", "STATE_VERSION",
           "JOINT_STATE_VERSION", "Entry", "EvoState", "JointState", "EvoResult", "EvoSearch", "resample_logs",
           "is_valid_schedule", "search"]


def _key(logs: Iterable[float]) -> tuple:
    return tuple(round(v, 9) for v in logs)


def resample_logs(logs: Sequence[float], steps: int, lo: float) -> list[float]:
    """A log-σ schedule of len(logs) steps stretched to `steps` by linear interpolation over the step index
    (a 1-step schedule becomes an even split of [lo, its σ] in log σ)."""
    xs = [float(v) for v in logs]
    if steps == len(xs):
        return xs
    if len(xs) == 1:
        xs = [xs[0], lo]
    out = []
    for j in range(steps):
        u = (j / (steps - 1)) * (len(xs) - 1) if steps > 1 else 0.0
        i = min(int(u), len(xs) - 2)
        out.append(xs[i] + (xs[i + 1] - xs[i]) * (u - i))
    return out


class EvoSearch:
    """Population, top-k parents, crossover and mutation over valid schedules (and, with `config.samplers`, their
    sampler); one generation per step(). `space`: the config.space a class searches (subclasses set their own)."""

    space = "steps"

    def __init__(self, config: EvoConfig, evaluate: Evaluate, seeds: dict | None = None,
                 state: EvoState | None = None):
        """`seeds`: name -> σ list, or name -> SamplerSchedule with a sampler gene."""
        if state is not None:
            frozen = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
            saved = {k: v for k, v in asdict(state.config).items() if k not in RESUMABLE_CHANGES}
            if frozen != saved:
                diff = sorted(k for k in frozen if frozen[k] != saved[k])
                raise ValueError(f"cannot resume: the saved search used other settings for {', '.join(diff)}")
            state.config = config
            state.finished = False
        if config.space != self.space:
            raise ValueError(f"search space {config.space!r} is searched by core.schedule_warp.search_class"
                             f"({config.space!r}), not by {type(self).__name__}")
        self.config = config
        self.evaluate = evaluate
        self.joint = bool(config.samplers)
        self.state = state if state is not None else (JointState if self.joint else EvoState)(config=config)
        self.lo, self.hi = math.log(config.sigma_min), math.log(config.sigma_max)
        self.seed_keys: dict[str, tuple] = {}
        self.repaired_seeds: set[str] = set()
        self.seeds = self._prepare_seeds(seeds or {})
        self._index = {self._entry_key(e.sampler, e.logs): i for i, e in enumerate(self.state.archive)}

    def _entry_key(self, sampler: str | None, logs: Iterable[float]) -> tuple:
        return (sampler, _key(logs)) if self.joint else _key(logs)

    # --- validity -------------------------------------------------------------------------------------------
    def repair(self, logs: Sequence[float]) -> list[float]:
        """The nearest valid candidate in a simple sense: clamp, sort descending, then push neighbours apart."""
        c, gap = self.config, self.config.min_log_gap
        xs = sorted((min(max(float(v), self.lo), self.hi) for v in logs), reverse=True)
        if c.fix_first:
            xs[0] = self.hi
        for i in range(1, len(xs)):
            xs[i] = min(xs[i], xs[i - 1] - gap)
        xs[-1] = max(xs[-1], self.lo)
        for i in range(len(xs) - 2, -1, -1):
            xs[i] = max(xs[i], xs[i + 1] + gap)
        if c.fix_first:
            xs[0] = self.hi
        return xs

    def is_valid(self, sigmas: Sequence[float]) -> bool:
        """True for N + 1 values ending in 0, strictly decreasing, in range, log gaps >= min_log_gap."""
        return is_valid_schedule(sigmas, self.config)

    def to_sigmas(self, logs: Sequence[float]) -> list[float]:
        out = [math.exp(v) for v in logs]
        if self.config.fix_first:
            out[0] = self.config.sigma_max
        return out + [0.0]

    def candidate(self, sampler: str | None, logs: Sequence[float]):
        """What `evaluate` gets: the σ list, or a SamplerSchedule with a sampler gene."""
        sigmas = self.to_sigmas(logs)
        return sigmas if sampler is None else SamplerSchedule(sampler, tuple(sigmas))

    # --- search -------------------------------------------------------------------------------------------------
    def _prepare_seeds(self, seeds: dict) -> list[tuple[str, str | None, list[float]]]:
        out, seen = [], set()
        names = {n for n, _, _ in self.config.samplers}
        for name, given in seeds.items():
            sampler = getattr(given, "sampler", None) if self.joint else None
            values = [float(v) for v in getattr(given, "sigmas", given)]
            body = values[:-1] if values and values[-1] == 0 else ([] if self.joint else values)
            if self.joint and sampler not in names:
                self.state.skipped_seeds.setdefault(name, f"sampler {sampler} is not searched, or the schedule "
                                                          "does not have its step count")
                continue
            steps = self.config.steps_of(sampler)
            if len(body) != steps or any(not math.isfinite(v) or v <= 0 for v in body):
                self.state.skipped_seeds.setdefault(name, (
                    f"sampler {sampler} is not searched, or the schedule does not have its step count" if self.joint
                    else f"has {len(body)} nonzero values, not {steps}, or a non-positive value"))
                continue
            logs = self.repair([math.log(v) for v in body])
            key = self._entry_key(sampler, logs)
            self.seed_keys[name] = key
            if any(abs(math.exp(a) - b) > 1e-5 * b for a, b in zip(logs, body)):
                self.repaired_seeds.add(name)  # evaluated as repaired: not exactly the schedule given
            if key in seen:
                continue
            seen.add(key)
            out.append((name, sampler, logs))
        return out

    def _rng(self, generation: int) -> random.Random:
        return random.Random(f"{'joint' if self.joint else 'evo'}/{self.config.seed}/{generation}")

    def _scale(self, generation: int) -> float:
        """Mutation step in log σ: the configured scale, shrinking by 10% a generation to a quarter of it (it does
        not depend on the number of generations, so extending a finished search continues its course)."""
        return self.config.mutation_scale * max(0.25, 0.9 ** generation)

    def _random(self, rng: random.Random, steps: int | None = None) -> list[float]:
        n = self.config.steps if steps is None else steps
        return self.repair([rng.uniform(self.lo, self.hi) for _ in range(n)])

    def _mutate(self, rng: random.Random, logs: Sequence[float], scale: float) -> list[float]:
        start = 1 if self.config.fix_first else 0
        out = list(logs)
        genes = range(start, len(out))
        hit = [i for i in genes if rng.random() < self.config.mutation_prob] or ([rng.choice(genes)] if genes else [])
        for i in hit:
            if rng.random() < self.config.reset_prob:  # AutoDiffusion's mutation: a new value anywhere in range
                out[i] = rng.uniform(self.lo, self.hi)
            else:  # a local step, shrinking over the generations
                out[i] += rng.gauss(0.0, scale)
        return self.repair(out)

    def _crossover(self, rng: random.Random, a: Sequence[float], b: Sequence[float]) -> list[float]:
        return self.repair([x if rng.random() < 0.5 else y for x, y in zip(a, b)])

    def _by_fitness(self) -> list[Entry]:
        """Every evaluated candidate, best first (ties broken by the candidate itself, for determinism)."""
        return sorted(self.state.archive, key=lambda e: (e.fitness, e.sampler or "", _key(e.logs)))

    def parents(self) -> list[Entry]:
        """The top_k best candidates evaluated so far."""
        return self._by_fitness()[:self.config.top_k]

    def ranked(self, n: int, include_seeds: bool = True) -> list[tuple]:
        """The n best evaluated candidates as (candidate, fitness, origin), best first; include_seeds=False leaves
        out the seeded schedules (e.g. to re-score the search's own finds next to the built-ins on fresh samples)."""
        seeded = set(self.seed_keys.values())
        chosen = [e for e in self._by_fitness()
                  if include_seeds or self._entry_key(e.sampler, e.logs) not in seeded][:max(n, 0)]
        return [(self.candidate(e.sampler, e.logs), e.fitness, e.origin) for e in chosen]

    def _child(self, rng: random.Random, parents: list[Entry], scale: float, attempt: int, g: int):
        """One child of the parents as (sampler, logs, origin): a crossover (the first parent's sampler, the
        second's schedule stretched to its step count) or a mutation, which may switch the sampler."""
        c = self.config
        if len(parents) >= 2 and rng.random() < c.crossover_fraction and attempt < 10:
            a, b = rng.sample(parents, 2)
            other = b.logs
            if self.joint:
                other = self.repair(resample_logs(b.logs, c.steps_of(a.sampler), self.lo))
            return a.sampler, self._crossover(rng, a.logs, other), f"g{g}-{a.sampler if self.joint else 'crossover'}"
        parent = rng.choice(parents)
        sampler, logs = parent.sampler, parent.logs
        if len(c.samplers) > 1 and rng.random() < c.sampler_mutation_prob:
            sampler = rng.choice([n for n, _, _ in c.samplers if n != parent.sampler])
            logs = self.repair(resample_logs(logs, c.steps_of(sampler), self.lo))
        return sampler, self._mutate(rng, logs, scale * (1 + attempt / 5)), \
            f"g{g}-{sampler if self.joint else 'mutation'}"

    def first_generation(self, rng: random.Random, add: Callable[[str | None, list[float], str], bool]) -> None:
        """Generation 0: every seed (even beyond the population size), the grid, then random and mutated seeds."""
        c = self.config
        for name, sampler, logs in self.seeds:
            add(sampler, logs, name)
        if c.grid and c.steps >= 2 and not self.joint:
            for p in GRID_POWERS:
                for frac in GRID_LAST:
                    last = self.lo + frac * (self.hi - self.lo)
                    add(None, self.repair([self.hi + (last - self.hi) * (i / (c.steps - 1)) ** p
                                           for i in range(c.steps)]), f"grid-p{p}-last{frac}")
        attempts, count = 0, lambda: len(self._proposals)
        while count() < c.population and attempts < 50 * c.population:
            attempts += 1
            if self.seeds and attempts % 2 == 0:
                _, sampler, logs = rng.choice(self.seeds)
                add(sampler, self._mutate(rng, logs, self._scale(0)), "init-mutation")
            else:
                sampler = rng.choice([n for n, _, _ in c.samplers]) if self.joint else None
                add(sampler, self._random(rng, c.steps_of(sampler)), "init-random")

    def next_generation(self, rng: random.Random, add: Callable[[str | None, list[float], str], bool]) -> None:
        """Generation g >= 1: `population` children of the top_k parents."""
        parents, g = self.parents(), self.state.generation
        scale = self._scale(g)
        for _ in range(self.config.population):
            for attempt in range(20):
                if add(*self._child(rng, parents, scale, attempt, g)):
                    break

    def propose(self) -> list[tuple[str | None, list[float], str]]:
        """This generation's new candidates (sampler, logs, origin), never one already evaluated, cut to what the
        budget allows."""
        c, g = self.config, self.state.generation
        rng = self._rng(g)
        taken = set(self._index)
        self._proposals: list[tuple[str | None, list[float], str]] = []

        def add(sampler: str | None, logs: list[float], origin: str) -> bool:
            k = self._entry_key(sampler, logs)
            if k in taken:
                return False
            taken.add(k)
            self._proposals.append((sampler, logs, origin))
            return True

        (self.first_generation if g == 0 else self.next_generation)(rng, add)
        out = self._proposals
        if c.budget is not None:
            left, kept = c.budget - self.state.calls_used, []
            for item in out:
                cost = c.cost_of(item[0])
                if cost > left:
                    break
                left -= cost
                kept.append(item)
            out = kept
        return out

    def step(self) -> bool:
        """Evaluate one generation; False when the search is finished (generations or budget used up)."""
        s, c = self.state, self.config
        if s.finished or s.generation >= c.generations:
            s.finished = True
            return False
        proposals = self.propose()
        if not proposals:
            s.finished = True
            return False
        fitness = list(self.evaluate([self.candidate(sampler, logs) for sampler, logs, _ in proposals]))
        if len(fitness) != len(proposals):
            raise ValueError(f"evaluate returned {len(fitness)} values for {len(proposals)} candidates")
        for (sampler, logs, origin), fit in zip(proposals, fitness):
            fit = float(fit)
            self._index[self._entry_key(sampler, logs)] = len(s.archive)
            s.archive.append(Entry(logs, fit if math.isfinite(fit) else math.inf, origin, sampler))
            s.calls_used += c.cost_of(sampler)
        s.generation += 1
        s.history.append(self.parents()[0].fitness)
        return True

    def run(self, on_generation: Callable[[EvoState], None] | None = None) -> EvoResult:
        """Step until finished; on_generation(state) after each generation (progress, saving, cancelling)."""
        while self.step():
            if on_generation is not None:
                on_generation(self.state)
        return self.result()

    def result(self) -> EvoResult:
        """The best candidate (a SamplerSchedule with a sampler gene) and the seeds' fitness."""
        c = self.config
        if not self.state.archive:
            cheapest = min(cost for _, _, cost in c.samplers) if self.joint else c.calls_per_candidate
            raise ValueError("no candidate was evaluated: raise the budget to at least one candidate's cost "
                             f"({cheapest} model calls)")
        best = self.parents()[0]
        seed_fitness = {name: self.state.archive[self._index[k]].fitness
                        for name, k in self.seed_keys.items() if k in self._index}
        return EvoResult(sigmas=self.candidate(best.sampler, best.logs), fitness=best.fitness,
                         seed_fitness=seed_fitness, evaluated=len(self.state.archive),
                         calls_used=self.state.calls_used, generations=self.state.generation)

    def sampler_counts(self) -> dict[str, int]:
        """Evaluated candidates per sampler (for the report; empty without a sampler gene)."""
        counts: dict[str, int] = {}
        for e in self.state.archive:
            if e.sampler is not None:
                counts[e.sampler] = counts.get(e.sampler, 0) + 1
        return counts


def is_valid_schedule(sigmas: Sequence[float], config: EvoConfig) -> bool:
    """True for a candidate the search may propose under `config` (see EvoSearch.repair)."""
    v = [float(x) for x in sigmas]
    if len(v) != config.steps + 1 or v[-1] != 0.0:
        return False
    body = v[:-1]
    if any(not math.isfinite(x) or x <= 0 for x in body):
        return False
    if body[0] > config.sigma_max * (1 + 1e-9) or body[-1] < config.sigma_min * (1 - 1e-9):
        return False
    if config.fix_first and abs(body[0] - config.sigma_max) > 1e-9 * config.sigma_max:
        return False
    return all(math.log(a) - math.log(b) >= config.min_log_gap * (1 - 1e-6) for a, b in zip(body, body[1:]))


def search(config: EvoConfig, evaluate: Evaluate, seeds: dict | None = None,
           state: EvoState | None = None, on_generation: Callable[[EvoState], None] | None = None) -> EvoResult:
    """Run (or resume) a search to the end; see EvoSearch."""
    return EvoSearch(config, evaluate, seeds, state).run(on_generation)
