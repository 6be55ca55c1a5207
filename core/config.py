"""Frozen configuration of one AdaptiveSkip setting, validated once where it is built."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import criteria, reuse_modes

# Dropdown values, derived from the registries (core/criteria/, core/reuse_modes/): official, strict, paper,
# error, stride, calls; hold, linear, quadratic.
CRITERIA = criteria.names()
REUSE_MODES = reuse_modes.names()


@dataclass(frozen=True)
class SkipConfig:
    """Settings of the skip controller. Args are validated in __post_init__ with messages naming the input."""

    threshold: float = 0.01
    max_consecutive_skips: int = 4
    warmup_steps: int = 4
    criterion: str = "official"
    reuse: str = "hold"
    stride: int = 2
    target_calls: int = 0
    forced_path: tuple[bool, ...] | None = field(default=None)
    per_sample: bool = False  # each image of a batch decides on its own latents (official: the whole batch)
    # The start/end window (ComfyUI's convention, as EasyCache's): skipping is allowed only from start_percent to
    # end_percent of the schedule. The node turns the percents into sigmas with model_sampling.percent_to_sigma;
    # window_sigmas = (highest, lowest) sigma a skipped step may have. The defaults allow every step.
    start_percent: float = 0.0
    end_percent: float = 1.0
    window_sigmas: tuple[float, float] = (math.inf, 0.0)
    speedup: float = 2.0  # criterion "budget": spend round(steps / speedup) model calls (1 turns skipping off)

    def __post_init__(self) -> None:
        if not isinstance(self.threshold, (int, float)) or math.isnan(self.threshold) or self.threshold < 0:
            raise ValueError(f"threshold must be a number >= 0 (0 turns skipping off), got {self.threshold!r}")
        if math.isinf(self.threshold):
            raise ValueError("threshold must be finite; use a large value such as 1.0 to skip as much as allowed")
        if int(self.max_consecutive_skips) != self.max_consecutive_skips or self.max_consecutive_skips < 1:
            raise ValueError(f"max_consecutive_skips must be an integer >= 1, got {self.max_consecutive_skips!r}")
        if int(self.warmup_steps) != self.warmup_steps or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {self.criterion!r}")
        if self.reuse not in REUSE_MODES:
            raise ValueError(f"reuse must be one of {', '.join(REUSE_MODES)}; got {self.reuse!r}")
        if int(self.stride) != self.stride or self.stride < 1:
            raise ValueError(f"stride must be an integer >= 1 (1 computes every step), got {self.stride!r}")
        if int(self.target_calls) != self.target_calls or self.target_calls < 0:
            raise ValueError(f"target_calls must be an integer >= 0 (0 means: use the criterion), got {self.target_calls!r}")
        for name in ("start_percent", "end_percent"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0.0 and 1.0 (a fraction of the schedule), got {value!r}")
        if self.start_percent > self.end_percent:
            raise ValueError(f"start_percent ({self.start_percent}) is after end_percent ({self.end_percent}): no step "
                             "could be skipped; lower start_percent or raise end_percent")
        high, low = (float(v) for v in self.window_sigmas)
        if math.isnan(high) or math.isnan(low) or low < 0 or high < low:
            raise ValueError("window_sigmas must be (highest, lowest) with highest >= lowest >= 0, "
                             f"got {self.window_sigmas!r}")
        object.__setattr__(self, "window_sigmas", (high, low))
        if (isinstance(self.speedup, bool) or not isinstance(self.speedup, (int, float)) or math.isnan(self.speedup)
                or math.isinf(self.speedup) or self.speedup < 1):
            raise ValueError(f"speedup must be a finite number >= 1 (1 turns skipping off, 2 spends half the model "
                             f"calls), got {self.speedup!r}")
        if self.forced_path is not None:
            object.__setattr__(self, "forced_path", tuple(bool(v) for v in self.forced_path))

    @property
    def windowed(self) -> bool:
        """True when start_percent / end_percent narrow where skipping is allowed."""
        return self.start_percent > 0.0 or self.end_percent < 1.0

    def in_window(self, sigma: float) -> bool:
        """May a step at this sigma skip? (Steps outside the start/end window always call the model.)"""
        high, low = self.window_sigmas
        return low <= sigma <= high

    @property
    def rule(self) -> criteria.Criterion:
        """The registered criterion this setting names."""
        return criteria.get(self.criterion)

    @property
    def disabled(self) -> bool:
        """True when this setting can never skip a call (threshold 0 under a threshold rule, stride 1, ...)."""
        if self.forced_path is not None:
            return all(self.forced_path)
        return bool(self.rule.disabled_reason(self))

    @property
    def disabled_reason(self) -> str:
        """Why `disabled` holds, in the words of the setting that causes it (empty when it does not)."""
        if not self.disabled:
            return ""
        if self.forced_path is not None:
            return "the replayed path computes every step: skipping is off"
        return self.rule.disabled_reason(self)

    def describe(self) -> str:
        """Short human-readable summary used in log lines and captions."""
        if self.forced_path is not None:
            return f"replayed path, reuse={self.reuse}"
        return (f"{self.rule.describe(self)}, C_max={self.max_consecutive_skips}, warmup={self.warmup_steps}, "
                f"reuse={self.reuse}" + (f", window {self.window_text()}" if self.windowed else ""))

    def window_text(self) -> str:
        """The start/end window as captions say it: "15%-95%"."""
        return f"{self.start_percent:.0%}-{self.end_percent:.0%}"
