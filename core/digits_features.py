"""Tiny digits classifier and a Fréchet feature distance (FID-style, Heusel et al. 2017) for 8x8 digits.

Host-free: torch and numpy only (``safetensors`` is imported lazily by the loader). The classifier is trained by
``scripts/train_digits_classifier.py`` on scikit-learn's ``load_digits`` and its 64-d penultimate features stand in
for Inception features when comparing sets of images sampled from the bundled digits model.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

ArrayLike = Union[np.ndarray, torch.Tensor]

DIGIT_SIZE = 8
FEATURE_DIM = 64
NUM_CLASSES = 10
SD15_LATENT_SCALE = 0.18215  # ComfyUI's latent_formats.SD15.scale_factor: the model sees LATENT["samples"] * this


class DigitsClassifier(nn.Module):
    """Small CNN for 8x8 grey digits in [0, 1]; ``features`` gives the 64-d penultimate activations."""

    def __init__(self, width: int = 32, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc1 = nn.Linear(2 * width * 4 * 4, feature_dim)
        self.fc2 = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 8, 8) in [0, 1] -> (B, feature_dim)."""
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # 8x8 -> 4x4
        h = F.relu(self.conv3(h))
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 8, 8) in [0, 1] -> logits (B, num_classes)."""
        return self.fc2(self.features(x))


def load_digits_classifier(path: Union[str, os.PathLike]) -> DigitsClassifier:
    """Load a classifier saved by ``scripts/train_digits_classifier.py`` (safetensors), in eval mode on CPU."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"digits classifier not found: {path}")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    state = load_file(path)
    width = int(meta.get("width", state["conv1.weight"].shape[0]))
    feature_dim = int(meta.get("feature_dim", state["fc1.weight"].shape[0]))
    model = DigitsClassifier(width=width, feature_dim=feature_dim)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def to_digit_batch(images: ArrayLike) -> torch.Tensor:
    """Bring images to the classifier's input, (B, 1, 8, 8) float in [0, 1].

    Accepts (B, 8, 8), (B, 1, 8, 8), or ComfyUI IMAGE (B, H, W, C) with H, W multiples of 8 (channels are averaged
    and each side is area-downsampled to 8). Values are clamped to [0, 1].
    """
    x = torch.as_tensor(images).float()
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] != 1 and x.shape[-1] in (1, 3, 4):
        x = x[..., :3].mean(dim=-1, keepdim=True).movedim(-1, 1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images must be (B,8,8), (B,1,8,8) or (B,H,W,C); got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % DIGIT_SIZE or w % DIGIT_SIZE:
        raise ValueError(f"image height and width must be multiples of {DIGIT_SIZE}; got {h}x{w}")
    if (h, w) != (DIGIT_SIZE, DIGIT_SIZE):
        x = F.adaptive_avg_pool2d(x, DIGIT_SIZE)
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def digit_features(model: DigitsClassifier, images: ArrayLike, batch_size: int = 512) -> torch.Tensor:
    """Penultimate features (B, feature_dim) of images in any layout ``to_digit_batch`` accepts."""
    x = to_digit_batch(images)
    return torch.cat([model.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def digits_to_latent(pixels: ArrayLike, mean: float, std: float, scale: float = SD15_LATENT_SCALE) -> torch.Tensor:
    """Encode grey digits (B, 8, 8) or (B, 1, 8, 8) in [0, 1] to ComfyUI LATENT samples (B, 4, 4, 4).

    2x2 space-to-depth (channel 2*dy + dx holds pixel (2i+dy, 2j+dx), i.e. ``pixel_unshuffle``), then
    z = (value - mean) / std (unit-variance model space), then samples = z / scale (ComfyUI multiplies by scale again
    before the model sees it). Any even H, W work; the bundled model was trained on 8x8.
    """
    x = torch.as_tensor(pixels).float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"pixels must be (B,H,W) or (B,1,H,W) with even H, W; got shape {tuple(x.shape)}")
    return (F.pixel_unshuffle(x, 2) - mean) / std / scale


def latent_to_digits(samples: ArrayLike, mean: float, std: float, scale: float = SD15_LATENT_SCALE) -> torch.Tensor:
    """Decode ComfyUI LATENT samples (B, 4, h, w) to grey images (B, 1, 2h, 2w) in [0, 1] (digits_to_latent inverse)."""
    z = torch.as_tensor(samples).float()
    if z.ndim != 4 or z.shape[1] != 4:
        raise ValueError(f"samples must be (B, 4, h, w); got shape {tuple(z.shape)}")
    return F.pixel_shuffle(z * scale * std + mean, 2).clamp(0.0, 1.0)


def _psd_sqrt(mat: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    vals, vecs = np.linalg.eigh((mat + mat.T) / 2.0)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def feature_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D) (FID, Heusel et al. 2017).

    d² = |mu_a - mu_b|² + Tr(S_a + S_b - 2 (S_a^½ S_b S_a^½)^½); the trace of (S_a S_b)^½ is computed from the
    symmetric form so only symmetric eigendecompositions are needed. Both sets need at least 2 rows.
    """
    a = np.asarray(torch.as_tensor(feats_a).detach().cpu().double().numpy())
    b = np.asarray(torch.as_tensor(feats_b).detach().cpu().double().numpy())
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) and (M, D) with the same D; got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"feature sets need at least 2 rows each; got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum()
    d2 = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(d2, 0.0)
