"""The MNIST latent map for the Wan-detected study DiT (scripts/train_mnist_wan.py): the bundled DiT's map
(core/mnist_features.py: 28x28 -> 16 x 8 x 8 unit-variance z) in ComfyUI's Wan 2.1 latent format.

ComfyUI's comfy.latent_formats.Wan21 feeds the model process_in(LATENT) = (LATENT - mean_c) / std_c per channel
(scale_factor 1), on 5-D video latents (B, 16, T, H, W). So a digit's LATENT is z * std_c + mean_c with one frame
(T = 1), and the model sees z. Host-free: torch only; the constants are Wan21's published per-channel statistics.
"""
from __future__ import annotations

import torch

# comfy.latent_formats.Wan21.latents_mean / latents_std (ComfyUI 0.3.64)
WAN21_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
              0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
             3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)


def _stats(ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, len(WAN21_MEAN), 1, 1, 1)
    return (torch.tensor(WAN21_MEAN, dtype=ref.dtype).view(shape), torch.tensor(WAN21_STD, dtype=ref.dtype).view(shape))


def z_to_wan_latent(z: torch.Tensor) -> torch.Tensor:
    """Model-space z (B, 16, 8, 8) or (B, 16, 1, 8, 8) -> a Wan21 LATENT (B, 16, 1, 8, 8)."""
    z = z.float()
    if z.ndim == 4:
        z = z[:, :, None]
    if z.ndim != 5 or z.shape[1] != len(WAN21_MEAN):
        raise ValueError(f"z must be (B, 16, H, W) or (B, 16, T, H, W); got {tuple(z.shape)}")
    mean, std = _stats(z)
    return z * std + mean


def wan_latent_to_z(latent: torch.Tensor) -> torch.Tensor:
    """A Wan21 LATENT (B, 16, 1, H, W) -> model-space z (B, 16, H, W) (the first frame)."""
    latent = latent.float()
    if latent.ndim != 5 or latent.shape[1] != len(WAN21_MEAN):
        raise ValueError(f"a Wan latent is (B, 16, T, H, W); got {tuple(latent.shape)}")
    mean, std = _stats(latent)
    return ((latent - mean) / std)[:, :, 0]


def wan_latent_to_sd3_latent(latent: torch.Tensor, sd3_scale: float, sd3_shift: float) -> torch.Tensor:
    """A Wan21 LATENT -> the bundled DiT's SD3 LATENT of the same digit (so core/mnist_features.py decodes it)."""
    return wan_latent_to_z(latent) / sd3_scale + sd3_shift
