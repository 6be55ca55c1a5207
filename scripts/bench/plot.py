"""Pareto plots (fidelity against model calls or wall time) written as PNG with Pillow.

Used when the pack's core has no Pareto drawing function (core/draw.py); one panel per (section, axis pair),
one colour per method family, each family's Pareto front drawn as a step line through its non-dominated runs.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from . import plan as P

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0)]


def family(row: dict[str, Any]) -> str:
    """The legend entry a run belongs to (eight groups, so colours stay distinguishable; AS = AdaptiveSkip)."""
    m = row["method"]
    if m == P.ADAPTIVE:
        crit, reuse = row.get("criterion"), row.get("reuse")
        if reuse != "hold":
            return "AS extrapolated"
        if crit in ("official", "strict", "paper"):
            return "AS rules, hold"
        return "AS calls/stride, hold"
    return {P.FEWER: "fewer steps (same)", P.FULL: "fewer steps (same)", P.OTHER: "fewer steps (others)",
            P.EASYCACHE: "EasyCache", P.LAZYCACHE: "LazyCache", P.ORACLE: "oracle path", P.HIGH: "high-accuracy",
            P.SCHEDULE: "schedule"}.get(m, m)


FAMILY_ORDER = ("fewer steps (same)", "fewer steps (others)", "AS rules, hold", "AS calls/stride, hold",
                "AS extrapolated", "EasyCache", "LazyCache", "oracle path", "schedule")


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten by another with lower-or-equal cost (x) and higher-or-equal fidelity (y), sorted by x."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = (hi - lo) or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= count:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def draw_panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], series: dict[str, list[tuple[float, float]]],
               colours: dict[str, tuple[int, int, int]], title: str, xlabel: str, ylabel: str, logx: bool = False) -> None:
    """One scatter panel with axes, ticks and per-family Pareto step lines inside `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    left, right, top, bottom = x0 + 58, x1 - 10, y0 + 26, y1 - 40
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    font, small = _font(14), _font(11)
    draw.text((x0 + 8, y0 + 4), title, fill=(0, 0, 0), font=font)
    if not pts:
        return
    tx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    xs, ys = [tx(p[0]) for p in pts], [p[1] for p in pts]
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = min(ys), max(ys)
    pad_x, pad_y = (xhi - xlo) * 0.05 or 0.5, (yhi - ylo) * 0.06 or 0.5
    xlo, xhi, ylo, yhi = xlo - pad_x, xhi + pad_x, ylo - pad_y, yhi + pad_y

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (tx(x) - xlo) / (xhi - xlo) * (right - left), bottom - (y - ylo) / (yhi - ylo) * (bottom - top))

    draw.rectangle((left, top, right, bottom), outline=(0, 0, 0))
    for t in _nice_ticks(ylo, yhi):
        py = bottom - (t - ylo) / (yhi - ylo) * (bottom - top)
        draw.line((left, py, right, py), fill=(230, 230, 230))
        draw.text((x0 + 4, py - 6), f"{t:g}", fill=(0, 0, 0), font=small)
    for t in _nice_ticks(xlo, xhi):
        px = left + (t - xlo) / (xhi - xlo) * (right - left)
        draw.line((px, top, px, bottom), fill=(230, 230, 230))
        label = f"{10 ** t:.3g}" if logx else f"{t:g}"
        draw.text((px - 10, bottom + 4), label, fill=(0, 0, 0), font=small)
    draw.text(((left + right) / 2 - 40, bottom + 20), xlabel, fill=(0, 0, 0), font=small)
    draw.text((x0 + 4, top - 14), ylabel, fill=(0, 0, 0), font=small)
    for name, s in series.items():
        colour = colours[name]
        finite = [p for p in s if math.isfinite(p[1])]
        front = pareto_front(finite)
        for a, b in zip(front, front[1:]):
            pa, pb = to_px(*a), to_px(*b)
            draw.line((pa[0], pa[1], pb[0], pa[1]), fill=colour, width=2)
            draw.line((pb[0], pa[1], pb[0], pb[1]), fill=colour, width=2)
        for p in finite:
            px, py = to_px(*p)
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), outline=colour, fill=colour if p in front else None)


def pareto_figure(rows: list[dict[str, Any]], path: Path, panels: list[tuple[str, str, str, bool]],
                  title: str, panel_size: tuple[int, int] = (520, 360)) -> Path:
    """Grid: one row per section, one column per (x column, y column, axis label, log x) in `panels`."""
    sections = list(dict.fromkeys(r["section"] for r in rows))
    present = {family(r) for r in rows if r["method"] != P.HIGH}
    families = [f for f in FAMILY_ORDER if f in present] + sorted(present - set(FAMILY_ORDER))
    colours = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(families)}
    w, h = panel_size
    legend_h = 22 * math.ceil(len(families) / 3) + 40
    img = Image.new("RGB", (w * len(panels), h * len(sections) + legend_h), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), title, fill=(0, 0, 0), font=_font(16))
    for i, section in enumerate(sections):
        srows = [r for r in rows if r["section"] == section and r["method"] != P.HIGH]
        for j, (xcol, ycol, xlabel, logx) in enumerate(panels):
            series: dict[str, list[tuple[float, float]]] = {}
            for r in srows:
                x, y = r.get(xcol), r.get(ycol)
                if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0 and math.isfinite(y):
                    series.setdefault(family(r), []).append((float(x), float(y)))
            box = (j * w, legend_h - 10 + i * h, (j + 1) * w, legend_h - 10 + (i + 1) * h)
            draw_panel(draw, box, series, colours, f"{section}: {ycol} vs {xlabel}", xlabel, ycol, logx)
    small = _font(12)
    for k, fam in enumerate(families):
        cx, cy = 10 + (k % 3) * 300, 32 + (k // 3) * 22
        draw.rectangle((cx, cy + 3, cx + 12, cy + 15), fill=colours[fam])
        draw.text((cx + 18, cy + 1), fam, fill=(0, 0, 0), font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _series(rows: list[dict[str, Any]], xcol: str, ycol: str) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        x, y = r.get(xcol), r.get(ycol)
        if r["method"] != P.HIGH and isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0 \
                and math.isfinite(y):
            series.setdefault(family(r), []).append((float(x), float(y)))
    return series


def core_figure(draw_mod, rows: list[dict[str, Any]], path: Path, panels: list[tuple[str, str, str, bool]]) -> Path:
    """The same grid drawn with the pack's core/draw.py (draw_pareto, hstack, vstack); each family is drawn as
    its own Pareto front so sweeps read as curves."""
    sections = list(dict.fromkeys(r["section"] for r in rows))
    present = {family(r) for r in rows}
    order = [f for f in FAMILY_ORDER if f in present] + sorted(present - set(FAMILY_ORDER) - {"high-accuracy"})
    lines = []
    for section in sections:
        srows = [r for r in rows if r["section"] == section]
        panes = []
        for xcol, ycol, xlabel, logx in panels:
            found = _series(srows, xcol, ycol)
            # every panel lists the same families in the same order, so a family keeps its colour everywhere
            series = {k: pareto_front(found.get(k, [])) for k in order}
            ref = "high-accuracy reference" if "high" in ycol else "full-step run"
            panes.append(draw_mod.draw_pareto(series, xlabel, f"latent PSNR vs {ref} (dB)",
                                              title=f"{section}: fidelity vs {xlabel}", width=640, height=460,
                                              log_x=logx))
        lines.append(draw_mod.hstack(panes))
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_mod.vstack(lines).save(path, "PNG")
    return path


def plot_pareto(rows: list[dict[str, Any]], out_dir: Path, draw_mod=None) -> list[Path]:
    """The two Pareto figures: fidelity vs model calls (both references) and fidelity vs wall time.

    Uses the pack's core/draw.py when given (draw_pareto), else this module's Pillow drawing."""
    figures = [("pareto_calls.png", [("model_calls", "psnr_high_latent", "model calls", False),
                                     ("model_calls", "psnr_full_latent", "model calls", False)],
                "Fidelity (latent PSNR, dB) vs model calls — left: vs high-accuracy reference, right: vs full-step run"),
               ("pareto_wall.png", [("wall_s", "psnr_high_latent", "wall time (s)", True),
                                    ("wall_s", "psnr_full_latent", "wall time (s)", True)],
                "Fidelity (latent PSNR, dB) vs wall time — left: vs high-accuracy reference, right: vs full-step run")]
    out = []
    for name, panels, title in figures:
        if draw_mod is not None and hasattr(draw_mod, "draw_pareto"):
            try:
                out.append(core_figure(draw_mod, rows, out_dir / name, panels))
                continue
            except (TypeError, ValueError, AttributeError):  # an API change in core/draw.py: fall back
                pass
        out.append(pareto_figure(rows, out_dir / name, panels, title))
    return out
