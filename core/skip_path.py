"""SKIP_PATH: a small JSON-serialisable record of one sampling run's skip decisions."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .config import SkipConfig

FORMAT_VERSION = 1

# What decided a path's skips, and how a caption names the kinds no criterion decided. "rule": the config's
# criterion, judged step by step (C_max applies).
PATH_KINDS = {
    "rule": "",
    "replay": "replayed path",
    "oracle": "oracle path (greedy search)",
    "searched": "searched path (evolutionary search)",
    "budget": "budget path",
}
# SkipConfig fields stored flat in format-1 files (the config's other fields keep their defaults on load)
CONFIG_KEYS = ("threshold", "criterion", "reuse", "max_consecutive_skips", "warmup_steps", "stride", "target_calls",
               "start_percent", "end_percent", "window_sigmas", "speedup")


@dataclass
class SkipPath:
    """One run: per-step decisions plus what is needed to draw, compare and replay it.

    `config` is the setting the run used and `kind` what decided its skips (a key of PATH_KINDS). `model_calls`
    counts noise-predictor calls actually made (one per CFG evaluation); `sampler_calls` counts the calls the
    sampler asked for, i.e. what the run would have cost unpatched. Multi-call samplers (heun, dpm_2, ...) make
    several calls per step, so calls and steps are reported apart.
    """

    sigmas: list[float]
    computed: list[bool] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    warmup: list[bool] = field(default_factory=list)
    estimator: list[float | None] = field(default_factory=list)
    config: SkipConfig = field(default_factory=SkipConfig)
    kind: str = "rule"
    space: str = "eps"  # what skipped calls reuse: d = (x - D)/σ ("eps") or D itself ("denoised")
    sampler: str = ""
    scheduler: str = ""
    model_calls: int = 0
    sampler_calls: int = 0
    wall_time: float = 0.0
    psnr: float | None = None  # +inf: identical to the reference
    note: str = ""
    per_sample: list[list[bool]] = field(default_factory=list)  # per batch element, in per-sample mode
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.kind not in PATH_KINDS:
            raise ValueError(f"SKIP_PATH kind must be one of {', '.join(PATH_KINDS)}; got {self.kind!r}")

    # the config's fields, read through the record (format-1 names)
    @property
    def criterion(self) -> str:
        """The deciding criterion's name, or the kind when no criterion decided (replay, oracle, searched...)."""
        return self.config.criterion if self.kind == "rule" else self.kind

    threshold = property(lambda self: self.config.threshold)
    reuse = property(lambda self: self.config.reuse)
    max_consecutive_skips = property(lambda self: self.config.max_consecutive_skips)
    warmup_steps = property(lambda self: self.config.warmup_steps)

    @property
    def uses_threshold(self) -> bool:
        """A δ was compared at each judged step (the picture draws its line)."""
        return self.kind == "rule" and self.config.rule.uses_threshold

    def rule(self, delta: str = "δ") -> str:
        """What decided the skips, as captions say it: "official δ=0.01", "criterion stride", "replayed path"."""
        if self.kind == "rule" or (self.kind == "budget" and self.config.criterion == "budget"):
            return self.config.rule.caption(self.config, delta)
        return PATH_KINDS[self.kind]

    def setting(self, delta: str = "δ") -> str:
        """The caption's first line: the rule, C_max when a rule applied it, warm-up and reuse."""
        guard = f", C_max={self.max_consecutive_skips}" if self.kind == "rule" else ""
        window = f", window {self.config.window_text()}" if self.config.windowed else ""
        return f"{self.rule(delta)}{guard}, warm-up {self.warmup_steps}, reuse {self.reuse}{window}"

    @property
    def outside_window(self) -> list[bool]:
        """Per step: its sigma lies outside the start/end window, so it called the model whatever the rule said."""
        if not self.config.windowed or self.kind == "replay":
            return [False] * self.steps
        return [not self.config.in_window(s) for s in self.sigmas[:self.steps]]

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

    # ------------------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Format 1, JSON-safe (no inf/nan: an undefined estimator value is null, an identical result's PSNR is
        null with "identical": true), plus "kind" and "rule" (the caption the page shows)."""
        cfg = self.config
        data: dict[str, Any] = {
            "sigmas": list(self.sigmas), "computed": list(self.computed), "forced": list(self.forced),
            "warmup": list(self.warmup),
            "estimator": [v if v is not None and math.isfinite(v) else None for v in self.estimator],
            "threshold": cfg.threshold, "criterion": self.criterion, "reuse": cfg.reuse, "space": self.space,
            "max_consecutive_skips": cfg.max_consecutive_skips, "warmup_steps": cfg.warmup_steps,
            "sampler": self.sampler, "scheduler": self.scheduler, "model_calls": self.model_calls,
            "sampler_calls": self.sampler_calls, "wall_time": self.wall_time, "psnr": self.psnr, "note": self.note,
            "per_sample": [list(m) for m in self.per_sample], "version": self.version,
            "kind": self.kind, "rule": self.rule(), "stride": cfg.stride, "target_calls": cfg.target_calls,
            "uses_threshold": self.uses_threshold,
        }
        if self.kind == "budget":
            data["speedup"] = cfg.speedup
        if self.psnr is not None and not math.isfinite(self.psnr):
            data["psnr"] = None
            data["identical"] = True
        if cfg.windowed:  # only then: a run without a window keeps the exact format-1 record
            data.update(start_percent=cfg.start_percent, end_percent=cfg.end_percent,
                        window_sigmas=[v if math.isfinite(v) else None for v in cfg.window_sigmas],
                        outside_window=self.outside_window)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SkipPath":
        """A record from to_dict's output or a format-1 file saved before "kind" existed."""
        if not isinstance(data, dict) or "sigmas" not in data or "computed" not in data:
            raise ValueError("a SKIP_PATH must be a JSON object with at least 'sigmas' and 'computed'")
        criterion = data.get("criterion", "official")
        kind = data.get("kind", criterion if criterion in PATH_KINDS else "rule")
        settings = {k: data[k] for k in CONFIG_KEYS if k in data}
        if "window_sigmas" in settings:
            settings["window_sigmas"] = tuple(math.inf if v is None else v for v in settings["window_sigmas"])
        if kind != "rule":
            settings.pop("criterion", None)
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in ("config", "kind")}
        if data.get("identical") and data.get("psnr") is None:
            fields["psnr"] = math.inf
        path = cls(**fields, config=SkipConfig(**settings), kind=kind)
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
    return dataclasses.replace(
        paths[0], sigmas=list(paths[0].sigmas), warmup=list(paths[0].warmup), estimator=list(paths[0].estimator),
        computed=[any(step) for step in zip(*(p.computed for p in paths))],
        forced=[any(step) for step in zip(*(p.forced for p in paths))],
        per_sample=[list(p.computed) for p in paths])
