"""The start/end window: no step outside it skips, inside it the rule decides as without a window."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adaptive_skip_core.config import SkipConfig
from adaptive_skip_core.controller import SkipController
from adaptive_skip_core.draw import draw_skip_path
from adaptive_skip_core.skip_path import SkipPath

SIGMAS = torch.linspace(10, 0, 21).tolist()


def trajectory(n: int = 20) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base, target = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    return [base * (1 - k / (n - 1)) ** 2 + target * (1 - (1 - k / (n - 1)) ** 2) for k in range(n)]


def run(config: SkipConfig) -> SkipPath:
    ctl = SkipController(config, SIGMAS)
    for t, x in enumerate(trajectory()):
        if ctl.decide(t, x, SIGMAS[t]):
            ctl.store(x, torch.zeros_like(x), SIGMAS[t])
    return ctl.path


@pytest.mark.parametrize("criterion", ["official", "strict", "error", "stride", "calls"])
def test_no_skip_outside_the_window(criterion):
    common = dict(threshold=1.0, criterion=criterion, warmup_steps=2, reuse="linear", target_calls=6)
    free = run(SkipConfig(**common))
    # allowed from sigma 7 down to sigma 2.5 (steps 6..15 of this 20-step schedule)
    windowed = run(SkipConfig(**common, start_percent=0.3, end_percent=0.75, window_sigmas=(7.0, 2.5)))
    outside = [not (2.5 <= s <= 7.0) for s in SIGMAS[:20]]
    assert windowed.outside_window == outside
    assert all(c for c, o in zip(windowed.computed, outside) if o), "a step outside the window skipped"
    assert not all(windowed.computed), f"{criterion}: nothing skipped inside the window"
    assert not all(free.computed) and free.outside_window == [False] * 20
    # the default window changes nothing
    assert run(SkipConfig(**common, start_percent=0.0, end_percent=1.0)).computed == free.computed


def test_window_inputs_are_checked_by_name():
    with pytest.raises(ValueError, match="start_percent"):
        SkipConfig(start_percent=-0.1)
    with pytest.raises(ValueError, match="end_percent"):
        SkipConfig(end_percent=1.5)
    with pytest.raises(ValueError, match="start_percent .* end_percent"):
        SkipConfig(start_percent=0.8, end_percent=0.2)


def test_window_is_recorded_and_drawn():
    path = run(SkipConfig(threshold=1.0, criterion="strict", warmup_steps=2, start_percent=0.3, end_percent=0.75,
                          window_sigmas=(7.0, 2.5)))
    data = path.to_dict()
    assert (data["start_percent"], data["end_percent"], data["window_sigmas"]) == (0.3, 0.75, [7.0, 2.5])
    back = SkipPath.from_dict(data)
    assert back.config.window_sigmas == (7.0, 2.5) and back.outside_window == path.outside_window
    assert "window 30%-75%" in path.setting()
    # a run without a window keeps the exact format-1 record (no window keys)
    assert "start_percent" not in run(SkipConfig(threshold=1.0)).to_dict()
    # the picture marks the steps outside the window with a red bar above their cells
    image = draw_skip_path(path, width=600)
    plain = draw_skip_path(SkipPath.from_dict(dict(data, start_percent=0.0, end_percent=1.0,
                                                   window_sigmas=[None, 0.0])), width=600)
    def red(picture):
        return int((np.asarray(picture) == (214, 39, 40)).all(axis=-1).sum())

    assert red(image) > 50 and red(plain) == 0
    assert math.isinf(SkipPath.from_dict(dict(data, window_sigmas=[None, 0.0])).config.window_sigmas[0])
