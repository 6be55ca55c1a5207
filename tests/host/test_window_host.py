"""start_percent / end_percent on the skip nodes, by the model's own percent_to_sigma (ComfyUI's convention)."""
from __future__ import annotations

import torch

STEPS = 12


def _sample(model, conds):
    import comfy.sample
    latent = torch.zeros(1, 4, 4, 4)
    noise = comfy.sample.prepare_noise(latent, 0)
    return comfy.sample.sample(model, noise, STEPS, 5.0, "euler", "karras", conds[0], conds[1], latent, seed=0,
                               disable_pbar=True)


def _run(host, model, conds, **window):
    patched = host.mappings["AdaptiveSkipModel"]().patch(model, 1.0, 2, 2, "strict", **window)[0]
    out = _sample(patched, conds)
    return out, host.mappings["AdaptiveSkipLastPath"]().read(patched, {"samples": None})["result"][0]


def test_no_skip_outside_the_window_and_defaults_unchanged(host, tiny_sd15, tiny_conds):
    ms = tiny_sd15.get_model_object("model_sampling")
    high, low = float(ms.percent_to_sigma(0.3)), float(ms.percent_to_sigma(0.7))
    default_out, default_path = _run(host, tiny_sd15, tiny_conds)
    explicit_out, explicit_path = _run(host, tiny_sd15, tiny_conds, start_percent=0.0, end_percent=1.0)
    assert torch.equal(default_out, explicit_out) and default_path.computed == explicit_path.computed
    assert not all(default_path.computed)
    _, path = _run(host, tiny_sd15, tiny_conds, start_percent=0.3, end_percent=0.7)
    outside = [not (low <= s <= high) for s in path.sigmas[:STEPS]]
    assert any(outside) and not all(outside)
    assert path.outside_window == outside
    assert all(c for c, o in zip(path.computed, outside) if o), "a step outside the window skipped"
    assert not all(path.computed), "nothing skipped inside the window"
    assert path.config.window_sigmas == (high, low) and "window 30%-70%" in path.setting()


def test_window_inputs_come_last_on_both_nodes(host):
    for name in ("AdaptiveSkipModel", "AdaptiveSkipKSampler"):
        optional = list(host.mappings[name].INPUT_TYPES()["optional"])
        assert optional[-2:] == ["start_percent", "end_percent"], (name, optional)
