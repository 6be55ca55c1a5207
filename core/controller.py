"""The skip controller: a small state machine fed one sampler step at a time that answers compute or reuse.

One controller lives for exactly one sampling run. It holds O(1) tensors whatever the step count: the estimator's
last latent (and three differences for the paper form) and the prediction cache's last one to three derivatives.
"""
from __future__ import annotations

import torch

from .config import ESTIMATOR_FIRST_STEP, SkipConfig
from .estimators import make_estimator
from .skip_path import SkipPath
from .reuse import ORDERS, PredictionCache


def even_plan(total_steps: int, warmup: int, calls: int) -> list[bool]:
    """Compute mask spending `calls` model calls over `total_steps`: the warm-up steps, then regular gaps."""
    warmup = min(max(warmup, 1), total_steps)
    calls = min(max(calls, warmup), total_steps)
    plan = [i < warmup for i in range(total_steps)]
    remaining, budget = total_steps - warmup, calls - warmup
    for j in range(budget):
        plan[warmup + (j * remaining) // budget] = True
    return plan


class SkipController:
    """Decides per step whether to call the model, and serves cached predictions on skipped steps.

    Args:
        config: the frozen settings.
        sigmas: the run's sigma schedule, steps+1 values (a truncated list under denoise < 1 is fine).
        space: what skipped calls extrapolate: "eps" (d, the paper) or "denoised" (D, for noise-injecting samplers).
    """

    def __init__(self, config: SkipConfig, sigmas: list[float], space: str = "eps") -> None:
        self.config = config
        self.total_steps = len(sigmas) - 1
        if self.total_steps < 1:
            raise ValueError(f"sigmas must hold at least two values (one step), got {len(sigmas)}")
        self.cache = PredictionCache(ORDERS[config.reuse], space)
        self.estimator = make_estimator(config.criterion)
        self._mask: list[bool] = []  # decisions made by the rule, from the first judged step on (official guard)
        self._run_of_skips = 0
        self.plan = self._make_plan()
        self.path = SkipPath(sigmas=[float(s) for s in sigmas], threshold=float(config.threshold),
                             criterion=config.criterion if config.forced_path is None else "replay",
                             reuse=config.reuse, space=space, max_consecutive_skips=int(config.max_consecutive_skips),
                             warmup_steps=int(config.warmup_steps))

    def _make_plan(self) -> list[bool] | None:
        cfg = self.config
        if cfg.forced_path is not None:
            if len(cfg.forced_path) != self.total_steps:
                raise ValueError(f"forced_path has {len(cfg.forced_path)} steps but this run has {self.total_steps}; "
                                 "replay a SKIP_PATH on a run with the same sampler, scheduler, steps and denoise")
            return [True] + list(cfg.forced_path[1:])  # step 0 has nothing cached to reuse
        if cfg.criterion == "calls" and cfg.target_calls > 0:
            return even_plan(self.total_steps, cfg.warmup_steps, cfg.target_calls)
        return None

    @property
    def first_judged_step(self) -> int:
        """Steps before this one always compute (warm-up, or the estimator not yet defined)."""
        need = {"official": ESTIMATOR_FIRST_STEP, "strict": ESTIMATOR_FIRST_STEP, "paper": ESTIMATOR_FIRST_STEP,
                "error": 2}.get(self.config.criterion, 1)
        return max(self.config.warmup_steps, need, 1)

    def decide(self, step: int, x_measure: torch.Tensor, sigma: float) -> bool:
        """True to call the model at `step`. `x_measure` is the latent entering the step in the model's input form
        (calculate_input(σ, x)), which the trajectory estimators look at."""
        cfg = self.config
        if self.estimator is not None:
            self.estimator.observe(step, x_measure)
        value: float | None = None
        forced = warm = False
        if self.plan is not None:
            compute = self.plan[step] if step < len(self.plan) else True
            warm = step < min(cfg.warmup_steps, len(self.plan)) and cfg.forced_path is None
        elif step < self.first_judged_step or len(self.cache) == 0 or cfg.disabled:
            compute, warm = True, step < self.first_judged_step
        else:
            skip, value = self._rule(step, sigma)
            compute = not skip
            if skip and self._guard_forces():
                compute, forced = True, True
            self._mask.append(compute)
        if len(self.cache) == 0:
            compute = True  # nothing to reuse yet, whatever a replayed path says
        self._run_of_skips = 0 if compute else self._run_of_skips + 1
        self.path.computed.append(compute)
        self.path.forced.append(forced)
        self.path.warmup.append(warm)
        self.path.estimator.append(value)
        return compute

    def _rule(self, step: int, sigma: float) -> tuple[bool, float | None]:
        cfg = self.config
        if self.estimator is not None:
            return self.estimator.test(cfg.threshold)
        if cfg.criterion == "error":
            value = self.cache.disagreement(sigma, self.cache.order)
            return (value is not None and value <= cfg.threshold), value
        if cfg.criterion == "stride":
            return (step - self.first_judged_step) % cfg.stride != 0, None
        return False, None  # "calls" without a target: compute everything

    def _guard_forces(self) -> bool:
        """Would this skip exceed C_max consecutive reuses?"""
        limit = self.config.max_consecutive_skips
        if self.config.criterion == "official":
            # The released code checks `len(mask) > 4 and not any(mask[-C_max:])` on decisions from step 4 on,
            # so steps 4-8 may all be skipped before the guard exists; reproduced here on purpose.
            if len(self._mask) <= 4:
                return False
            tail = self._mask[-limit:]
            return not any(tail)
        return self._run_of_skips >= limit

    def store(self, x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> None:
        """Cache the result of a computed call (every call of a computed step, so heun's corrector counts)."""
        self.cache.store(x, denoised, sigma)

    def predict(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The denoised output served for a skipped call."""
        return self.cache.predict(x, sigma)
