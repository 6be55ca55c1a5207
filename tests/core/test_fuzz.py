"""Property-based tests (Hypothesis) of the skip controller and the sigma validator."""
from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_skip_core.config import CRITERIA, REUSE_MODES, SkipConfig
from adaptive_skip_core.controller import SkipController
from adaptive_skip_core.sigmas import validate_sigmas

configs = st.builds(
    SkipConfig,
    threshold=st.floats(0, 5, allow_nan=False),
    max_consecutive_skips=st.integers(1, 8),
    warmup_steps=st.integers(0, 6),
    criterion=st.sampled_from(CRITERIA),
    reuse=st.sampled_from(REUSE_MODES),
    stride=st.integers(1, 5),
    target_calls=st.integers(0, 40),
)
shapes = st.sampled_from([(1, 4, 2, 2), (3, 4, 4, 4), (2, 16, 1, 3, 3), (1, 1)])


@settings(max_examples=120, deadline=None)
@given(config=configs, steps=st.integers(1, 40), shape=shapes, seed=st.integers(0, 2**16))
def test_controller_invariants(config, steps, shape, seed):
    g = torch.Generator().manual_seed(seed)
    sigmas = sorted((torch.rand(steps, generator=g) * 14 + 0.01).tolist(), reverse=True) + [0.0]
    ctl = SkipController(config, sigmas)
    x = torch.randn(shape, generator=g)
    for t in range(steps):
        x = x + 0.1 * torch.randn(shape, generator=g) * torch.rand(1, generator=g)
        compute = ctl.decide(t, x, sigmas[t])
        if compute:
            ctl.store(x, x * 0.9, sigmas[t])
        else:
            out = ctl.predict(x, sigmas[t])
            assert out.shape == x.shape and torch.isfinite(out).all()
    path = ctl.path
    assert len(path.computed) == steps and path.computed[0], "step 0 must call the model"
    assert all(path.computed[: min(ctl.first_judged_step, steps)]) or ctl.plan is not None
    if config.criterion in ("strict", "paper", "error", "stride"):
        run = 0
        for c in path.computed:
            run = 0 if c else run + 1
            assert run <= config.max_consecutive_skips
    if config.criterion == "calls" and config.target_calls:
        assert sum(path.computed) == min(max(config.target_calls, min(max(config.warmup_steps, 1), steps)), steps)
    if config.disabled:
        assert all(path.computed)
    assert len(ctl.cache) <= 3
    assert path.to_json()  # always serialisable (no nan/inf in JSON)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=12))
def test_validate_sigmas_accepts_exactly_valid_schedules(values):
    t = torch.tensor(values, dtype=torch.float32)
    valid = (len(values) >= 2 and bool(torch.isfinite(t).all()) and float(t[-1]) == 0.0
             and bool((t[1:] < t[:-1]).all()))
    try:
        out = validate_sigmas(values)
        accepted = True
    except ValueError as err:
        accepted = False
        assert "sigmas" in str(err)
    assert accepted == valid
    if accepted:
        assert out.ndim == 1 and out.numel() == len(values)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 30), lo=st.floats(0.01, 1), hi=st.floats(2, 100))
def test_validate_sigmas_range_checks(n, lo, hi):
    body = torch.exp(torch.linspace(math.log(hi), math.log(lo), n)).tolist()
    validate_sigmas(body + [0.0], lo, hi)
    try:
        validate_sigmas([hi * 2] + body[1:] + [0.0], lo, hi)
        raise AssertionError("a start above sigma_max must be rejected")
    except ValueError as err:
        assert "sigma_max" in str(err)
