"""The front plan's last gap (session 4): the gap that ends on the run's last step gets the whole number of steps
whose length along the model family's axis is nearest the mean gap along it; the other gaps share the rest."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_skip_core.budget import BudgetController, front_plan, last_gap
from adaptive_skip_core.budget_run import BudgetSkipController, choose, gap_words
from adaptive_skip_core.config import SkipConfig
from budget_schedules import budget_run_calls, drive, flow_simple, gaps_of, karras


@pytest.mark.parametrize("calls,flow,eps", [(13, 2, 3), (17, 1, 2), (20, 1, 2), (25, 1, 1)])
def test_last_gap_follows_the_schedule_along_the_family_axis(calls, flow, eps):
    # flow `simple` (shift 3): its σ steps grow ~9x towards the end, so the last gap shrinks to 1-2 steps; karras
    # in log σ grows ~2x, so it keeps 1-3 (what the grid's two models get at 13 / 17 / 20 / 25 calls of 50 steps)
    assert last_gap(flow_simple(50), calls, "sigma") == flow
    assert last_gap(karras(50), calls, "log") == eps


def test_last_gap_is_the_length_nearest_the_mean_gap_and_never_longer_than_the_others():
    for sig, axis in ((flow_simple(50), "sigma"), (karras(50), "log")):
        at = [math.log(s) if axis == "log" else s for s in sig[:-1]]
        for calls in range(3, 50):
            q = 49 // (calls - 1)
            got = last_gap(sig, calls, axis)
            assert 1 <= got <= q, (calls, got)
            mean = (at[0] - at[-1]) / (calls - 1)
            miss = {n: abs(math.log((at[49 - n] - at[49]) / mean)) for n in range(1, q + 1)}
            assert miss[got] == min(miss.values()), (calls, got, miss)


def test_no_last_gap_without_two_gaps():
    assert last_gap(karras(50), 2, "log") == 0 and last_gap(karras(50), 50, "log") == 0
    assert front_plan(50, 2, 0) == front_plan(50, 2, 7) == [0, 49]


@pytest.mark.parametrize("calls", [3, 5, 13, 17, 20, 25, 40])
def test_the_controller_calls_the_front_plan_with_its_last_gap(calls):
    sig = flow_simple(50)
    for last in range(1, 49 // (calls - 1) + 1):
        ctl = BudgetController(sig, [1] * 50, calls, placement="front", abscissa="index", last_gap=last)
        _, made = drive(ctl, sig, lambda i, s: torch.ones(1, 2, dtype=torch.float64))
        assert made == front_plan(50, calls, last), (calls, last)
        gaps = gaps_of(made)
        assert gaps[-1] == last and len(made) == calls
        body = gaps[:-1]
        assert max(body) - min(body) <= 1 and body == sorted(body, reverse=True), (calls, last, gaps)


def test_a_last_gap_as_long_as_the_others_is_the_plain_front_plan():
    for calls in (13, 17, 20, 25):
        q = 49 // (calls - 1)
        assert front_plan(50, calls, q) == front_plan(50, calls)


def test_the_pack_runs_the_shortened_last_gap_and_says_so():
    cfg = SkipConfig(criterion="budget", speedup=3.85)
    sig = flow_simple(50)
    choice = choose(cfg, "sample_euler", sig, lambda i, s: 1, axis="sigma")
    assert choice.budget == 13 and choice.last_gap == 2
    assert "every 4th step, the first 3 gaps 5, the last 2" in choice.note
    ctl = BudgetSkipController(cfg, sig, [1] * 50, choice.budget, placement=choice.placement,
                               abscissa=choice.abscissa, last_gap=choice.last_gap)
    calls = budget_run_calls(ctl, sig)
    assert gaps_of(calls) == [5] * 3 + [4] * 8 + [2]


def test_a_window_that_ends_before_the_run_keeps_even_gaps():
    # the window's last gap is closed by a forced call, not by the output: no shortening
    sig = flow_simple(50)
    cfg = SkipConfig(criterion="budget", speedup=3.0, start_percent=0.2, end_percent=0.8,
                     window_sigmas=(sig[10], sig[39]))
    choice = choose(cfg, "sample_euler", sig, lambda i, s: 1, axis="sigma")
    assert choice.mode == "skip" and choice.placement == "front" and choice.last_gap == 0
    # a window that runs to the last step shortens it, from the window's own schedule (steps 10..49)
    late = SkipConfig(criterion="budget", speedup=3.0, start_percent=0.2, window_sigmas=(sig[10], 0.0))
    got = choose(late, "sample_euler", sig, lambda i, s: 1, axis="sigma")
    inside = got.budget - 10
    assert inside == round(40 / 3.0) and got.last_gap == last_gap(sig[10:], inside, "sigma") == 1
    ctl = BudgetController(sig, [1] * 50, got.budget, forced=got.forced, placement=got.placement,
                           abscissa=got.abscissa, last_gap=got.last_gap)
    _, made = drive(ctl, sig, lambda i, s: torch.ones(1, 2, dtype=torch.float64))
    assert made[:10] == list(range(10)) and len(made) == got.budget and made[-1] == 49
    gaps = gaps_of(made[9:])  # from the last forced call
    assert gaps[-1] == 1 and max(gaps[:-1]) - min(gaps[:-1]) <= 1 and gaps[:-1] == sorted(gaps[:-1], reverse=True)


@pytest.mark.parametrize("steps,calls,last,words", [
    (50, 17, 1, "every 3rd step, the first 3 gaps 4, the last 1"),
    (50, 13, 2, "every 4th step, the first 3 gaps 5, the last 2"),
    (50, 13, 4, "every 4th step, the first gap 5"), (50, 25, 1, "every 2nd step, the first 2 gaps 3, the last 1"),
    (50, 20, 2, "every 2nd step, the first 11 gaps 3")])
def test_gap_words_name_the_last_gap(steps, calls, last, words):
    assert gap_words(steps, calls, last) == words


def test_a_negative_last_gap_names_itself():
    with pytest.raises(ValueError, match="last_gap"):
        BudgetController(karras(10), [1] * 10, 4, placement="front", last_gap=-1)
