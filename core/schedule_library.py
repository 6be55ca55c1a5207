"""Saved sigma schedules: one small JSON file per schedule (host-free; the folders come from the adapter).

A file holds the schedule, what it was found for (model identity and type, sampler, N, the model's σ range), its
fitness, the fitness of every built-in schedule at the same N, the search settings and cost, the date, and the
cache key of the search that found it (the same search inputs load this file instead of searching again).
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

FORMAT = "adaptive_skip.schedule"
VERSION = 1
EXTENSION = ".json"
SHOWN_BASELINES = 12  # built-ins listed in a report (sampler_name auto compares with ~100 pairs)


@dataclass(frozen=True)
class ScheduleRecord:
    """One saved schedule. `sigmas` has steps + 1 values, strictly decreasing, ending in 0."""

    sigmas: list[float]
    sampler: str
    model_type: str
    sigma_min: float
    sigma_max: float
    model_id: str = ""
    fitness: float | None = None
    fitness_metric: str = "latent MSE vs reference"
    baselines: dict[str, float] = field(default_factory=dict)
    search: dict = field(default_factory=dict)
    cache_key: str = ""
    created: str = ""
    note: str = ""

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def to_dict(self) -> dict:
        out = {"format": FORMAT, "version": VERSION, "steps": self.steps}
        out.update(asdict(self))
        return out

    @classmethod
    def from_dict(cls, data, source: str = "schedule") -> ScheduleRecord:
        """Parse a record; ValueError says which file and which field is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"{source}: not an AdaptiveSkip schedule file (its 'format' is {data.get('format')!r}, "
                             f"expected {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"{source}: schedule file version {data.get('version')!r} is not supported "
                             f"(this pack reads version {VERSION}); update the pack")
        for name in ("sigmas", "sampler", "model_type", "sigma_min", "sigma_max"):
            if name not in data:
                raise ValueError(f"{source}: the field {name!r} is missing")
        sigmas = data["sigmas"]
        if (not isinstance(sigmas, list) or len(sigmas) < 2
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in sigmas)):
            raise ValueError(f"{source}: 'sigmas' must be a list of at least 2 finite numbers")
        if sigmas[-1] != 0 or any(a <= b for a, b in zip(sigmas, sigmas[1:])):
            raise ValueError(f"{source}: 'sigmas' must be strictly decreasing and end in 0, got {sigmas}")
        if "steps" in data and data["steps"] != len(sigmas) - 1:
            raise ValueError(f"{source}: 'steps' is {data['steps']} but 'sigmas' has {len(sigmas) - 1} steps")
        try:
            smin, smax = float(data["sigma_min"]), float(data["sigma_max"])
        except (TypeError, ValueError):
            raise ValueError(f"{source}: 'sigma_min' and 'sigma_max' must be numbers") from None
        if not 0 < smin < smax:
            raise ValueError(f"{source}: need 0 < sigma_min < sigma_max, got {smin} and {smax}")
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.update(sigmas=[float(v) for v in sigmas], sigma_min=smin, sigma_max=smax)
        return cls(**kwargs)


def load_record(path: str) -> ScheduleRecord:
    """Read a schedule file; ValueError with the path for a missing, empty, truncated or malformed file."""
    if not os.path.isfile(path):
        raise ValueError(f"schedule file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"schedule file {path} cannot be read as UTF-8 text: {err}") from err
    if not text.strip():
        raise ValueError(f"schedule file {path} is empty; delete it or save the schedule again")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated string"):
            raise ValueError(f"schedule file {path} is truncated (the JSON ends early); delete it or save the "
                             "schedule again") from err
        raise ValueError(f"schedule file {path} is not valid JSON (line {err.lineno}, column {err.colno}: "
                         f"{err.msg})") from err
    return ScheduleRecord.from_dict(data, source=f"schedule file {path}")


def save_record(record: ScheduleRecord, folder: str, name: str) -> str:
    """Write `record` as folder/name.json atomically (a half-written file never replaces a good one)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, safe_name(name) + EXTENSION)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=EXTENSION)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record.to_dict(), f, indent=1)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a library file is ordinary data
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def safe_name(name: str) -> str:
    """A file-system and dropdown friendly stem: letters, digits, '-', '_' and '.'."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("._")
    if not stem:
        raise ValueError(f"schedule name {name!r} has no usable characters; use letters, digits, '-' or '_'")
    return stem[:120]


def default_name(model_type: str, sampler: str, steps: int, cache_key: str) -> str:
    return safe_name(f"{model_type}_{sampler}_{steps}steps_{cache_key[:8]}")


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def format_sigmas(sigmas) -> str:
    """One line of sigmas with enough digits (8) that parsing it back gives the same float32 values."""
    return ", ".join(f"{float(v):.8g}" if v else "0" for v in sigmas)


def describe(record: ScheduleRecord) -> str:
    """Multi-line text: the schedule (pasteable into TimestepScheduleFromText), its fitness and the baselines."""
    lines = [format_sigmas(record.sigmas)]
    head = f"{record.steps} steps, sampler {record.sampler}, model type {record.model_type}"
    if record.fitness is not None:
        head += f", fitness {record.fitness:.4g} ({record.fitness_metric})"
    lines.append(head)
    if record.search.get("sampler_name") == "auto":
        genes = record.search.get("samplers") or []
        lines.append(f"sampler searched (auto) among {len(genes)} deterministic samplers at <= "
                     f"{record.search.get('steps')} model calls per sample: {record.sampler} "
                     f"({record.search.get('sampler_calls', '?')} calls)")
    if record.baselines:
        best_name = min(record.baselines, key=record.baselines.get)
        best = record.baselines[best_name]
        ranked = sorted(record.baselines.items(), key=lambda kv: kv[1])
        for name, value in ranked[:SHOWN_BASELINES]:
            lines.append(f"  {name:<12} {value:.4g}")
        if len(ranked) > SHOWN_BASELINES:
            lines.append(f"  ... {len(ranked) - SHOWN_BASELINES} more built-ins (all in the saved record)")
        if record.fitness is not None and record.fitness > 0:
            lines.append(f"searched / best built-in ({best_name}): {record.fitness / best:.3f} "
                         f"({best / record.fitness:.2f}x lower error)")
    picked = record.search.get("picked", "")
    if picked and not picked.startswith("search"):
        lines.append(f"no searched schedule clearly beat the built-ins once re-scored on the validation seeds: "
                     f"this is {picked}")
    cost = record.search.get("model_calls")
    if cost is not None:
        lines.append(f"search cost: {cost} model calls, {record.search.get('seconds', 0):.1f} s")
    return "\n".join(lines)
