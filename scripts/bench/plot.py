"""The benchmark's Pareto plots (fidelity against model calls or wall time) as PNG, drawn with the core's
drawing helpers (core/draw.py): one panel per (section, axis pair), one colour per method family, each family's
Pareto front drawn as a step line through its non-dominated runs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pack_loader import core
from PIL import Image, ImageDraw

from . import plan as P

D = core("draw")


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


def draw_pareto(series: Mapping[str, Sequence[tuple[float, float]]], x_label: str, y_label: str, title: str = "",
                width: int = 720, height: int = 440, log_x: bool = False, higher_is_better: bool = True,
                point_labels: Mapping[str, Sequence[str]] | None = None) -> Image.Image:
    """Fidelity (y) against cost (x: model calls, wall time) for several labelled series, with the Pareto front
    over all points drawn as a dashed staircase. Returns an RGB image; save it with image.save(path, "PNG")."""
    finite = {name: [(float(x), float(y)) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
              for name, pts in series.items()}
    everything = [p for pts in finite.values() for p in pts]
    if not everything:
        raise ValueError("series must hold at least one finite (cost, fidelity) point")
    if log_x and min(x for x, _ in everything) <= 0:
        raise ValueError("log_x needs positive costs; use log_x=False for zero or negative x")
    fonts = D.load_fonts()
    image = Image.new("RGB", (width, height), D.BACKGROUND)
    draw = ImageDraw.Draw(image)
    box = (D.LEFT, D.PAD + (26 if title else 8), width - 24, height - 48)
    x0, y0, x1, y1 = box
    if title:
        draw.text((D.LEFT, D.PAD), title, font=fonts.title, fill=D.INK)
    xs, ys = [x for x, _ in everything], [y for _, y in everything]
    if log_x:
        x_axis = D.Axis(min(xs) / 1.15, max(xs) * 1.15, x0 + 6, x1 - 6, log=True)
    else:
        span = (max(xs) - min(xs)) or abs(max(xs)) or 1.0
        x_axis = D.Axis(min(xs) - 0.06 * span, max(xs) + 0.06 * span, x0 + 6, x1 - 6)
    span = (max(ys) - min(ys)) or abs(max(ys)) or 1.0
    y_axis = D.Axis(min(ys) - 0.08 * span, max(ys) + 0.08 * span, y1 - 6, y0 + 6)
    draw.rectangle(box, outline=D.GRID)
    for t in x_axis.ticks():
        x = x_axis(t)
        if x0 <= x <= x1:
            draw.line([(x, y0 + 1), (x, y1 - 1)], fill=D.GRID)
            label = D.fmt(t)
            draw.text((x - D.text_width(draw, label, fonts.small) / 2, y1 + 4), label, font=fonts.small, fill=D.MUTED)
    D._draw_y_grid(draw, box, y_axis, fonts)
    draw.text(((x0 + x1 - D.text_width(draw, x_label, fonts.body)) / 2, y1 + 22), x_label, font=fonts.body, fill=D.INK)
    draw.text((x0 + 6, y0 + 4), y_label + (" (higher is better)" if higher_is_better else " (lower is better)"),
              font=fonts.small, fill=D.MUTED)
    front = D.pareto_front(everything, higher_is_better)
    stair = []
    for (xa, ya), (xb, _) in zip(front, front[1:] + [(None, None)]):
        stair.append((x_axis(xa), y_axis(ya)))
        if xb is not None:
            stair.append((x_axis(xb), y_axis(ya)))
    if len(stair) > 1:
        D.dashed_line(draw, stair, D.MUTED, width=1, dash=4, gap=3)
    legend_y = y0 + 24
    for k, (name, pts) in enumerate(finite.items()):
        colour = D.PALETTE[k % len(D.PALETTE)]
        mapped = sorted((x_axis(x), y_axis(y)) for x, y in pts)
        if len(mapped) > 1:
            draw.line(mapped, fill=colour, width=2)
        for j, (x, y) in enumerate(pts):
            px, py = x_axis(x), y_axis(y)
            draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour, outline=D.BACKGROUND)
            names = (point_labels or {}).get(name)
            if names and j < len(names) and names[j]:
                draw.text((px + 6, py - 15), str(names[j]), font=fonts.small, fill=colour)
        lx = x1 - 170
        draw.rectangle([lx, legend_y + 4, lx + 11, legend_y + 14], fill=colour)
        draw.text((lx + 16, legend_y + 1), name, font=fonts.small, fill=D.INK)
        legend_y += 17
    if len(stair) > 1:
        lx = x1 - 170
        D.dashed_line(draw, [(lx, legend_y + 9), (lx + 11, legend_y + 9)], D.MUTED, width=1, dash=3, gap=2)
        draw.text((lx + 16, legend_y + 1), "Pareto front", font=fonts.small, fill=D.INK)
    return image


def _series(rows: list[dict[str, Any]], xcol: str, ycol: str) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        x, y = r.get(xcol), r.get(ycol)
        if r["method"] != P.HIGH and isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0 \
                and math.isfinite(y):
            series.setdefault(family(r), []).append((float(x), float(y)))
    return series


def pareto_grid(rows: list[dict[str, Any]], path: Path, panels: list[tuple[str, str, str, bool]]) -> Path:
    """One row of panels per section; each family is drawn as its own Pareto front so sweeps read as curves."""
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
            series = {k: D.pareto_front(found.get(k, [])) for k in order}
            ref = "high-accuracy reference" if "high" in ycol else "full-step run"
            panes.append(draw_pareto(series, xlabel, f"latent PSNR vs {ref} (dB)",
                                     title=f"{section}: fidelity vs {xlabel}", width=640, height=460, log_x=logx))
        lines.append(D.hstack(panes))
    path.parent.mkdir(parents=True, exist_ok=True)
    D.vstack(lines).save(path, "PNG")
    return path


def plot_pareto(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """The two Pareto figures: fidelity vs model calls and vs wall time (left: against the high-accuracy reference,
    right: against the full-step run)."""
    figures = [("pareto_calls.png", [("model_calls", "psnr_high_latent", "model calls", False),
                                     ("model_calls", "psnr_full_latent", "model calls", False)]),
               ("pareto_wall.png", [("wall_s", "psnr_high_latent", "wall time (s)", True),
                                    ("wall_s", "psnr_full_latent", "wall time (s)", True)])]
    return [pareto_grid(rows, out_dir / name, panels) for name, panels in figures]
