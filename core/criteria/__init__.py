"""Skip criteria as registered strategies: what decides, per step, whether the model is called.

A criterion is an object registered under its name (the value of the node's `criterion` dropdown). It owns its
rule (`start` gives a fresh per-run `Judge`), the first step that rule can judge, whether it reads δ, when a
setting turns it off, and the words that describe it (tooltip, log line, picture caption, page legend).

Adding one: a new module in this folder that subclasses `Criterion` and calls `register(...)`; it is imported by
`REGISTRY.discover` below (after the built-ins, so their dropdown order never changes). Nothing else needs editing.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import SkipConfig
    from ..reuse import PredictionCache


class Judge(Protocol):
    """Per-run state of a criterion: fed every step's latent, asked on judged steps."""

    def observe(self, step: int, x: torch.Tensor) -> None: ...

    def wants_call(self, step: int, sigma: float, cache: "PredictionCache") -> tuple[bool, float | None]:
        """(True to call the model at this step, the estimator value drawn for it or None)."""
        ...


class BlindJudge:
    """A judge that does not look at the latents (stride, calls, error)."""

    def observe(self, step: int, x: torch.Tensor) -> None:
        pass


class Criterion:
    """Base class: a threshold rule that judges from step 1 on and is off at δ = 0. Override what differs."""

    name = ""
    help = ""  # one tooltip sentence, shown after "name: "
    uses_threshold = True  # reads δ (the threshold widget, the δ line of the picture)
    first_step = 1  # the first step this rule can judge; warm-up may push it later
    judges_steps = True  # False for a rule that fixes its calls before the run ("calls")

    def start(self, config: "SkipConfig") -> Judge:
        raise NotImplementedError

    def first_judged_step(self, config: "SkipConfig") -> int:
        """Steps before this one always compute (warm-up, or the rule not yet defined)."""
        return max(config.warmup_steps, self.first_step, 1)

    def plan(self, config: "SkipConfig", total_steps: int) -> list[bool] | None:
        """A compute mask fixed before the run (no per-step judging), or None."""
        return None

    def guard_forces(self, decisions: Sequence[bool], run_of_skips: int, limit: int) -> bool:
        """Would one more skip exceed C_max consecutive reuses? `decisions` are this rule's past ones."""
        return run_of_skips >= limit

    def disabled_reason(self, config: "SkipConfig") -> str:
        """Why this setting can never skip a call, in the words of the input that causes it ("" when it can)."""
        return "threshold 0: skipping is off" if self.uses_threshold and config.threshold == 0 else ""

    def describe(self, config: "SkipConfig", delta: str = "δ") -> str:
        """The rule and its parameter, e.g. "official δ=0.01" (log lines)."""
        return f"{self.name} {delta}={config.threshold:g}" if self.uses_threshold else self.name

    def caption(self, config: "SkipConfig", delta: str = "δ") -> str:
        """The rule as the picture and the page caption it."""
        return self.describe(config, delta) if self.uses_threshold else f"criterion {self.name}"


REGISTRY: Registry[Criterion] = Registry("criterion")
register, get, names, tooltip = REGISTRY.register, REGISTRY.get, REGISTRY.names, REGISTRY.tooltip

from . import trajectory, error, fixed  # noqa: E402,F401  built-ins, in dropdown order
REGISTRY.discover(__name__, __path__, ("trajectory", "error", "fixed"))
