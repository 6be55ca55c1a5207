"""Flow (SD3-shaped MMDiT) and video (Wan 2.1-shaped DiT, 5-D latents) models under the patch."""
from __future__ import annotations

import dataclasses

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
