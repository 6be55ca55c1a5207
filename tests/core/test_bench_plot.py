"""The benchmark's Pareto plot (scripts/bench/plot.py), drawn with the core's helpers; no ComfyUI needed."""
from __future__ import annotations

import math

import pytest
from adaptive_skip_core.draw import PALETTE, hstack
from bench.plot import draw_pareto  # scripts/ is on sys.path (tests/conftest.py)
from PIL import Image


def test_pareto_plot_size_series_colours_and_png_roundtrip(tmp_path):
    series = {"official": [(20, 25.0), (30, 30.0)], "oracle": [(20, 29.0), (30, 33.0)], "stride": [(25, 22.0)]}
    image = draw_pareto(series, "model calls", "PSNR (dB)", title="fidelity vs calls", width=640, height=400)
    assert image.size == (640, 400)
    colours = {c for _, c in image.getcolors(maxcolors=1 << 16)}
    assert {PALETTE[0], PALETTE[1], PALETTE[2]} <= colours
    out = tmp_path / "pareto.png"
    hstack([image, draw_pareto(series, "wall time (s)", "PSNR (dB)", log_x=True)]).save(out)
    assert Image.open(out).size == (640 + 8 + 720, 440)
    with pytest.raises(ValueError, match="finite"):
        draw_pareto({"a": [(math.nan, 1.0)]}, "x", "y")
    with pytest.raises(ValueError, match="log_x"):
        draw_pareto({"a": [(0.0, 1.0)]}, "x", "y", log_x=True)
