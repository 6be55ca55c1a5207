"""The skip controller reproduces AdaptiveDiffusion's released rule exactly, and its variants behave as documented."""
from __future__ import annotations

import math
import tracemalloc

import pytest
import torch

from adaptive_skip_core.config import SkipConfig
from adaptive_skip_core.controller import SkipController, even_plan


def official_transcription(latents: list[torch.Tensor], delta: float, c_max: int) -> list[bool]:
    """The issue's formula written out directly (True = call the model), independent of the controller."""
    n = len(latents)
    m = {k: (latents[k] - latents[k - 1]).abs().mean().item() for k in range(2, n)}  # x_0 is not used
    mask: list[bool] = []
    decisions: list[bool] = []
    for t in range(n):
        if t < 4:
            mask.append(True)
            continue
        skip = abs((m[t] + m[t - 2]) / 2 - m[t - 1]) <= delta * m[t - 1]
        compute = not skip
        if skip and len(decisions) > 4 and not any(decisions[-c_max:]):
            compute = True
        decisions.append(compute)
        mask.append(compute)
    return mask


def run_controller(latents, config: SkipConfig) -> list[bool]:
    sigmas = torch.linspace(10, 0, len(latents) + 1).tolist()
    ctl = SkipController(config, sigmas)
    for t, x in enumerate(latents):
        compute = ctl.decide(t, x, sigmas[t])
        if compute:
            ctl.store(x, torch.zeros_like(x), sigmas[t])
    return ctl.path.computed


def smooth_trajectory(n: int, seed: int, wobble: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(2, 4, 8, 8, generator=g)
    target = torch.randn(2, 4, 8, 8, generator=g)
    out = []
    for k in range(n):
        s = k / (n - 1)
        noise = wobble * torch.randn(2, 4, 8, 8, generator=g)
        out.append(base * (1 - s) ** 2 + target * (1 - (1 - s) ** 2) + noise)
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("delta,c_max", [(0.01, 4), (0.05, 4), (0.004, 6), (0.2, 2), (1.0, 3)])
def test_official_rule_matches_direct_transcription(seed, delta, c_max):
    latents = smooth_trajectory(50, seed, wobble=[0.0, 1e-4, 1e-3][seed % 3])
    expected = official_transcription(latents, delta, c_max)
    got = run_controller(latents, SkipConfig(threshold=delta, max_consecutive_skips=c_max, criterion="official"))
    assert got == expected
    if delta >= 0.05:
        assert not all(got), "a large δ on a smooth trajectory must skip something"


def test_official_guard_allows_five_skips_before_step_nine_but_strict_does_not():
    latents = smooth_trajectory(30, 0, wobble=0.0)  # perfectly smooth: every judged step wants to skip
    official = run_controller(latents, SkipConfig(threshold=10.0, max_consecutive_skips=2, criterion="official"))
    strict = run_controller(latents, SkipConfig(threshold=10.0, max_consecutive_skips=2, criterion="strict"))
    assert official[:4] == [True] * 4
    assert official[4:9] == [False] * 5, "the released code has no guard before five decisions exist"
    assert official[9] is True
    run = 0
    for c in strict:
        run = 0 if c else run + 1
        assert run <= 2


def test_zero_threshold_computes_every_step():
    latents = smooth_trajectory(20, 1, wobble=0.0)
    for criterion in ("official", "strict", "paper", "error"):
        assert all(run_controller(latents, SkipConfig(threshold=0.0, criterion=criterion)))


def test_warmup_and_estimator_start():
    latents = smooth_trajectory(20, 2, wobble=0.0)
    mask = run_controller(latents, SkipConfig(threshold=10.0, warmup_steps=7, criterion="strict"))
    assert mask[:7] == [True] * 7 and not mask[7]
    # warm-up below 4 cannot start the estimator earlier than step 4
    mask = run_controller(latents, SkipConfig(threshold=10.0, warmup_steps=1, criterion="official"))
    assert mask[:4] == [True] * 4 and not mask[4]


def test_paper_criterion_uses_vector_differences():
    latents = smooth_trajectory(30, 3, wobble=0.0)
    assert not all(run_controller(latents, SkipConfig(threshold=0.5, criterion="paper")))
    noisy = smooth_trajectory(30, 3, wobble=0.05)
    # per-element noise does not cancel in vector differences, so the paper form keeps computing
    assert all(run_controller(noisy, SkipConfig(threshold=0.5, criterion="paper"))[:20])


def test_stride_and_calls_plans():
    latents = smooth_trajectory(20, 4, wobble=0.0)
    mask = run_controller(latents, SkipConfig(criterion="stride", stride=3, warmup_steps=2, max_consecutive_skips=5))
    assert mask == [True, True] + [(k % 3) == 0 for k in range(18)]
    for calls in (5, 7, 13, 20):
        plan = even_plan(50, 4, calls)
        assert sum(plan) == calls and plan[:4] == [True] * 4
        gaps = [i for i, c in enumerate(plan) if c]
        widths = {b - a for a, b in zip(gaps[4:], gaps[5:])}
        assert max(widths, default=1) - min(widths, default=1) <= 1, "calls are spread with regular gaps"
    mask = run_controller(smooth_trajectory(50, 5, 0.0), SkipConfig(criterion="calls", target_calls=17))
    assert sum(mask) == 17


def test_forced_path_replays_and_rejects_other_step_counts():
    path = tuple([True] * 4 + [False, True] * 8)
    mask = run_controller(smooth_trajectory(20, 6, 0.0), SkipConfig(forced_path=path))
    assert tuple(mask) == path
    with pytest.raises(ValueError, match="forced_path has 20 steps but this run has 30"):
        run_controller(smooth_trajectory(30, 6, 0.0), SkipConfig(forced_path=path))


def test_error_criterion_skips_where_predictions_agree():
    ctl = SkipController(SkipConfig(criterion="error", threshold=0.05, reuse="linear", warmup_steps=2), [8, 4, 2, 1, 0.5, 0])
    x = torch.ones(1, 4, 2, 2)
    eps = torch.full_like(x, 0.3)
    for t, sigma in enumerate([8, 4, 2, 1, 0.5]):
        if ctl.decide(t, x, sigma):
            ctl.store(x, x - sigma * eps, sigma)  # a model whose ε never changes: held == extrapolated
    assert ctl.path.computed == [True, True, False, False, False]


@pytest.mark.parametrize("kwargs,match", [
    ({"threshold": -0.1}, "threshold must be a number >= 0"),
    ({"threshold": math.nan}, "threshold must be a number >= 0"),
    ({"max_consecutive_skips": 0}, "max_consecutive_skips must be an integer >= 1"),
    ({"warmup_steps": -1}, "warmup_steps must be an integer >= 0"),
    ({"criterion": "fast"}, "criterion must be one of official, strict, paper"),
    ({"reuse": "cubic"}, "reuse must be one of hold, linear, quadratic"),
])
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SkipConfig(**kwargs)


def test_controller_memory_does_not_grow_with_steps():
    """1000 steps: the controller keeps O(1) tensors (one latent, ≤3 derivatives), so memory stays flat."""
    n = 1000
    sigmas = torch.linspace(14, 0, n + 1).tolist()
    x = torch.randn(1, 4, 16, 16)
    ctl = SkipController(SkipConfig(threshold=0.05, reuse="quadratic", criterion="strict"), sigmas)
    tracemalloc.start()
    peaks = []
    for t in range(n):
        x = x * 0.999 + 0.001
        if ctl.decide(t, x, sigmas[t]):
            ctl.store(x, x * 0.5, sigmas[t])
        else:
            ctl.predict(x, sigmas[t])
        if t in (100, 999):
            peaks.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert len(ctl.cache) <= 3
    # only the per-step record (a few Python scalars per step) grows
    assert peaks[1] - peaks[0] < 900 * 600, peaks


@pytest.mark.parametrize("config,reason", [
    (SkipConfig(threshold=0.0), "threshold 0: skipping is off"),
    (SkipConfig(threshold=0.01, criterion="stride", stride=1), "stride 1: skipping is off"),
    (SkipConfig(threshold=0.01, forced_path=(True,) * 8), "the replayed path computes every step: skipping is off"),
    (SkipConfig(threshold=0.01), ""),
    (SkipConfig(threshold=0.0, criterion="stride", stride=2), ""),
])
def test_disabled_reason_names_the_setting_that_turns_skipping_off(config, reason):
    assert config.disabled == bool(reason) and config.disabled_reason == reason
