"""Core tests for core/mnist_features.py: the flow DiT's exact latent map and the MNIST classifier (no ComfyUI)."""
from __future__ import annotations

import importlib.util
import os

import pytest
import torch

PACK_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_module():
    path = os.path.join(PACK_DIR, "core", "mnist_features.py")
    spec = importlib.util.spec_from_file_location("adaptive_skip_core_mnist_features", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mf = _load_module()
MEAN, STD = -0.8, 0.55


def test_round_trip_is_exact_and_model_space_is_normalised():
    images = torch.rand(6, 28, 28, generator=torch.Generator().manual_seed(0))
    latent = mf.mnist_to_latent(images, MEAN, STD)
    assert latent.shape == (6, 16, 8, 8)
    assert torch.allclose(mf.latent_to_mnist(latent, MEAN, STD)[:, 0], images, atol=1e-6, rtol=0)
    # what the model sees after ComfyUI's SD3 process_in: (v - mean) / std, v in [-1, 1] (border -1)
    seen = (latent - mf.SD3_SHIFT) * mf.SD3_SCALE
    border = (-1.0 - MEAN) / STD
    assert torch.allclose(seen[:, :, 0, 0].min(), torch.tensor(border), atol=1e-5)
    v = seen * STD + MEAN
    assert v.min() >= -1.0 - 1e-5 and v.max() <= 1.0 + 1e-5


def test_space_to_depth_layout():
    """Channel 4*dy + dx at (i, j) holds frame pixel (4i + dy, 4j + dx); the digit sits 2 px inside the frame."""
    images = torch.zeros(1, 28, 28)
    images[0, 5, 9] = 1.0  # frame pixel (7, 11) -> latent (1, 2), dy 3, dx 3 -> channel 15
    seen = (mf.mnist_to_latent(images, 0.0, 1.0) - mf.SD3_SHIFT) * mf.SD3_SCALE
    hot = (seen > 0).nonzero().tolist()
    assert hot == [[0, 15, 1, 2]]


def test_frames_of_other_sizes_and_bad_input():
    latent = torch.zeros(2, 16, 4, 6)
    assert mf.latent_to_frames(latent, MEAN, STD).shape == (2, 1, 16, 24)
    with pytest.raises(ValueError, match="an MNIST latent is 8x8"):
        mf.latent_to_mnist(latent, MEAN, STD)
    with pytest.raises(ValueError, match="16-channel"):
        mf.latent_to_frames(torch.zeros(1, 4, 8, 8), MEAN, STD)
    with pytest.raises(ValueError, match="28, 28"):
        mf.mnist_to_latent(torch.zeros(1, 32, 32), MEAN, STD)


def test_bundled_classifier_features():
    path = os.path.join(PACK_DIR, "models", "mnist_classifier.safetensors")
    model = mf.load_mnist_classifier(path)
    x = torch.rand(3, 28, 28)
    assert model(x[:, None]).shape == (3, 10)
    assert mf.mnist_features(model, x).shape == (3, mf.FEATURE_DIM)
    with pytest.raises(FileNotFoundError, match="train_mnist_classifier"):
        mf.load_mnist_classifier(os.path.join(PACK_DIR, "models", "missing.safetensors"))
