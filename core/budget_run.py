"""One run of the budget mode as the pack's patch drives it: the skip-or-resample choice, the controller with the
SkipController interface (decide/store/predict/path), and the words the log line and the SKIP_PATH use."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .budget import (BROWNIAN_TREE, PLACEMENT, SKIP_ABSCISSA, BudgetController, budget_calls, choose_mode,
                     front_plan, plan_for, resampled_steps)
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
    budget: int  # model calls to spend (the steps outside a start/end window included: they all call)
    sigmas: list[float]  # the schedule the sampler runs (resampled, or the run's own)
    full_calls: int  # calls the unpatched run would make
    note: str
    axis: str = "log"  # the axis a resampled schedule is interpolated along (abscissa_for)
    forced: tuple[bool, ...] = ()  # per step of `sigmas`: outside the start/end window, so it always calls
    placement: str = PLACEMENT  # skip: how the calls are spaced (core/budget.plan_for) ...
    abscissa: str = SKIP_ABSCISSA  # ... and what skipped calls are extrapolated along
    last_gap: int = 0  # front plan: steps of its last gap (0: as long as the others)


def window_span(config: SkipConfig, sigmas: Sequence[float]) -> tuple[int, int]:
    """[first, end) of the steps whose σ lies in the start/end window (the whole run without a window; σ only
    decreases, so the steps inside are contiguous). first == end when no step is inside."""
    steps = len(sigmas) - 1
    if not config.windowed:
        return 0, steps
    inside = [i for i in range(steps) if config.in_window(float(sigmas[i]))]
    return (inside[0], inside[-1] + 1) if inside else (0, 0)


def choose(config: SkipConfig, function_name: str, sigmas: Sequence[float],
           calls_in_step: Callable[[int, Sequence[float]], int], axis: str = "log",
           scheduler: Callable[[int], Sequence[float]] | None = None, scheduler_name: str = "") -> BudgetChoice:
    """Decide skip or resample for this run (from the sampler only) and word the log line's note.

    The budget applies inside the start/end window: its steps get round(steps inside / speedup) calls, every step
    outside calls the model. `scheduler`, when given, is the user's scheduler (recognised from the run's sigmas by
    the patch): n -> its schedule with n steps, used by samplers that resample to follow its noise path exactly."""
    sigmas = [float(s) for s in sigmas]
    steps = len(sigmas) - 1
    costs = [calls_in_step(i, sigmas) for i in range(steps)]
    full_calls = sum(costs)
    first, end = window_span(config, sigmas)
    inside = end - first
    speed = f"budget speedup {config.speedup:g}"
    window = f" inside the {config.window_text()} window" if config.windowed else ""
    if inside == 0:
        note = f"{speed}: no step lies inside the {config.window_text()} window, so every step called the model"
        return BudgetChoice("skip", full_calls, sigmas, full_calls, note, axis, (True,) * steps)
    outside_calls = full_calls - sum(costs[first:end])
    budget = budget_calls(inside, config.speedup)
    per_step = max(costs)
    mode, why = choose_mode(function_name, per_step)
    if mode == "resample":
        n = min(resampled_steps(budget, per_step), inside)
        how = f"steps resampled in {'log σ' if axis == 'log' else 'σ'}"
        if n == inside:
            new = sigmas
        elif inside < steps:
            # only the window's part of the schedule is resampled; its end points stay, so the run keeps its σ range
            part = resample_schedule(sigmas[first:end + 1], n, function_name in TRIMMED and end == steps, axis)
            new = sigmas[:first] + part + sigmas[end + 1:]
        elif scheduler is not None and function_name in BROWNIAN_TREE:
            # the sampler's noise is a Brownian tree over [σ_min, σ_max] of the schedule: N steps of the user's own
            # scheduler are what "fewer steps" means (measured: keeping the run's σ_min instead lost 0.6 / 3.0 dB
            # against the 50-step output at 13 / 20 calls on the flow DiT's simple schedule)
            new = [float(s) for s in scheduler(n)]
            how = f"steps of the {scheduler_name or 'run'}'s own scheduler" if not scheduler_name else \
                f"steps of the {scheduler_name} scheduler itself"
        else:
            # ODE samplers: N steps over the run's own σ range, whose last σ the full run ends on (the flow DiT's
            # `simple` schedule ends higher the fewer its steps: 0.20 at 13 vs 0.058 at 50; keeping 0.058 measured
            # +2.4 / +2.7 dB for deis at 13 / 20 calls against the 50-step output)
            new = resample_schedule(sigmas, n, function_name in TRIMMED, axis)
        new_steps = len(new) - 1
        new_first = first
        new_end = first + (n if n < inside else inside)
        forced = tuple(not (new_first <= i < new_end) for i in range(new_steps))
        note = (f"{speed}: ran {new_steps} of {steps} steps ({n} {how}{window}) ({why})")
        return BudgetChoice("resample", sum(calls_in_step(i, new) for i in range(new_steps)), new, full_calls,
                            note, axis, forced)
    forced = tuple(not (first <= i < end) for i in range(steps))
    outside = f", plus the {outside_calls} calls of the steps outside it" if outside_calls else ""
    # the last gap is shortened only where the calls run to the run's last step (a window closed by a forced call
    # keeps even gaps: that call is not the output)
    computed = resampled_steps(budget, per_step)  # steps whose calls the budget pays (heun: 2 each, 1 on the last)
    if per_step > 1:  # what those steps spend: an odd call left over buys no two-call step
        budget = min(budget, sum(costs[first:first + computed - 1]) + costs[end - 1])
    plan = plan_for(sigmas[first:end + 1], computed, axis, to_the_end=end == steps)
    if plan.placement == "axis":
        where = "log σ" if axis == "log" else "σ"
        placed = (f"at regular {where} gaps (the schedule's steps are uneven along {where}: the plan's gaps would "
                  f"differ {plan.ratio:.1f}x)")
        along = where
    else:
        placed = "at regular whole-step gaps" if config.windowed else gap_words(inside, computed, plan.last_gap)
        if per_step > 1:
            placed = f"({computed} computed steps) {placed}"
        along = "the step index"
    note = (f"{speed}: {budget} model calls{window} {placed}{outside}, skipped calls "
            f"extrapolated quadratically in {along} ({why})")
    return BudgetChoice("skip", budget + outside_calls, sigmas, full_calls, note, axis, forced, plan.placement,
                        plan.abscissa, plan.last_gap)


def gap_words(steps: int, calls: int, last: int = 0) -> str:
    """How `calls` calls sit on `steps` steps under the front placement (with its last gap `last` steps, 0: as
    the others), for the log line ("every 3rd step, the first gap 4, the last 1")."""
    if calls >= steps:
        return "on every step"
    if calls <= 1:
        return "on the first step"
    plan = front_plan(steps, calls, last)
    gaps = [b - a for a, b in zip(plan, plan[1:])]
    tail = ""
    if last and len(gaps) > 1 and gaps[-1] != min(gaps[:-1]):
        tail = f", the last {gaps[-1]}"
        gaps = gaps[:-1]
    base = min(gaps)
    rest = sum(g > base for g in gaps)
    ordinal = {1: "", 2: "2nd ", 3: "3rd "}.get(base, f"{base}th ")
    longer = "" if not rest else (f", the first gap {base + 1}" if rest == 1 else f", the first {rest} gaps {base + 1}")
    return f"every {ordinal}step{longer}{tail}"


class BudgetSkipController:
    """The SkipController interface over core/budget.BudgetController, recording a SKIP_PATH of kind "budget"."""

    def __init__(self, config: SkipConfig, sigmas: Sequence[float], costs: Sequence[int], budget: int,
                 space: str = "eps", forced: Sequence[bool] = (), placement: str = PLACEMENT,
                 abscissa: str = SKIP_ABSCISSA, last_gap: int = 0) -> None:
        self.config = config
        self.total_steps = len(sigmas) - 1
        # no warm-up beyond the first call: regular gaps from step 0 (a 4-call warm-up measured 4-14 dB worse at
        # 8-10 calls of 20 steps, since it bunches calls where d barely changes); warmup_steps is not read. The
        # plan, its last gap and the extrapolation axis come from core/budget.plan_for (BudgetChoice.placement /
        # last_gap / abscissa)
        self.inner = BudgetController(sigmas, costs, budget, warmup=1, space=space, abscissa=abscissa,
                                      forced=forced, placement=placement, last_gap=last_gap)
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
