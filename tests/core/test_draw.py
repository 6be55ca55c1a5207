"""Skip-path pictures and Pareto plots: sizes, cell colours where the steps are, captions and comparisons."""
from __future__ import annotations

import math

import pytest
from PIL import Image

from adaptive_skip_core import draw
from adaptive_skip_core.draw import (PALETTE, REUSED, Timeline, caption_lines, draw_skip_path,
                                     load_fonts, log_ticks, nice_ticks, pareto_front, skip_path_figure)
from adaptive_skip_core.skip_path import SkipPath


def make_path(steps: int = 20, threshold: float = 0.01, skip_every: int = 3, **kw) -> SkipPath:
    sigmas = [14.6 * (0.03 / 14.6) ** (i / (steps - 1)) for i in range(steps)] + [0.0]
    computed = [i < 4 or i % skip_every != 0 for i in range(steps)]
    forced = [i == 10 for i in range(steps)]
    if steps > 10:
        computed[10] = True
    estimator = [None] * 4 + [10 ** (-3 + 2.5 * ((i * 7) % 11) / 10) for i in range(4, steps)]
    defaults = dict(sigmas=sigmas, computed=computed, forced=forced, warmup=[i < 4 for i in range(steps)],
                    estimator=estimator, threshold=threshold, sampler="euler", scheduler="normal",
                    model_calls=sum(computed), sampler_calls=steps)
    defaults.update(kw)
    return SkipPath.from_dict(defaults)  # the flat format-1 fields (threshold, criterion) as saved files hold them


def pixel(image: Image.Image, xy) -> tuple[int, int, int]:
    return image.getpixel((int(xy[0]), int(xy[1])))


def test_single_path_figure_size_and_cell_colours_at_each_step():
    path = make_path()
    fig = skip_path_figure(path, width=1000)
    assert fig.image.mode == "RGB" and fig.image.width == 1000 and 250 <= fig.image.height <= 500
    (tl,) = fig.timelines
    assert tl.steps == path.steps
    for i, computed in enumerate(path.computed):
        colour = pixel(fig.image, (tl.center(i)[0], tl.top + tl.height - 4))  # below the forced-call triangle
        assert colour == (PALETTE[0] if computed else REUSED), f"step {i}"


def test_cells_run_left_to_right_in_step_order_and_fill_the_plot_width():
    fig = skip_path_figure(make_path(steps=50), width=1000)
    (tl,) = fig.timelines
    xs = [tl.center(i)[0] for i in range(50)]
    assert xs == sorted(xs) and len(set(xs)) == 50
    assert tl.cell(0)[0] == draw.LEFT and tl.cell(49)[2] == 1000 - draw.RIGHT


def test_forced_calls_and_warmup_are_marked():
    path = make_path()
    fig = skip_path_figure(path)
    tl = fig.timelines[0]
    x0, y0, x1, _ = tl.cell(10)
    assert pixel(fig.image, ((x0 + x1) // 2, y0 + 1)) == draw.FORCED_MARK  # triangle at the top of step 10
    x0, y0, x1, _ = tl.cell(11)
    assert pixel(fig.image, ((x0 + x1) // 2, y0 + 1)) != draw.FORCED_MARK
    below = tl.top + tl.height + 2
    assert pixel(fig.image, (tl.center(2)[0], below)) == draw.WARMUP
    assert pixel(fig.image, (tl.center(6)[0], below)) != draw.WARMUP


def test_comparison_adds_a_second_timeline_in_its_own_colour():
    a, b = make_path(skip_every=3), make_path(threshold=0.05, skip_every=2)
    single = skip_path_figure(a)
    fig = skip_path_figure(a, b)
    assert len(fig.timelines) == 2 and fig.image.height > single.image.height
    tl_a, tl_b = fig.timelines
    assert tl_b.top > tl_a.top + tl_a.height
    for i in range(a.steps):
        assert pixel(fig.image, (tl_b.center(i)[0], tl_b.top + tl_b.height - 4)) == (
            PALETTE[1] if b.computed[i] else REUSED)
    # the step columns line up between the two timelines
    assert [tl_a.center(i)[0] for i in range(a.steps)] == [tl_b.center(i)[0] for i in range(b.steps)]


def test_estimator_points_and_threshold_line_are_drawn_in_the_chart():
    path = make_path()
    fig = skip_path_figure(path)
    x0, y0, x1, y1 = fig.chart
    region = fig.image.crop((x0 + 2, y0 + 2, x1 - 2, y1 - 2))
    colours = {c for _, c in region.getcolors(maxcolors=1 << 16)}
    assert PALETTE[0] in colours  # estimator dots and the dashed δ line
    assert draw.SIGMA in colours  # σ per step


def test_path_without_estimator_values_still_draws_with_a_note():
    path = make_path(estimator=[None] * 20, criterion="replay")
    image = draw_skip_path(path)
    assert image.width == 1000


def test_caption_names_calls_speedup_run_settings_and_psnr():
    fonts = load_fonts()
    path = make_path(psnr=31.234, model_calls=14, sampler_calls=20, max_consecutive_skips=3)
    setting, cost = caption_lines(path, fonts)
    assert "official" in setting and "0.01" in setting and "C_max=3" in setting and "reuse hold" in setting
    assert "14/20 model calls (1.43x)" in cost and "steps computed" in cost
    assert "euler / normal" in cost and "PSNR 31.23 dB" in cost
    _, cost = caption_lines(make_path(psnr=None), fonts)
    assert "PSNR" not in cost
    _, cost = caption_lines(make_path(psnr=math.inf), fonts)
    assert "identical" in cost


def test_empty_or_wrong_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="no steps"):
        draw_skip_path(SkipPath(sigmas=[]))
    with pytest.raises(ValueError, match="SkipPath"):
        draw_skip_path({"computed": [True]})
    with pytest.raises(ValueError, match="width"):
        draw_skip_path(make_path(), width=100)


def test_paths_of_different_lengths_share_the_step_scale():
    fig = skip_path_figure(make_path(steps=20), make_path(steps=10))
    a, b = fig.timelines
    assert b.width == pytest.approx(a.width / 2)
    assert a.center(3)[0] == b.center(3)[0]


def test_ticks():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert log_ticks(0.0005, 0.3) == [0.001, 0.01, 0.1]
    assert log_ticks(0.02, 0.09) == [0.02, 0.05]


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 20.0), (20, 25.0), (20, 22.0), (30, 24.0), (40, 30.0)]
    assert pareto_front(points) == [(10, 20.0), (20, 25.0), (40, 30.0)]
    assert pareto_front([(1, 5.0), (2, 3.0)], higher_is_better=False) == [(1, 5.0), (2, 3.0)]


def test_timeline_geometry_is_exclusive_at_the_right_edge():
    tl = Timeline(left=10, width=100, top=0, height=5, steps=4)
    assert [tl.cell(i)[:3:2] for i in range(4)] == [(10, 35), (35, 60), (60, 85), (85, 110)]
