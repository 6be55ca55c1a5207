"""One run of the budget mode as the pack's patch drives it: the skip-or-resample choice, the controller with the
SkipController interface (decide/store/predict/path), and the words the log line and the SKIP_PATH use."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .budget import BudgetController, budget_calls, choose_mode, resampled_steps
from .config import SkipConfig
from .skip_path import SkipPath


def abscissa_for(signal_scale_at_half: float) -> str:
    """The budget's axis from the model family: the sampler state is α(σ)·x0 + σ·ε; α ≡ 1 (eps / v prediction,
    k-diffusion's VE form) -> log σ; α(σ) = 1 - σ (flow models) -> σ. `signal_scale_at_half` is α(0.5), read
    from ComfyUI's model_sampling.noise_scaling by the patch."""
    return "log" if abs(signal_scale_at_half - 1.0) < 1e-6 else "sigma"


# Samplers whose KSampler schedule is built for one step more and loses its penultimate σ (ComfyUI's
# DISCARD_PENULTIMATE_SIGMA_SAMPLERS): their σ_k sit at k / S of the untrimmed ramp, not k / (S - 1).
TRIMMED = frozenset({"sample_unipc", "sample_unipc_bh2", "sample_dpm_2", "sample_dpm_2_ancestral"})


def resample_schedule(sigmas: Sequence[float], steps: int, trimmed: bool = False,
                      axis: str = "log") -> list[float]:
    """The schedule with `steps` steps: its nonzero σ interpolated linearly in log σ (in σ on the flow axis) at
    evenly spaced fractional positions (first and last nonzero σ kept), and the final 0 kept when it ends in 0 (a
    split schedule that stops above 0 keeps stopping there)."""
    values = [float(s) for s in sigmas]
    ends_in_zero = values[-1] == 0
    body = values[:-1] if ends_in_zero else values
    count = steps if ends_in_zero else steps + 1
    if len(body) < 2 or count < 1:
        return values
    if count == 1:
        out = body[:1]
    else:
        logs = [math.log(s) for s in body] if axis == "log" else list(body)
        out = []
        for j in range(count):
            # trimmed: σ_j of the N-step schedule sits at j / N of the ramp, i.e. at index j·S/N of the S kept σ
            pos = j * len(body) / count if trimmed else j * (len(body) - 1) / (count - 1)
            k = min(int(pos), len(body) - 2)
            w = pos - k
            value = logs[k] * (1 - w) + logs[k + 1] * w
            out.append(math.exp(value) if axis == "log" else value)
        out[0] = body[0]
        if not trimmed:
            out[-1] = body[-1]  # exact ends: the same σ range (and Brownian tree) as the run's own
    return out + [0.0] if ends_in_zero else out


@dataclass(frozen=True)
class BudgetChoice:
    """What a budget run does: skip on the given schedule, or sample a resampled one; and why."""

    mode: str  # "skip" or "resample"
    budget: int  # model calls to spend
    sigmas: list[float]  # the schedule the sampler runs (resampled, or the run's own)
    full_calls: int  # calls the unpatched run would make
    note: str
    axis: str = "log"  # the axis gaps, extrapolation and resampling use (abscissa_for)


def choose(config: SkipConfig, function_name: str, sigmas: Sequence[float],
           calls_in_step: Callable[[int, Sequence[float]], int], axis: str = "log") -> BudgetChoice:
    """Decide skip or resample for this run (from the sampler only) and word the log line's note."""
    sigmas = [float(s) for s in sigmas]
    steps = len(sigmas) - 1
    full_calls = sum(calls_in_step(i, sigmas) for i in range(steps))
    budget = budget_calls(steps, config.speedup)
    per_step = max(calls_in_step(i, sigmas) for i in range(steps))
    mode, why = choose_mode(function_name, per_step)
    if mode == "resample":
        n = min(resampled_steps(budget, per_step), steps)
        new = resample_schedule(sigmas, n, function_name in TRIMMED, axis) if n < steps else sigmas
        note = (f"budget speedup {config.speedup:g}: ran {n} of {steps} steps on the schedule resampled in "
                f"{'log σ' if axis == 'log' else 'σ'} "
                f"({why})")
        return BudgetChoice("resample", sum(calls_in_step(i, new) for i in range(len(new) - 1)), new, full_calls,
                            note, axis)
    where = "log σ" if axis == "log" else "σ"
    note = (f"budget speedup {config.speedup:g}: {budget} model calls at regular {where} gaps, skipped calls "
            f"extrapolated quadratically in {where} ({why})")
    return BudgetChoice("skip", budget, sigmas, full_calls, note, axis)


class BudgetSkipController:
    """The SkipController interface over core/budget.BudgetController, recording a SKIP_PATH of kind "budget"."""

    def __init__(self, config: SkipConfig, sigmas: Sequence[float], costs: Sequence[int], budget: int,
                 space: str = "eps", abscissa: str = "log") -> None:
        self.config = config
        self.total_steps = len(sigmas) - 1
        # no warm-up beyond the first call: regular gaps from step 0 (a 4-call warm-up measured 4-14 dB worse at
        # 8-10 calls of 20 steps, since it bunches calls where d barely changes); warmup_steps is not read
        self.inner = BudgetController(sigmas, costs, budget, warmup=1, space=space, abscissa=abscissa)
        used = dataclasses.replace(config, reuse="quadratic")  # what skipped calls get, whatever `reuse` says
        self.path = SkipPath(sigmas=[float(s) for s in sigmas], config=used, kind="budget", space=space)
        self.path.estimator = self.inner.estimates  # filled as the run goes (measured errors land after decide)

    @property
    def first_judged_step(self) -> int:
        return 1

    def decide(self, step: int, x_measure: torch.Tensor, sigma: float) -> bool:
        compute = self.inner.decide(step)
        self.path.computed.append(compute)
        self.path.forced.append(False)
        self.path.warmup.append(step == 0)
        return compute

    def store(self, x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> None:
        self.inner.store(x, denoised, sigma)

    def predict(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        return self.inner.predict(x, sigma)
