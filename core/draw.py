"""Pictures of skip paths (AdaptiveDiffusion, arXiv 2410.09873, Fig. 1-style timelines) and Pareto plots.

Drawn with Pillow, not matplotlib: ComfyUI's requirements ship Pillow but not matplotlib, and the host-free core
may only add what the host already has. Everything is sized for reading at 1x on a laptop screen (about 1000 px
wide, 13-15 px text). The figure functions also return their geometry, so tests can find a step's cell.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from .skip_path import SkipPath

BACKGROUND = (255, 255, 255)
INK = (33, 37, 41)
MUTED = (110, 117, 125)
GRID = (228, 231, 235)
REUSED = (226, 229, 234)  # a reused step's cell, for every path
FORCED_MARK = (20, 20, 20)  # triangle on a call the C_max guard forced
WARMUP = (120, 126, 134)  # band under warm-up cells
WINDOW = (214, 39, 40)  # bar above cells outside the start/end window (they always call the model)
SIGMA = (150, 150, 150)
# Computed-cell / series colours, one per compared path (colour-blind-safe blue and orange first).
PALETTE = ((31, 94, 186), (221, 107, 32), (46, 139, 87), (148, 72, 168), (200, 50, 60), (0, 150, 160),
           (120, 90, 40), (90, 90, 90))

PAD = 12
LEFT = 70  # room for the estimator axis labels
RIGHT = 62  # room for the sigma axis labels
TIMELINE_H = 26
CHART_H = 190


@dataclass(frozen=True)
class Fonts:
    """Text fonts; `unicode` says whether Greek letters render (DejaVu) or must be spelled out (Pillow's font)."""

    title: ImageFont.ImageFont
    body: ImageFont.ImageFont
    small: ImageFont.ImageFont
    unicode: bool

    def sym(self, greek: str, ascii_name: str) -> str:
        return greek if self.unicode else ascii_name


def load_fonts() -> Fonts:
    """DejaVu Sans when the system has it (Greek glyphs), else Pillow's bundled scalable font, else its bitmap."""
    try:
        return Fonts(ImageFont.truetype("DejaVuSans-Bold.ttf", 14), ImageFont.truetype("DejaVuSans.ttf", 13),
                     ImageFont.truetype("DejaVuSans.ttf", 11), True)
    except OSError:
        pass
    try:
        return Fonts(ImageFont.load_default(size=15), ImageFont.load_default(size=13),
                     ImageFont.load_default(size=11), False)
    except TypeError:  # Pillow < 10.1 has no scalable default font
        font = ImageFont.load_default()
        return Fonts(font, font, font, False)


@dataclass(frozen=True)
class Timeline:
    """Where one path's step cells are: step i spans [x(i), x(i+1)) horizontally, [top, top+height) vertically."""

    left: float
    width: float
    top: int
    height: int
    steps: int

    def x(self, i: int) -> int:
        return round(self.left + self.width * i / max(self.steps, 1))

    def cell(self, i: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of step i's cell, x1/y1 exclusive."""
        return self.x(i), self.top, self.x(i + 1), self.top + self.height

    def center(self, i: int) -> tuple[int, int]:
        x0, y0, x1, y1 = self.cell(i)
        return (x0 + x1) // 2, (y0 + y1) // 2


@dataclass(frozen=True)
class Figure:
    image: Image.Image
    timelines: tuple[Timeline, ...]
    chart: tuple[int, int, int, int]  # plot box (x0, y0, x1, y1) of the estimator/sigma chart


# ----------------------------------------------------------------------------------------------- axes helpers
def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round-number ticks covering [lo, hi] (1, 2, 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    return [start + k * step for k in range(int((hi - start) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten inside [lo, hi]; with fewer than two, 1-2-5 steps inside the decade(s)."""
    decades = [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    ticks = [t for t in decades if lo * 0.999 <= t <= hi * 1.001]
    if len(ticks) >= 2:
        return ticks
    return [m * t for t in decades for m in (1, 2, 5) if lo * 0.999 <= m * t <= hi * 1.001]


def fmt(value: float) -> str:
    """Short tick label."""
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:g}" if abs(value) >= 1 else f"{value:.3g}"


class Axis:
    """Maps data values onto pixel rows/columns, linearly or in log10."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False) -> None:
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.lo, self.hi, self.p0, self.p1, self.log = lo, hi, p0, p1, log

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self) -> list[float]:
        if self.log:
            return log_ticks(10 ** self.lo, 10 ** self.hi)
        return nice_ticks(self.lo, self.hi)


def dashed_line(draw: ImageDraw.ImageDraw, xy: Sequence[tuple[float, float]], fill, width: int = 1,
                dash: int = 6, gap: int = 4) -> None:
    """A dashed polyline (Pillow has none)."""
    carry = 0.0
    for (x0, y0), (x1, y1) in zip(xy, xy[1:]):
        length = math.hypot(x1 - x0, y1 - y0)
        pos = -carry
        while pos < length:
            a, b = max(pos, 0.0), min(pos + dash, length)
            if b > a:
                draw.line([(x0 + (x1 - x0) * a / length, y0 + (y1 - y0) * a / length),
                           (x0 + (x1 - x0) * b / length, y0 + (y1 - y0) * b / length)], fill=fill, width=width)
            pos += dash + gap
        carry = pos - length


def text_width(draw: ImageDraw.ImageDraw, text: str, font) -> int:
    box = draw.textbbox((0, 0), text, font=font)
    return box[2] - box[0]


# ------------------------------------------------------------------------------------------ skip-path figure
def caption_lines(path: SkipPath, fonts: Fonts) -> tuple[str, str]:
    """The two caption lines of one path: its setting, then its cost and fidelity."""
    setting = path.setting(fonts.sym("δ", "delta"))
    calls = (f"{path.model_calls}/{path.sampler_calls} model calls ({path.speedup:.2f}x)" if path.sampler_calls
             else "model calls not recorded")
    cost = f"{calls}, {path.computed_steps}/{path.steps} steps computed"
    run = " / ".join(s for s in (path.sampler, path.scheduler) if s)
    if run:
        cost += f", {run}"
    if path.psnr is not None:
        cost += f", PSNR {path.psnr:.2f} dB vs full-step run" if math.isfinite(path.psnr) else ", identical to full-step run"
    return setting, cost


def _draw_timeline(draw: ImageDraw.ImageDraw, tl: Timeline, path: SkipPath, colour) -> None:
    sep = tl.width / max(tl.steps, 1) >= 5  # white gaps between cells when cells are wide enough to show them
    outside = path.outside_window
    for i in range(tl.steps):
        x0, y0, x1, y1 = tl.cell(i)
        if outside[i]:  # before start_percent or after end_percent: a bar above the cell
            draw.rectangle([x0, y0 - 4, max(x0, x1 - (2 if sep else 1)), y0 - 2], fill=WINDOW)
        fill = colour if path.computed[i] else REUSED
        draw.rectangle([x0, y0, max(x0, x1 - (2 if sep else 1)), y1 - 1], fill=fill)
        if i < len(path.warmup) and path.warmup[i]:
            draw.rectangle([x0, y1 + 1, max(x0, x1 - (2 if sep else 1)), y1 + 3], fill=WARMUP)
        if i < len(path.forced) and path.forced[i]:
            cx, w = (x0 + x1 - 1) / 2, max(2.0, min(5.0, (x1 - x0) / 2.5))
            draw.polygon([(cx - w, y0), (cx + w, y0), (cx, y0 + 1.6 * w)], fill=FORCED_MARK)


def _draw_step_axis(draw: ImageDraw.ImageDraw, tl: Timeline, y: int, fonts: Fonts) -> None:
    every = next(k for k in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 10 ** 9)
                 if tl.width * k / max(tl.steps, 1) >= 28)
    for i in range(0, tl.steps, every):
        cx = tl.center(i)[0]
        draw.line([(cx, y), (cx, y + 3)], fill=MUTED)
        label = str(i)
        draw.text((cx - text_width(draw, label, fonts.small) / 2, y + 4), label, font=fonts.small, fill=MUTED)


def _legend(draw: ImageDraw.ImageDraw, x: int, y: int, items: list[tuple[str, str, tuple]], fonts: Fonts) -> None:
    """Inline legend: (kind, label, colour) with kind in box/triangle/band/dots/dash/line."""
    for kind, label, colour in items:
        if kind == "box":
            draw.rectangle([x, y + 3, x + 11, y + 13], fill=colour)
        elif kind == "triangle":
            draw.polygon([(x, y + 3), (x + 11, y + 3), (x + 5.5, y + 13)], fill=colour)
        elif kind == "band":
            draw.rectangle([x, y + 7, x + 11, y + 10], fill=colour)
        elif kind == "dots":
            draw.ellipse([x + 2, y + 5, x + 9, y + 12], fill=colour)
        elif kind == "dash":
            dashed_line(draw, [(x, y + 8), (x + 18, y + 8)], colour, width=2, dash=5, gap=3)
        else:
            draw.line([(x, y + 8), (x + 18, y + 8)], fill=colour, width=2)
        x += (22 if kind in ("dash", "line") else 15)
        draw.text((x, y + 1), label, font=fonts.small, fill=INK)
        x += text_width(draw, label, fonts.small) + 16


def _draw_y_grid(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], y_axis: Axis, fonts: Fonts) -> None:
    """Horizontal grid lines across the box at the y axis' ticks, labelled left of it."""
    x0, y0, x1, y1 = box
    for t in y_axis.ticks():
        y = y_axis(t)
        if y0 <= y <= y1:
            draw.line([(x0 + 1, y), (x1 - 1, y)], fill=GRID)
            label = fmt(t)
            draw.text((x0 - 6 - text_width(draw, label, fonts.small), y - 7), label, font=fonts.small, fill=MUTED)


def _finite_positive(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v) and v > 0]


def _draw_chart(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], paths: Sequence[SkipPath],
                labels: Sequence[str], tl: Timeline, fonts: Fonts) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=GRID)
    delta, sigma = fonts.sym("δ", "delta"), fonts.sym("σ", "sigma")
    sig = [s for s in paths[0].sigmas[:-1] if s > 0]
    if sig:
        s_axis = Axis(min(sig) / 1.2, max(sig) * 1.2, y1 - 4, y0 + 4, log=max(sig) / min(sig) > 20)
        points = [(tl.center(i)[0], s_axis(s)) for i, s in enumerate(paths[0].sigmas[:-1]) if s > 0]
        if len(points) > 1:
            draw.line(points, fill=SIGMA, width=2)
        for t in s_axis.ticks():
            y = s_axis(t)
            if y0 <= y <= y1:
                draw.line([(x1, y), (x1 + 3, y)], fill=SIGMA)
                draw.text((x1 + 6, y - 7), fmt(t), font=fonts.small, fill=SIGMA)
        label = f"{sigma} per step"
        draw.text((x1 + RIGHT - 6 - text_width(draw, label, fonts.small), y0 - 17), label, font=fonts.small,
                  fill=SIGMA)
    est = [v for p in paths for v in _finite_positive(p.estimator)]
    thresholds = [p.threshold for p in paths if p.threshold > 0 and _finite_positive(p.estimator)]
    values = est + thresholds
    if values:
        lo, hi = min(values), max(values)
        use_log = hi / lo > 20  # a decade and more: log scale keeps small values and δ readable
        if use_log:
            lo, hi = lo / 1.5, hi * 1.5
        else:
            lo, hi = 0.0, hi * 1.15
        y_axis = Axis(lo, hi, y1 - 4, y0 + 4, log=use_log)
        _draw_y_grid(draw, box, y_axis, fonts)
        floor = 10 ** y_axis.lo if use_log else 0.0
        for k, p in enumerate(paths):
            colour = PALETTE[k % len(PALETTE)]
            if p.threshold > 0 and _finite_positive(p.estimator):
                y = y_axis(max(p.threshold, floor))
                dashed_line(draw, [(x0 + 1, y), (x1 - 1, y)], colour, width=2)
            points = [(tl.center(i)[0], y_axis(max(v, floor))) for i, v in enumerate(p.estimator)
                      if v is not None and math.isfinite(v) and (v > 0 or not use_log)]
            if len(points) > 1:
                draw.line(points, fill=colour, width=1)
            for i, v in enumerate(p.estimator):
                if v is None or not math.isfinite(v) or (use_log and v <= 0):
                    continue
                cx, cy = tl.center(i)[0], y_axis(max(v, floor))
                r = 3
                if p.computed[i]:
                    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
                else:
                    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, fill=BACKGROUND, width=2)
        scale = "log" if use_log else "linear"
        draw.text((x0, y0 - 17), f"estimator per step vs threshold {delta} ({scale})", font=fonts.small, fill=INK)
    else:
        draw.text((x0 + 8, y0 + 8), "no estimator values (replayed, stride or call-budget path)",
                  font=fonts.small, fill=MUTED)


def skip_path_figure(path: SkipPath, path_b: SkipPath | None = None, width: int = 1000,
                     labels: Sequence[str] | None = None) -> Figure:
    """Draw one SKIP_PATH, or two to compare, with the geometry of what was drawn.

    Per path: a caption (setting; model calls / sampler calls, steps, speedup, sampler / scheduler, PSNR when
    known) and a timeline of one cell per step (coloured = computed, grey = reused, triangle = forced by C_max,
    band below = warm-up). Below: the estimator per step (filled dot = computed, ring = reused) against its
    threshold, and σ per step on the right axis.
    """
    paths = [path] if path_b is None else [path, path_b]
    for p in paths:
        if not isinstance(p, SkipPath):
            raise ValueError(f"skip_path must be a SkipPath (SKIP_PATH), got {type(p).__name__}")
        if p.steps < 1:
            raise ValueError("skip_path holds no steps (the sampler did not run); connect a path from a finished run")
    if width < 400:
        raise ValueError(f"width must be at least 400 pixels, got {width}")
    labels = list(labels) if labels else (["A", "B"] if path_b is not None else [""])
    fonts = load_fonts()
    steps = max(p.steps for p in paths)
    plot_w = width - LEFT - RIGHT
    caption_h = 40
    block_h = caption_h + TIMELINE_H + 8
    height = PAD + len(paths) * block_h + 18 + 24 + 20 + CHART_H + 8 + PAD
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    timelines = []
    y = PAD
    for k, p in enumerate(paths):
        colour = PALETTE[k % len(PALETTE)]
        setting, cost = caption_lines(p, fonts)
        prefix = f"{labels[k]}: " if labels[k] else ""
        draw.text((LEFT, y), prefix + setting, font=fonts.title, fill=colour if path_b is not None else INK)
        draw.text((LEFT, y + 19), cost, font=fonts.body, fill=INK)
        tl = Timeline(left=LEFT, width=plot_w * p.steps / steps, top=y + caption_h, height=TIMELINE_H,
                      steps=p.steps)
        _draw_timeline(draw, tl, p, colour)
        label = labels[k] or "steps"
        draw.text((LEFT - 8 - text_width(draw, label, fonts.body), tl.top + 5), label, font=fonts.body, fill=INK)
        timelines.append(tl)
        y += block_h
    axis_tl = Timeline(left=LEFT, width=plot_w, top=y, height=0, steps=steps)
    _draw_step_axis(draw, axis_tl, y - 2, fonts)
    draw.text((LEFT - 8 - text_width(draw, "step", fonts.small), y + 2), "step", font=fonts.small, fill=MUTED)
    y += 18
    items = [("box", "computed", PALETTE[0])]
    if path_b is not None:
        items.append(("box", f"computed ({labels[1]})", PALETTE[1]))
    items += [("box", "reused", REUSED), ("triangle", "forced by C_max", FORCED_MARK),
              ("band", "warm-up", WARMUP), ("line", fonts.sym("σ", "sigma"), SIGMA)]
    if any(any(p.outside_window) for p in paths):
        items.insert(-1, ("band", "outside start/end window", WINDOW))
    _legend(draw, LEFT, y, items, fonts)
    y += 24 + 20
    chart = (LEFT, y, LEFT + plot_w, y + CHART_H)
    _draw_chart(draw, chart, paths, labels, axis_tl, fonts)
    return Figure(image=image, timelines=tuple(timelines), chart=chart)


def draw_skip_path(path: SkipPath, path_b: SkipPath | None = None, width: int = 1000,
                   labels: Sequence[str] | None = None) -> Image.Image:
    """The skip-path picture as an RGB PIL image (see skip_path_figure)."""
    return skip_path_figure(path, path_b, width, labels).image


# ------------------------------------------------------------------------------------------------ Pareto plot
def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (x, lower is better) and fidelity (y), sorted by x."""
    sign = 1 if higher_is_better else -1
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if not front or sign * y > sign * front[-1][1]:
            front.append((x, y))
    return front


def hstack(images: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    """Images side by side on a white background, tops aligned (e.g. the two Pareto views)."""
    if not images:
        raise ValueError("images must hold at least one image")
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (width, max(im.height for im in images)), BACKGROUND)
    x = 0
    for im in images:
        out.paste(im.convert("RGB"), (x, 0))
        x += im.width + gap
    return out


def vstack(images: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    """Images one above the other on a white background, left-aligned."""
    if not images:
        raise ValueError("images must hold at least one image")
    out = Image.new("RGB", (max(im.width for im in images), sum(im.height for im in images) + gap * (len(images) - 1)),
                    BACKGROUND)
    y = 0
    for im in images:
        out.paste(im.convert("RGB"), (0, y))
        y += im.height + gap
    return out
