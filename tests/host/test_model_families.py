"""Flow (SD3-shaped MMDiT) and video (Wan 2.1-shaped DiT, 5-D latents) models under the patch."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch


def with_model(tiny_model, model):
    return dataclasses.replace(tiny_model, model=model)


@pytest.mark.parametrize("family,batch", [("sd3", 1), ("wan21", 2)])
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "heun"])
def test_flow_and_video_models(host, tiny_models, family, batch, sampler):
    base = tiny_models.FACTORIES[family](batch=batch)
    ms = base.model.get_model_object("model_sampling")
    assert float(ms.calculate_input(torch.tensor([0.5]), torch.ones(1))) == 1.0, "flow models measure x itself"
    node = host.mappings["AdaptiveSkipModel"]()
    reference = tiny_models.run_ksampler(base, steps=10, sampler_name=sampler)
    off = tiny_models.run_ksampler(with_model(base, node.patch(base.model, 0.0, 4, 4, "official")[0]), steps=10,
                                   sampler_name=sampler)
    assert torch.equal(reference, off)
    patched = node.patch(base.model, 1.0, 2, 2, "strict", reuse="linear", per_sample=batch > 1)[0]
    out = tiny_models.run_ksampler(with_model(base, patched), steps=10, sampler_name=sampler)
    path = host.mappings["AdaptiveSkipLastPath"]().read(patched, {"samples": out})["result"][0]
    assert out.shape == reference.shape and torch.isfinite(out).all()
    assert path.model_calls < path.sampler_calls
    if batch > 1:
        assert len(path.per_sample) == batch


def test_video_latents_are_compared_frame_by_frame(host, tiny_models):
    wan = tiny_models.tiny_wan21(batch=2, frames=3)
    out = host.mappings["AdaptiveSkipKSampler"]().sample(
        wan.model, 0, 10, 4.0, "euler", "karras", wan.positive, wan.negative, wan.latent, 1.0, 1.0, 2, 2, "strict",
        reuse="linear", compare=True)
    latent, path, report = out["result"]
    assert latent["samples"].shape == (2, 16, 3, 4, 4)
    assert path.model_calls < 10 and path.psnr is not None and math.isfinite(path.psnr)
    assert f"{path.computed_steps} plain steps (same calls)" in report
    full = tiny_models.run_ksampler(wan, steps=10, cfg=4.0, scheduler="karras")
    text, scored = host.mappings["AdaptiveSkipCompare"]().compare({"samples": full}, latent, path)["result"]
    assert scored.psnr == pytest.approx(path.psnr) and "SSIM" in text and "nan" not in text
