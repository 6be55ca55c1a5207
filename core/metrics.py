"""Fidelity metrics for comparing sampled latents and images with a reference: MSE, PSNR and SSIM.

Host-free (torch only). All functions take batches [B, C, H, W] and return one value per sample (shape [B]), so a
caller can average in dB or report spread. SSIM is Wang et al. 2004 ("Image quality assessment: from error
visibility to structural similarity") with a Gaussian window (σ = 1.5, 11×11), computed over the "valid" region
as scikit-image does; images smaller than the window use the largest odd window that fits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def frames_as_images(latent: torch.Tensor) -> torch.Tensor:
    """Any ComfyUI latent as an image batch [N, C, H, W], so the metrics score it.

    Video latents [B, C, T, H, W] become B*T frames scored one by one; 1-D latents [B, C, L] (audio) become
    [B, C, 1, L]. The mean of per-frame MSEs equals the whole latent's MSE, so averages are unchanged.
    """
    if latent.ndim == 5:
        b, c, t, h, w = latent.shape
        return latent.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if latent.ndim == 3:
        return latent.unsqueeze(2)
    if latent.ndim != 4:
        raise ValueError(f"latent must have 3, 4 or 5 dimensions ([B, C, L], [B, C, H, W] or [B, C, T, H, W]); "
                         f"got shape {tuple(latent.shape)}")
    return latent


def _check_pair(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != ref.shape:
        raise ValueError(f"x and ref must have the same shape; got {tuple(x.shape)} and {tuple(ref.shape)}")
    if x.ndim != 4:
        raise ValueError(f"x and ref must be batches [B, C, H, W]; got {x.ndim} dimensions")
    return x.detach().double(), ref.detach().double()


def mse(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: [B, C, H, W] x2 -> [B]."""
    x, ref = _check_pair(x, ref)
    return ((x - ref) ** 2).flatten(1).mean(1)


def latent_mse(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean squared error over a whole batch of latents of any layout frames_as_images accepts."""
    return float(mse(frames_as_images(x), frames_as_images(ref)).mean())


def data_range_of(ref: torch.Tensor) -> torch.Tensor:
    """Per-sample peak-to-peak range of a reference batch [B, C, H, W] -> [B] (used when no fixed range exists,
    e.g. for latents)."""
    flat = ref.detach().double().flatten(1)
    return flat.max(1).values - flat.min(1).values


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float | torch.Tensor | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per sample: 10·log10(range² / MSE). [B, C, H, W] x2 -> [B].

    Args:
        data_range: the signal's range (1.0 for images in [0, 1]); a float, a [B] tensor, or None for the
            reference's own per-sample peak-to-peak range. Identical inputs give +inf.
    """
    err = mse(x, ref)
    if data_range is None:
        rng = data_range_of(ref)
    else:
        rng = torch.as_tensor(data_range, dtype=torch.float64).expand_as(err)
    if bool((rng <= 0).any()):
        raise ValueError("data_range must be > 0 (a constant reference has no range; pass data_range explicitly)")
    with torch.no_grad():
        out = 10.0 * torch.log10(rng ** 2 / err)
    return torch.where(err == 0, torch.full_like(out, math.inf), out)


def gaussian_window(size: int, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 2-D Gaussian window [size, size] (float64)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be an odd integer >= 1; got {size}")
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float | torch.Tensor | None = None,
         window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Mean structural similarity per sample (Wang et al. 2004), Gaussian-weighted, channels averaged.

    Args:
        x, ref: [B, C, H, W].
        data_range: as in `psnr` (None: the reference's per-sample peak-to-peak range).
        window: the Gaussian window's side; shrunk to the largest odd size fitting min(H, W).
    Returns:
        [B] values in [-1, 1]; 1 means identical.
    """
    x, ref = _check_pair(x, ref)
    b, c, h, w = x.shape
    size = min(window, h if h % 2 else h - 1, w if w % 2 else w - 1)
    if size < 1:
        raise ValueError(f"images must be at least 1x1; got {h}x{w}")
    if data_range is None:
        rng = data_range_of(ref)
    else:
        rng = torch.as_tensor(data_range, dtype=torch.float64).expand(b)
    rng = torch.where(rng > 0, rng, torch.ones_like(rng))  # constant reference: SSIM is still defined by C1, C2
    c1 = ((SSIM_K1 * rng) ** 2).view(b, 1, 1, 1)
    c2 = ((SSIM_K2 * rng) ** 2).view(b, 1, 1, 1)
    kernel = gaussian_window(size, sigma).expand(c, 1, size, size).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=c)

    mu_x, mu_r = blur(x), blur(ref)
    var_x = blur(x * x) - mu_x ** 2
    var_r = blur(ref * ref) - mu_r ** 2
    cov = blur(x * ref) - mu_x * mu_r
    s_map = ((2 * mu_x * mu_r + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_r ** 2 + c1) * (var_x + var_r + c2))
    return s_map.flatten(1).mean(1)


def mean_db(values: torch.Tensor, cap: float = 100.0) -> float:
    """Average of per-sample dB values with +inf (identical samples) capped, so one exact match cannot make the
    mean infinite; returns +inf only when every sample is identical."""
    v = values.double()
    if bool(torch.isinf(v).all()) and bool((v > 0).all()):
        return math.inf
    return float(v.clamp(max=cap).mean())


def latent_psnr(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """The one PSNR average of the pack: mean dB over the batch (a video's frames one by one) against a reference
    latent (peak = the reference's range), identical samples capped as `mean_db` does (+inf only when all are)."""
    if samples.shape != reference.shape:
        raise ValueError(f"latent shape {tuple(samples.shape)} differs from the reference {tuple(reference.shape)}; "
                         "compare runs made from the same empty latent, seed and batch size")
    return mean_db(psnr(frames_as_images(samples.float().cpu()), frames_as_images(reference.float().cpu())))
