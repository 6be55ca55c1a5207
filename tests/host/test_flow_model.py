"""The bundled MNIST flow DiT: stock UNETLoader detection as SD3, its nodes, its exact latent map, the skip patch."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

PACK_ROOT = Path(__file__).resolve().parents[2]
DIT = "adaptive_skip_mnist_dit.safetensors"
WORKFLOW = "adaptive_skip_flow.json"


def _load(name: str, relpath: str):
    spec = importlib.util.spec_from_file_location(name, PACK_ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dit(host):
    return host.nodes.UNETLoader().load_unet(DIT, "default")[0]


@pytest.fixture(scope="module")
def conds(host):
    node = host.mappings["AdaptiveSkipMnistDiTConditioning"]()
    return {d: node.encode(d)[0] for d in [str(k) for k in range(10)] + ["none"]}


@pytest.fixture(scope="module")
def features():
    return _load("adaptive_skip_mnist_features_t", "core/mnist_features.py")


def sample(model, positive, negative, batch=4, steps=10, cfg=3.0, sampler="euler", seed=0):
    import comfy.sample

    latent = torch.zeros(batch, 16, 8, 8)  # EmptySD3LatentImage 64x64
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, "simple", positive, negative, latent,
                               denoise=1.0, disable_pbar=True, seed=seed)


def test_stock_loader_detects_sd3_flow(dit):
    import comfy.latent_formats
    import comfy.model_base
    import comfy.model_sampling
    import comfy.supported_models

    base = dit.model
    ms = base.model_sampling
    print(f"\nUNETLoader({DIT}): model {type(base).__module__}.{type(base).__name__}, config "
          f"{type(base.model_config).__name__}, model_type {base.model_type.name}, model_sampling "
          f"{'+'.join(c.__name__ for c in type(ms).__bases__)} shift {ms.shift} multiplier {ms.multiplier}, "
          f"{len(base.diffusion_model.joint_blocks)} joint blocks, hidden {base.diffusion_model.hidden_size}")
    assert type(base) is comfy.model_base.SD3
    assert isinstance(base.model_config, comfy.supported_models.SD3)
    assert base.model_type == comfy.model_base.ModelType.FLOW
    assert isinstance(ms, comfy.model_sampling.ModelSamplingDiscreteFlow) and isinstance(ms, comfy.model_sampling.CONST)
    assert float(ms.shift) == 3.0 and float(ms.multiplier) == 1000.0
    assert isinstance(base.latent_format, comfy.latent_formats.SD3) and base.latent_format.latent_channels == 16
    assert len(base.diffusion_model.joint_blocks) == 4
    assert (PACK_ROOT / "models" / "diffusion_models" / DIT).stat().st_size <= 30 * 2**20


def test_conditioning_shapes_and_classes(host, conds):
    for digit, cond in conds.items():
        assert len(cond) == 1
        context, extra = cond[0]
        assert context.shape == (1, 2, 64), digit
        assert extra["pooled_output"].shape == (1, 64), digit
    assert not torch.equal(conds["3"][0][0], conds["none"][0][0])
    assert not torch.equal(conds["3"][0][1]["pooled_output"], conds["7"][0][1]["pooled_output"])
    with pytest.raises(ValueError, match="digit must be one of"):
        host.mappings["AdaptiveSkipMnistDiTConditioning"]().encode("11")


def test_latent_map_round_trip_is_exact(host, features):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(5, 28, 28, generator=gen)
    images[0] = 0.0
    images[1] = 1.0
    encode, decode = host.mappings["AdaptiveSkipMnistDiTEncode"](), host.mappings["AdaptiveSkipMnistDiTDecode"]()
    latent = encode.encode(images[..., None].expand(-1, -1, -1, 3))[0]
    assert latent["samples"].shape == (5, 16, 8, 8)
    back = decode.decode(latent, 1)[0]
    assert back.shape == (5, 28, 28, 3)
    assert torch.allclose(back[..., 0], images, atol=1e-6, rtol=0)
    big = decode.decode(latent, 3)[0]
    assert big.shape == (5, 84, 84, 3) and torch.equal(big[:, ::3, ::3], back)
    # the model sees unit-variance values in the padded black border: SD3's process_in undoes the stored shift/scale
    import comfy.latent_formats
    seen = comfy.latent_formats.SD3().process_in(latent["samples"])
    from safetensors.torch import load_file
    cond = load_file(PACK_ROOT / "models" / "adaptive_skip_mnist_dit_cond.safetensors")
    border = (-1.0 - float(cond["latent_mean"])) / float(cond["latent_std"])
    assert torch.allclose(seen[0], torch.full_like(seen[0], border), atol=1e-5)
    with pytest.raises(ValueError, match="16-channel"):
        decode.decode({"samples": torch.zeros(1, 4, 8, 8)}, 1)
    with pytest.raises(ValueError, match="28x28"):
        encode.encode(torch.zeros(1, 32, 32, 3))


def test_samples_are_the_conditioned_digits(host, dit, conds, features):
    classifier = features.load_mnist_classifier(PACK_ROOT / "models" / "mnist_classifier.safetensors")
    decode = host.mappings["AdaptiveSkipMnistDiTDecode"]()
    hits = 0
    for k in range(10):
        out = sample(dit, conds[str(k)], conds["none"], batch=3, steps=12, seed=k)
        digits = decode.decode({"samples": out}, 1)[0][..., 0][:, None]
        hits += int((classifier(digits).argmax(1) == k).sum())
    assert hits >= 24, f"only {hits} of 30 samples classified as the conditioned digit"


def test_skip_patch_on_the_dit_leaves_the_model_alone(host, dit, conds):
    before_options = json.dumps(str(dit.model_options), sort_keys=True)
    before_weight = dit.model.diffusion_model.joint_blocks[0].x_block.attn.qkv.weight.clone()
    reference = sample(dit, conds["3"], conds["none"], steps=20)
    node = host.mappings["AdaptiveSkipModel"]()
    patched = node.patch(dit, 0.05, 3, 4, "strict", reuse="linear")[0]
    assert patched is not dit
    out = sample(patched, conds["3"], conds["none"], steps=20)
    path = host.mappings["AdaptiveSkipLastPath"]().read(patched, {"samples": out})["result"][0]
    assert path.sampler_calls == 20 and path.model_calls < path.sampler_calls
    assert torch.isfinite(out).all() and not torch.equal(out, reference)
    rel = float((out - reference).norm() / reference.norm())
    assert rel < 0.5, f"skipped run too far from the full run: relative error {rel:.3f}"
    # the original model is untouched: same options, same weights, same output
    assert json.dumps(str(dit.model_options), sort_keys=True) == before_options
    assert torch.equal(dit.model.diffusion_model.joint_blocks[0].x_block.attn.qkv.weight, before_weight)
    assert torch.equal(sample(dit, conds["3"], conds["none"], steps=20), reference)


def test_flow_workflow_matches_its_api_twin(host):
    convert = _load("adaptive_skip_workflow_convert_t", "scripts/workflow_convert.py")
    ui = json.loads((PACK_ROOT / "workflows" / WORKFLOW).read_text())
    api = json.loads((PACK_ROOT / "workflows" / "api" / WORKFLOW).read_text())
    converted = convert.ui_to_api(ui, host.nodes.NODE_CLASS_MAPPINGS)
    assert converted == api
    loaders = [n for n in api.values() if n["class_type"] == "UNETLoader"]
    assert [n["inputs"]["unet_name"] for n in loaders] == [DIT]
    assert any(n["class_type"] == "AdaptiveSkipModel" for n in api.values())
