"""Evolutionary search of sigma schedules (AutoDiffusion, Li et al., ICCV 2023), made sound and resumable.

A candidate is a strictly decreasing list of N nonzero σ in [σ_min, σ_max] followed by 0 (N sampler steps). The
search works on log σ. Every candidate it proposes is repaired to be valid (sorted, inside the range, neighbours at
least `min_log_gap` apart in log σ), so no duplicate or unordered steps ever reach the model, unlike the official
code. The last nonzero σ is searched too; the first stays at σ_max (fix_first) so the initial noise is unchanged.

The caller supplies `evaluate(list_of_sigma_lists) -> list_of_fitness` (lower is better) and batches it as it
likes; one call per generation. The state is plain data (to_dict/from_dict, JSON-safe); the random numbers of
generation g come from Random(f"{seed}/{g}"), so a search resumed from a saved state, or re-run after an
interrupted evaluation, gives exactly the result of an uninterrupted run.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

Evaluate = Callable[[list[list[float]]], Sequence[float]]
STATE_FORMAT = "adaptive_skip.evo_state"
STATE_VERSION = 1
# The first generation's grid: log σ_i = log σ_max + (log σ_last - log σ_max) (i / (N - 1))^p, with σ_last this far
# up the log range from σ_min. p < 1 takes a big first step, p > 1 small early steps.
GRID_POWERS = (0.5, 0.75, 1.0, 1.5)
GRID_LAST = (0.0, 0.2, 0.4)
# Settings that may change when a saved search is resumed (they extend or shorten it, not change its course).
RESUMABLE_CHANGES = ("generations", "budget")


@dataclass(frozen=True)
class EvoConfig:
    """Search settings. `budget` and `calls_per_candidate` are in model calls (the caller decides the unit,
    e.g. per-sample calls: N steps x calls per step x seeds). A mutation moves each free step with probability
    `mutation_prob` (at least one); a moved step is redrawn anywhere in range with probability `reset_prob`
    (AutoDiffusion's mutation), otherwise nudged by a Gaussian of `mutation_scale` in log σ that shrinks 10% a
    generation. `crossover_fraction` of the children mix two parents step by step. `grid` adds a coarse grid of
    smooth schedules (GRID_POWERS x GRID_LAST) to the first generation, next to the seeds, so the search starts from
    big and small first steps and from several last σ, not only from the built-ins' shapes."""

    steps: int
    sigma_min: float
    sigma_max: float
    population: int = 16
    top_k: int = 4
    mutation_prob: float = 0.3
    mutation_scale: float = 0.3
    reset_prob: float = 0.2
    crossover_fraction: float = 0.5
    generations: int = 12
    min_log_gap: float = 0.02
    budget: int | None = None
    calls_per_candidate: int = 1
    fix_first: bool = True
    grid: bool = True
    seed: int = 0

    def __post_init__(self):
        def need(ok: bool, message: str):
            if not ok:
                raise ValueError(message)

        need(isinstance(self.steps, int) and self.steps >= 1, f"steps must be an integer >= 1, got {self.steps!r}")
        need(0 < self.sigma_min < self.sigma_max and math.isfinite(self.sigma_max),
             f"need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min!r}, sigma_max={self.sigma_max!r}")
        need(self.population >= 2, f"population must be at least 2, got {self.population}")
        need(1 <= self.top_k <= self.population,
             f"top_k must be between 1 and population ({self.population}), got {self.top_k}")
        need(0.0 <= self.mutation_prob <= 1.0, f"mutation_prob must be in [0, 1], got {self.mutation_prob}")
        need(self.mutation_scale > 0, f"mutation_scale (log σ) must be > 0, got {self.mutation_scale}")
        need(0.0 <= self.reset_prob <= 1.0, f"reset_prob must be in [0, 1], got {self.reset_prob}")
        need(0.0 <= self.crossover_fraction <= 1.0,
             f"crossover_fraction must be in [0, 1], got {self.crossover_fraction}")
        need(self.generations >= 1, f"generations must be at least 1, got {self.generations}")
        need(self.calls_per_candidate >= 1, f"calls_per_candidate must be at least 1, got {self.calls_per_candidate}")
        need(self.budget is None or self.budget >= 0, f"budget must be >= 0 model calls or None, got {self.budget}")
        span = math.log(self.sigma_max) - math.log(self.sigma_min)
        need(self.min_log_gap > 0 and (self.steps - 1) * self.min_log_gap <= span,
             f"min_log_gap {self.min_log_gap} leaves no room for {self.steps} steps in log σ range {span:.3f}; "
             f"use a gap below {span / max(self.steps - 1, 1):.4f}")


@dataclass
class Entry:
    """One evaluated candidate: its nonzero σ in log space, fitness, and where it came from."""

    logs: list[float]
    fitness: float
    origin: str


@dataclass
class EvoState:
    """Everything needed to continue a search; JSON-safe through to_dict/from_dict."""

    config: EvoConfig
    generation: int = 0
    calls_used: int = 0
    archive: list[Entry] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    skipped_seeds: dict[str, str] = field(default_factory=dict)
    finished: bool = False

    def to_dict(self) -> dict:
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "config": asdict(self.config),
                "generation": self.generation, "calls_used": self.calls_used,
                "archive": [[e.logs, e.fitness, e.origin] for e in self.archive], "history": self.history,
                "skipped_seeds": self.skipped_seeds, "finished": self.finished}

    @classmethod
    def from_dict(cls, data: dict) -> EvoState:
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a saved schedule-search state (expected format {STATE_FORMAT!r})")
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"search state version {data.get('version')!r} is not supported (need {STATE_VERSION})")
        try:
            return cls(config=EvoConfig(**data["config"]), generation=int(data["generation"]),
                       calls_used=int(data["calls_used"]),
                       archive=[Entry([float(v) for v in logs], float(fit), str(origin))
                                for logs, fit, origin in data["archive"]],
                       history=[float(v) for v in data["history"]], skipped_seeds=dict(data["skipped_seeds"]),
                       finished=bool(data["finished"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"saved schedule-search state is damaged: {err}") from err


@dataclass(frozen=True)
class EvoResult:
    sigmas: list[float]
    fitness: float
    seed_fitness: dict[str, float]
    evaluated: int
    calls_used: int
    generations: int


def _key(logs: Iterable[float]) -> tuple:
    return tuple(round(v, 9) for v in logs)


class EvoSearch:
    """Population, top-k parents, crossover and mutation over valid schedules; one generation per step()."""

    def __init__(self, config: EvoConfig, evaluate: Evaluate,
                 seeds: dict[str, Sequence[float]] | None = None, state: EvoState | None = None):
        if state is not None:
            frozen = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
            saved = {k: v for k, v in asdict(state.config).items() if k not in RESUMABLE_CHANGES}
            if frozen != saved:
                diff = sorted(k for k in frozen if frozen[k] != saved[k])
                raise ValueError(f"cannot resume: the saved search used other settings for {', '.join(diff)}")
            state.config = config
            state.finished = False
        self.config = config
        self.evaluate = evaluate
        self.state = state if state is not None else EvoState(config=config)
        self.lo, self.hi = math.log(config.sigma_min), math.log(config.sigma_max)
        self.seed_keys: dict[str, tuple] = {}
        self.repaired_seeds: set[str] = set()
        self.seeds = self._prepare_seeds(seeds or {})
        self._index = {_key(e.logs): i for i, e in enumerate(self.state.archive)}

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

    # --- search -------------------------------------------------------------------------------------------------
    def _prepare_seeds(self, seeds: dict[str, Sequence[float]]) -> list[tuple[str, list[float]]]:
        out, seen = [], set()
        for name, sigmas in seeds.items():
            values = [float(v) for v in sigmas]
            body = values[:-1] if values and values[-1] == 0 else values
            if len(body) != self.config.steps or any(not math.isfinite(v) or v <= 0 for v in body):
                self.state.skipped_seeds.setdefault(
                    name, f"has {len(body)} nonzero values, not {self.config.steps}, or a non-positive value")
                continue
            logs = self.repair([math.log(v) for v in body])
            self.seed_keys[name] = _key(logs)
            if any(abs(math.exp(a) - b) > 1e-5 * b for a, b in zip(logs, body)):
                self.repaired_seeds.add(name)  # evaluated as repaired: not exactly the schedule given
            if _key(logs) in seen:
                continue
            seen.add(_key(logs))
            out.append((name, logs))
        return out

    def _rng(self, generation: int) -> random.Random:
        return random.Random(f"evo/{self.config.seed}/{generation}")

    def _scale(self, generation: int) -> float:
        """Mutation step in log σ: the configured scale, shrinking by 10% a generation to a quarter of it (it does
        not depend on the number of generations, so extending a finished search continues its course)."""
        return self.config.mutation_scale * max(0.25, 0.9 ** generation)

    def _random(self, rng: random.Random) -> list[float]:
        n = self.config.steps
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
        return sorted(self.state.archive, key=lambda e: (e.fitness, _key(e.logs)))

    def parents(self) -> list[Entry]:
        """The top_k best candidates evaluated so far."""
        return self._by_fitness()[:self.config.top_k]

    def ranked(self, n: int, include_seeds: bool = True) -> list[tuple[list[float], float, str]]:
        """The n best evaluated candidates as (sigmas, fitness, origin), best first; include_seeds=False leaves out
        the seeded schedules (e.g. to re-score the search's own finds next to the built-ins on fresh samples)."""
        seeded = set(self.seed_keys.values())
        chosen = [e for e in self._by_fitness() if include_seeds or _key(e.logs) not in seeded][:max(n, 0)]
        return [(self.to_sigmas(e.logs), e.fitness, e.origin) for e in chosen]

    def propose(self) -> list[tuple[list[float], str]]:
        """This generation's new candidates (never one already evaluated), cut to what the budget allows."""
        c, g = self.config, self.state.generation
        rng = self._rng(g)
        taken = set(self._index)
        out: list[tuple[list[float], str]] = []

        def add(logs: list[float], origin: str) -> bool:
            k = _key(logs)
            if k in taken:
                return False
            taken.add(k)
            out.append((logs, origin))
            return True

        if g == 0:
            for name, logs in self.seeds:  # every seed, even beyond the population size
                add(logs, name)
            if c.grid and c.steps >= 2:
                for p in GRID_POWERS:
                    for frac in GRID_LAST:
                        last = self.lo + frac * (self.hi - self.lo)
                        add(self.repair([self.hi + (last - self.hi) * (i / (c.steps - 1)) ** p
                                         for i in range(c.steps)]), f"grid-p{p}-last{frac}")
            attempts = 0
            while len(out) < c.population and attempts < 50 * c.population:
                attempts += 1
                if self.seeds and attempts % 2 == 0:
                    add(self._mutate(rng, rng.choice(self.seeds)[1], self._scale(0)), "init-mutation")
                else:
                    add(self._random(rng), "init-random")
        else:
            parents = [e.logs for e in self.parents()]
            scale = self._scale(g)
            for _ in range(c.population):
                for attempt in range(20):
                    if len(parents) >= 2 and rng.random() < c.crossover_fraction and attempt < 10:
                        a, b = rng.sample(parents, 2)
                        ok = add(self._crossover(rng, a, b), f"g{g}-crossover")
                    else:
                        ok = add(self._mutate(rng, rng.choice(parents), scale * (1 + attempt / 5)), f"g{g}-mutation")
                    if ok:
                        break
        if c.budget is not None:
            out = out[:max(c.budget - self.state.calls_used, 0) // c.calls_per_candidate]
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
        candidates = [self.to_sigmas(logs) for logs, _ in proposals]
        fitness = list(self.evaluate(candidates))
        if len(fitness) != len(candidates):
            raise ValueError(f"evaluate returned {len(fitness)} values for {len(candidates)} candidates")
        for (logs, origin), fit in zip(proposals, fitness):
            fit = float(fit)
            self._index[_key(logs)] = len(s.archive)
            s.archive.append(Entry(logs, fit if math.isfinite(fit) else math.inf, origin))
        s.calls_used += len(candidates) * c.calls_per_candidate
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
        if not self.state.archive:
            raise ValueError("no candidate was evaluated: raise the budget to at least one candidate's cost "
                             f"({self.config.calls_per_candidate} model calls)")
        best = self.parents()[0]
        seed_fitness = {name: self.state.archive[self._index[k]].fitness
                        for name, k in self.seed_keys.items() if k in self._index}
        return EvoResult(sigmas=self.to_sigmas(best.logs), fitness=best.fitness, seed_fitness=seed_fitness,
                         evaluated=len(self.state.archive), calls_used=self.state.calls_used,
                         generations=self.state.generation)


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


def search(config: EvoConfig, evaluate: Evaluate, seeds: dict[str, Sequence[float]] | None = None,
           state: EvoState | None = None, on_generation: Callable[[EvoState], None] | None = None) -> EvoResult:
    """Run (or resume) a search to the end; see EvoSearch."""
    return EvoSearch(config, evaluate, seeds, state).run(on_generation)

