"""The budget mode inside a start/end window (steps outside always call, the budget applies inside) and the
resample to the user's own scheduler for Brownian-tree samplers."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_skip_core.budget import BudgetController
from adaptive_skip_core.budget_run import BudgetSkipController, choose, resample_schedule, window_span
from adaptive_skip_core.config import SkipConfig
from adaptive_skip_core.sigmas import recognise_schedule
from budget_schedules import karras, one_call, heun_calls


def windowed(speedup: float, high: float, low: float) -> SkipConfig:
    return SkipConfig(criterion="budget", speedup=speedup, start_percent=0.2, end_percent=0.8,
                      window_sigmas=(high, low))


def run(ctl, sigmas):
    """Drive a controller through an euler run of d = 0.1·σ + 0.02·σ² (smooth: extrapolation is near exact)."""
    x = torch.ones(1, 2)
    for i in range(len(sigmas) - 1):
        s = sigmas[i]
        if ctl.decide(i):
            den = x - s * (0.1 * s + 0.02 * s * s)
            ctl.store(x, den, s)
        else:
            den = ctl.predict(x, s)
        x = x + (sigmas[i + 1] - s) * (x - den) / s
    return x


def test_steps_outside_the_window_all_call_and_the_budget_applies_inside():
    sig = karras(50)
    cfg = windowed(4.0, sig[10], sig[39])  # steps 10..39 inside
    assert window_span(cfg, sig) == (10, 40)
    choice = choose(cfg, "sample_euler", sig, one_call)
    assert choice.mode == "skip"
    assert choice.forced == tuple(not 10 <= i < 40 for i in range(50))
    assert choice.budget == 20 + round(30 / 4.0)  # 20 steps outside call, 30 / 4 inside
    assert "inside the 20%-80% window" in choice.note and "20 calls of the steps outside" in choice.note
    ctl = BudgetController(sig, [1] * 50, choice.budget, forced=choice.forced)
    run(ctl, sig)
    assert all(ctl.computed[i] for i in range(50) if choice.forced[i])
    inside = [i for i in range(10, 40) if ctl.computed[i]]
    assert len(inside) == round(30 / 4.0) and sum(ctl.computed) == choice.budget
    # regular gaps in log σ inside the window, closed by the forced call at step 40
    lams = [math.log(sig[i]) for i in [9] + inside + [40]]
    gaps = [a - b for a, b in zip(lams, lams[1:])]
    assert max(gaps) < 1.6 * min(gaps), gaps


def test_no_window_plans_exactly_as_before():
    sig = karras(50)
    cfg = SkipConfig(criterion="budget", speedup=3.85)
    a = BudgetController(sig, [1] * 50, 13)
    b = BudgetController(sig, [1] * 50, 13, forced=choose(cfg, "sample_euler", sig, one_call).forced)
    run(a, sig), run(b, sig)
    assert a.computed == b.computed and sum(a.computed) == 13 and a.computed[-1]


def test_a_window_that_holds_no_step_calls_every_step():
    sig = karras(20)
    cfg = windowed(2.0, sig[5] * 0.99, sig[6] * 1.01)  # between two steps' σ
    choice = choose(cfg, "sample_euler", sig, one_call)
    assert choice.budget == 20 and all(choice.forced) and "no step lies inside" in choice.note


def test_resampling_inside_a_window_keeps_the_steps_outside():
    sig = karras(50)
    cfg = windowed(2.5, sig[10], sig[39])
    choice = choose(cfg, "sample_dpmpp_2m_sde", sig, one_call)
    assert choice.mode == "resample"
    new = choice.sigmas
    assert new[:10] == sig[:10] and new[-11:] == sig[-11:]  # steps 0..9 and 40..49 (+ the final 0) untouched
    assert len(new) - 1 == 20 + 12 and choice.budget == 32
    assert new[10:22] == resample_schedule(sig[10:41], 12)[:-1]
    ctl = BudgetSkipController(cfg, new, [1] * 32, choice.budget, forced=choice.forced)
    run(ctl.inner, new)
    assert all(ctl.inner.computed)


def test_brownian_tree_samplers_resample_to_the_users_own_scheduler():
    sig = karras(50)
    asked = []

    def scheduler(n):
        asked.append(n)
        return karras(n, lo=0.5)  # any schedule: the sampler must get exactly this one
    cfg = SkipConfig(criterion="budget", speedup=3.85)
    sde = choose(cfg, "sample_dpmpp_2m_sde", sig, one_call, scheduler=scheduler, scheduler_name="karras")
    assert asked == [13] and sde.sigmas == karras(13, lo=0.5) and "of the karras scheduler itself" in sde.note
    ode = choose(cfg, "sample_dpm_2", sig, heun_calls, scheduler=scheduler, scheduler_name="karras")
    assert asked == [13] and ode.sigmas == resample_schedule(sig, 7, trimmed=True)  # ODE samplers keep their σ range


def test_recognise_schedule_names_the_scheduler_and_passes_over_failing_ones():
    sig = karras(30)

    def broken(n):
        raise ValueError("this scheduler needs another model")
    builders = {"broken": broken, "other": lambda n: karras(n, lo=0.1), "karras": karras}
    assert recognise_schedule([s * (1 + 1e-6) for s in sig], builders) == "karras"  # float32 rounding passes
    assert recognise_schedule(sig[:-2] + [0.0], builders) is None
    assert recognise_schedule([s * 1.01 for s in sig], builders) is None


@pytest.mark.parametrize("kwargs, match", [(dict(forced=[True] * 3), "forced has 3 steps")])
def test_bad_forced_names_itself(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BudgetController(karras(10), [1] * 10, 5, **kwargs)
