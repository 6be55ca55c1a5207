"""Models the benchmark runs: the bundled digits model, a tiny random-weight stand-in, and an SD1.5-shaped
random-weight UNet used only to time the controller against a realistically sized model call."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pack_loader import pack_module

PACK_ROOT = Path(__file__).resolve().parents[2]
UNET_PATH = PACK_ROOT / "models" / "diffusion_models" / "adaptive_skip_digits.safetensors"
COND_PATH = PACK_ROOT / "models" / "adaptive_skip_digits_cond.safetensors"
CLASSIFIER_PATH = PACK_ROOT / "models" / "digits_classifier.safetensors"
NULL_INDEX = 10
CONTEXT_DIM = 768

# The bundled model's shape (and what ComfyUI's detect_unet_config reads back as SD1.5).
TINY_UNET = dict(model_channels=320, channel_mult=[1], num_res_blocks=[1], transformer_depth=[1],
                 transformer_depth_output=[0, 0], transformer_depth_middle=-2)
# Stable Diffusion 1.5's UNet (860M parameters).
SD15_UNET = dict(model_channels=320, channel_mult=[1, 2, 4, 4], num_res_blocks=[2, 2, 2, 2],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                 transformer_depth_middle=1, attention_resolutions=[4, 2, 1])


def random_unet_state_dict(shape: dict[str, Any], seed: int = 0, std: float = 0.02) -> dict[str, torch.Tensor]:
    """State dict of ComfyUI's own UNetModel in an SD1.5-detectable config with N(0, std) weights, norms at 1."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = dict(image_size=32, in_channels=4, out_channels=4, context_dim=CONTEXT_DIM, num_heads=8,
                  num_head_channels=-1, use_spatial_transformer=True, legacy=False, use_linear_in_transformer=False,
                  adm_in_channels=None, use_temporal_attention=False, use_temporal_resblock=False)
    config.update({k: v for k, v in shape.items() if k != "attention_resolutions"})
    unet = UNetModel(**config, operations=comfy.ops.disable_weight_init)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            module_name = name.rsplit(".", 1)[0]
            module = unet.get_submodule(module_name)
            if isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return {k: v.detach().clone() for k, v in unet.state_dict().items()}


def load_random(shape: dict[str, Any], seed: int = 0):
    """A ModelPatcher for a random-weight UNet of the given shape, loaded the way ComfyUI loads a UNet file."""
    import comfy.sd
    model = comfy.sd.load_diffusion_model_state_dict(random_unet_state_dict(shape, seed))
    if model is None:
        raise RuntimeError(f"ComfyUI did not recognise the random UNet of shape {shape} as a known model")
    return model


def load_digits_model(kind: str) -> tuple[Any, torch.Tensor, dict[str, float]]:
    """(ModelPatcher, class embeddings (11, 768), decode constants) for "bundled" or "tiny" (random weights)."""
    if kind == "bundled":
        import comfy.sd
        from safetensors.torch import load_file
        for path in (UNET_PATH, COND_PATH):
            if not path.is_file():
                raise FileNotFoundError(f"bundled model file missing: {path} (train it with scripts/train_digits_model.py)")
        model = comfy.sd.load_diffusion_model(str(UNET_PATH))
        cond = load_file(str(COND_PATH))
        decode = {k: float(cond[f"latent_{k}"]) for k in ("mean", "std", "scale")}
        return model, cond["class_embeddings"].float(), decode
    if kind == "tiny":
        gen = torch.Generator().manual_seed(1)
        return load_random(TINY_UNET), torch.randn(NULL_INDEX + 1, CONTEXT_DIM, generator=gen), \
            {"mean": 0.5, "std": 0.25, "scale": 0.18215}
    raise ValueError(f"model must be 'bundled' or 'tiny'; got {kind!r}")


def digits_inputs(emb: torch.Tensor, seeds: int, latent_side: int):
    """Positive/negative CONDITIONING, an empty latent and per-seed noise for seeds 0..seeds-1.

    Seed i generates digit class i mod 10; the negative is the null class (row 10) for every seed.
    """
    demo = pack_module("nodes.demo_model")
    labels = torch.arange(seeds) % 10
    positive = demo.digits_conditioning(emb, labels)
    negative = demo.digits_conditioning(emb, [demo.NULL_INDEX])
    side = latent_side // 8
    latent = torch.zeros(seeds, 4, side, side)
    noise = torch.cat([torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(s))
                       for s in range(seeds)])
    return positive, negative, latent, noise, labels


# ------------------------------------------------------------------ the bundled flow DiT (MNIST, loads as SD3)
MNIST_DIT_PATH = PACK_ROOT / "models" / "diffusion_models" / "adaptive_skip_mnist_dit.safetensors"
MNIST_DIT_COND_PATH = PACK_ROOT / "models" / "adaptive_skip_mnist_dit_cond.safetensors"
MNIST_CLASSIFIER_PATH = PACK_ROOT / "models" / "mnist_classifier.safetensors"
MNIST_DIT_CFG = 3.0  # the model card's default


def load_mnist_dit() -> tuple[Any, dict[str, torch.Tensor], dict[str, float]]:
    """(ModelPatcher, class tables {"context": (11, 2, 64), "pooled": (11, 64)}, decode constants) of the DiT."""
    import comfy.sd
    from safetensors.torch import load_file
    for path in (MNIST_DIT_PATH, MNIST_DIT_COND_PATH):
        if not path.is_file():
            raise FileNotFoundError(f"bundled model file missing: {path} (train it with scripts/train_mnist_dit.py)")
    model = comfy.sd.load_diffusion_model(str(MNIST_DIT_PATH))
    cond = load_file(str(MNIST_DIT_COND_PATH))
    decode = {k: float(cond[f"latent_{k}"]) for k in ("mean", "std")}
    return model, {k: cond[k].float() for k in ("context", "pooled")}, decode


def mnist_dit_inputs(tables: dict[str, torch.Tensor], seeds: int):
    """As digits_inputs, for the DiT: SD3-style CONDITIONING (context + pooled_output), latent (seeds, 16, 8, 8)."""
    labels = torch.arange(seeds) % 10
    null = torch.tensor([NULL_INDEX])
    positive = [[tables["context"][labels].clone(), {"pooled_output": tables["pooled"][labels].clone()}]]
    negative = [[tables["context"][null].clone(), {"pooled_output": tables["pooled"][null].clone()}]]
    latent = torch.zeros(seeds, 16, 8, 8)
    noise = torch.cat([torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(seeds)])
    return positive, negative, latent, noise, labels
