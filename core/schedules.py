"""Built-in sigma schedules, host-free, computed exactly as ComfyUI 0.3.64 computes them (comfy/samplers.py,
comfy/k_diffusion/sampling.py, comfy_extras/nodes_align_your_steps.py), for comparison with and seeding of the
evolutionary schedule search.

Schedules that read the model's discrete noise table (simple, normal, sgm_uniform, beta) take that table: the
ascending σ of every training timestep, `model_sampling.sigmas` in ComfyUI (1000 values for SD1.5). Their
`normal`/`sgm_uniform` use the discrete model's timestep <-> σ maps (nearest timestep in log σ; log-linear
interpolation between timesteps), so they match ComfyUI for ModelSamplingDiscrete models (SD1.x, SD2, SDXL).
"""
from __future__ import annotations

import math

import numpy as np
import torch

# Align Your Steps noise levels (Sabour et al. 2024), as published on NVIDIA's AYS how-to page and copied into
# ComfyUI's comfy_extras/nodes_align_your_steps.py. 10-step schedules; other step counts are log-interpolated.
AYS_NOISE_LEVELS = {
    "SD1": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
            0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "SDXL": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
             0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
    "SVD": [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
}

# The built-ins compared with a searched schedule; "ays" only where AYS_NOISE_LEVELS has the model family.
BUILTIN_NAMES = ("simple", "normal", "sgm_uniform", "karras", "exponential", "beta", "kl_optimal", "ays")
TABLE_SCHEDULES = ("simple", "normal", "sgm_uniform", "beta")


def discrete_sigma_table(linear_start: float = 0.00085, linear_end: float = 0.012,
                         timesteps: int = 1000) -> torch.Tensor:
    """The ascending σ table of a DDPM model with a "linear" (sqrt-linear) beta schedule; SD1.5's by default.

    Same arithmetic as ComfyUI's ModelSamplingDiscrete: float64 betas, σ = sqrt((1 - ᾱ) / ᾱ), stored as float32.
    """
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float()


def _check_table(table) -> torch.Tensor:
    t = torch.as_tensor(table).flatten().float()
    if t.numel() < 2 or not bool((t[1:] > t[:-1]).all()) or float(t[0]) <= 0:
        raise ValueError("the model's sigma table must be ascending positive values (model_sampling.sigmas)")
    return t


def _timestep(log_table: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Nearest discrete timestep to σ in log space (ModelSamplingDiscrete.timestep)."""
    dists = sigma.log() - log_table[:, None]
    return dists.abs().argmin(dim=0).view(sigma.shape)


def _sigma(log_table: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """σ at a fractional timestep, log-linear between table entries (ModelSamplingDiscrete.sigma)."""
    t = torch.clamp(timestep.float(), min=0, max=(len(log_table) - 1))
    low, high, w = t.floor().long(), t.ceil().long(), t.frac()
    return ((1 - w) * log_table[low] + w * log_table[high]).exp()


def simple(table, steps: int) -> torch.Tensor:
    """Evenly spaced entries of the timestep table, from the top ("simple")."""
    t = _check_table(table)
    stride = len(t) / steps
    return torch.FloatTensor([float(t[-(1 + int(x * stride))]) for x in range(steps)] + [0.0])


def normal(table, steps: int, sgm: bool = False) -> torch.Tensor:
    """Timesteps evenly spaced from the top to the bottom of the table ("normal"); sgm=True leaves out the
    bottom one and appends 0 ("sgm_uniform", as in Stable Diffusion's SGM code)."""
    t = _check_table(table)
    log_table = t.log()
    start = _timestep(log_table, t[-1])
    end = _timestep(log_table, t[0])
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(_sigma(log_table, end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)
    sigs = [float(_sigma(log_table, ts)) for ts in timesteps]
    return torch.FloatTensor(sigs + [0.0] if append_zero else sigs)


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) by its continued fraction (Numerical Recipes, betacf)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return front * h / a


def beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of the Beta(a, b) distribution (bisection on I_x; exact 0.5 at the median of a symmetric one)."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    if a == b and q == 0.5:
        return 0.5
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def beta(table, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """Timesteps at the quantiles of a Beta(α, β) distribution ("beta", Lee et al. 2024, arXiv 2407.12173);
    repeated timesteps are dropped, so large step counts can give fewer steps (as in ComfyUI)."""
    t = _check_table(table)
    total = len(t) - 1
    qs = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(np.array([beta_ppf(float(q), alpha, beta_) for q in qs]) * total)
    sigs, last = [], -1
    for step in ts:
        if step != last:
            sigs.append(float(t[int(step)]))
        last = step
    return torch.FloatTensor(sigs + [0.0])


def karras(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): σ evenly spaced in σ^(1/ρ)."""
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def exponential(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """σ evenly spaced in log σ."""
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp()
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def kl_optimal(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """σ evenly spaced in arctan σ (the "KL-optimal" schedule, AUTOMATIC1111 PR 15608)."""
    idx = torch.arange(steps, dtype=torch.float).div_(steps - 1)
    sigmas = idx.new_zeros(steps + 1)
    sigmas[:-1] = (idx * math.atan(sigma_min) + (1 - idx) * math.atan(sigma_max)).tan_()
    return sigmas


def ays(steps: int, family: str) -> torch.Tensor:
    """Align Your Steps (Sabour et al. 2024) for a model family in AYS_NOISE_LEVELS, log-interpolated to `steps`."""
    if family not in AYS_NOISE_LEVELS:
        raise ValueError(f"AYS has no schedule for model family {family!r}; known: {sorted(AYS_NOISE_LEVELS)}")
    levels = AYS_NOISE_LEVELS[family][:]
    if steps + 1 != len(levels):
        xs = np.linspace(0, 1, len(levels))
        ys = np.log(levels[::-1])
        levels = np.exp(np.interp(np.linspace(0, 1, steps + 1), xs, ys))[::-1].copy()
    levels = list(levels)
    levels[-1] = 0
    return torch.FloatTensor(levels)


def builtin_schedule(name: str, steps: int, table, ays_family: str | None = None,
                     discard_penultimate: bool = False) -> torch.Tensor | None:
    """One built-in schedule of `steps` steps for the model whose σ table is `table`; None when it is not defined
    (AYS for a family without levels, kl_optimal for 1 step). discard_penultimate=True computes steps + 1 and
    drops the last nonzero σ, as ComfyUI's KSampler does for dpm_2, dpm_2_ancestral, uni_pc and uni_pc_bh2."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if name not in BUILTIN_NAMES:
        raise ValueError(f"unknown built-in schedule {name!r}; known: {', '.join(BUILTIN_NAMES)}")
    n = steps + 1 if discard_penultimate else steps
    t = _check_table(table)
    smin, smax = float(t[0]), float(t[-1])
    if name == "ays":
        if ays_family not in AYS_NOISE_LEVELS:
            return None
        sigmas = ays(n, ays_family)
    elif name == "kl_optimal":
        if n < 2:
            return None
        sigmas = kl_optimal(n, smin, smax)
    elif name in ("karras", "exponential"):
        sigmas = karras(n, smin, smax) if name == "karras" else exponential(n, smin, smax)
    elif name == "beta":
        sigmas = beta(t, n)
    elif name == "simple":
        sigmas = simple(t, n)
    else:
        sigmas = normal(t, n, sgm=(name == "sgm_uniform"))
    if discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas


def builtin_schedules(steps: int, table, ays_family: str | None = None,
                      discard_penultimate: bool = False) -> dict[str, torch.Tensor]:
    """Every built-in schedule defined for this model at `steps` steps, by name (see builtin_schedule)."""
    out = {}
    for name in BUILTIN_NAMES:
        sigmas = builtin_schedule(name, steps, table, ays_family, discard_penultimate)
        if sigmas is not None:
            out[name] = sigmas
    return out
