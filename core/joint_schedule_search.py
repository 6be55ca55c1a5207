"""Joint search of the sampler and its σ schedule at a fixed number of model calls per sample (EvoTimestepSchedule
with sampler_name = auto): AutoDiffusion's time-step search with the sampler as one more, categorical, gene.

A candidate is a `SamplerSchedule` (sampler name, σ list ending in 0). Every sampler gets the most steps whose model
calls fit in N (heun-type samplers spend 2 calls a step, 1 on the last step to 0, so heun at N = 5 runs 3 steps and
at N = 4 runs 2 steps = 3 calls: never more than N). Budget is counted per candidate with its sampler's own calls.
The σ genes of one sampler are searched exactly as EvoSearch does (its repair, mutation and crossover, per step
count); a child may switch sampler, its schedule then resampled in log σ to the new sampler's step count.

Only deterministic samplers are genes: a sampler that draws noise (ancestral, SDE, ddpm, lcm, er_sde, seeds,
sa_solver) makes the fitness of one schedule vary with its noise, so the search would select lucky draws.
The state is plain data (to_dict/from_dict); generation g's random numbers come from Random(f"joint/{seed}/{g}"),
so a resumed search ends where an uninterrupted one does.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from .schedule_search import RESUMABLE_CHANGES, EvoConfig, EvoResult, EvoSearch, _key

# ComfyUI's deterministic samplers with a fixed number of model calls per step, in seeding order. Left out, with the
# reason: noise-injecting samplers (see the module docstring); ddim (ComfyUI runs euler for it); the CFG++ variants
# (they change the guidance itself, so they solve another problem than the reference); dpm_fast / dpm_adaptive
# (they choose their own steps, so a schedule does not set their calls).
DETERMINISTIC_SAMPLERS = ("euler", "heun", "heunpp2", "dpm_2", "lms", "dpmpp_2m", "ipndm", "ipndm_v", "deis",
                          "res_multistep", "gradient_estimation", "uni_pc", "uni_pc_bh2")
AUTO = "auto"
STATE_FORMAT = "adaptive_skip.joint_state"
STATE_VERSION = 1


@dataclass(frozen=True)
class SamplerSchedule:
    """One candidate: a sampler and its σ schedule (steps + 1 values ending in 0)."""

    sampler: str
    sigmas: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1


def steps_within(calls_for_steps: Callable[[int], int], calls: int) -> int | None:
    """The most steps s (1..calls) whose model calls, calls_for_steps(s), fit in `calls`; None when none fits."""
    best = None
    for s in range(1, calls + 1):
        if calls_for_steps(s) <= calls:
            best = s
    return best


@dataclass(frozen=True)
class JointConfig:
    """`samplers` holds (name, steps, model calls per sample) for every sampler gene, calls <= `calls` (N).
    A candidate costs its sampler's calls x num_seeds of the budget. `sampler_mutation_prob`: chance that a mutated
    child switches sampler. The σ search settings mean what they mean in EvoConfig."""

    calls: int
    samplers: tuple[tuple[str, int, int], ...]
    sigma_min: float
    sigma_max: float
    num_seeds: int = 1
    population: int = 16
    top_k: int = 4
    mutation_prob: float = 0.3
    sampler_mutation_prob: float = 0.25
    crossover_fraction: float = 0.5
    generations: int = 12
    budget: int | None = None
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "samplers", tuple((str(n), int(s), int(c)) for n, s, c in self.samplers))
        if not self.samplers:
            raise ValueError("the joint search needs at least one sampler")
        names = [n for n, _, _ in self.samplers]
        if len(set(names)) != len(names):
            raise ValueError(f"a sampler is listed twice: {names}")
        for name, steps, calls in self.samplers:
            if steps < 1 or not 1 <= calls <= self.calls:
                raise ValueError(f"sampler {name}: {steps} steps at {calls} model calls does not fit in "
                                 f"{self.calls} calls")
        if not 0.0 <= self.sampler_mutation_prob <= 1.0:
            raise ValueError(f"sampler_mutation_prob must be in [0, 1], got {self.sampler_mutation_prob}")
        self.evo_config(max(s for _, s, _ in self.samplers))  # the σ settings are checked there

    def evo_config(self, steps: int) -> EvoConfig:
        return EvoConfig(steps=steps, sigma_min=self.sigma_min, sigma_max=self.sigma_max, population=self.population,
                         top_k=self.top_k, mutation_prob=self.mutation_prob,
                         crossover_fraction=self.crossover_fraction, generations=self.generations, seed=self.seed)

    def steps_of(self, sampler: str) -> int:
        return next(s for n, s, _ in self.samplers if n == sampler)

    def calls_of(self, sampler: str) -> int:
        """Model calls per sample of this sampler's candidates."""
        return next(c for n, _, c in self.samplers if n == sampler)


@dataclass
class JointEntry:
    sampler: str
    logs: list[float]
    fitness: float
    origin: str


@dataclass
class JointState:
    config: JointConfig
    generation: int = 0
    calls_used: int = 0
    archive: list[JointEntry] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    skipped_seeds: dict[str, str] = field(default_factory=dict)
    finished: bool = False

    def to_dict(self) -> dict:
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "config": asdict(self.config),
                "generation": self.generation, "calls_used": self.calls_used,
                "archive": [[e.sampler, e.logs, e.fitness, e.origin] for e in self.archive],
                "history": self.history, "skipped_seeds": self.skipped_seeds, "finished": self.finished}

    @classmethod
    def from_dict(cls, data: dict) -> JointState:
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a saved joint sampler-schedule search state (expected format {STATE_FORMAT!r})")
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"joint search state version {data.get('version')!r} is not supported")
        try:
            return cls(config=JointConfig(**data["config"]), generation=int(data["generation"]),
                       calls_used=int(data["calls_used"]),
                       archive=[JointEntry(str(s), [float(v) for v in logs], float(fit), str(origin))
                                for s, logs, fit, origin in data["archive"]],
                       history=[float(v) for v in data["history"]], skipped_seeds=dict(data["skipped_seeds"]),
                       finished=bool(data["finished"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"saved joint search state is damaged: {err}") from err


def _never(_candidates):
    raise RuntimeError("the per-sampler helpers only repair and vary schedules; JointSearch evaluates")


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


class JointSearch:
    """Population, top-k parents, crossover and mutation over (sampler, schedule) candidates; the same interface
    as EvoSearch for SchedulePipeline (run, result, ranked, seed_keys, repaired_seeds, state)."""

    def __init__(self, config: JointConfig, evaluate, seeds: dict[str, SamplerSchedule] | None = None,
                 state: JointState | None = None):
        if state is not None:
            frozen = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
            saved = {k: v for k, v in asdict(state.config).items() if k not in RESUMABLE_CHANGES}
            if frozen != saved:
                diff = sorted(k for k in frozen if frozen[k] != saved[k])
                raise ValueError(f"cannot resume: the saved search used other settings for {', '.join(diff)}")
            state.config, state.finished = config, False
        self.config, self.evaluate = config, evaluate
        self.state = state if state is not None else JointState(config=config)
        self.helpers = {name: EvoSearch(config.evo_config(steps), _never) for name, steps, _ in config.samplers}
        self.lo, self.hi = math.log(config.sigma_min), math.log(config.sigma_max)
        self.seed_keys: dict[str, tuple] = {}
        self.repaired_seeds: set[str] = set()
        self.seeds = self._prepare_seeds(seeds or {})
        self._index = {(e.sampler, _key(e.logs)): i for i, e in enumerate(self.state.archive)}

    def _prepare_seeds(self, seeds: dict[str, SamplerSchedule]) -> list[tuple[str, str, list[float]]]:
        out, seen = [], set()
        for name, cand in seeds.items():
            helper = self.helpers.get(cand.sampler)
            body = [float(v) for v in cand.sigmas[:-1]] if cand.sigmas and cand.sigmas[-1] == 0 else []
            if helper is None or len(body) != helper.config.steps or any(not math.isfinite(v) or v <= 0
                                                                         for v in body):
                self.state.skipped_seeds.setdefault(name, f"sampler {cand.sampler} is not searched, or the schedule "
                                                          "does not have its step count")
                continue
            logs = helper.repair([math.log(v) for v in body])
            key = (cand.sampler, _key(logs))
            self.seed_keys[name] = key
            if any(abs(math.exp(a) - b) > 1e-5 * b for a, b in zip(logs, body)):
                self.repaired_seeds.add(name)
            if key not in seen:
                seen.add(key)
                out.append((name, cand.sampler, logs))
        return out

    def candidate(self, sampler: str, logs: Sequence[float]) -> SamplerSchedule:
        return SamplerSchedule(sampler, tuple(self.helpers[sampler].to_sigmas(logs)))

    def _child(self, rng: random.Random, parents: list[JointEntry], scale: float, attempt: int) -> tuple[str, list]:
        c = self.config
        if len(parents) >= 2 and rng.random() < c.crossover_fraction and attempt < 10:
            a, b = rng.sample(parents, 2)  # a's sampler; b's schedule stretched to its step count
            helper = self.helpers[a.sampler]
            other = resample_logs(b.logs, helper.config.steps, self.lo)
            return a.sampler, helper._crossover(rng, a.logs, helper.repair(other))
        parent = rng.choice(parents)
        sampler, logs = parent.sampler, parent.logs
        if len(c.samplers) > 1 and rng.random() < c.sampler_mutation_prob:
            sampler = rng.choice([n for n, _, _ in c.samplers if n != parent.sampler])
            logs = self.helpers[sampler].repair(resample_logs(logs, c.steps_of(sampler), self.lo))
        helper = self.helpers[sampler]
        return sampler, helper._mutate(rng, logs, scale * (1 + attempt / 5))

    def propose(self) -> list[tuple[str, list[float], str]]:
        c, g = self.config, self.state.generation
        rng = random.Random(f"joint/{c.seed}/{g}")
        taken = set(self._index)
        out: list[tuple[str, list[float], str]] = []

        def add(sampler, logs, origin) -> bool:
            k = (sampler, _key(logs))
            if k in taken:
                return False
            taken.add(k)
            out.append((sampler, logs, origin))
            return True

        if g == 0:
            for name, sampler, logs in self.seeds:  # every pair, even beyond the population size
                add(sampler, logs, name)
            attempts = 0
            while len(out) < c.population and attempts < 50 * c.population:
                attempts += 1
                if self.seeds and attempts % 2 == 0:
                    _, sampler, logs = rng.choice(self.seeds)
                    add(sampler, self.helpers[sampler]._mutate(rng, logs, self.helpers[sampler]._scale(0)),
                        "init-mutation")
                else:
                    sampler = rng.choice([n for n, _, _ in c.samplers])
                    add(sampler, self.helpers[sampler]._random(rng), "init-random")
        else:
            parents = self.parents()
            scale = EvoSearch._scale(self.helpers[parents[0].sampler], g)
            for _ in range(c.population):
                for attempt in range(20):
                    sampler, logs = self._child(rng, parents, scale, attempt)
                    if add(sampler, logs, f"g{g}-{sampler}"):
                        break
        if c.budget is not None:
            left, kept = c.budget - self.state.calls_used, []
            for item in out:
                cost = c.calls_of(item[0]) * c.num_seeds
                if cost > left:
                    break
                left -= cost
                kept.append(item)
            out = kept
        return out

    def _by_fitness(self) -> list[JointEntry]:
        return sorted(self.state.archive, key=lambda e: (e.fitness, e.sampler, _key(e.logs)))

    def parents(self) -> list[JointEntry]:
        return self._by_fitness()[:self.config.top_k]

    def ranked(self, n: int, include_seeds: bool = True) -> list[tuple[SamplerSchedule, float, str]]:
        seeded = set(self.seed_keys.values())
        chosen = [e for e in self._by_fitness()
                  if include_seeds or (e.sampler, _key(e.logs)) not in seeded][:max(n, 0)]
        return [(self.candidate(e.sampler, e.logs), e.fitness, e.origin) for e in chosen]

    def step(self) -> bool:
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
            self._index[(sampler, _key(logs))] = len(s.archive)
            s.archive.append(JointEntry(sampler, logs, fit if math.isfinite(fit) else math.inf, origin))
            s.calls_used += c.calls_of(sampler) * c.num_seeds
        s.generation += 1
        s.history.append(self.parents()[0].fitness)
        return True

    def run(self, on_generation=None) -> EvoResult:
        while self.step():
            if on_generation is not None:
                on_generation(self.state)
        return self.result()

    def result(self) -> EvoResult:
        """EvoResult whose `sigmas` is the best SamplerSchedule."""
        if not self.state.archive:
            raise ValueError("no candidate was evaluated: raise the budget to at least one candidate's cost "
                             f"({min(c for _, _, c in self.config.samplers) * self.config.num_seeds} model calls)")
        best = self.parents()[0]
        seed_fitness = {name: self.state.archive[self._index[k]].fitness
                        for name, k in self.seed_keys.items() if k in self._index}
        return EvoResult(sigmas=self.candidate(best.sampler, best.logs), fitness=best.fitness,
                         seed_fitness=seed_fitness, evaluated=len(self.state.archive),
                         calls_used=self.state.calls_used, generations=self.state.generation)

    def sampler_counts(self) -> dict[str, int]:
        """Evaluated candidates per sampler (for the report)."""
        counts: dict[str, int] = {}
        for e in self.state.archive:
            counts[e.sampler] = counts.get(e.sampler, 0) + 1
        return counts
