"""The budget mode's plan (session 3): calls at whole-step gaps of the run's own schedule, the uneven gaps first,
and skipped calls extrapolated along the step index."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_skip_core.budget import PLACEMENT, SKIP_ABSCISSA, BudgetController
from adaptive_skip_core.budget_run import BudgetSkipController, choose, gap_words
from adaptive_skip_core.config import SkipConfig
from budget_schedules import budget_run_calls, drive, flow_simple, gaps_of, karras


@pytest.mark.parametrize("steps", [10, 20, 50])
def test_front_gaps_are_whole_steps_differing_by_one_and_the_longer_ones_come_first(steps):
    sig = karras(steps)
    smooth = lambda i, s: torch.full((1, 2), 0.1 * math.log(s), dtype=torch.float64)  # noqa: E731
    for budget in range(2, steps + 1):
        ctl = BudgetController(sig, [1] * steps, budget, placement="front")
        _, calls = drive(ctl, sig, smooth)
        gaps = gaps_of(calls)
        assert len(calls) == budget and calls[0] == 0 and calls[-1] == steps - 1, (budget, calls)
        assert max(gaps) - min(gaps) <= 1, (budget, gaps)
        assert gaps == sorted(gaps, reverse=True), (budget, gaps)  # the uneven remainder sits at the start


def test_front_plan_at_17_calls_of_50_steps_is_one_gap_of_4_then_every_third_step():
    sig = flow_simple(50)
    ctl = BudgetController(sig, [1] * 50, 17, placement="front", abscissa="index")
    _, calls = drive(ctl, sig, lambda i, s: torch.ones(1, 2, dtype=torch.float64))
    assert gaps_of(calls) == [4] + [3] * 15
    # the axis placement on the same schedule snaps to an irregular pattern (σ-regular gaps cross uneven steps)
    axis = BudgetController(sig, [1] * 50, 17, abscissa="sigma")
    _, axis_calls = drive(axis, sig, lambda i, s: torch.ones(1, 2, dtype=torch.float64))
    assert max(gaps_of(axis_calls)) - min(gaps_of(axis_calls)) > 1


def test_index_abscissa_reproduces_a_velocity_quadratic_in_the_step_index_exactly():
    """d a quadratic in the step index: extrapolating along the index is exact wherever calls land (3 warm-up calls
    give the first gap its 3 nodes), so 12 calls of 40 steps give the full-step output to rounding; along σ the
    same plan is not exact."""
    sig = flow_simple(40)

    def d_of(i, s):
        t = float(i)
        return torch.tensor([[0.3 + 0.02 * t - 0.001 * t * t, -0.5 + 0.01 * t]], dtype=torch.float64)

    full, _ = drive(BudgetController(sig, [1] * 40, 40), sig, d_of)

    ctl = BudgetController(sig, [1] * 40, 12, warmup=3, placement="front", abscissa="index")
    out, calls = drive(ctl, sig, d_of)
    assert len(calls) == 12 and calls[:3] == [0, 1, 2]
    assert torch.allclose(out, full, atol=1e-10)
    sigma_axis = BudgetController(sig, [1] * 40, 12, warmup=3, placement="front", abscissa="sigma")
    other, _ = drive(sigma_axis, sig, d_of)
    assert (other - full).abs().max() > 1e-6


def test_index_abscissa_places_a_sigma_between_grid_points_fractionally():
    sig = [4.0, 2.0, 1.0, 0.0]
    ctl = BudgetController(sig, [1] * 3, 2, abscissa="index")
    assert ctl._at(4.0) == 0.0 and ctl._at(2.0) == -1.0 and ctl._at(1.5) == -1.5 and ctl._at(0.0) == -3.0


def test_front_plan_inside_a_window_keeps_whole_step_gaps_closed_by_the_forced_call():
    sig = karras(50)
    forced = [not 10 <= i < 40 for i in range(50)]
    ctl = BudgetController(sig, [1] * 50, 20 + 8, forced=forced, placement="front", abscissa="index")
    _, calls = drive(ctl, sig, lambda i, s: torch.full((1, 2), 0.1 * s, dtype=torch.float64))
    assert all(i in calls for i in range(50) if forced[i]) and len(calls) == 28
    inside = [9] + [i for i in calls if 10 <= i < 40] + [40]
    gaps = gaps_of(inside)
    assert max(gaps) - min(gaps) <= 1 and gaps == sorted(gaps, reverse=True), gaps


def test_the_pack_controller_runs_the_front_plan_along_the_step_index():
    assert (PLACEMENT, SKIP_ABSCISSA) == ("front", "index")
    cfg = SkipConfig(criterion="budget", speedup=3.0)
    sig = flow_simple(50)
    choice = choose(cfg, "sample_dpmpp_2m", sig, lambda i, s: 1, axis="sigma")
    assert choice.budget == 17 and "every 3rd step, the first 3 gaps 4, the last 1" in choice.note
    assert "extrapolated quadratically in the step index" in choice.note
    assert (choice.placement, choice.abscissa, choice.last_gap) == ("front", "index", 1)
    ctl = BudgetSkipController(cfg, sig, [1] * 50, choice.budget, placement=choice.placement,
                               abscissa=choice.abscissa, last_gap=choice.last_gap)
    assert ctl.inner.placement == "front" and ctl.inner.abscissa == "index" and ctl.inner.last_gap == 1
    calls = budget_run_calls(ctl, sig)
    assert gaps_of(calls) == [4] * 3 + [3] * 12 + [1]


@pytest.mark.parametrize("steps,calls,words", [
    (50, 17, "every 3rd step, the first gap 4"), (50, 25, "every 2nd step, the first gap 3"),
    (50, 13, "every 4th step, the first gap 5"), (50, 20, "every 2nd step, the first 11 gaps 3"),
    (49, 25, "every 2nd step"), (50, 50, "on every step"), (50, 1, "on the first step")])
def test_gap_words_describe_the_front_plan(steps, calls, words):
    assert gap_words(steps, calls) == words
    if 1 < calls < steps:  # and the words are what the controller does
        sig = karras(steps)
        ctl = BudgetController(sig, [1] * steps, calls, placement="front", abscissa="index")
        _, made = drive(ctl, sig, lambda i, s: torch.ones(1, 2, dtype=torch.float64))
        gaps = gaps_of(made)
        base, rest = divmod(steps - 1, calls - 1)
        assert gaps == [base + 1] * rest + [base] * (calls - 1 - rest)


def test_bad_placement_names_itself():
    with pytest.raises(ValueError, match="placement"):
        BudgetController(karras(10), [1] * 10, 4, placement="even")


def test_front_plan_matches_what_the_controller_calls():
    from adaptive_skip_core.budget import front_plan
    sig = karras(50)
    for calls in (2, 13, 17, 20, 25, 49, 50):
        ctl = BudgetController(sig, [1] * 50, calls, placement="front", abscissa="index")
        _, made = drive(ctl, sig, lambda i, s: torch.ones(1, 2, dtype=torch.float64))
        assert made == front_plan(50, calls), calls


def uneven_end(n: int = 50) -> list[float]:
    """Even in log σ except the last step, which spans 17 steps' worth (ddim_uniform on an eps model looks so)."""
    return [math.exp(2.5 - 0.07 * i) for i in range(n - 1)] + [math.exp(2.5 - 0.07 * (n - 2) - 1.2), 0.0]


def test_plan_is_front_where_the_schedule_is_smooth_along_the_axis_and_regular_along_it_where_not():
    from adaptive_skip_core.budget import SMOOTH_LIMIT, gap_ratio, plan_for
    for calls in (13, 17, 20, 25):
        plan = plan_for(karras(50), calls, "log")
        assert gap_ratio(karras(50), calls, "log") < 1.5 and (plan.placement, plan.abscissa) == ("front", "index")
        assert plan.ratio == gap_ratio(karras(50), calls, "log")
        assert gap_ratio(flow_simple(50), calls, "sigma") < 1.5
        assert gap_ratio(uneven_end(), calls, "log") > SMOOTH_LIMIT
        uneven = plan_for(uneven_end(), calls, "log")
        assert (uneven.placement, uneven.abscissa, uneven.last_gap) == ("axis", "log", 0)
    cfg = SkipConfig(criterion="budget", speedup=3.85)
    choice = choose(cfg, "sample_euler", uneven_end(), lambda i, s: 1)
    assert (choice.placement, choice.abscissa) == ("axis", "log")
    assert "at regular log σ gaps (the schedule's steps are uneven along log σ" in choice.note
    ctl = BudgetSkipController(cfg, uneven_end(), [1] * 50, choice.budget, placement=choice.placement,
                               abscissa=choice.abscissa)
    x = torch.zeros(1, 2)
    for i, s in enumerate(uneven_end()[:-1]):
        if ctl.decide(i, x, s):
            ctl.store(x, x * 0.5, s)
    calls = [i for i, c in enumerate(ctl.path.computed) if c]
    assert len(calls) == 13 and calls[-2:] == [48, 49]  # regular log σ gaps: the long last step gets its own call
