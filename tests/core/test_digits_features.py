"""Core tests for core/digits_features.py: Fréchet distance, latent map, bundled classifier (no ComfyUI needed)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from adaptive_skip_core import digits_features as df

PACK_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSIFIER_PATH = os.path.join(PACK_DIR, "models", "digits_classifier.safetensors")


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * scale + shift


def test_distance_of_set_to_itself_is_zero():
    a = _gaussian(500, 16, 0)
    assert df.feature_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_distance_matches_closed_form_for_diagonal_gaussians():
    # For diagonal covariances: d² = |mu_a - mu_b|² + sum (s_a - s_b)², with s the standard deviations.
    a = np.diag([1.0, 4.0, 9.0])
    b = np.diag([4.0, 1.0, 1.0])
    rng = np.random.default_rng(1)
    # Exact moments: whiten random samples, then colour them.
    def exact(cov: np.ndarray, mu: np.ndarray, n: int = 400) -> np.ndarray:
        x = rng.standard_normal((n, 3))
        x -= x.mean(0)
        x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False)).T)
        return x @ np.sqrt(cov) + mu
    mu_b = np.array([1.0, 0.0, -2.0])
    expected = float((mu_b ** 2).sum() + ((np.sqrt(np.diag(a)) - np.sqrt(np.diag(b))) ** 2).sum())
    assert df.feature_distance(exact(a, np.zeros(3)), exact(b, mu_b)) == pytest.approx(expected, rel=1e-6)


def test_distance_grows_with_shift_and_is_symmetric():
    a, b = _gaussian(400, 8, 0), _gaussian(400, 8, 1)
    base = df.feature_distance(a, b)
    d_small = df.feature_distance(a, b + 0.5)
    d_large = df.feature_distance(a, b + 2.0)
    assert base < d_small < d_large
    assert d_large == pytest.approx(df.feature_distance(b + 2.0, a), rel=1e-6)
    assert df.feature_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(base, rel=1e-9)


def test_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same D"):
        df.feature_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        df.feature_distance(np.zeros((1, 3)), np.zeros((4, 3)))


def test_latent_map_round_trips_and_is_space_to_depth():
    pixels = torch.rand(5, 8, 8)
    samples = df.digits_to_latent(pixels, mean=0.3, std=0.4)
    assert samples.shape == (5, 4, 4, 4)
    # channel 2*dy + dx at (i, j) holds pixel (2i+dy, 2j+dx)
    assert samples[2, 3, 1, 2] * df.SD15_LATENT_SCALE * 0.4 + 0.3 == pytest.approx(pixels[2, 3, 5].item(), abs=1e-5)
    back = df.latent_to_digits(samples, mean=0.3, std=0.4)
    assert back.shape == (5, 1, 8, 8)
    torch.testing.assert_close(back[:, 0], pixels, atol=1e-5, rtol=0)


def test_latent_of_all_zero_samples_is_the_dataset_mean():
    out = df.latent_to_digits(torch.zeros(2, 4, 4, 4), mean=0.3, std=0.4)
    torch.testing.assert_close(out, torch.full((2, 1, 8, 8), 0.3))


def test_to_digit_batch_accepts_comfy_images():
    grey = torch.rand(3, 8, 8)
    image = grey.repeat_interleave(8, 1).repeat_interleave(8, 2)[..., None].expand(3, 64, 64, 3)
    torch.testing.assert_close(df.to_digit_batch(image), grey[:, None], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="multiples of 8"):
        df.to_digit_batch(torch.rand(1, 1, 12, 12))


def test_untrained_classifier_shapes():
    torch.manual_seed(0)
    model = df.DigitsClassifier().eval()
    x = torch.rand(7, 1, 8, 8)
    assert model(x).shape == (7, df.NUM_CLASSES)
    assert df.digit_features(model, x).shape == (7, df.FEATURE_DIM)


@pytest.mark.skipif(not os.path.isfile(CLASSIFIER_PATH), reason="models/digits_classifier.safetensors not built")
def test_bundled_classifier_recognises_real_digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data = sklearn_datasets.load_digits()
    model = df.load_digits_classifier(CLASSIFIER_PATH)
    x = torch.from_numpy(data.images / 16.0).float()
    pred = model(df.to_digit_batch(x)).argmax(1).numpy()
    assert (pred == data.target).mean() > 0.95
    # Real digits of one class are closer to more of that class than to another class.
    feats = df.digit_features(model, x).numpy()
    zeros, ones = feats[data.target == 0], feats[data.target == 1]
    same = df.feature_distance(zeros[:80], zeros[80:])
    other = df.feature_distance(zeros[:80], ones[:80])
    assert same < 0.2 * other


def test_loader_names_missing_path(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        df.load_digits_classifier(missing)
