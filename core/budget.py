"""Budget mode: spend exactly round(steps / speedup) model calls, placed where extrapolated reuse errs least,
or run the sampler on the schedule resampled to that many calls where skipping cannot beat it.

Why this rule (measured with scripts/bench/budget_study.py and budget_grid.py; figures in BENCHMARKS.md, "Budget mode"):
- A skipped call served by d = (x - D)/σ extrapolated with a degree-p polynomial in λ = log σ makes the coarse grid
  of real calls an order-(p+1) Adams-Bashforth scheme in λ, while the sampler still integrates on its own fine
  grid (skipped grid steps cost no call). Against the sampler's full-step output only the coarse scheme's error
  remains; running fewer steps instead leaves the sampler's order q on the coarse grid. So skipping pays exactly
  when p + 1 > q. Holding d (p = 0) gives order 1: it can never beat fewer steps, which is what was measured.
- The plan (session 3): calls at whole-step gaps of the run's own schedule, every gap q or q + 1 steps with the
  q + 1 gaps first (steps - 1 = q·(N - 1) + r), and skipped calls extrapolated along the step index. Regular gaps
  condition the extrapolation best, and with the extrapolation along the index the nodes are exactly evenly spaced,
  so its weights are those of a constant-step scheme; the nodes follow the user's scheduler's own density (what N
  steps of it would use). Measured on the flow DiT and digits (8 seeds, budget − (a) against the 50-step output at
  13 / 17 / 20 / 25 calls), this beat the previous plan (regular gaps in log σ, σ on flow models) on both models:
  flow dpmpp_2m +5.6 / +5.6 / +6.0 / +2.6 dB (was +4.2 / −0.8 / +3.2 / +3.8), euler +9.1 / +10.7 / … / +9.0 (was
  +5.9 / +2.1 / +3.8 / +7.4), deis and ipndm at 17 calls +5.5 / +5.7 (were −1.4 / −1.7); digits dpmpp_2m 60.1 / 61.4
  / 62.3 / 66.5 dB (was 55.4 / 59.8 / 63.0 / 63.1). Regular gaps in λ snap to uneven step patterns (flow, 17 calls:
  gaps 8,6,5,5,4,3,3,2,2,2,2,2,1,1,2,1). Extrapolating along σ (DiT) or log σ (digits) instead of the index with the
  same plan was 0-2 dB worse in every cell measured (flow dpmpp_2m +3.6 / +4.2 / +5.0 / +2.1; digits deis 57.9 /
  60.7 against 59.9 / 61.3 at 13 / 17 calls). The uneven gaps go first because the first gaps extrapolate from
  one or two nodes anyway and the output is the last step's D; putting the longer gap last (plain index spacing)
  lost 3.6 dB on flow dpmpp_2m at 25 calls.
- The last gap (session 4): the output is the last call's prediction, so the extrapolation error of the gap that
  ends there reaches it undamped (making one gap's skipped steps real, flow DiT euler at 13 calls: the last gap is
  worth +2.1 dB, every other gap -1.1 to +0.5), while its nodes stay evenly spaced whatever its length. It gets the
  whole number of steps whose length along the axis is nearest the mean gap along it (last_gap): 2 / 1 / 1 / 1 steps
  on the DiT's simple at 13 / 17 / 20 / 25 calls of 50 (its σ steps grow ~9x towards the end), 3 / 2 / 2 / 1 on
  digits' karras (log σ steps grow ~2x). Flow euler at 13 calls 54.1 dB against the 50-step output (+12.6 over
  13 plain steps; the even plan +9.1), flow dpmpp_2m 53.7 / 55.7 / 57.0 / 57.1 (was 48.5 / 52.0 / 54.7 / 54.9);
  digits gained 2-4 dB at 17 calls; 9 digits cells and 2 DiT cells lost up to 1.1 dB (digits euler 25 calls -1.0).
- The front plan needs a schedule that is smooth along the family's axis (log σ; σ for flow models). Digits'
  ddim_uniform ends in steps that jump in log σ (…, -1.6, -2.0, -3.2) and lost 10-14 dB with it (43.8 / 48.8 / 57.2
  vs 57.5 / 60.0 / 64.1 dB at 13 / 17 / 25 calls); the plan's consecutive gaps measured along the axis differ 4.0-4.2x
  there, 1.2-1.45x on karras and on the DiT's simple / ddim_uniform. Above SMOOTH_LIMIT (2.5) the run keeps regular
  gaps along the axis (plan_for).
- Re-gridding was measured and rejected: running the user's scheduler (or the run's schedule interpolated) at
  M = (N - 1)·k + 1 steps with a call every k-th step makes every gap exactly k, but an M-step grid is itself only
  59 dB (flow, the scheduler's σ_min moves with the step count) or 62.7 dB (digits, whose eps model quantises its
  timestep) from the 50-step output, and cost 1.4-4.9 dB on digits at 17-25 calls; on the DiT it gained at 17 calls
  (+3.3 dB over (a) for dpmpp_2m) but stayed below the front plan (+5.6).
- Choosing the order per gap by a back-test (quadratic or linear, whichever predicted the last call better) picked
  linear 57-67 % of the time and lost 3-8 dB on digits (dpmpp_2m 53.1 / 58.6 at 13 / 17 calls against 60.1 / 61.4).
  Linear alone is close on the DiT (dpmpp_2m +5.3 / +5.9 / +7.6 / +2.9) but loses 1-5 dB on digits, and linear
  skipping on dpmpp_2m is coarse 2M (analytic mixture, 40.8 vs 40.8 dB): the order stays 2.
- BudgetController still offers gaps regular along the axis (placement "axis", the default of the class) with
  λ = log σ for eps / v models and σ for flow models (core/budget_run.abscissa_for); the resample uses that axis.
- Placing calls by a local error estimate was tried and measured worse: step-size control on the error measured at
  each call (real d against the prediction the skipped steps used; h ∝ (c̄ / c)^(1/(p+1)) on c = e / h^(p+1)) lost
  8-14 dB to regular gaps on an analytic mixture and tied them on the digits model, and choosing the order per
  sample by a back-test picked linear and lost 1-5 dB: uneven nodes inflate the extrapolation weights. So the
  default keeps gaps regular (adapt = 1); the control stays available (adapt > 1) for the study.
- heun skips whole steps (session 4): a computed step spends both calls (its corrector sits off the trajectory and
  is not a node), a skipped step's two calls land on the extrapolation at σ_i and σ_i+1, so the step is the
  trapezoid integral of the extrapolated d. On the front plan along the index: digits 38.1 / 49.1 / 49.3 / 59.6 dB at
  13 / 17 / 19 / 25 calls against 30.0 / 36.8 / 39.4 / 45.0 for fewer heun steps; the flow DiT 39.5 / 45.7 / 46.9 /
  54.1 against 43.5 / 46.7 / 45.9 / 52.5 for the resample (better there at 13 / 17 calls; skipping stays 0.4 dB
  above (a) at 13). (The earlier -16 dB at 13 calls was measured with regular log σ gaps, extrapolated in log σ.)
  The other multi-call samplers (dpm_2's midpoint, dpmpp_sde, heun++) were not measured skipping and resample.
- Samplers that inject noise from ComfyUI's Brownian tree (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde): a predicted D
  cannot answer freshly injected noise (skipping lost 8.6 / 4.0 dB at 13 / 20 calls), so they resample, to N steps
  of the user's own scheduler when the patch recognises it (the tree spans the schedule's [σ_min, σ_max], so the
  noise path, too, is then that of N steps; an interpolated schedule keeping the run's σ_min lost 0.6 / 3.0 dB at
  13 / 20 calls on the flow DiT). Samplers with per-step noise (euler_ancestral, ...) would draw a different path
  when resampled: they skip (in D, see reuse_space).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .reuse_modes import lagrange_weights
from .sampler_steps import NOISE_INJECTING

EXTRAPOLATION_ORDER = 2  # p: quadratic
# The axis of gaps and extrapolation: log σ for models whose sampler state is x0 + σ·ε (eps / v prediction, where
# log σ is minus half the log-SNR), σ itself for flow models (x = (1 - σ)·x0 + σ·ε, whose velocity d is designed
# to be smooth in σ = t, and where log σ crowds every call into the last few steps of the schedule).
ABSCISSAE = ("log", "sigma", "index")
PLACEMENTS = ("axis", "index", "front")  # regular gaps along the axis / in step index / in index, longer first
PLACEMENT = "front"  # the budget mode's plan: whole-step gaps of the run's own schedule, the longer ones first
SKIP_ABSCISSA = "index"  # and the axis its skipped calls are extrapolated along: the step index
# The front plan needs a schedule that is smooth along the model family's axis: where two consecutive gaps of the plan
# differ in length along the axis by more than this factor, the step index is not a smooth variable for d, and the
# calls go at regular gaps along the axis instead (measured: digits ddim_uniform, whose last step spans 1.2 in log σ
# against 0.07-0.11 for the others, has gap ratios 4.0-4.2 and lost 10-14 dB with the front plan; karras on digits and
# simple / ddim_uniform on the flow DiT have 1.2-1.45 and gained)
SMOOTH_LIMIT = 2.5


def front_plan(steps: int, calls: int, last: int = 0) -> list[int]:
    """The steps the front placement calls when `calls` of `steps` steps are free: gaps of q + 1 steps first, then
    q; with `last` > 0 the last gap is `last` steps and the others share the rest the same way."""
    if calls >= steps:
        return list(range(steps))
    if calls <= 1:
        return [0]
    if last and calls > 2:
        head = front_plan(steps - last, calls - 1)
        return head + [steps - 1]
    q, r = divmod(steps - 1, calls - 1)
    out = [0]
    for j in range(calls - 1):
        out.append(out[-1] + (q + 1 if j < r else q))
    return out


def _positions(sigmas: Sequence[float], axis: str) -> list[float]:
    """Where each nonzero σ of `sigmas` sits along `axis` ("log" σ or "sigma")."""
    return [math.log(float(s)) if axis == "log" else float(s) for s in sigmas if s > 0]


def gap_ratio(sigmas: Sequence[float], calls: int, axis: str) -> float:
    """Largest ratio of the lengths along `axis` ("log" σ or "sigma") of two consecutive gaps of the front plan
    over the nonzero σ of `sigmas` (1 for fewer than two gaps)."""
    at = _positions(sigmas, axis)
    plan = [at[i] for i in front_plan(len(at), calls)]
    lengths = [a - b for a, b in zip(plan, plan[1:])]
    ratios = [max(a / b, b / a) if a > 0 and b > 0 else math.inf for a, b in zip(lengths, lengths[1:])]
    return max(ratios, default=1.0)


def last_gap(sigmas: Sequence[float], calls: int, axis: str) -> int:
    """Steps of the front plan's last gap (0: the plan has fewer than two gaps): the whole number of steps, at
    most the plan's regular gap q, whose length along `axis` is nearest (in ratio) the mean gap along it, i.e. the
    length a plan regular along the axis would give every gap. The output is the last call's prediction, so the
    last gap's extrapolation error reaches it undamped, while its nodes (the calls before it) stay evenly spaced
    in the step index whatever its length. Ties keep the longer gap."""
    at = _positions(sigmas, axis)
    steps = len(at)
    if calls < 3 or calls >= steps:
        return 0
    q = (steps - 1) // (calls - 1)
    mean = (at[0] - at[-1]) / (calls - 1)
    if not mean > 0:
        return q

    def miss(length: int) -> float:
        span = at[steps - 1 - length] - at[-1]
        return abs(math.log(span / mean)) if span > 0 else math.inf
    return min(range(q, 0, -1), key=miss)


@dataclass(frozen=True)
class Plan:
    """How a skipping budget run places its calls (plan_for): the placement and the abscissa skipped calls are
    extrapolated along; for the front plan the last gap's steps; the schedule's gap ratio that chose between them."""

    placement: str
    abscissa: str
    last_gap: int = 0
    ratio: float = 1.0


def plan_for(sigmas: Sequence[float], calls: int, axis: str, to_the_end: bool = True) -> Plan:
    """The budget mode's plan for a run: the front plan along the step index where the schedule is smooth along
    `axis` (gap_ratio <= SMOOTH_LIMIT), its last gap from last_gap when the calls run to the run's last step
    (`to_the_end`; a window closed by a forced call keeps even gaps), else regular gaps along the axis."""
    ratio = gap_ratio(sigmas, calls, axis)
    if ratio <= SMOOTH_LIMIT:
        return Plan(PLACEMENT, SKIP_ABSCISSA, last_gap(sigmas, calls, axis) if to_the_end else 0, ratio)
    return Plan("axis", axis, 0, ratio)


ADAPT_LIMIT = 1.0  # > 1: the error control may shorten a gap by this factor (measured worse, so off)

# Order of accuracy of each ComfyUI sampler function (a property of the method; ComfyUI 0.3.64 defaults).
SOLVER_ORDER = {
    "sample_euler": 1, "sample_euler_ancestral": 1, "sample_euler_ancestral_RF": 1, "sample_ddpm": 1,
    "sample_lcm": 1, "sample_heun": 2, "sample_heunpp2": 3, "sample_dpm_2": 2, "sample_dpm_2_ancestral": 2,
    "sample_dpm_2_ancestral_RF": 2, "sample_dpmpp_2s_ancestral": 2, "sample_dpmpp_2s_ancestral_RF": 2,
    "sample_dpmpp_2m": 2, "sample_res_multistep": 2, "sample_res_multistep_ancestral": 2,
    "sample_gradient_estimation": 2, "sample_lms": 4, "sample_ipndm": 4, "sample_ipndm_v": 4, "sample_deis": 3,
    "sample_unipc": 3, "sample_unipc_bh2": 3, "sample_dpmpp_sde": 2, "sample_dpmpp_2m_sde": 2,
    "sample_dpmpp_2m_sde_gpu": 2, "sample_dpmpp_2m_sde_heun": 2, "sample_dpmpp_2m_sde_heun_gpu": 2,
    "sample_dpmpp_3m_sde": 3, "sample_dpmpp_3m_sde_gpu": 3, "sample_er_sde": 3, "sample_sa_solver": 3,
    "sample_seeds_2": 2, "sample_seeds_3": 3, "sample_exp_heun_2_x0": 2, "sample_exp_heun_2_x0_sde": 2,
}
# Multi-call samplers that skip whole steps: heun's second call sits on the next step's σ, so on a skipped step both
# calls are the same polynomial's values and the step is its trapezoid integral (dpm_2's midpoint, dpmpp_sde's
# Brownian noise and heun++'s lookahead were not measured: they resample).
SKIP_WHOLE_STEPS = frozenset({"sample_heun"})
# Samplers whose injected noise comes from a BrownianTreeNoiseSampler over the run's σ range.
BROWNIAN_TREE = frozenset({
    "sample_dpmpp_sde", "sample_dpmpp_sde_gpu", "sample_dpmpp_2m_sde", "sample_dpmpp_2m_sde_gpu",
    "sample_dpmpp_2m_sde_heun", "sample_dpmpp_2m_sde_heun_gpu", "sample_dpmpp_3m_sde", "sample_dpmpp_3m_sde_gpu",
})


def budget_calls(full_calls: int, speedup: float) -> int:
    """Model calls a run may spend: round(full_calls / speedup), at least 1. full_calls is the step count
    (the budget counts model calls; a heun step spends two)."""
    if isinstance(speedup, bool) or not isinstance(speedup, (int, float)) or math.isnan(speedup) or speedup < 1:
        raise ValueError(f"speedup must be a number >= 1 (1 turns skipping off), got {speedup!r}")
    if math.isinf(speedup):
        raise ValueError("speedup must be finite; 4 already spends a quarter of the calls")
    return max(1, int(round(full_calls / speedup)))


def choose_mode(function_name: str, calls_per_step: int = 1) -> tuple[str, str]:
    """("skip" or "resample", why) for a sampler function, from what the sampler is (never from the model)."""
    short = function_name.removeprefix("sample_")
    if calls_per_step > 1 and function_name in SKIP_WHOLE_STEPS:
        # measured (session 4, 8 seeds, vs the 50-step output at 13 / 17 / 19 / 25 calls): skipping whole steps
        # 38.1 / 49.1 / 49.3 / 59.6 dB on digits against 30.0 / 36.8 / 39.4 / 45.0 for fewer heun steps; on the flow
        # DiT 39.5 / 45.7 / 46.9 / 54.1 against 43.5 / 46.7 / 45.9 / 52.5 (fewer heun steps win there at 13-17 calls)
        return "skip", (f"{short} makes {calls_per_step} calls per step, the second on the next step's σ: whole steps "
                        "are skipped, a skipped step integrating the extrapolated d by the trapezoid rule, and a "
                        "computed step's calls are both real")
    if calls_per_step > 1:
        return "resample", (f"{short} makes {calls_per_step} calls per step: a computed step buys one "
                            "extrapolation node for the price of two of its own steps")
    if function_name in BROWNIAN_TREE:
        return "resample", (f"{short} injects Brownian-tree noise, which a skipped call cannot answer: it runs "
                            "fewer steps")
    order = SOLVER_ORDER.get(function_name)
    if order is None:
        return "resample", f"{short}'s order is not known, so skipping is not sure to beat fewer steps"
    if order > EXTRAPOLATION_ORDER and function_name in NOISE_INJECTING:
        return "resample", (f"{short} is order {order} and injects noise: skipping it was never measured to beat "
                            "fewer of its own steps")
    if order > EXTRAPOLATION_ORDER:
        # measured (8 seeds, vs the 50-step output): skipping beat N steps of ipndm by +9.5/+4.5/+3.4/+2.1 dB at
        # 13/17/20/25 calls on digits and +2.3/+1.5/+4.0 at 13/20/25 on the flow DiT, deis +5.2/+6.0 and uni_pc
        # +6.4/+2.8 at 13/20 on digits: the resampled multistep sampler spends its low-order start-up steps on
        # N long steps, the skipping run on the fine grid
        return "skip", (f"{short} is order {order}, but N of its own steps start up at low order on long steps; "
                        f"calls extrapolated quadratically keep its fine grid")
    return "skip", (f"{short} is order {order}: calls extrapolated quadratically raise it to "
                    f"{EXTRAPOLATION_ORDER + 1}")


def resampled_steps(budget: int, calls_per_step: int) -> int:
    """Steps of the resampled schedule that spend at most `budget` calls (k-call samplers: one on the last step)."""
    if calls_per_step <= 1:
        return max(1, budget)
    return max(1, (budget - 1) // calls_per_step + 1)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ||a - b|| / ||b|| over all but the batch dimension."""
    a, b = a.flatten(1).float(), b.flatten(1).float()
    return torch.linalg.vector_norm(a - b, dim=1) / torch.linalg.vector_norm(b, dim=1).clamp_min(1e-12)


class BudgetController:
    """Spends `budget` model calls over a run, re-planning the gaps after each call; serves skipped calls from d
    (or D for noise-injecting samplers) extrapolated quadratically along `abscissa`. O(4) cached tensors.

    Args:
        sigmas: the run's schedule (steps + 1 values). costs: model calls each step makes when computed.
        budget: model calls to spend, warm-up included. warmup: leading steps that always call.
        space: "eps" (d) or "denoised" (D). adapt: largest stretch/shrink of a gap (1 keeps them regular).
        abscissa: what skipped calls are extrapolated along ("log" σ, "sigma", or the step "index").
        placement: "axis" (regular gaps along the abscissa), "index" (regular in step index) or "front" (whole-step
            gaps differing by at most one step, the longer ones first: the budget mode's plan).
        forced: per step, True where the step always calls (outside the start/end window); their calls are part of
            `budget`, and the rest of it is spread at regular gaps over the steps that are free to skip.
        last_gap: front placement: steps of the gap that ends on the run's last step (0: as long as the others;
            see last_gap()); the other gaps share the rest, the longer first.
    """

    def __init__(self, sigmas: Sequence[float], costs: Sequence[int], budget: int, warmup: int = 1,
                 space: str = "eps", adapt: float = ADAPT_LIMIT, order: int = EXTRAPOLATION_ORDER,
                 abscissa: str = "log", forced: Sequence[bool] = (), placement: str = "axis",
                 last_gap: int = 0) -> None:
        self.sigmas = [float(s) for s in sigmas]
        self.costs = [int(c) for c in costs]
        if len(self.costs) != len(self.sigmas) - 1:
            raise ValueError(f"costs has {len(self.costs)} steps but sigmas {len(self.sigmas) - 1}")
        if budget < 1:
            raise ValueError(f"budget must be at least 1 model call, got {budget}")
        if space not in ("eps", "denoised"):
            raise ValueError(f"space must be 'eps' or 'denoised', got {space!r}")
        if abscissa not in ABSCISSAE:
            raise ValueError(f"abscissa must be one of {', '.join(ABSCISSAE)}, got {abscissa!r}")
        if adapt < 1:
            raise ValueError(f"adapt must be >= 1 (1 keeps gaps regular), got {adapt}")
        self.forced = [bool(f) for f in forced] or [False] * len(self.costs)
        if len(self.forced) != len(self.costs):
            raise ValueError(f"forced has {len(self.forced)} steps but sigmas {len(self.costs)}")
        self.budget, self.warmup, self.space, self.adapt, self.order = int(budget), int(warmup), space, adapt, order
        self.abscissa = abscissa
        self.lams = [self._at(s) for s in self.sigmas]
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
        self.placement = placement
        if last_gap < 0:
            raise ValueError(f"last_gap must be >= 0 steps (0: as long as the others), got {last_gap}")
        self.last_gap = int(last_gap)
        # where each step sits for spacing the calls: along the axis, or at its step index (decreasing, like λ)
        self.places = self.lams if placement == "axis" else [-float(i) for i in range(len(self.sigmas))]
        self.spent = 0
        self.computed: list[bool] = []
        self.estimates: list[float | None] = []  # per step: measured error (computed) or estimated (skipped)
        self._last = -1  # last computed step
        self._nodes: list[tuple[float, torch.Tensor]] = []  # (λ, value) of the newest calls
        self._consts: list[float] = []  # measured error constants e / h^(p+1) after each gap
        self._pending_gap = False  # the next stored call ends a gap: measure its prediction error
        self._stored_step = -1  # the step whose first call is the newest node

    # --- deciding ---
    def decide(self, step: int) -> bool:
        """True to call the model at `step` (steps are decided in order, once each)."""
        compute = self._decide(step)
        if compute:
            self.spent += self.costs[step]
            self._pending_gap = self._last >= 0 and step - self._last > 1
            self._last = step
            self.estimates.append(None)
        else:
            self.estimates.append(self.disagreement(self.sigmas[step]))
        self.computed.append(compute)
        return compute

    def _decide(self, step: int) -> bool:
        n = len(self.costs)
        if self.forced[step]:
            return True  # outside the start/end window: always a call (paid from its own part of the budget)
        # the calls left that are free to place: what forced steps still to come will spend is not ours
        left = self.budget - self.spent - sum(c for c, f in zip(self.costs[step:], self.forced[step:]) if f)
        if not self._nodes:
            return True  # nothing to extrapolate from (the first call is spent even if the budget is 0)
        if self.costs[step] > left:
            return False
        # the stretch of free steps this one belongs to ends at `end`: a forced call, or the run's last step
        end = next(i for i in range(step, n) if self.forced[i] or i == n - 1)
        free = [i for i in range(step, end + 1) if not self.forced[i]]
        free_cost = sum(self.costs[i] for i in free)
        if left >= free_cost or step == n - 1:
            return True
        end_paid = not self.forced[end]  # the run's last step: its call comes out of `left`
        if end_paid and left - self.costs[step] < self.costs[end]:
            return False  # keep the last step's call: the output is its prediction
        if step < self.warmup:
            return True
        if end_paid:
            # whole computed steps left: the run's last step (heun: one call) and the rest at their mean cost (an
            # odd call left over buys no two-call step)
            rest = len(free) - 1  # the free steps before `end` (end is free here: not forced)
            mean = (free_cost - self.costs[end]) / rest if rest else 0.0
            future = 1 + math.floor((left - self.costs[end]) / mean + 1e-9) if rest else 1.0
        else:
            future = left / (free_cost / len(free)) + 1  # the forced call at `end` closes the last gap for free
        at = self.places
        gap = (at[self._last] - at[end]) / max(future, 1e-9)
        if self.placement == "front":
            mid = end - self.last_gap  # where the gap before the shortened last one ends
            if end_paid and self.last_gap and mid > self._last:
                if step > mid:
                    return False  # inside the last gap: the run's last step calls
                gap = (mid - self._last) / max(future - 1, 1e-9)
            # whole steps: the next gap is the longest the rest needs, so the gaps that divide unevenly come first
            return step - self._last >= math.ceil(gap - 1e-9)
        gap *= self._factor()
        gone = at[self._last] - at[step]
        half = 0.5 * (at[step] - at[step + 1]) if math.isfinite(at[step + 1]) else 0.0
        return gone + half >= gap

    def _factor(self) -> float:
        """Step-size control: a shorter gap where the last measured error constant is above the run's mean."""
        if self.adapt == 1 or len(self._consts) < 2:
            return 1.0
        mean = math.exp(sum(math.log(c) for c in self._consts) / len(self._consts))
        f = (mean / self._consts[-1]) ** (1.0 / (self.order + 1))
        # only shrink: the re-plan after each call spreads what a shortened gap spent over the rest evenly (a
        # stretch would push calls to the end, where they pile up once the steps left run short)
        return min(max(f, 1.0 / self.adapt), 1.0)

    def _at(self, sigma: float) -> float:
        """Where σ sits on the axis gaps are regular in and extrapolation runs along."""
        if self.abscissa == "sigma":
            return sigma
        if self.abscissa == "index":  # minus the (fractional) step index of σ in the run's schedule
            sig = self.sigmas
            for i in range(len(sig) - 1):
                if sig[i] >= sigma >= sig[i + 1]:
                    return -(i + (sig[i] - sigma) / (sig[i] - sig[i + 1]) if sig[i] > sig[i + 1] else i)
            return -0.0 if sigma > sig[0] else -float(len(sig) - 1)
        return math.log(sigma) if sigma > 0 else -math.inf

    # --- caching and predicting ---
    def _value(self, x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> torch.Tensor:
        return ((x - denoised) / sigma).detach().float() if self.space == "eps" else denoised.detach().float()

    def _extrapolate(self, lam: float, order: int | None = None) -> torch.Tensor:
        order = self.order if order is None else order
        nodes = self._nodes[-(order + 1):]
        if len(nodes) == 1:
            return nodes[0][1]
        weights = lagrange_weights([l for l, _ in nodes], lam)
        out = nodes[0][1] * weights[0]
        for w, (_, v) in zip(weights[1:], nodes[1:]):
            out = out + w * v
        return out

    def store(self, x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> None:
        """Cache a computed call (each call of a computed step, so heun's corrector counts)."""
        if sigma <= 0:
            return
        if self._stored_step == self._last:
            # a later call of a multi-call step (heun's corrector, dpm_2's midpoint) is evaluated off the
            # trajectory, next to the step's first call: as a node it would make the spacing irregular and its
            # O(h²) offset would be amplified by the extrapolation weights
            return
        self._stored_step = self._last
        lam = self._at(sigma)
        value = self._value(x, denoised, sigma)
        if self._pending_gap and self._nodes and self._nodes[-1][0] > lam:
            # the prediction the skipped steps extrapolated, measured against the real call at the gap's end
            h = self._nodes[-1][0] - lam
            e = float(rel_err(self._extrapolate(lam), value).mean())
            if self.estimates:
                self.estimates[-1] = e
            if e > 0 and math.isfinite(e):
                self._consts.append(e / h ** (self.order + 1))
        self._pending_gap = False
        if self._nodes and self._nodes[-1][0] == lam:
            self._nodes.pop()
        self._nodes.append((lam, value))
        del self._nodes[:-(self.order + 1)]

    def predict(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The denoised output served for a skipped call at (x, σ)."""
        if not self._nodes:
            raise RuntimeError("no computed call is cached yet; the first step of a run must call the model")
        if sigma <= 0:
            return x if self.space == "eps" else self._nodes[-1][1].to(x.dtype)
        value = self._extrapolate(self._at(sigma))
        if self.space == "denoised":
            return value.to(x.dtype)
        return (x.float() - sigma * value).to(x.dtype)

    def disagreement(self, sigma: float) -> float | None:
        """Free error estimate at σ: relative gap between the order-p and order-(p-1) extrapolations."""
        if len(self._nodes) < 2 or sigma <= 0:
            return None
        lam = self._at(sigma)
        hi = self._extrapolate(lam)
        lo = self._extrapolate(lam, min(self.order, len(self._nodes) - 1) - 1)
        return float(rel_err(lo, hi).mean())
