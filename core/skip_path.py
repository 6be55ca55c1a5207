"""SKIP_PATH: a small JSON-serialisable record of one sampling run's skip decisions."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_VERSION = 1


@dataclass
class SkipPath:
    """One run: per-step decisions plus what is needed to draw, compare and replay it.

    `model_calls` counts noise-predictor calls actually made (one per CFG evaluation); `sampler_calls` counts the
    calls the sampler asked for, i.e. what the run would have cost unpatched. Multi-call samplers (heun, dpm_2, ...)
    make several calls per step, so calls and steps are reported apart.
    """

    sigmas: list[float]
    computed: list[bool] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    warmup: list[bool] = field(default_factory=list)
    estimator: list[float | None] = field(default_factory=list)
    threshold: float = 0.0
    criterion: str = "official"
    reuse: str = "hold"
    space: str = "eps"  # what skipped calls reuse: d = (x - D)/σ ("eps") or D itself ("denoised")
    max_consecutive_skips: int = 4
    warmup_steps: int = 4
    sampler: str = ""
    scheduler: str = ""
    model_calls: int = 0
    sampler_calls: int = 0
    wall_time: float = 0.0
    psnr: float | None = None
    note: str = ""
    per_sample: list[list[bool]] = field(default_factory=list)  # per batch element, in per-sample mode
    version: int = FORMAT_VERSION

    @property
    def steps(self) -> int:
        return len(self.computed)

    @property
    def computed_steps(self) -> int:
        return sum(self.computed)

    @property
    def speedup(self) -> float:
        """Calls the sampler asked for over calls made (1.0 when nothing ran)."""
        return self.sampler_calls / self.model_calls if self.model_calls else 1.0

    def summary(self) -> str:
        """The one log line per run."""
        return (f"AdaptiveSkip: {self.model_calls} of {self.sampler_calls} model calls ({self.speedup:.2f}x), "
                f"{self.computed_steps} of {self.steps} steps computed"
                + (f", sampler {self.sampler}" if self.sampler else "")
                + (f"; {self.note}" if self.note else ""))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # JSON has no inf/nan: an undefined estimator value (division by a zero step) is stored as null
        data["estimator"] = [v if v is not None and math.isfinite(v) else None for v in self.estimator]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SkipPath":
        if not isinstance(data, dict) or "sigmas" not in data or "computed" not in data:
            raise ValueError("a SKIP_PATH must be a JSON object with at least 'sigmas' and 'computed'")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        path = cls(**known)
        if len(path.sigmas) != len(path.computed) + 1:
            raise ValueError(f"SKIP_PATH has {len(path.computed)} steps but {len(path.sigmas)} sigmas; "
                             "expected one more sigma than steps")
        return path

    @classmethod
    def from_json(cls, text: str) -> "SkipPath":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"SKIP_PATH text is not valid JSON: {err}") from None
        return cls.from_dict(data)


def merge_per_sample(paths: list[SkipPath]) -> SkipPath:
    """One record for a batch decided per sample: a step counts as computed when any image computed it."""
    first = paths[0]
    merged = SkipPath(**{**first.to_dict(), "estimator": list(first.estimator)})
    merged.computed = [any(step) for step in zip(*(p.computed for p in paths))]
    merged.forced = [any(step) for step in zip(*(p.forced for p in paths))]
    merged.per_sample = [list(p.computed) for p in paths]
    return merged
