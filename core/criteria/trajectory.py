"""AdaptiveDiffusion's trajectory rules (arXiv 2410.09873): skip where the third-order difference of the latents
is small. "official" is the released code's scalar rule with its late C_max guard, "strict" the same with the
guard from the first decision, "paper" the paper's vector form."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..estimators import ESTIMATOR_FIRST_STEP, OfficialEstimator, PaperEstimator
from . import Criterion, register


class EstimatorJudge:
    """Feeds a trajectory estimator and asks it against δ."""

    def __init__(self, estimator, threshold: float) -> None:
        self.estimator, self.threshold = estimator, threshold

    def observe(self, step: int, x: torch.Tensor) -> None:
        self.estimator.observe(step, x)

    def wants_call(self, step, sigma, cache) -> tuple[bool, float | None]:
        smooth, value = self.estimator.smooth(self.threshold)
        return not smooth, value


class Strict(Criterion):
    name = "strict"
    help = "same, C_max always enforced."
    first_step = ESTIMATOR_FIRST_STEP
    estimator = OfficialEstimator

    def start(self, config):
        return EstimatorJudge(self.estimator(), config.threshold)


class Official(Strict):
    name = "official"
    help = "AdaptiveDiffusion's released rule."

    def guard_forces(self, decisions: Sequence[bool], run_of_skips: int, limit: int) -> bool:
        # The released code checks `len(mask) > 4 and not any(mask[-C_max:])` on decisions from step 4 on,
        # so steps 4-8 may all be skipped before the guard exists; reproduced here on purpose.
        if len(decisions) <= 4:
            return False
        return not any(decisions[-limit:])


class Paper(Strict):
    name = "paper"
    help = "the paper's vector form (needs a larger δ)."
    estimator = PaperEstimator


register(Official())
register(Strict())
register(Paper())
