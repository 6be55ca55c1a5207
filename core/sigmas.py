"""Sigma-schedule validation and resampling (host-free)."""
from __future__ import annotations

import math

import torch


def validate_sigmas(sigmas, sigma_min: float | None = None, sigma_max: float | None = None,
                    name: str = "sigmas") -> torch.Tensor:
    """Return `sigmas` as a 1-D float tensor, or raise ValueError naming the problem and the fix.

    A valid schedule has at least two values, is finite, strictly decreasing, ends in 0 and (when the model's
    range is given) starts no higher than sigma_max and has its last nonzero value no lower than sigma_min.
    """
    t = torch.as_tensor(sigmas, dtype=torch.float32).flatten().cpu()
    if t.numel() < 2:
        raise ValueError(f"{name} must hold at least 2 values (one step ending in 0), got {t.numel()}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values (nan or inf): {t.tolist()}")
    if float(t[-1]) != 0.0:
        raise ValueError(f"{name} must end in 0 so sampling finishes denoised; got last value {float(t[-1]):g}. "
                         "Append 0, or use a scheduler node that does")
    diffs = t[1:] - t[:-1]
    if not bool((diffs < 0).all()):
        bad = int(torch.nonzero(diffs >= 0)[0])
        raise ValueError(f"{name} must be strictly decreasing; value {bad + 1} ({float(t[bad + 1]):g}) is not below "
                         f"value {bad} ({float(t[bad]):g}). Remove duplicates or reorder")
    # a little slack: schedulers round σ through timesteps and float32
    if sigma_max is not None and float(t[0]) > sigma_max * 1.001 + 1e-6:
        raise ValueError(f"{name} starts at {float(t[0]):g}, above this model's sigma_max {sigma_max:g}; "
                         "resample the schedule for this model (LoadTimestepSchedule does)")
    if sigma_min is not None and t.numel() > 2 and float(t[-2]) < sigma_min * 0.999 - 1e-6:
        raise ValueError(f"{name} has a last nonzero value {float(t[-2]):g} below this model's sigma_min "
                         f"{sigma_min:g}; resample the schedule for this model")
    return t


def resample_log_sigmas(sigmas, sigma_min: float, sigma_max: float, src_min: float, src_max: float) -> torch.Tensor:
    """Map a schedule made for the range [src_min, src_max] onto [sigma_min, sigma_max] affinely in log σ,
    keeping the final 0. Used when a saved schedule comes from a model with another sigma range."""
    t = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    body = t[:-1] if float(t[-1]) == 0 else t
    lo, hi = math.log(src_min), math.log(src_max)
    new_lo, new_hi = math.log(sigma_min), math.log(sigma_max)
    frac = (torch.log(body) - lo) / (hi - lo) if hi > lo else torch.zeros_like(body)
    mapped = torch.exp(new_lo + frac * (new_hi - new_lo))
    out = torch.cat([mapped, torch.zeros(1, dtype=mapped.dtype)]) if float(t[-1]) == 0 else mapped
    return out.to(torch.float32)


def resample_log_steps(sigmas, steps: int) -> torch.Tensor:
    """Change a schedule's step count by interpolating its nonzero values linearly in log σ (as Align Your Steps
    does, Sabour et al. 2024), keeping its first and last nonzero σ and the final 0. Returns steps + 1 values."""
    t = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    body = t[:-1] if float(t[-1]) == 0 else t
    if body.numel() == steps:
        out = body
    elif steps == 1:
        out = body[:1]
    elif body.numel() < 2:
        raise ValueError(f"a schedule with {body.numel()} nonzero sigma cannot be stretched to {steps} steps")
    else:
        src = torch.linspace(0.0, 1.0, body.numel(), dtype=torch.float64)
        dst = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
        logs = torch.log(body)
        idx = torch.clamp(torch.searchsorted(src, dst, right=True) - 1, 0, body.numel() - 2)
        w = (dst - src[idx]) / (src[idx + 1] - src[idx])
        out = torch.exp(logs[idx] * (1 - w) + logs[idx + 1] * w)
    return torch.cat([out, torch.zeros(1, dtype=out.dtype)]).to(torch.float32)


def recognise_schedule(sigmas, builders, rtol: float = 1e-4):
    """The name of the first builder whose schedule at the run's step count is `sigmas` (within rtol per value,
    so float32 rounding passes), or None. `builders` maps a scheduler name to steps -> sigmas; a builder that raises
    (a scheduler this model cannot run) is passed over."""
    want = [float(s) for s in sigmas]
    steps = len(want) - 1
    for name, build in builders.items():
        try:
            got = [float(s) for s in build(steps)]
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError, TypeError):
            continue
        if len(got) == len(want) and all(abs(g - w) <= rtol * max(abs(w), 1e-6) for g, w in zip(got, want)):
            return name
    return None


def parse_sigma_text(text: str, name: str = "text") -> list[float]:
    """Numbers from a pasted schedule: separated by commas, spaces, semicolons or new lines; brackets and a
    'tensor(...)' wrapper (as printed by torch) are ignored. ValueError names the input and the bad token."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} is empty: paste a schedule such as '14.61, 3.2, 0.9, 0.2, 0'")
    cleaned = text.strip()
    if cleaned.startswith("tensor(") and cleaned.endswith(")"):
        cleaned = cleaned[len("tensor("):-1]
    for ch in "[]()":
        cleaned = cleaned.replace(ch, " ")
    values = []
    for token in cleaned.replace(",", " ").replace(";", " ").split():
        try:
            values.append(float(token))
        except ValueError:
            raise ValueError(f"{name} holds {token!r}, which is not a number; give sigmas separated by commas or "
                             "spaces, e.g. '14.61, 3.2, 0.9, 0.2, 0'") from None
    return values
