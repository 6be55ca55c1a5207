"""One budget-mode run as the patch drives it: skip or resample, the resampled schedule, the SKIP_PATH record."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_skip_core.budget_run import BudgetSkipController, choose, resample_schedule
from adaptive_skip_core.config import SkipConfig
from adaptive_skip_core.criteria import names
from adaptive_skip_core.skip_path import SkipPath
from budget_schedules import karras, one_call, heun_calls


def test_budget_is_the_last_criterion_so_saved_dropdown_values_keep_their_place():
    assert names()[-1] == "budget"
    assert names()[:6] == ("official", "strict", "paper", "error", "stride", "calls")


@pytest.mark.parametrize("bad", [0.9, float("nan"), float("inf"), True])
def test_speedup_is_validated_naming_the_input(bad):
    with pytest.raises(ValueError, match="speedup"):
        SkipConfig(criterion="budget", speedup=bad)


def test_speedup_one_turns_the_budget_off():
    cfg = SkipConfig(criterion="budget", speedup=1.0)
    assert cfg.disabled and "speedup 1" in cfg.disabled_reason


def test_resampled_karras_schedule_is_the_karras_schedule_with_fewer_steps():
    """Karras σ are a function of i / (n - 1); interpolating log σ at those positions of the 50-step schedule
    lands within 0.3% of the 13-step karras schedule (the baseline "same sampler, N steps")."""
    got = resample_schedule(karras(50), 13)
    want = karras(13)
    assert len(got) == 14 and got[-1] == 0.0
    assert got[0] == pytest.approx(want[0]) and got[-2] == pytest.approx(want[-2])
    assert all(abs(g / w - 1) < 3e-3 for g, w in zip(got[:-1], want[:-1]))


def test_a_split_schedule_that_stops_above_zero_keeps_stopping_there():
    sig = karras(20)[:11]  # SplitSigmas: the first half, ending at σ > 0
    got = resample_schedule(sig, 4)
    assert len(got) == 5 and got[0] == sig[0] and got[-1] == pytest.approx(sig[-1]) and got[-1] > 0


def test_choose_skips_euler_and_heun_and_resamples_sde_and_dpm_2():
    cfg = SkipConfig(criterion="budget", speedup=3.85)
    sig = karras(50)
    euler = choose(cfg, "sample_euler", sig, one_call)
    assert euler.mode == "skip" and euler.budget == 13 and euler.sigmas == sig and euler.full_calls == 50
    assert "13 model calls" in euler.note and "speedup 3.85" in euler.note
    sde = choose(cfg, "sample_dpmpp_2m_sde", sig, one_call)
    assert sde.mode == "resample" and len(sde.sigmas) == 14 and sde.budget == 13
    assert "13 of 50 steps" in sde.note and "Brownian" in sde.note
    dpm2 = choose(cfg, "sample_dpm_2", sig, heun_calls)
    assert dpm2.mode == "resample" and dpm2.full_calls == 99
    assert dpm2.budget <= 13 and len(dpm2.sigmas) - 1 == 7  # 6 two-call steps and the last one-call step
    heun = choose(cfg, "sample_heun", sig, heun_calls)  # heun skips whole steps on the run's own schedule
    assert heun.mode == "skip" and heun.sigmas == sig and heun.full_calls == 99 and heun.budget == 13
    assert "13 model calls (7 computed steps) every 8th step" in heun.note and heun.placement == "front"
    even = choose(SkipConfig(criterion="budget", speedup=2.5), "sample_heun", sig, heun_calls)
    assert even.budget == 19 and "19 model calls (10 computed steps)" in even.note  # 20 buys 9 two-call steps + 1


def test_controller_records_a_budget_path_and_spends_the_budget():
    cfg = SkipConfig(criterion="budget", speedup=2.5, warmup_steps=4)
    sig = karras(50)
    choice = choose(cfg, "sample_euler", sig, one_call)
    ctl = BudgetSkipController(cfg, sig, [1] * 50, choice.budget)
    x = torch.zeros(1, 4, 2, 2)
    for i, s in enumerate(sig[:-1]):
        x_in = x + s
        if ctl.decide(i, x_in, s):
            ctl.store(x_in, x_in * 0.5, s)
        else:
            assert torch.isfinite(ctl.predict(x_in, s)).all()
    path = ctl.path
    assert path.kind == "budget" and path.criterion == "budget" and path.computed_steps == 20
    assert path.reuse == "quadratic" and path.warmup == [True] + [False] * 49  # warmup_steps is not read
    assert path.rule() == "budget, speedup 2.5"
    data = path.to_dict()
    assert data["speedup"] == 2.5 and data["kind"] == "budget"
    back = SkipPath.from_dict(data)
    assert back.config.speedup == 2.5 and back.computed == path.computed
    assert any(v is not None and math.isfinite(v) for v in path.estimator)


def test_the_axis_follows_the_model_family():
    from adaptive_skip_core.budget_run import abscissa_for
    assert abscissa_for(1.0) == "log"  # eps / v prediction: x = x0 + σ·ε
    assert abscissa_for(0.5) == "sigma"  # flow: x = (1 - σ)·x0 + σ·ε


def test_flow_axis_spaces_calls_evenly_in_sigma_and_reproduces_a_quadratic_velocity():
    from adaptive_skip_core.budget import BudgetController
    sig = [1.0 - i / 40 for i in range(40)] + [0.0]  # a flow-like schedule, uniform in σ = t
    a, b, c = torch.tensor([0.3]), torch.tensor([0.5]), torch.tensor([-0.2])

    def den(x, s):
        return x - s * (a + b * s + c * s * s)

    ctl = BudgetController(sig, [1] * 40, 10, warmup=3, abscissa="sigma")  # 3 nodes before the first gap
    x = torch.zeros(1, 1, dtype=torch.float64)
    full = x.clone()
    for i in range(40):
        s, s_next = sig[i], sig[i + 1]
        full = full + (s_next - s) * (full - den(full, s)) / s
        if ctl.decide(i):
            d = den(x, s)
            ctl.store(x, d, s)
        else:
            d = ctl.predict(x, s)
        x = x + (s_next - s) * (x - d) / s
    steps = [i for i, comp in enumerate(ctl.computed) if comp]
    gaps = [q - p for p, q in zip(steps, steps[1:])]
    assert sum(ctl.computed) == 10 and max(gaps[2:]) - min(gaps[2:]) <= 1
    assert torch.allclose(x, full, atol=1e-9)


def test_a_trimmed_schedule_resamples_to_the_trimmed_schedule_with_fewer_steps():
    """uni_pc / dpm_2 get KSampler's (N + 1)-step schedule without its penultimate σ; resampling the 50-step one
    must give the 13-step one, or "fewer steps" would not be the sampler's own fewer steps."""
    def ramp(u, lo=0.03, hi=14.6, rho=7.0):
        return (hi ** (1 / rho) + u * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho

    trimmed_50 = [ramp(k / 50) for k in range(50)] + [0.0]
    got = resample_schedule(trimmed_50, 13, trimmed=True)
    want = [ramp(k / 13) for k in range(13)] + [0.0]
    assert len(got) == 14 and all(abs(g / w - 1) < 1e-3 for g, w in zip(got[:-1], want[:-1]))
    cfg = SkipConfig(criterion="budget", speedup=3.85)
    assert choose(cfg, "sample_dpm_2", trimmed_50, heun_calls).sigmas == resample_schedule(trimmed_50, 7, trimmed=True)
