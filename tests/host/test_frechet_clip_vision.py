"""The frechet fitness's CLIP_VISION path in real ComfyUI, without downloadable weights: ComfyUI's own
ClipVisionModel class built from a tiny config (2 layers, 32 wide, 4-d image embeddings) and ComfyUI's own VAE
class holding a TAESD, both with seeded random weights. It proves the plumbing (decode with the VAE, features from
encode_image's image_embeds, the identity naming both), not that CLIP features rank schedules well."""
from __future__ import annotations

import json

import pytest
import torch

TINY_CLIP = {"attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "quick_gelu", "hidden_size": 32,
             "image_size": 32, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 64,
             "layer_norm_eps": 1e-05, "model_type": "clip_vision_model", "num_attention_heads": 2,
             "num_channels": 3, "num_hidden_layers": 2, "patch_size": 8, "projection_dim": 4}
SMALL = dict(sampler_name="euler", steps=3, cfg=3.0, num_seeds=6, budget=400, seed=1, population=4, top_k=2,
             generations=2, reference_steps=10, validation_seeds=0)
# library: tests/host/conftest.py


@pytest.fixture(scope="module")
def clip_and_vae(tmp_path_factory):
    import comfy.clip_vision
    import comfy.sd
    import comfy.taesd.taesd
    config = tmp_path_factory.mktemp("clip") / "tiny_clip_vision.json"
    config.write_text(json.dumps(TINY_CLIP))
    clip = comfy.clip_vision.ClipVisionModel(str(config))
    gen = torch.Generator().manual_seed(0)
    weights = {k: (torch.ones_like(v) if k.endswith("layer_norm1.weight") or k.endswith("layer_norm2.weight")
                   or "layernorm.weight" in k else torch.randn(v.shape, generator=gen) * 0.1)
               for k, v in clip.get_sd().items()}
    missing, unexpected = clip.load_sd(weights)
    assert not missing and not unexpected
    # ComfyUI's TAESD layers skip weight init (comfy.ops.disable_weight_init): fill them, scaled by fan-in
    taesd = {}
    for k, v in comfy.taesd.taesd.TAESD(latent_channels=4).state_dict().items():
        if k in ("vae_scale", "vae_shift"):
            taesd[k] = torch.tensor(1.0 if k == "vae_scale" else 0.0)
        elif k.endswith("bias"):
            taesd[k] = torch.zeros(v.shape)
        else:
            taesd[k] = torch.randn(v.shape, generator=gen) / max(v[0].numel(), 1) ** 0.5
    vae = comfy.sd.VAE(sd=taesd)
    assert type(vae.first_stage_model).__name__ == "TAESD"
    return clip, vae


@pytest.fixture(scope="module")
def digits(host):
    """The bundled digits model (a random-weight UNet's samples can overflow to NaN) and its conditioning."""
    model = host.nodes.NODE_CLASS_MAPPINGS["UNETLoader"]().load_unet("adaptive_skip_digits.safetensors", "default")[0]
    cond = host.mappings["AdaptiveSkipDigitsConditioning"]()
    return model, cond.encode("3")[0], cond.encode("none")[0]


def test_schedule_search_with_clip_vision_features(host, library, clip_and_vae, digits):
    clip, vae = clip_and_vae
    model, pos, neg = digits
    gen = torch.Generator().manual_seed(3)
    real = torch.rand(12, 32, 32, 3, generator=gen)  # IMAGE batch: 12 rows > 4 features, a stable distance
    calls = []
    encode = clip.encode_image

    def counted(image, crop=True):
        calls.append(tuple(image.shape))
        return encode(image, crop=crop)

    clip.encode_image = counted
    try:
        node = host.mappings["EvoTimestepSchedule"]()
        out = node.search(model, pos, neg, {"samples": torch.zeros(1, 4, 4, 4)}, **SMALL, fitness="frechet",
                          features="clip_vision", reference_images=real, vae=vae, clip_vision=clip)
    finally:
        clip.encode_image = encode
    sigmas, report, _ = out["result"]
    assert len(sigmas) == SMALL["steps"] + 1
    assert calls[0] == (12, 32, 32, 3)  # the real images first, then decoded candidates (6 seeds each)
    assert len(calls) > 1 and all(shape[0] == 6 and shape[-1] == 3 for shape in calls[1:]), calls
    record = json.loads(next(library.glob("*.json")).read_text())
    features = record["search"]["fitness_params"]["features"]
    assert features.startswith("clip_vision:CLIPVisionModelProjection:") and "|vae:TAESD:" in features
    assert all(0 <= v < float("inf") for v in record["baselines"].values())  # finite distances
    assert len(set(record["baselines"].values())) > 1  # the features tell the built-ins apart
    assert "singular" not in report  # 6 seeds and 12 images for 4 features


def test_clip_vision_features_without_a_vae_are_refused(host, clip_and_vae, tiny_sd15, tiny_conds):
    clip, _ = clip_and_vae
    node = host.mappings["EvoTimestepSchedule"]()
    with pytest.raises(ValueError, match="needs the VAE"):
        node.search(tiny_sd15, *tiny_conds, {"samples": torch.zeros(1, 4, 4, 4)}, **SMALL, fitness="frechet",
                    features="clip_vision", reference_images=torch.rand(4, 32, 32, 3), clip_vision=clip)
