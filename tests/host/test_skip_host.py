"""AdaptiveSkip inside real ComfyUI: registration, every sampler, exactness at δ = 0, no leaks between runs."""
from __future__ import annotations

import copy
import logging

import pytest
import torch

EXPECTED_NODES = {"AdaptiveSkipModel", "AdaptiveSkipKSampler", "AdaptiveSkipLastPath"}


def sample(model, sampler, conds, steps=8, batch=1, seed=0, cfg=5.0, scheduler="karras", denoise=1.0):
    import comfy.sample
    latent = torch.zeros(batch, 4, 4, 4)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, conds[0], conds[1], latent,
                               denoise=denoise, seed=seed, disable_pbar=True)


def patch(host, model, threshold, **kw):
    node = host.mappings["AdaptiveSkipModel"]()
    args = dict(max_consecutive_skips=4, warmup_steps=4, criterion="official")
    args.update(kw)
    return node.patch(model, threshold, **args)[0]


def last_path(host, patched):
    return host.mappings["AdaptiveSkipLastPath"]().read(patched, {"samples": None})["result"][0]


def test_every_node_registers_with_tooltips(host):
    assert EXPECTED_NODES <= set(host.mappings)
    for name in EXPECTED_NODES:
        cls = host.mappings[name]
        types = cls.INPUT_TYPES()
        for group in types.values():
            for input_name, spec in group.items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{input_name} lacks a tooltip"
        assert cls.CATEGORY.startswith("sampling/adaptive_skip")


def test_all_samplers_zero_threshold_identical_and_large_threshold_skips(host, tiny_sd15, tiny_conds, caplog):
    import comfy.samplers
    skipped, unsupported = [], []
    for name in comfy.samplers.KSampler.SAMPLERS:
        base = sample(tiny_sd15, name, tiny_conds)
        off = sample(patch(host, tiny_sd15, 0.0), name, tiny_conds)
        assert torch.equal(base, off), f"{name}: δ = 0 must be bitwise identical to the unpatched run"
        patched = patch(host, tiny_sd15, 1.0, criterion="strict", warmup_steps=2)
        with caplog.at_level(logging.INFO):
            out = sample(patched, name, tiny_conds)
        path = last_path(host, patched)
        assert torch.isfinite(out).all(), name
        assert path.sampler_calls >= path.steps
        if path.model_calls < path.sampler_calls:
            skipped.append(name)
            assert path.steps == 8 or name in ("dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2")
            assert "drifted" not in path.note, f"{name}: {path.note}"
        else:
            unsupported.append(name)
            assert "runs without skipping" in path.note, f"{name} skipped nothing and did not say why"
    assert set(unsupported) <= {"dpm_fast", "dpm_adaptive", "sa_solver_pece"} | {
        n for n in comfy.samplers.KSampler.SAMPLERS if n.endswith("cfg_pp")}, unsupported
    assert {"euler", "heun", "dpm_2", "dpmpp_2m", "dpmpp_2s_ancestral", "uni_pc", "ddim", "lcm"} <= set(skipped)
    assert any("AdaptiveSkip:" in r.getMessage() and "model calls" in r.getMessage() for r in caplog.records)


def test_multi_call_sampler_skips_whole_steps(host, tiny_sd15, tiny_conds):
    patched = patch(host, tiny_sd15, 1.0, criterion="strict", warmup_steps=2, max_consecutive_skips=2)
    sample(patched, "heun", tiny_conds, steps=10)
    path = last_path(host, patched)
    # heun: 2 calls per step, 1 on the last step to σ = 0; a skipped step reuses for both of its calls
    expected_calls = sum((1 if i == 9 else 2) for i, c in enumerate(path.computed) if c)
    assert path.sampler_calls == 19 and path.model_calls == expected_calls


def test_original_model_is_not_modified(host, tiny_sd15, tiny_conds):
    before_options = copy.copy(tiny_sd15.model_options)
    before_wrappers = {k: {kk: list(vv) for kk, vv in v.items()} for k, v in tiny_sd15.wrappers.items()}
    patched = patch(host, tiny_sd15, 0.5)
    sample(patched, "euler", tiny_conds)
    assert tiny_sd15.model_options == before_options
    assert {k: {kk: list(vv) for kk, vv in v.items()} for k, v in tiny_sd15.wrappers.items()} == before_wrappers
    assert "adaptive_skip" not in tiny_sd15.model_options.get("transformer_options", {})
    assert patched is not tiny_sd15


def test_runs_repeat_identically_and_share_no_state(host, tiny_sd15, tiny_conds):
    patched = patch(host, tiny_sd15, 0.5, criterion="strict", warmup_steps=2)
    first = sample(patched, "dpmpp_2m", tiny_conds)
    path_a = last_path(host, patched)
    other = sample(patched, "euler", tiny_conds, steps=7, seed=3)  # an unrelated run in between
    second = sample(patched, "dpmpp_2m", tiny_conds)
    path_b = last_path(host, patched)
    assert torch.equal(first, second)
    assert path_a.computed == path_b.computed and path_a.model_calls == path_b.model_calls
    assert other.shape == first.shape


def test_denoise_below_one_and_cfg_one(host, tiny_sd15, tiny_conds):
    patched = patch(host, tiny_sd15, 1.0, criterion="strict", warmup_steps=2)
    sample(patched, "euler", tiny_conds, steps=10, denoise=0.5, cfg=1.0)
    path = last_path(host, patched)
    # ComfyUI runs denoise 0.5 as the last 10 steps of a 20-step schedule: sigmas start mid-schedule
    assert path.steps == 10 and path.model_calls < 10
    assert path.sigmas[0] < 14.0 and path.sampler_calls == 10


def test_ksampler_node_returns_latent_and_path(host, tiny_sd15, tiny_conds):
    node = host.mappings["AdaptiveSkipKSampler"]()
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    out = node.sample(tiny_sd15, 0, 20, 4.0, "euler", "karras", tiny_conds[0], tiny_conds[1], latent, 1.0,
                      0.5, 4, 4, "strict")
    result_latent, path, report = out["result"]
    assert result_latent["samples"].shape == (1, 4, 4, 4)
    assert path.steps == 20 and path.model_calls < 20
    assert out["ui"]["adaptive_skip_path"][0]["model_calls"] == path.model_calls
    assert report.startswith(f"AdaptiveSkip: {path.model_calls} of 20 model calls")


def test_ksampler_compare_reports_full_and_fewer_steps(host, tiny_sd15, tiny_conds):
    node = host.mappings["AdaptiveSkipKSampler"]()
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    out = node.sample(tiny_sd15, 0, 20, 4.0, "euler", "karras", tiny_conds[0], tiny_conds[1], latent, 1.0,
                      0.5, 4, 4, "strict", compare=True)
    _, path, report = out["result"]
    assert path.psnr is not None and f"{path.computed_steps} plain steps (same calls)" in report
    assert "PSNR vs the 20-step run" in report


@pytest.mark.parametrize("kind", ["eps", "v", "flow"])
def test_cached_derivative_reuse_is_the_models_native_reuse(host, kind):
    """Holding d = (x - D)/σ equals holding ε (eps), the implied ε (v-prediction) and the velocity (flow)."""
    import comfy.model_sampling as ms
    from importlib import import_module
    reuse = import_module(host.pack.__name__ + ".core.reuse")
    bases = {"eps": (ms.EPS, ms.ModelSamplingDiscrete), "v": (ms.V_PREDICTION, ms.ModelSamplingDiscrete),
             "flow": (ms.CONST, ms.ModelSamplingDiscreteFlow)}[kind]
    sampling = type("Sampling", bases, {})(None)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(1, 4, 4, 4, generator=g), torch.randn(1, 4, 4, 4, generator=g)
    sigma = torch.tensor([0.7])
    x = sampling.noise_scaling(sigma, eps, x0)  # the sampler's x at σ for this (x0, ε)
    if kind == "eps":
        output = eps
    elif kind == "v":
        sd = sampling.sigma_data
        s = sigma.reshape(-1, 1, 1, 1)
        output = (x * sd ** 2 / (s ** 2 + sd ** 2) - x0) * (s ** 2 + sd ** 2) ** 0.5 / (s * sd)
    else:
        output = eps - x0  # rectified-flow velocity
    denoised = sampling.calculate_denoised(sigma, output, x)
    assert torch.allclose(denoised, x0, atol=1e-4)
    d = reuse.derivative(x, denoised, float(sigma))
    native = eps if kind in ("eps", "v") else eps - x0
    assert torch.allclose(d, native, atol=1e-4)
    # on a later step the rebuilt D' equals what the model would return if its native output were held
    sigma2 = torch.tensor([0.4])
    x2 = x + 0.1 * torch.randn(x.shape, generator=g)
    held = output if kind != "v" else None
    if kind == "v":  # the v output that implies the same ε at (x2, σ2)
        sd, s2 = sampling.sigma_data, sigma2.reshape(-1, 1, 1, 1)
        x0_implied = x2 - s2 * eps
        held = (x2 * sd ** 2 / (s2 ** 2 + sd ** 2) - x0_implied) * (s2 ** 2 + sd ** 2) ** 0.5 / (s2 * sd)
    expected = sampling.calculate_denoised(sigma2, held, x2)
    assert torch.allclose(reuse.rebuild_denoised(x2, float(sigma2), d), expected, atol=1e-4)


def test_patching_twice_replaces_instead_of_stacking(host, tiny_sd15, tiny_conds):
    import comfy.patcher_extension as pe
    once = patch(host, tiny_sd15, 1.0, criterion="strict", warmup_steps=2)
    twice = patch(host, once, 0.0)
    assert len(twice.get_all_wrappers(pe.WrappersMP.PREDICT_NOISE)) == 1
    sample(twice, "euler", tiny_conds)
    assert last_path(host, twice).model_calls == 8, "the second patch (δ = 0) is the one in force"


def test_unknown_sampler_runs_unaccelerated_and_says_why(host, tiny_sd15, tiny_conds, caplog):
    """A custom sampler (or a newer ComfyUI's) has unknown calls per step: sample it exactly, and log why."""
    import comfy.sample
    import comfy.samplers
    from comfy.k_diffusion import sampling

    def sample_my_custom_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
        return sampling.sample_euler(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable)

    custom = comfy.samplers.KSAMPLER(sample_my_custom_euler)
    sigmas = comfy.samplers.calculate_sigmas(tiny_sd15.get_model_object("model_sampling"), "karras", 10)
    latent = torch.zeros(1, 4, 4, 4)
    noise = comfy.sample.prepare_noise(latent, 0)

    def run(model):
        return comfy.sample.sample_custom(model, noise, 4.0, custom, sigmas, *tiny_conds, latent, disable_pbar=True,
                                          seed=0)

    patched = patch(host, tiny_sd15, 1.0, criterion="strict", warmup_steps=2)
    with caplog.at_level(logging.INFO):
        out = run(patched)
    path = last_path(host, patched)
    assert torch.equal(out, run(tiny_sd15))
    assert path.model_calls == path.sampler_calls == 10
    assert "runs without skipping" in path.note and "not known to call the model" in path.note
    assert any("runs without skipping" in r.getMessage() for r in caplog.records)
