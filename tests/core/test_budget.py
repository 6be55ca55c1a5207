"""Budget mode: the budget is spent exactly, the plan adapts to the trajectory, and skipping beats fewer steps
where the rule says it does, on analytic denoisers run through euler and heun loops written out here."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_skip_core.budget import (BROWNIAN_TREE, BudgetController, budget_calls, choose_mode,
                                       resampled_steps)


def karras(n: int, lo: float = 0.03, hi: float = 14.6, rho: float = 7.0) -> list[float]:
    r = torch.linspace(0, 1, n, dtype=torch.float64)
    s = (hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return s.tolist() + [0.0]


def gaussian_mixture(x: torch.Tensor, sigma: float, centres: torch.Tensor, var: float = 0.05) -> torch.Tensor:
    """The exact denoiser E[x0 | x] of an equal-weight Gaussian mixture (centres, isotropic var)."""
    v = var + sigma ** 2
    logw = -((x[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * v)
    w = torch.softmax(logw, -1)
    post = (var * x[:, None, :] + sigma ** 2 * centres[None]) / v
    return (w[..., None] * post).sum(1)


def run_euler(sigmas, denoiser, x0, ctl=None, heun=False):
    """euler (or heun) as k-diffusion writes them; `ctl` decides per step and serves skipped calls."""
    x = x0 * sigmas[0]
    calls = 0
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        compute = ctl is None or ctl.decide(i)

        def model(xx, sig):
            nonlocal calls
            if compute:
                calls += 1
                out = denoiser(xx, sig)
                if ctl is not None:
                    ctl.store(xx, out, sig)
                return out
            return ctl.predict(xx, sig)

        d = (x - model(x, s)) / s
        if heun and s_next > 0:
            x2 = x + (s_next - s) * d
            d2 = (x2 - model(x2, s_next)) / s_next
            x = x + (s_next - s) * (d + d2) / 2
        else:
            x = x + (s_next - s) * d
    return x, calls


CENTRES = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
X0 = torch.randn(64, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def mixture(x, s):
    return gaussian_mixture(x, s, CENTRES)


def db(a, b):
    return float(10 * torch.log10((b.max() - b.min()) ** 2 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("steps,speedup,expected", [(50, 2.0, 25), (50, 2.5, 20), (50, 3.0, 17), (50, 3.85, 13),
                                                    (50, 1.0, 50), (3, 100.0, 1), (99, 2.0, 50)])
def test_budget_calls_rounds_steps_over_speedup(steps, speedup, expected):
    assert budget_calls(steps, speedup) == expected


@pytest.mark.parametrize("bad", [0.5, 0.0, -2.0, float("nan"), float("inf"), True, "2"])
def test_budget_calls_rejects_bad_speedup_naming_the_input(bad):
    with pytest.raises(ValueError, match="speedup"):
        budget_calls(50, bad)


@pytest.mark.parametrize("steps", [8, 20, 50])
@pytest.mark.parametrize("warmup", [0, 1, 4])
def test_single_call_sampler_spends_exactly_the_budget(steps, warmup):
    sigmas = karras(steps)
    for budget in range(1, steps + 1):
        ctl = BudgetController(sigmas, [1] * steps, budget, warmup=warmup)
        _, calls = run_euler(sigmas, mixture, X0, ctl)
        assert calls == budget == ctl.spent, (steps, warmup, budget, ctl.computed)
        assert ctl.computed[0] and (ctl.computed[-1] or budget == 1)  # the first call and the one the output is
        assert all(ctl.computed[:min(warmup, budget - 1)])


def test_heun_counts_calls_not_steps():
    steps = 50
    sigmas = karras(steps)
    costs = [2] * (steps - 1) + [1]  # heun: two calls per step, one on the step that lands on σ = 0
    for budget in (13, 17, 20, 25, 50):
        ctl = BudgetController(sigmas, costs, budget, warmup=2)
        _, calls = run_euler(sigmas, mixture, X0, ctl, heun=True)
        assert calls == ctl.spent
        assert budget - 1 <= calls <= budget  # odd leftovers cannot buy a two-call step
        assert ctl.computed[-1]


def test_budget_at_least_all_steps_computes_everything_exactly():
    sigmas = karras(12)
    full, _ = run_euler(sigmas, mixture, X0)
    ctl = BudgetController(sigmas, [1] * 12, 12)
    out, calls = run_euler(sigmas, mixture, X0, ctl)
    assert calls == 12 and torch.equal(out, full)


def test_quadratic_in_log_sigma_is_reproduced_exactly():
    """d(λ) a quadratic polynomial along the path: extrapolated calls are exact, so a quarter of the calls gives
    the full-step output to rounding, wherever the calls land."""
    a, b, c = torch.tensor([0.3, -1.0]), torch.tensor([0.5, 0.2]), torch.tensor([-0.1, 0.05])

    def poly_denoiser(x, s):
        lam = math.log(s)
        return x - s * (a + b * lam + c * lam * lam).to(x.dtype)

    sigmas = karras(40)
    x0 = torch.zeros(1, 2, dtype=torch.float64)
    full, _ = run_euler(sigmas, poly_denoiser, x0)
    ctl = BudgetController(sigmas, [1] * 40, 10, warmup=3)
    out, calls = run_euler(sigmas, poly_denoiser, x0, ctl)
    assert calls == 10
    assert torch.allclose(out, full, atol=1e-9)
    # a held prediction (the paper's reuse) is not exact on the same path
    hold = BudgetController(sigmas, [1] * 40, 10, warmup=3, order=0)
    held, _ = run_euler(sigmas, poly_denoiser, x0, hold)
    assert (held - full).abs().max() > 1e-3


@pytest.mark.parametrize("budget", [13, 17, 20, 25])
def test_skipping_beats_fewer_steps_of_euler_against_its_full_output(budget):
    sigmas = karras(50)
    full, _ = run_euler(sigmas, mixture, X0)
    fewer, _ = run_euler(karras(budget), mixture, X0)
    ctl = BudgetController(sigmas, [1] * 50, budget)
    out, calls = run_euler(sigmas, mixture, X0, ctl)
    assert calls == budget
    assert db(out, full) > db(fewer, full) + 5


def test_gaps_are_regular_in_log_sigma_and_error_control_shortens_them_where_d_is_rough():
    """Default: the calls after warm-up sit at regular log-σ gaps whatever the trajectory. With error control on,
    the gaps inside a wiggle of d are shorter than the regular ones before it."""
    sigmas = karras(60)
    lams = [math.log(s) for s in sigmas[:-1]]

    def den(x, s):
        lam = math.log(s)
        wiggle = 0.3 * math.sin(6 * lam) if -3.5 < lam < -1.0 else 0.0
        return x - s * torch.full_like(x, 0.2 * lam + wiggle)

    def gaps(adapt, denoiser):
        ctl = BudgetController(sigmas, [1] * 60, 18, warmup=3, adapt=adapt)
        run_euler(sigmas, denoiser, torch.zeros(2, 3, dtype=torch.float64), ctl)
        assert ctl.spent == 18
        steps = [i for i, c in enumerate(ctl.computed) if c]
        return [(lams[a] - lams[b], lams[b]) for a, b in zip(steps[2:], steps[3:])], ctl.computed

    regular, mask = gaps(1.0, den)
    _, smooth_mask = gaps(1.0, lambda x, s: x - s * torch.full_like(x, 0.2 * math.log(s)))
    assert mask == smooth_mask
    spacing = [0.5 * (lams[i] - lams[i + 1]) for i in range(len(lams) - 1)]
    tol = max(spacing) * 2
    assert max(g for g, _ in regular) - min(g for g, _ in regular) <= tol
    controlled, _ = gaps(2.0, den)
    inside = [g for g, at in controlled if -3.5 < at < -1.0]
    before = [g for g, at in controlled if at > -1.0]
    assert inside and before and min(inside) < 0.75 * min(before)


def test_errors_are_measured_at_gap_ends_and_estimated_on_skipped_steps():
    sigmas = karras(30)
    ctl = BudgetController(sigmas, [1] * 30, 10, warmup=3)
    run_euler(sigmas, mixture, X0, ctl)
    for i, (computed, value) in enumerate(zip(ctl.computed, ctl.estimates)):
        after_gap = computed and i > 0 and not ctl.computed[i - 1]
        if after_gap or (not computed and i >= 3):
            assert value is not None and value >= 0, i
    assert len(ctl._nodes) <= 3  # O(order + 1) tensors whatever the step count


def test_denoised_space_extrapolates_d_itself():
    sigmas = karras(10)
    ctl = BudgetController(sigmas, [1] * 10, 4, warmup=2, space="denoised")
    x = torch.zeros(1, 2)
    for i, s in enumerate(sigmas[:-1]):
        if ctl.decide(i):
            ctl.store(x, torch.full_like(x, 3.0), s)
        else:
            assert torch.allclose(ctl.predict(x + 5, s), torch.full_like(x, 3.0))


@pytest.mark.parametrize("name,mode", [("sample_euler", "skip"), ("sample_dpmpp_2m", "skip"), ("sample_ddpm", "skip"),
                                       ("sample_euler_ancestral", "skip"), ("sample_ipndm", "skip"),
                                       ("sample_lms", "skip"), ("sample_deis", "skip"),
                                       ("sample_unipc", "skip"), ("sample_dpmpp_2m_sde", "resample"),
                                       ("sample_er_sde", "resample"), ("sample_sa_solver", "resample"),
                                       ("sample_something_new", "resample")])
def test_choose_mode_from_the_sampler(name, mode):
    got, why = choose_mode(name)
    assert got == mode and why
    assert name.removeprefix("sample_") in why


def test_heun_skips_whole_steps_and_other_multi_call_samplers_resample():
    mode, why = choose_mode("sample_heun", 2)
    assert mode == "skip" and "second on the next step's σ" in why and "trapezoid" in why
    for name in ("sample_dpm_2", "sample_dpm_2_ancestral", "sample_dpmpp_sde"):
        mode, why = choose_mode(name, 2)
        assert mode == "resample" and "2 calls per step" in why, name
    assert choose_mode("sample_heunpp2", 3)[0] == "resample"


@pytest.mark.parametrize("budget,computed", [(13, 7), (17, 9), (19, 10), (25, 13), (20, 10)])
def test_heun_skipping_calls_the_front_plan_of_its_computed_steps(budget, computed):
    """A computed heun step pays both its calls (one on the step that lands on σ = 0); the computed steps sit
    where the front plan puts `computed` single calls, the last gap included, and the budget is spent exactly
    (an even budget leaves the one call no two-call step fits)."""
    from adaptive_skip_core.budget import front_plan
    steps = 50
    sigmas = karras(steps)
    costs = [2] * (steps - 1) + [1]
    for last in (0, 1, 3):
        ctl = BudgetController(sigmas, costs, budget, placement="front", abscissa="index", last_gap=last)
        _, calls = run_euler(sigmas, mixture, X0, ctl, heun=True)
        made = [i for i, c in enumerate(ctl.computed) if c]
        assert made == front_plan(steps, computed, last), (budget, last, made)
        assert calls == ctl.spent == 2 * computed - 1


def test_every_brownian_tree_sampler_resamples():
    assert all(choose_mode(name)[0] == "resample" for name in BROWNIAN_TREE)


@pytest.mark.parametrize("budget,per_step,steps", [(25, 1, 25), (25, 2, 13), (13, 2, 7), (1, 2, 1), (2, 2, 1)])
def test_resampled_steps_fit_the_budget(budget, per_step, steps):
    assert resampled_steps(budget, per_step) == steps
    assert (steps - 1) * per_step + 1 <= max(budget, 1) or per_step == 1


@pytest.mark.parametrize("kwargs,match", [({"budget": 0}, "budget"), ({"space": "x0"}, "space"),
                                          ({"adapt": 0.5}, "adapt")])
def test_bad_arguments_name_themselves(kwargs, match):
    args = dict(sigmas=karras(5), costs=[1] * 5, budget=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        BudgetController(**args)


def test_only_the_first_call_of_a_multi_call_step_becomes_a_node():
    """heun's corrector is evaluated off the trajectory next to the step's first call; as a node it would make the
    extrapolation's spacing irregular, so only each computed step's first call (at its grid σ) is kept."""
    sigmas = karras(30)
    ctl = BudgetController(sigmas, [2] * 29 + [1], 21, warmup=2)
    run_euler(sigmas, mixture, X0, ctl, heun=True)
    computed = [i for i, c in enumerate(ctl.computed) if c]
    node_lams = [lam for lam, _ in ctl._nodes]
    assert node_lams == [math.log(sigmas[i]) for i in computed[-len(node_lams):]]
