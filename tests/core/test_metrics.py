"""core/metrics.py: MSE, PSNR and Gaussian-window SSIM against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adaptive_skip_core import metrics


def _ssim_by_loops(x: np.ndarray, y: np.ndarray, data_range: float, size: int, sigma: float = 1.5) -> float:
    """Wang et al. 2004 written out window by window (one channel), as an independent check."""
    coords = np.arange(size) - (size - 1) / 2
    g = np.exp(-coords ** 2 / (2 * sigma ** 2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
            ma, mb = (win * a).sum(), (win * b).sum()
            va, vb = (win * a * a).sum() - ma ** 2, (win * b * b).sum() - mb ** 2
            cov = (win * a * b).sum() - ma * mb
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_mse_and_psnr_known_values():
    ref = torch.zeros(2, 1, 4, 4)
    x = ref.clone()
    x[0] += 0.1  # MSE 0.01 -> PSNR 20 dB at range 1
    x[1] += 0.01  # MSE 1e-4 -> 40 dB
    assert torch.allclose(metrics.mse(x, ref), torch.tensor([0.01, 1e-4], dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(metrics.psnr(x, ref, data_range=1.0), torch.tensor([20.0, 40.0], dtype=torch.float64),
                          atol=1e-4)


def test_psnr_identical_is_inf_and_default_range_is_reference_peak_to_peak():
    ref = torch.linspace(-2, 2, 16).reshape(1, 1, 4, 4)
    assert math.isinf(metrics.psnr(ref, ref).item())
    x = ref + 0.04
    # range 4, MSE 0.0016 -> 10*log10(16/0.0016) = 40 dB
    assert metrics.psnr(x, ref).item() == pytest.approx(40.0, abs=1e-4)


def test_mean_db_caps_infinite_samples():
    assert metrics.mean_db(torch.tensor([math.inf, 20.0])) == pytest.approx(60.0)
    assert math.isinf(metrics.mean_db(torch.tensor([math.inf, math.inf])))


def test_ssim_identical_is_one_and_noise_lowers_it():
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 2, 16, 16, generator=gen)
    assert torch.allclose(metrics.ssim(ref, ref, data_range=1.0), torch.ones(3, dtype=torch.float64))
    small = metrics.ssim(ref + 0.01 * torch.randn(ref.shape, generator=gen), ref, data_range=1.0)
    large = metrics.ssim(ref + 0.2 * torch.randn(ref.shape, generator=gen), ref, data_range=1.0)
    assert bool((small > large).all()) and bool((small < 1).all())


@pytest.mark.parametrize("side", [16, 8, 4])
def test_ssim_matches_window_by_window_formula(side):
    rng = np.random.default_rng(side)
    a, b = rng.random((side, side)), rng.random((side, side))
    b = 0.6 * a + 0.4 * b  # correlated, so SSIM is well away from 0
    size = min(11, side if side % 2 else side - 1)
    expected = _ssim_by_loops(a, b, 1.0, size)
    got = metrics.ssim(torch.tensor(b)[None, None], torch.tensor(a)[None, None], data_range=1.0).item()
    assert got == pytest.approx(expected, abs=1e-10)


def test_ssim_is_invariant_to_a_shared_scale_of_latents_without_explicit_range():
    gen = torch.Generator().manual_seed(1)
    ref = torch.randn(2, 4, 8, 8, generator=gen)
    x = ref + 0.1 * torch.randn(ref.shape, generator=gen)
    # with the default (reference peak-to-peak) range, scaling both by 7 leaves SSIM unchanged
    assert torch.allclose(metrics.ssim(x, ref), metrics.ssim(7 * x, 7 * ref), atol=1e-10)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(1, 1, 4, 4\).*\(1, 1, 4, 5\)"):
        metrics.psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="B, C, H, W"):
        metrics.ssim(torch.zeros(4, 4), torch.zeros(4, 4))


def test_frames_as_images_scores_video_frames_and_keeps_the_mean_error():
    g = torch.Generator().manual_seed(0)
    video, other = torch.randn(2, 3, 4, 5, 6, generator=g), torch.randn(2, 3, 4, 5, 6, generator=g)
    frames = metrics.frames_as_images(video)
    assert frames.shape == (8, 3, 5, 6)
    assert torch.equal(frames[1 * 4 + 2], video[1, :, 2])  # sample 1, frame 2
    whole = float(((video.double() - other.double()) ** 2).mean())
    assert metrics.latent_mse(video, other) == pytest.approx(whole, rel=1e-12)
    image = torch.randn(2, 3, 5, 6, generator=g)
    assert metrics.frames_as_images(image) is image
    assert metrics.frames_as_images(torch.randn(2, 3, 7, generator=g)).shape == (2, 3, 1, 7)
    with pytest.raises(ValueError, match="3, 4 or 5 dimensions"):
        metrics.frames_as_images(torch.randn(2, 3))
