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
from dataclasses import asdict, dataclass, field

Evaluate = Callable[[list], Sequence[float]]
STATE_FORMAT = "adaptive_skip.evo_state"
JOINT_STATE_FORMAT = "adaptive_skip.joint_state"
STATE_VERSION = 1
JOINT_STATE_VERSION = 2  # 2: the joint state holds the EvoConfig with samplers (1 held a JointConfig)
# The first generation's grid: log σ_i = log σ_max + (log σ_last - log σ_max) (i / (N - 1))^p, with σ_last this far
# up the log range from σ_min. p < 1 takes a big first step, p > 1 small early steps.
GRID_POWERS = (0.5, 0.75, 1.0, 1.5)
GRID_LAST = (0.0, 0.2, 0.4)
# Settings that may change when a saved search is resumed (they extend or shorten it, not change its course).
RESUMABLE_CHANGES = ("generations", "budget")
# What the search varies: every σ (steps), a 2-parameter monotone warp of the seeds (warp), or warps of the seeds and
# of every sampler's linear-in-σ schedules (warp_linear); core/schedule_warp.search_class gives each its class.
SPACES = ("steps", "warp", "warp_linear")


@dataclass(frozen=True)
class SamplerSchedule:
    """One candidate of a search with a sampler gene: a sampler and its σ schedule (steps + 1 values ending in 0)."""

    sampler: str
    sigmas: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1


@dataclass(frozen=True)
class EvoConfig:
    """Search settings. `budget` and `calls_per_candidate` are in model calls (the caller decides the unit,
    e.g. per-sample calls: N steps x calls per step x seeds). A mutation moves each free step with probability
    `mutation_prob` (at least one); a moved step is redrawn anywhere in range with probability `reset_prob`
    (AutoDiffusion's mutation), otherwise nudged by a Gaussian of `mutation_scale` in log σ that shrinks 10% a
    generation. `crossover_fraction` of the children mix two parents step by step. `grid` adds a coarse grid of
    smooth schedules (GRID_POWERS x GRID_LAST) to the first generation, next to the seeds, so the search starts from
    big and small first steps and from several last σ, not only from the built-ins' shapes.

    `space` "warp" searches warps of the seeds instead of every σ (core/schedule_warp.py, WarpSearch).
    `samplers`, when given, is the sampler gene: (name, steps, cost of one candidate in budget units) per sampler,
    `steps` the most of them (calls_per_candidate is then unused); `sampler_mutation_prob` is the chance that a
    mutated child switches sampler."""

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
    samplers: tuple[tuple[str, int, int], ...] = ()
    sampler_mutation_prob: float = 0.25
    space: str = "steps"

    def __post_init__(self):
        def need(ok: bool, message: str):
            if not ok:
                raise ValueError(message)

        object.__setattr__(self, "samplers", tuple((str(n), int(s), int(c)) for n, s, c in self.samplers))
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
        need(0.0 <= self.sampler_mutation_prob <= 1.0,
             f"sampler_mutation_prob must be in [0, 1], got {self.sampler_mutation_prob}")
        need(self.space in SPACES, f"space must be one of {SPACES}, got {self.space!r}")
        if self.samplers:
            names = [n for n, _, _ in self.samplers]
            need(len(set(names)) == len(names), f"a sampler is listed twice: {names}")
            need(all(s >= 1 and c >= 1 for _, s, c in self.samplers),
                 f"every sampler gene needs >= 1 step and >= 1 call: {self.samplers}")
            need(self.steps == max(s for _, s, _ in self.samplers),
                 f"steps ({self.steps}) must be the most steps of the sampler genes {self.samplers}")
        span = math.log(self.sigma_max) - math.log(self.sigma_min)
        need(self.min_log_gap > 0 and (self.steps - 1) * self.min_log_gap <= span,
             f"min_log_gap {self.min_log_gap} leaves no room for {self.steps} steps in log σ range {span:.3f}; "
             f"use a gap below {span / max(self.steps - 1, 1):.4f}")

    def steps_of(self, sampler: str | None) -> int:
        """Steps of a candidate of this sampler (None: the plain search's `steps`)."""
        return self.steps if sampler is None else next(s for n, s, _ in self.samplers if n == sampler)

    def cost_of(self, sampler: str | None) -> int:
        """Budget units one candidate of this sampler costs."""
        return self.calls_per_candidate if sampler is None else next(c for n, _, c in self.samplers if n == sampler)


@dataclass
class Entry:
    """One evaluated candidate: its nonzero σ in log space, fitness, where it came from, and its sampler (None
    without a sampler gene)."""

    logs: list[float]
    fitness: float
    origin: str
    sampler: str | None = None


@dataclass
class EvoState:
    """Everything needed to continue a search; JSON-safe through to_dict/from_dict. A search with a sampler gene
    saves its own format (archive rows start with the sampler), read back by JointState.from_dict."""

    config: EvoConfig
    generation: int = 0
    calls_used: int = 0
    archive: list[Entry] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    skipped_seeds: dict[str, str] = field(default_factory=dict)
    finished: bool = False

    FORMAT = STATE_FORMAT
    VERSION = STATE_VERSION
    KIND = "schedule-search"

    def to_dict(self) -> dict:
        joint = bool(self.config.samplers)
        rows = [[e.sampler, e.logs, e.fitness, e.origin] if joint else [e.logs, e.fitness, e.origin]
                for e in self.archive]
        return {"format": JOINT_STATE_FORMAT if joint else STATE_FORMAT,
                "version": JOINT_STATE_VERSION if joint else STATE_VERSION, "config": asdict(self.config),
                "generation": self.generation, "calls_used": self.calls_used, "archive": rows,
                "history": self.history, "skipped_seeds": self.skipped_seeds, "finished": self.finished}

    @classmethod
    def from_dict(cls, data: dict) -> EvoState:
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise ValueError(f"not a saved {cls.KIND} state (expected format {cls.FORMAT!r})")
        if data.get("version") != cls.VERSION:
            raise ValueError(f"{cls.KIND} state version {data.get('version')!r} is not supported (need {cls.VERSION})")
        try:
            config = EvoConfig(**data["config"])
            joint = bool(config.samplers)
            if joint != (cls.FORMAT == JOINT_STATE_FORMAT):
                raise ValueError("its settings do not match its format")
            rows = [row if joint else [None, *row] for row in data["archive"]]
            return cls(config=config, generation=int(data["generation"]), calls_used=int(data["calls_used"]),
                       archive=[Entry([float(v) for v in logs], float(fit), str(origin),
                                      None if sampler is None else str(sampler))
                                for sampler, logs, fit, origin in rows],
                       history=[float(v) for v in data["history"]], skipped_seeds=dict(data["skipped_seeds"]),
                       finished=bool(data["finished"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"saved {cls.KIND} state is damaged: {err}") from err


class JointState(EvoState):
    """The saved state of a search with a sampler gene (sampler_name auto)."""

    FORMAT = JOINT_STATE_FORMAT
    VERSION = JOINT_STATE_VERSION
    KIND = "joint sampler-schedule search"


@dataclass(frozen=True)
class EvoResult:
    sigmas: list[float] | SamplerSchedule  # a SamplerSchedule with a sampler gene
    fitness: float
    seed_fitness: dict[str, float]
    evaluated: int
    calls_used: int
    generations: int


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
