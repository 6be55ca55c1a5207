"""The saved state of a sigma-schedule search (core/schedule_search.py) and its result: plain data, JSON-safe
through to_dict/from_dict, so a search can be resumed exactly."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .schedule_config import EvoConfig, SamplerSchedule

STATE_FORMAT = "adaptive_skip.evo_state"
JOINT_STATE_FORMAT = "adaptive_skip.joint_state"
STATE_VERSION = 1
JOINT_STATE_VERSION = 2  # 2: the joint state holds the EvoConfig with samplers (1 held a JointConfig)


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
