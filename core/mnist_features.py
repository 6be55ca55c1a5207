"""MNIST for the bundled flow DiT: its exact latent map and the small classifier that checks its samples.

Host-free: torch and numpy only (``safetensors`` is imported lazily by the loader).

Latent map (exact and invertible up to float rounding; no VAE):

    28x28 grey in [0, 1] -> v = 2p - 1 in [-1, 1] -> pad 2 px of -1 (black) to 32x32
      -> 4x4 space-to-depth (pixel_unshuffle): 1 x 32 x 32 -> 16 x 8 x 8
      -> z = (v - mean) / std                    (unit-variance model space)
      -> LATENT = z / SD3_SCALE + SD3_SHIFT      (ComfyUI's SD3 latent format does (LATENT - shift) * scale
                                                  before the model sees it, so the model sees z)

EmptySD3LatentImage 64x64 (latent 8x8) is one 32x32 frame, i.e. one 28x28 digit after cropping the border.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

ArrayLike = Union[np.ndarray, torch.Tensor]

MNIST_SIZE = 28
FRAME = 32  # padded frame
PAD = (FRAME - MNIST_SIZE) // 2
BLOCK = 4  # space-to-depth factor: 1 x 32 x 32 -> 16 x 8 x 8
LATENT_CHANNELS = BLOCK * BLOCK
FEATURE_DIM = 128
NUM_CLASSES = 10
# ComfyUI's comfy.latent_formats.SD3: process_in(x) = (x - shift_factor) * scale_factor
SD3_SCALE = 1.5305
SD3_SHIFT = 0.0609


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    return (torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x).float()


def mnist_to_latent(images: ArrayLike, mean: float, std: float) -> torch.Tensor:
    """(B, 28, 28) or (B, 1, 28, 28) grey in [0, 1] -> LATENT samples (B, 16, 8, 8) for the SD3 latent format."""
    x = _as_tensor(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != (1, MNIST_SIZE, MNIST_SIZE):
        raise ValueError(f"images must be (B, 28, 28) or (B, 1, 28, 28); got {tuple(x.shape)}")
    v = F.pad(x * 2.0 - 1.0, (PAD, PAD, PAD, PAD), value=-1.0)
    z = (F.pixel_unshuffle(v, BLOCK) - mean) / std
    return z / SD3_SCALE + SD3_SHIFT


def latent_to_frames(samples: ArrayLike, mean: float, std: float) -> torch.Tensor:
    """LATENT samples (B, 16, h, w) -> full frames (B, 1, 4h, 4w) in [0, 1] (clamped); inverse of the map above."""
    s = _as_tensor(samples)
    if s.ndim != 4 or s.shape[1] != LATENT_CHANNELS:
        raise ValueError(f"samples must be a 16-channel latent (B, 16, h, w); got {tuple(s.shape)}")
    v = F.pixel_shuffle((s - SD3_SHIFT) * SD3_SCALE * std + mean, BLOCK)
    return ((v + 1.0) * 0.5).clamp(0.0, 1.0)


def latent_to_mnist(samples: ArrayLike, mean: float, std: float) -> torch.Tensor:
    """LATENT samples (B, 16, 8, 8) -> digits (B, 1, 28, 28) in [0, 1]: the frame without its 2-px border."""
    frames = latent_to_frames(samples, mean, std)
    if frames.shape[-2:] != (FRAME, FRAME):
        raise ValueError(f"an MNIST latent is 8x8; got {tuple(_as_tensor(samples).shape[-2:])}")
    return frames[:, :, PAD:PAD + MNIST_SIZE, PAD:PAD + MNIST_SIZE]


class MnistClassifier(nn.Module):
    """Small CNN for 28x28 grey digits in [0, 1]; ``features`` gives the 128-d penultimate activations."""

    def __init__(self, width: int = 32, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.fc1 = nn.Linear(2 * width * 3 * 3, feature_dim)
        self.fc2 = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] -> (B, feature_dim)."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 28 -> 14
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # 14 -> 7
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)  # 7 -> 3
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


def load_mnist_classifier(path: Union[str, os.PathLike]) -> MnistClassifier:
    """Load a classifier saved by ``scripts/train_mnist_classifier.py`` (safetensors), eval mode, CPU."""
    from safetensors.torch import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MNIST classifier not found: {path} (build it with scripts/train_mnist_classifier.py)")
    state = load_file(path)
    model = MnistClassifier(width=state["conv1.weight"].shape[0], feature_dim=state["fc1.weight"].shape[0])
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def mnist_features(model: MnistClassifier, images: ArrayLike, batch_size: int = 500) -> torch.Tensor:
    """Penultimate features of (B, 28, 28) or (B, 1, 28, 28) images in [0, 1]."""
    x = _as_tensor(images)
    if x.ndim == 3:
        x = x[:, None]
    return torch.cat([model.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
