"""Odd graphs: stock sampler nodes, custom guiders, shared models, conditioning tricks, LoRA, per-sample batches,
second passes, cancellation."""
from __future__ import annotations

import pytest
import torch


def patched(host, model, threshold=1.0, **kw):
    args = dict(max_consecutive_skips=3, warmup_steps=2, criterion="strict")
    args.update(kw)
    return host.mappings["AdaptiveSkipModel"]().patch(model, threshold, **args)[0]


def last(host, model):
    return host.mappings["AdaptiveSkipLastPath"]().read(model, {"samples": None})["result"][0]


def latent(batch=1):
    return {"samples": torch.zeros(batch, 4, 4, 4)}


def node(host, name):
    return host.nodes.NODE_CLASS_MAPPINGS[name]()


def call(instance, *args, **kwargs):
    """Run a node's FUNCTION the way ComfyUI does; classic and v3 nodes both return their outputs."""
    fn = getattr(instance, getattr(type(instance), "FUNCTION", "execute"))
    out = fn(*args, **kwargs)
    if isinstance(out, dict):
        out = out["result"]
    return tuple(getattr(out, "args", out))


def test_stock_ksampler_and_advanced(host, tiny_sd15, tiny_conds):
    m = patched(host, tiny_sd15)
    out, = call(node(host, "KSampler"), m, 0, 10, 4.0, "euler", "karras", *tiny_conds, latent(), 1.0)
    assert torch.isfinite(out["samples"]).all() and last(host, m).model_calls < 10
    out, = call(node(host, "KSamplerAdvanced"), m, "enable", 0, 12, 4.0, "dpmpp_2m", "karras", *tiny_conds,
                latent(), 2, 12, "disable")
    path = last(host, m)
    assert path.steps == 10 and path.model_calls < 10  # start_at_step 2 of 12


def test_sampler_custom_and_advanced_with_basic_guider(host, tiny_sd15, tiny_conds):
    m = patched(host, tiny_sd15)
    sampler, = call(node(host, "KSamplerSelect"), "euler_ancestral")
    sigmas, = call(node(host, "BasicScheduler"), m, "karras", 10, 1.0)
    out = call(node(host, "SamplerCustom"), m, True, 0, 4.0, *tiny_conds, sampler, sigmas, latent())
    assert torch.isfinite(out[0]["samples"]).all() and last(host, m).model_calls < 10
    guider, = call(node(host, "BasicGuider"), m, tiny_conds[0])  # no negative at all
    noise, = call(node(host, "RandomNoise"), 0)
    out = call(node(host, "SamplerCustomAdvanced"), noise, guider, sampler, sigmas, latent())
    assert torch.isfinite(out[0]["samples"]).all() and last(host, m).model_calls < 10


def test_two_samplers_share_one_model(host, tiny_sd15, tiny_conds):
    ks = host.mappings["AdaptiveSkipKSampler"]()
    common = (tiny_sd15, 0, 16, 4.0, "euler", "karras", *tiny_conds, latent(), 1.0)
    a = ks.sample(*common, 0.0, 4, 4, "official")["result"][1]
    b = ks.sample(*common, 1.0, 3, 2, "strict")["result"][1]
    c = ks.sample(*common, 0.0, 4, 4, "official")["result"][1]
    assert a.model_calls == 16 and b.model_calls < 16 and c.computed == a.computed
    assert "adaptive_skip" not in tiny_sd15.model_options.get("transformer_options", {})


def test_area_and_timestep_range_conditioning(host, tiny_sd15, tiny_conds):
    area, = call(node(host, "ConditioningSetArea"), tiny_conds[0], 16, 16, 0, 0, 1.0)
    ranged, = call(node(host, "ConditioningSetTimestepRange"), tiny_conds[0], 0.0, 0.5)
    combined, = call(node(host, "ConditioningCombine"), area, ranged)
    m = patched(host, tiny_sd15)
    out, = call(node(host, "KSampler"), m, 0, 12, 4.0, "euler", "karras", combined, tiny_conds[1], latent(), 1.0)
    assert torch.isfinite(out["samples"]).all() and last(host, m).model_calls < 12


def test_lora_patched_model_keeps_its_patch(host, tiny_sd15, tiny_conds):
    lora = tiny_sd15.clone()
    key = next(k for k in lora.model_state_dict() if k.endswith("out.2.weight"))
    weight = lora.model_state_dict()[key]
    lora.add_patches({key: (torch.randn_like(weight) * 0.5,)}, 1.0)  # a weight diff, as LoRA loaders add
    plain = call(node(host, "KSampler"), patched(host, tiny_sd15, 0.0), 0, 8, 4.0, "euler", "karras",
                 *tiny_conds, latent(), 1.0)[0]["samples"]
    with_lora = call(node(host, "KSampler"), patched(host, lora, 0.0), 0, 8, 4.0, "euler", "karras",
                     *tiny_conds, latent(), 1.0)[0]["samples"]
    assert not torch.allclose(plain, with_lora), "the LoRA patch must survive AdaptiveSkip's clone"


def test_latent_upscale_then_second_pass(host, tiny_sd15, tiny_conds):
    m = patched(host, tiny_sd15)
    first, = call(node(host, "KSampler"), m, 0, 10, 4.0, "euler", "karras", *tiny_conds, latent(), 1.0)
    big, = call(node(host, "LatentUpscaleBy"), first, "nearest-exact", 2.0)
    second, = call(node(host, "KSampler"), m, 1, 10, 4.0, "euler", "karras", *tiny_conds, big, 0.5)
    assert second["samples"].shape == (1, 4, 8, 8)
    assert last(host, m).steps == 10


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_per_sample_batch_equals_images_sampled_alone(host, tiny_sd15, tiny_conds, batch):
    import comfy.sample
    m = patched(host, tiny_sd15, 0.05, criterion="official", warmup_steps=4, per_sample=True)
    lat = torch.zeros(batch, 4, 4, 4)
    noise = comfy.sample.prepare_noise(lat, 7)
    together = comfy.sample.sample(m, noise, 20, 4.0, "euler", "karras", *tiny_conds, lat, seed=7, disable_pbar=True)
    path = last(host, m)
    assert len(path.per_sample) == (batch if batch > 1 else 0)
    assert path.model_calls == sum(path.computed)
    for i in range(batch):
        alone = comfy.sample.sample(m, noise[i:i + 1], 20, 4.0, "euler", "karras", *tiny_conds, lat[i:i + 1],
                                    seed=7, disable_pbar=True)
        # equal up to float32 rounding of batched vs single matmuls (the unpatched model differs as much)
        error = (together[i:i + 1] - alone).abs().max() / alone.abs().max()
        assert error < 1e-5, f"image {i} differs from its solo run by {error:.2e} of its peak value"
        if batch > 1:
            assert path.per_sample[i] == last(host, m).computed


def test_cancel_mid_run_then_requeue_gives_the_normal_result(host, tiny_sd15, tiny_conds):
    import comfy.model_management
    import comfy.sample
    m = patched(host, tiny_sd15, 0.5)
    lat = torch.zeros(1, 4, 4, 4)
    noise = comfy.sample.prepare_noise(lat, 0)

    def run(callback=None):
        return comfy.sample.sample(m, noise, 12, 4.0, "dpmpp_2m", "karras", *tiny_conds, lat, seed=0,
                                   callback=callback, disable_pbar=True)

    normal = run()

    def cancel_at_step_5(i, *_):
        if i == 5:  # what ComfyUI's progress hook raises when the user presses Cancel
            raise comfy.model_management.InterruptProcessingException()

    with pytest.raises(comfy.model_management.InterruptProcessingException):
        run(cancel_at_step_5)
    assert torch.equal(run(), normal)


def test_controlnet_applied_runs_only_on_computed_calls(host, tiny_models, tiny_sd15, tiny_conds):
    control = tiny_models.tiny_sd15_controlnet()
    hint = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(3))  # IMAGE, 8x the 4x4 latent
    controlled = call(node(host, "ControlNetApplyAdvanced"), *tiny_conds, control, hint, 1.0, 0.0, 1.0)
    forwards = []
    hook = control.control_model.register_forward_hook(lambda *_: forwards.append(1))
    try:
        def run(model, conds):
            return call(node(host, "KSampler"), model, 0, 12, 4.0, "euler", "karras", *conds, latent(), 1.0)[0]

        plain = run(tiny_sd15, controlled)["samples"]
        assert not torch.allclose(plain, run(tiny_sd15, tiny_conds)["samples"]), "the ControlNet must act"
        assert torch.equal(run(patched(host, tiny_sd15, 0.0), controlled)["samples"], plain)
        m = patched(host, tiny_sd15)
        forwards.clear()
        out = run(m, controlled)["samples"]
        path = last(host, m)
    finally:
        hook.remove()
    assert torch.isfinite(out).all() and path.model_calls < 12
    # cond and uncond go through the ControlNet in one batch: one forward per computed call, none on skipped ones
    assert len(forwards) == path.model_calls


@pytest.mark.parametrize("values", [[0.0], [3.0]])
def test_schedule_without_a_step_passes_through_like_stock(host, tiny_sd15, tiny_conds, values):
    """A one-value SIGMAS (e.g. SplitSigmas at the last step) samples nothing in ComfyUI; the patched model agrees."""
    sampler, = call(node(host, "KSamplerSelect"), "euler")
    sigmas = torch.tensor(values)

    def run(model):
        return call(node(host, "SamplerCustom"), model, True, 0, 4.0, *tiny_conds, sampler, sigmas, latent())[0]

    assert torch.equal(run(patched(host, tiny_sd15))["samples"], run(tiny_sd15)["samples"])
