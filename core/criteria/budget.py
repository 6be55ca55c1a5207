"""The "budget" rule: spend round(steps / speedup) model calls at regular whole-step gaps (core/budget.py), or run the
sampler on its schedule resampled to that many calls where skipping cannot beat fewer steps (core/budget_run.py).
The per-run decisions are made by core/budget_run.BudgetSkipController, which the patch builds for this rule."""
from __future__ import annotations

from . import Criterion, register
from .fixed import ComputeAll


class Budget(Criterion):
    name = "budget"
    help = ("spend steps / `speedup` model calls, warm-up included, at regular gaps with extrapolated reuse; "
            "samplers that cannot gain from skipping (Brownian-tree SDE, multi-call such as heun) run steps / "
            "`speedup` steps instead. The recommended default.")
    uses_threshold = False
    judges_steps = False  # planned per run from the schedule, never judged against δ

    def start(self, config):
        return ComputeAll()  # only reached when the run cannot skip (speedup 1, an unsupported sampler)

    def disabled_reason(self, config) -> str:
        return "speedup 1: skipping is off" if config.speedup == 1 else ""

    def describe(self, config, delta="δ") -> str:
        return f"budget speedup={config.speedup:g}"

    def caption(self, config, delta="δ") -> str:
        return f"budget, speedup {config.speedup:g}"


register(Budget())
