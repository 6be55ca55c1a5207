"""The skip controller: a small state machine fed one sampler step at a time that answers compute or reuse.

One controller lives for exactly one sampling run. It holds O(1) tensors whatever the step count: the estimator's
last latent (and three differences for the paper form) and the prediction cache's last one to three derivatives.
"""
from __future__ import annotations

import torch

from .config import SkipConfig
from .criteria.fixed import even_plan  # noqa: F401  (imported from here by the oracle and tests)
from .reuse import PredictionCache
from .skip_path import SkipPath


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
        self.cache = PredictionCache(config.reuse, space)
        self.criterion = config.rule
        self.judge = self.criterion.start(config)
        self._mask: list[bool] = []  # decisions made by the rule, from the first judged step on (official guard)
        self._run_of_skips = 0
        self.plan = self._make_plan()
        self.path = SkipPath(sigmas=[float(s) for s in sigmas], config=config,
                             kind="rule" if config.forced_path is None else "replay", space=space)

    def _make_plan(self) -> list[bool] | None:
        cfg = self.config
        if cfg.forced_path is not None:
            if len(cfg.forced_path) != self.total_steps:
                raise ValueError(f"forced_path has {len(cfg.forced_path)} steps but this run has {self.total_steps}; "
                                 "replay a SKIP_PATH on a run with the same sampler, scheduler, steps and denoise")
            return [True] + list(cfg.forced_path[1:])  # step 0 has nothing cached to reuse
        return self.criterion.plan(cfg, self.total_steps)

    @property
    def first_judged_step(self) -> int:
        """Steps before this one always compute (warm-up, or the criterion's rule not yet defined)."""
        return self.criterion.first_judged_step(self.config)

    def decide(self, step: int, x_measure: torch.Tensor, sigma: float) -> bool:
        """True to call the model at `step`. `x_measure` is the latent entering the step in the model's input form
        (calculate_input(σ, x)), which the trajectory estimators look at."""
        cfg = self.config
        self.judge.observe(step, x_measure)
        value: float | None = None
        forced = warm = False
        outside = cfg.forced_path is None and not cfg.in_window(sigma)  # before start_percent or after end_percent
        if self.plan is not None:
            compute = (self.plan[step] if step < len(self.plan) else True) or outside
            warm = step < min(cfg.warmup_steps, len(self.plan)) and cfg.forced_path is None
        elif step < self.first_judged_step or len(self.cache) == 0 or cfg.disabled or outside:
            compute, warm = True, step < self.first_judged_step
        else:
            compute, value = self.judge.wants_call(step, sigma, self.cache)
            if not compute and self.criterion.guard_forces(self._mask, self._run_of_skips,
                                                           cfg.max_consecutive_skips):
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

    def store(self, x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> None:
        """Cache the result of a computed call (every call of a computed step, so heun's corrector counts)."""
        self.cache.store(x, denoised, sigma)

    def predict(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The denoised output served for a skipped call."""
        return self.cache.predict(x, sigma)
