"""The benchmark command's smallest configuration (--smoke: tiny random-weight SD1.5-shaped UNet, 2 seeds, 8 steps)
runs end to end in a subprocess, and its CSV has the expected rows, columns and call counts."""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time

import pytest

from .conftest import COMFY_ROOT, PACK_ROOT

STEPS, BUDGET = 8, 5  # the smoke mode's sizes (scripts/bench/plan.py MODES["smoke"])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, COMFYUI_PATH=str(COMFY_ROOT))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(PACK_ROOT / "scripts" / "benchmark.py"), "--smoke", "--no-sd15",
                           "--out", str(out)], cwd=str(PACK_ROOT), env=env, capture_output=True, text=True,
                          timeout=300)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(out / "benchmark.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return out, rows, elapsed


def _rows(rows, method, **where):
    return [r for r in rows if r["method"] == method and all(r[k] == str(v) for k, v in where.items())]


def test_smoke_writes_every_output(smoke_run):
    # No wall-clock limit: speed is shown by the benchmark's side-by-side ratios, never by a timed test (its size
    # is bounded by the row count asserted below).
    out, rows, _ = smoke_run
    for name in ("benchmark.csv", "benchmark.md", "pareto_calls.png", "pareto_wall.png", "meta.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    md = (out / "benchmark.md").read_text()
    assert "## Side by side at each call budget" in md and "against the high-accuracy reference" in md


def test_csv_has_the_expected_columns_and_methods(smoke_run):
    _, rows, _ = smoke_run
    required = {"section", "method", "label", "model_calls", "wall_s", "speedup_calls", "speedup_wall",
                "psnr_full_latent", "ssim_full_latent", "psnr_high_latent", "ssim_high_latent", "psnr_full_image",
                "ssim_high_image", "feature_distance_high", "bookkeeping_us_per_call", "controller_bytes",
                "peak_rss_delta_mb"}
    assert required <= set(rows[0])
    methods = {r["method"] for r in rows}
    assert methods == {"full_steps", "high_accuracy", "fewer_steps", "other_sampler", "adaptive_skip", "easycache",
                       "lazycache"}
    # 1 full + 1 high + fewer(euler, dpmpp_2m at one budget) + official δ=0 + stride 2 x2 + calls x3 + 2 caches
    assert len(rows) == 1 + 1 + 2 + 1 + 2 + 3 + 2


def test_call_counts_match_what_each_run_must_spend(smoke_run):
    _, rows, _ = smoke_run
    full = _rows(rows, "full_steps")[0]
    assert float(full["model_calls"]) == STEPS
    for r in _rows(rows, "fewer_steps") + _rows(rows, "other_sampler"):
        assert float(r["model_calls"]) == int(r["steps"]) == BUDGET, r["label"]
        assert float(r["speedup_calls"]) == pytest.approx(STEPS / BUDGET, abs=1e-3)
    off = _rows(rows, "adaptive_skip", criterion="official")[0]
    assert float(off["threshold"]) == 0.0 and float(off["model_calls"]) == STEPS  # δ = 0 computes every call
    assert math.isinf(float(off["psnr_full_latent"]))  # ... and reproduces the full-step run exactly
    for r in _rows(rows, "adaptive_skip", criterion="calls"):
        assert float(r["model_calls"]) == int(r["target_calls"]) == BUDGET, r["label"]
    for r in _rows(rows, "adaptive_skip", criterion="stride"):
        assert BUDGET <= float(r["model_calls"]) < STEPS, r["label"]
    for r in _rows(rows, "easycache") + _rows(rows, "lazycache"):
        assert 1 <= float(r["model_calls"]) <= STEPS, r["label"]
    high = _rows(rows, "high_accuracy")[0]
    assert float(high["model_calls"]) == 2 * STEPS


def test_fidelity_columns_are_sane(smoke_run):
    _, rows, _ = smoke_run
    for r in rows:
        for col in ("psnr_full_latent", "psnr_high_latent"):
            assert float(r[col]) > 0, (r["label"], col)
        for col in ("ssim_full_latent", "ssim_high_latent", "ssim_full_image", "ssim_high_image"):
            assert -1.0 <= float(r[col]) <= 1.0 + 1e-9, (r["label"], col)
    for r in _rows(rows, "adaptive_skip"):
        assert int(r["controller_bytes"]) > 0 and float(r["bookkeeping_us_per_call"]) > 0
