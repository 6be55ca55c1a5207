"""Host-free built-in schedules, sigma parsing and resampling (core/schedules.py, core/sigmas.py).

Exact agreement with ComfyUI's own schedulers is checked in tests/host/test_schedule.py."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_skip_core import schedules as S
from adaptive_skip_core.sigmas import parse_sigma_text, resample_log_sigmas, resample_log_steps, validate_sigmas

TABLE = S.discrete_sigma_table()


def test_sd15_table_range():
    assert len(TABLE) == 1000
    assert float(TABLE[0]) == pytest.approx(0.0291672, rel=1e-5)
    assert float(TABLE[-1]) == pytest.approx(14.614642, rel=1e-6)


@pytest.mark.parametrize("steps", [2, 4, 5, 10, 30])
def test_every_builtin_is_a_valid_schedule(steps):
    found = S.builtin_schedules(steps, TABLE, "SD1")
    assert set(found) == set(S.BUILTIN_NAMES)
    for name, sigmas in found.items():
        assert len(sigmas) == steps + 1, name
        validate_sigmas(sigmas, float(TABLE[0]), float(TABLE[-1]), name=name)


def test_ays_is_only_defined_for_known_families_and_matches_its_table():
    assert "ays" not in S.builtin_schedules(10, TABLE, None)
    assert S.ays(10, "SD1")[:-1].tolist() == pytest.approx(S.AYS_NOISE_LEVELS["SD1"][:-1], rel=1e-6)
    with pytest.raises(ValueError, match="family"):
        S.ays(5, "XL9")


def test_discard_penultimate_drops_the_last_nonzero_sigma():
    plain = S.builtin_schedule("karras", 6, TABLE)
    dropped = S.builtin_schedule("karras", 5, TABLE, discard_penultimate=True)
    assert torch.equal(dropped, torch.cat([plain[:-2], plain[-1:]]))


def test_beta_quantiles():
    assert S.beta_ppf(0.5, 0.6, 0.6) == 0.5
    assert S.beta_ppf(0.5, 1.0, 1.0) == pytest.approx(0.5)
    assert S.beta_ppf(0.25, 1.0, 1.0) == pytest.approx(0.25, abs=1e-12)  # Beta(1, 1) is uniform
    assert S.beta_ppf(0.75, 2.0, 1.0) == pytest.approx(math.sqrt(0.75), abs=1e-12)  # CDF x^2
    scipy_stats = pytest.importorskip("scipy.stats")
    for q in (0.01, 0.2, 0.6, 0.97):
        assert S.beta_ppf(q, 0.6, 0.6) == pytest.approx(scipy_stats.beta.ppf(q, 0.6, 0.6), abs=1e-12)


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
