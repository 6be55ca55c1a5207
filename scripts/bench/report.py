"""Score finished runs against both references and write the CSV and markdown tables.

Fidelity is per seed, averaged over seeds: PSNR (dB) and SSIM of the final LATENT (data range: each reference
sample's own peak-to-peak range) and of the decoded 8x8 image (range 1), against the section's full-step run and
against its high-accuracy reference; a Fréchet feature distance (digits classifier features) of all seeds' images
against the high-accuracy reference's images.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import plan as P
from .harness import RunResult

COLUMNS = [
    "section", "method", "label", "sampler", "scheduler", "steps", "criterion", "threshold", "max_consecutive_skips",
    "reuse", "stride", "target_calls", "model_calls", "sampler_calls", "unet_forwards", "wall_s", "speedup_calls",
    "speedup_wall", "psnr_full_latent", "ssim_full_latent", "psnr_high_latent", "ssim_high_latent",
    "psnr_full_image", "ssim_full_image", "psnr_high_image", "ssim_high_image", "feature_distance_high",
    "bookkeeping_us_per_call", "model_call_ms", "overhead_fraction", "controller_bytes", "peak_rss_delta_mb",
]


@dataclass
class Scorer:
    """Metric functions from the pack's core (metrics, digits_features) plus the decode constants."""

    metrics: Any
    features: Any
    classifier: Any
    decode: dict[str, float]

    def images(self, samples: torch.Tensor) -> torch.Tensor:
        return self.features.latent_to_digits(samples, self.decode["mean"], self.decode["std"], self.decode["scale"])

    def fidelity(self, samples: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
        m = self.metrics
        img, ref_img = self.images(samples), self.images(ref)
        return {"psnr_latent": m.mean_db(m.psnr(samples, ref)), "ssim_latent": float(m.ssim(samples, ref).mean()),
                "psnr_image": m.mean_db(m.psnr(img, ref_img, data_range=1.0)),
                "ssim_image": float(m.ssim(img, ref_img, data_range=1.0).mean())}

    def feature_distance(self, samples: torch.Tensor, ref: torch.Tensor) -> float | None:
        if samples.shape[0] < 2:
            return None
        f = self.features
        return f.feature_distance(f.digit_features(self.classifier, self.images(samples)),
                                  f.digit_features(self.classifier, self.images(ref)))


@dataclass
class MnistScorer(Scorer):
    """Scorer for the flow DiT: its exact decode to 28x28 digits and the MNIST classifier's features
    (``features`` is core/mnist_features.py, ``distance`` the Fréchet distance function)."""

    distance: Callable[[Any, Any], float] = None

    def images(self, samples: torch.Tensor) -> torch.Tensor:
        return self.features.latent_to_mnist(samples, self.decode["mean"], self.decode["std"])

    def feature_distance(self, samples: torch.Tensor, ref: torch.Tensor) -> float | None:
        if samples.shape[0] < 2:
            return None
        f = self.features
        return self.distance(f.mnist_features(self.classifier, self.images(samples)),
                             f.mnist_features(self.classifier, self.images(ref)))


def _setting(spec: P.RunSpec) -> dict[str, Any]:
    kw = spec.skip_kwargs
    out = {k: kw.get(k, "") for k in ("criterion", "max_consecutive_skips", "reuse", "stride", "target_calls")}
    out["threshold"] = kw.get("threshold", spec.threshold if spec.threshold is not None else "")
    if kw.get("criterion") not in ("stride",):
        out["stride"] = ""
    if kw.get("criterion") not in ("calls",):
        out["target_calls"] = ""
    if kw.get("criterion") in ("calls", "stride"):
        out["threshold"] = ""
    return out


def score_section(section_plan: P.SectionPlan, results: dict[str, RunResult], scorer: Scorer,
                  extra: list[P.RunSpec] = ()) -> list[dict[str, Any]]:
    """One CSV row per run the section compares (its references included)."""
    full, high = results[section_plan.full.key], results[section_plan.high.key]
    rows = []
    for spec in [section_plan.full, section_plan.high] + list(section_plan.runs) + list(extra):
        res = results.get(spec.key)
        if res is None:
            continue
        vs_full, vs_high = scorer.fidelity(res.samples, full.samples), scorer.fidelity(res.samples, high.samples)
        row = {"section": section_plan.section.name, "method": spec.method, "label": spec.label,
               "sampler": spec.sampler, "scheduler": spec.scheduler if spec.sigmas is None else "custom",
               "steps": spec.steps, **_setting(spec), "model_calls": round(res.model_calls, 3),
               "sampler_calls": res.sampler_calls, "unet_forwards": res.forwards, "wall_s": round(res.wall, 4),
               "speedup_calls": round(full.model_calls / res.model_calls, 3) if res.model_calls else "",
               "speedup_wall": round(full.wall / res.wall, 3) if res.wall else ""}
        for ref_name, fid in (("full", vs_full), ("high", vs_high)):
            for metric, value in fid.items():
                name, space = metric.split("_")
                row[f"{name}_{ref_name}_{space}"] = round(value, 4) if math.isfinite(value) else value
        fd = scorer.feature_distance(res.samples, high.samples)
        row["feature_distance_high"] = round(fd, 5) if fd is not None else ""
        row["bookkeeping_us_per_call"] = round(res.bookkeeping_us, 2) if res.bookkeeping_us is not None else ""
        row["model_call_ms"] = round(res.model_call_ms, 3) if res.model_call_ms is not None else ""
        row["overhead_fraction"] = ""
        if spec.method in (P.ADAPTIVE, P.ORACLE) and res.bookkeeping_us is not None and res.model_call_ms:
            row["overhead_fraction"] = round(res.bookkeeping_us / (1000 * res.model_call_ms), 5)
        row["controller_bytes"] = res.controller_bytes if res.controller_bytes is not None else ""
        row["peak_rss_delta_mb"] = round(res.peak_rss_mb, 2) if res.peak_rss_mb is not None else ""
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _fmt(value: Any, digits: int = 2) -> str:
    if value in ("", None):
        return ""
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_all_runs(rows: list[dict[str, Any]]) -> str:
    """Every run of every section, one line each."""
    cols = [("section", 0), ("label", 0), ("model_calls", 0), ("wall_s", 3), ("speedup_wall", 2),
            ("psnr_full_latent", 2), ("ssim_full_latent", 4), ("psnr_high_latent", 2), ("ssim_high_latent", 4),
            ("psnr_high_image", 2), ("ssim_high_image", 4), ("feature_distance_high", 4),
            ("bookkeeping_us_per_call", 1), ("controller_bytes", 0)]
    head = ["section", "run", "calls", "wall s", "wall ×", "PSNR full", "SSIM full", "PSNR high", "SSIM high",
            "img PSNR high", "img SSIM high", "FD high", "ctrl µs/call", "ctrl bytes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = []
        for c, d in cols:
            v = r.get(c, "")
            cells.append(_fmt(round(v, 2) if c == "model_calls" and isinstance(v, float) else v, d))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Columns of the side-by-side budget table: (header, filter over a section's rows).
def _is(method: str, **setting: Any) -> Callable[[dict[str, Any]], bool]:
    def match(row: dict[str, Any]) -> bool:
        return row["method"] == method and all(str(row.get(k)) == str(v) for k, v in setting.items())
    return match


BUDGET_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("fewer steps (same)", _is(P.FEWER)),
    ("best fewer-steps sampler", lambda r: r["method"] in (P.FEWER, P.OTHER)),
    ("official hold", _is(P.ADAPTIVE, criterion="official", reuse="hold")),
    ("strict hold", _is(P.ADAPTIVE, criterion="strict", reuse="hold")),
    ("paper hold", _is(P.ADAPTIVE, criterion="paper", reuse="hold")),
    ("official linear", _is(P.ADAPTIVE, criterion="official", reuse="linear")),
    ("official quadratic", _is(P.ADAPTIVE, criterion="official", reuse="quadratic")),
    ("error quadratic", _is(P.ADAPTIVE, criterion="error", reuse="quadratic")),
    ("calls hold", _is(P.ADAPTIVE, criterion="calls", reuse="hold")),
    ("calls linear", _is(P.ADAPTIVE, criterion="calls", reuse="linear")),
    ("calls quadratic", _is(P.ADAPTIVE, criterion="calls", reuse="quadratic")),
    ("stride hold", _is(P.ADAPTIVE, criterion="stride", reuse="hold")),
    ("stride quadratic", _is(P.ADAPTIVE, criterion="stride", reuse="quadratic")),
    ("EasyCache", _is(P.EASYCACHE)),
    ("LazyCache", _is(P.LAZYCACHE)),
    ("oracle hold", _is(P.ORACLE, reuse="hold")),
    ("oracle quadratic", _is(P.ORACLE, reuse="quadratic")),
]


def best_within(rows: list[dict[str, Any]], budget: int, metric: str) -> dict[str, Any] | None:
    """The row with the highest `metric` among rows spending at most `budget` model calls."""
    fit = [r for r in rows if isinstance(r.get(metric), (int, float)) and r["model_calls"] <= budget + 1e-9]
    return max(fit, key=lambda r: r[metric]) if fit else None


def budget_table(rows: list[dict[str, Any]], budgets: tuple[int, ...], ref: str) -> tuple[str, dict]:
    """Side-by-side PSNR/SSIM (latent) at each call budget against one reference ("full" or "high").

    A cell is the best run of that family within the budget: "PSNR/SSIM", with "@calls" when it spent fewer
    calls than the budget, and the sampler name for the best-sampler column. Returns (markdown, cells)."""
    metric, ssim = f"psnr_{ref}_latent", f"ssim_{ref}_latent"
    present = [(h, f) for h, f in BUDGET_COLUMNS if any(f(r) for r in rows)]
    lines = ["| calls | " + " | ".join(h for h, _ in present) + " |", "|---|" + "---|" * len(present)]
    cells: dict[tuple[int, str], dict[str, Any] | None] = {}
    for n in budgets:
        out = []
        for header, f in present:
            best = best_within([r for r in rows if f(r)], n, metric)
            cells[(n, header)] = best
            if best is None:
                out.append("—")
                continue
            text = f"{_fmt(best[metric], 1)}/{_fmt(best[ssim], 3)}"
            if round(best["model_calls"]) != n:
                text += f" @{best['model_calls']:g}"
            if header == "best fewer-steps sampler":
                text += f" {best['sampler']}"
            out.append(text)
        lines.append(f"| {n} | " + " | ".join(out) + " |")
    return "\n".join(lines), cells


def verdicts(cells: dict, budgets: tuple[int, ...], ref: str) -> list[str]:
    """One line per AdaptiveSkip family: at how many budgets it beats each fewer-steps baseline (PSNR)."""
    metric = f"psnr_{ref}_latent"
    lines = []
    families = sorted({h for (_, h) in cells} - {"fewer steps (same)", "best fewer-steps sampler"},
                      key=[h for h, _ in BUDGET_COLUMNS].index)
    for fam in families:
        beats_same = beats_best = total = 0
        margins = []
        for n in budgets:
            run, same, best = cells.get((n, fam)), cells.get((n, "fewer steps (same)")), \
                cells.get((n, "best fewer-steps sampler"))
            if run is None or same is None or best is None:
                continue
            total += 1
            beats_same += run[metric] > same[metric]
            beats_best += run[metric] > best[metric]
            margins.append(min(run[metric], 100) - min(best[metric], 100))
        if total:
            lines.append(f"- {fam}: beats fewer steps of the same sampler at {beats_same}/{total} budgets, the best "
                         f"fewer-steps sampler at {beats_best}/{total} (margin to best {min(margins):+.1f} to "
                         f"{max(margins):+.1f} dB)")
    return lines


def own_budget_table(rows: list[dict[str, Any]], methods: Callable[[dict[str, Any]], bool]) -> str:
    """Runs that land on arbitrary call counts (threshold rules, EasyCache, LazyCache) against the best fewer-steps
    run of the same sampler and of any sampler spending no more calls, latent PSNR against both references."""
    head = ["section", "run", "calls", "PSNR high", "same sampler ≤ calls", "best sampler ≤ calls", "Δ high",
            "PSNR full", "same ≤ calls (full)", "Δ full"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if not methods(r) or r["model_calls"] >= r.get("steps", 0):
            continue
        srows = [q for q in rows if q["section"] == r["section"]]
        same = [q for q in srows if q["method"] == P.FEWER]
        anyone = [q for q in srows if q["method"] in (P.FEWER, P.OTHER)]
        sh = best_within(same, r["model_calls"], "psnr_high_latent")
        bh = best_within(anyone, r["model_calls"], "psnr_high_latent")
        sf = best_within(same, r["model_calls"], "psnr_full_latent")
        if sh is None or bh is None or sf is None:
            continue
        lines.append(f"| {r['section']} | {r['label']} | {r['model_calls']:g} | {_fmt(r['psnr_high_latent'], 1)} | "
                     f"{_fmt(sh['psnr_high_latent'], 1)} ({sh['steps']} st.) | {_fmt(bh['psnr_high_latent'], 1)} "
                     f"({bh['sampler']} {bh['steps']}) | {r['psnr_high_latent'] - bh['psnr_high_latent']:+.1f} | "
                     f"{_fmt(r['psnr_full_latent'], 1)} | {_fmt(sf['psnr_full_latent'], 1)} ({sf['steps']} st.) | "
                     f"{min(r['psnr_full_latent'], 100) - sf['psnr_full_latent']:+.1f} |")
    return "\n".join(lines)
