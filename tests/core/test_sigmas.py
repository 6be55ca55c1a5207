"""Host-free sigma parsing, validation and resampling (core/sigmas.py)."""
from __future__ import annotations

import math

import pytest
import torch
from adaptive_skip_core.sigmas import (
    parse_sigma_text,
    resample_log_sigmas,
    resample_log_steps,
    validate_sigmas,
)


def test_parse_sigma_text():
    assert parse_sigma_text("14.6, 3.2 0.5;0.1\n0") == [14.6, 3.2, 0.5, 0.1, 0.0]
    assert parse_sigma_text("tensor([14.6146,  1.0000,  0.0000])") == [14.6146, 1.0, 0.0]
    with pytest.raises(ValueError, match="sigmas_text.*'abc'"):
        parse_sigma_text("14.6, abc, 0", name="sigmas_text")
    with pytest.raises(ValueError, match="empty"):
        parse_sigma_text("  ", name="sigmas_text")


def test_resample_steps_keeps_ends_and_log_shape():
    src = torch.tensor([10.0, 1.0, 0.1, 0.0])
    out = resample_log_steps(src, 5)
    assert len(out) == 6 and float(out[-1]) == 0
    assert out[:-1].log().tolist() == pytest.approx(torch.linspace(math.log(10), math.log(0.1), 5).tolist(), abs=1e-6)
    assert torch.equal(resample_log_steps(src, 3), src.float())


def test_resample_range_maps_end_points():
    out = resample_log_sigmas([14.6, 1.0, 0.03, 0.0], 0.002, 120.0, 0.03, 14.6)
    assert float(out[0]) == pytest.approx(120.0, rel=1e-5) and float(out[2]) == pytest.approx(0.002, rel=1e-5)
    validate_sigmas(out, 0.002, 120.0)
