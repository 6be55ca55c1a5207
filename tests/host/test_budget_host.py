"""The budget mode through ComfyUI's own sampling: Brownian-tree samplers run exactly the user's scheduler with
fewer steps, and a start/end window keeps every step outside it a real call."""
from __future__ import annotations

import torch


def _sample(model, conds, steps, sampler, scheduler, sigmas=None):
    import comfy.sample
    latent = torch.zeros(1, 4, 4, 4)
    noise = comfy.sample.prepare_noise(latent, 0)
    return comfy.sample.sample(model, noise, steps, 5.0, sampler, scheduler, conds[0], conds[1], latent, seed=0,
                               disable_pbar=True, sigmas=sigmas)


def _budget(host, model, speedup, **window):
    return host.mappings["AdaptiveSkipModel"]().patch(model, 0.01, 2, 1, "budget", speedup=speedup, **window)[0]


def _last_path(host, patched):
    return host.mappings["AdaptiveSkipLastPath"]().read(patched, {"samples": None})["result"][0]


def test_brownian_tree_sampler_runs_the_users_scheduler_with_fewer_steps(host, tiny_sd15, tiny_conds):
    for scheduler in ("simple", "karras"):
        patched = _budget(host, tiny_sd15, 2.5)
        out = _sample(patched, tiny_conds, 20, "dpmpp_2m_sde", scheduler)
        path = _last_path(host, patched)
        fewer = _sample(tiny_sd15, tiny_conds, 8, "dpmpp_2m_sde", scheduler)
        assert torch.equal(out, fewer), scheduler  # the same schedule, hence the same Brownian-tree noise
        assert path.model_calls == 8 and path.sampler_calls == 20
        assert f"of the {scheduler} scheduler itself" in path.note


def test_custom_sigmas_no_scheduler_makes_are_interpolated(host, tiny_sd15, tiny_conds):
    ms = tiny_sd15.get_model_object("model_sampling")
    sig = torch.linspace(float(ms.sigma_max) ** 0.5, float(ms.sigma_min) ** 0.5, 16) ** 2
    sig = torch.cat([sig, torch.zeros(1)])
    patched = _budget(host, tiny_sd15, 3.0)
    _sample(patched, tiny_conds, 16, "dpmpp_2m_sde", "karras", sigmas=sig)
    path = _last_path(host, patched)
    assert path.model_calls == 5 and "steps resampled in log σ" in path.note


def test_budget_applies_inside_the_window_and_every_step_outside_calls(host, tiny_sd15, tiny_conds):
    steps = 24
    ms = tiny_sd15.get_model_object("model_sampling")
    high, low = float(ms.percent_to_sigma(0.3)), float(ms.percent_to_sigma(0.8))
    patched = _budget(host, tiny_sd15, 4.0, start_percent=0.3, end_percent=0.8)
    _sample(patched, tiny_conds, steps, "euler", "karras")
    path = _last_path(host, patched)
    outside = [not (low <= s <= high) for s in path.sigmas[:steps]]
    inside = steps - sum(outside)
    assert 0 < inside < steps and path.outside_window == outside
    assert all(c for c, o in zip(path.computed, outside) if o), "a step outside the window skipped"
    assert sum(c for c, o in zip(path.computed, outside) if not o) == round(inside / 4.0)
    assert path.model_calls == sum(outside) + round(inside / 4.0)
    assert "inside the 30%-80% window" in path.note and "not applied" not in path.note


def test_heun_skips_whole_steps_through_comfyuis_own_sampler(host, tiny_sd15, tiny_conds):
    # 20 heun steps = 39 calls; speedup 2.5 -> 8 calls: 4 computed steps (3 of two calls, the last of one)
    patched = _budget(host, tiny_sd15, 2.5)
    out = _sample(patched, tiny_conds, 20, "heun", "karras")
    path = _last_path(host, patched)
    assert path.kind == "budget" and path.sampler_calls == 39 and path.model_calls == 7
    assert path.computed[0] and path.computed[-1] and sum(path.computed) == 4 and len(path.computed) == 20
    assert "(4 computed steps)" in path.note and "trapezoid" in path.note
    full = _sample(tiny_sd15, tiny_conds, 20, "heun", "karras")
    assert torch.isfinite(out).all() and not torch.equal(out, full)
