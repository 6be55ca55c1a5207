"""Tiny random-weight ComfyUI models for plumbing tests (host needed, no downloads, CPU, fixed seeds).

Each factory builds the raw diffusion module with ComfyUI's own classes, fills its state dict with seeded random
values (comfy.ops layers start uninitialised), and loads that state dict through
``comfy.sd.load_diffusion_model_state_dict`` -- the path the stock UNETLoader takes -- so ComfyUI's model detection
picks the family. What comes back is a ``TinyModel``: the ModelPatcher plus matching CONDITIONING and LATENT.

- ``tiny_sd15``: SD1.5-detected UNet (EPS, discrete linear schedule, 4-channel latent), image latents (B, 4, h, w).
  SD1.5 detection needs model_channels 320 and context_dim 768, so this one has ~13.6M parameters.
- ``tiny_sd3``:  SD3-detected MMDiT (FLOW / CONST, shift 3, 16-channel latent), hidden size 128.
- ``tiny_wan21``: Wan 2.1 t2v-detected DiT (FLOW / CONST, shift 8), video latents (B, 16, T, h, w).
- ``tiny_sd15_controlnet``: a ControlNet for ``tiny_sd15``'s UNet (RGB hint, 8x the latent size).

ComfyUI must be importable (the host tests' conftest, or ``python tests/host/tiny_models.py`` which finds it).
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable

import torch


@dataclasses.dataclass
class TinyModel:
    """A loaded tiny model and inputs that fit it."""

    model: Any  # comfy.model_patcher.ModelPatcher
    positive: list  # CONDITIONING [[tensor, dict]]
    negative: list
    latent: dict  # LATENT {"samples": zeros}
    family: str  # name of the detected comfy.supported_models class


def random_state_dict(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded values for every entry of ``module.state_dict()``, in key order.

    Weights with >= 2 dims ~ N(0, 1/fan_in); 1-d ``*.weight`` (norm scales) = 1; biases = 0; other 1-d tensors and
    buffers ~ N(0, 0.02^2). Integer entries are kept.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in module.state_dict().items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif value.ndim >= 2 and key.endswith("weight"):
            fan_in = max(1, value[0].numel())
            out[key] = torch.randn(value.shape, generator=gen) / math.sqrt(fan_in)
        elif key.endswith("weight"):
            out[key] = torch.ones(value.shape)
        elif key.endswith("bias"):
            out[key] = torch.zeros(value.shape)
        else:
            out[key] = torch.randn(value.shape, generator=gen) * 0.02
    return out


def _load(state_dict: dict[str, torch.Tensor], expect: str):
    """ModelPatcher via ComfyUI's detection path; checks the detected family is ``expect``."""
    import comfy.sd

    patcher = comfy.sd.load_diffusion_model_state_dict(state_dict, model_options={"dtype": torch.float32})
    if patcher is None:
        raise RuntimeError(f"ComfyUI did not detect the tiny {expect} state dict")
    family = type(patcher.model.model_config).__name__
    if family != expect:
        raise RuntimeError(f"tiny model detected as {family}, expected {expect}")
    return patcher, family


def tiny_sd15(seed: int = 0, batch: int = 1, size: int = 4, context_tokens: int = 1) -> TinyModel:
    """SD1.5-shaped UNet (one res+transformer block, no middle block); latent (batch, 4, size, size)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1],
                     channel_mult=[1], transformer_depth=[1], transformer_depth_output=[0, 0],
                     transformer_depth_middle=-2, context_dim=768, use_linear_in_transformer=False, num_heads=8,
                     use_spatial_transformer=True, legacy=False, operations=comfy.ops.disable_weight_init)
    patcher, family = _load(random_state_dict(unet, seed), "SD15")
    gen = torch.Generator().manual_seed(seed + 1)
    pos = torch.randn(1, context_tokens, 768, generator=gen)
    neg = torch.randn(1, context_tokens, 768, generator=gen)
    return TinyModel(patcher, [[pos, {}]], [[neg, {}]], {"samples": torch.zeros(batch, 4, size, size)}, family)


def tiny_sd15_controlnet(seed: int = 5):
    """A ControlNet (RGB hint) for ``tiny_sd15``'s UNet, loaded by ComfyUI's ControlNetLoader path; random weights.

    Its zero-convs are random too, so unlike a fresh real ControlNet it visibly changes the output.
    """
    import comfy.controlnet
    import comfy.ops
    from comfy.cldm.cldm import ControlNet

    net = ControlNet(image_size=32, in_channels=4, model_channels=320, hint_channels=3, num_res_blocks=[1],
                     channel_mult=[1], transformer_depth=[1], transformer_depth_middle=-1, context_dim=768,
                     use_linear_in_transformer=False, num_heads=8, use_spatial_transformer=True, legacy=False,
                     operations=comfy.ops.disable_weight_init)
    control = comfy.controlnet.load_controlnet_state_dict(random_state_dict(net, seed),
                                                          model_options={"dtype": torch.float32})
    if control is None:
        raise RuntimeError("ComfyUI did not detect the tiny ControlNet state dict")
    return control


def tiny_sd3(seed: int = 0, batch: int = 1, size: int = 8, context_tokens: int = 4) -> TinyModel:
    """SD3-shaped MMDiT, depth 2 (hidden 128, 2 heads), patch 2; latent (batch, 16, size, size)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper

    context_dim, pooled_dim = 32, 16
    dit = OpenAISignatureMMDITWrapper(
        in_channels=16, out_channels=16, patch_size=2, depth=2, adm_in_channels=pooled_dim,
        context_embedder_config={"target": "torch.nn.Linear",
                                 "params": {"in_features": context_dim, "out_features": 128}},
        pos_embed_max_size=8, num_patches=64, input_size=None, pos_embed_scaling_factor=None,
        operations=comfy.ops.disable_weight_init)
    patcher, family = _load(random_state_dict(dit, seed), "SD3")
    gen = torch.Generator().manual_seed(seed + 1)

    def cond():
        return [[torch.randn(1, context_tokens, context_dim, generator=gen),
                 {"pooled_output": torch.randn(1, pooled_dim, generator=gen)}]]
    return TinyModel(patcher, cond(), cond(), {"samples": torch.zeros(batch, 16, size, size)}, family)


def tiny_wan21(seed: int = 0, batch: int = 1, frames: int = 2, size: int = 4, context_tokens: int = 4) -> TinyModel:
    """Wan 2.1 t2v-shaped DiT, one block of width 128 (1 head); video latent (batch, 16, frames, size, size)."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    # Detection reads dim, ffn_dim, layers and in/out dims from the state dict; text_dim stays at its 4096 default.
    wan = WanModel(model_type="t2v", dim=128, ffn_dim=256, num_heads=1, num_layers=1, in_dim=16, out_dim=16,
                   operations=comfy.ops.disable_weight_init)
    patcher, family = _load(random_state_dict(wan, seed), "WAN21_T2V")
    gen = torch.Generator().manual_seed(seed + 1)
    pos = torch.randn(1, context_tokens, 4096, generator=gen)
    neg = torch.randn(1, context_tokens, 4096, generator=gen)
    latent = {"samples": torch.zeros(batch, 16, frames, size, size)}
    return TinyModel(patcher, [[pos, {}]], [[neg, {}]], latent, family)


FACTORIES: dict[str, Callable[..., TinyModel]] = {"sd15": tiny_sd15, "sd3": tiny_sd3, "wan21": tiny_wan21}


def run_ksampler(tiny: TinyModel, steps: int = 1, cfg: float = 2.0, sampler_name: str = "euler",
                 scheduler: str = "normal", seed: int = 0, denoise: float = 1.0) -> torch.Tensor:
    """What the stock KSampler node does (comfy.sample.sample with prepared noise), without importing `nodes`."""
    import comfy.sample

    latent = comfy.sample.fix_empty_latent_channels(tiny.model, tiny.latent["samples"])
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(tiny.model, noise, steps, cfg, sampler_name, scheduler, tiny.positive, tiny.negative,
                               latent, denoise=denoise, disable_pbar=True, seed=seed)


def _import_host() -> None:
    """Make ComfyUI importable for the self-check (COMFYUI_PATH, else ~/comfy/ComfyUI), CPU only."""
    root = os.environ.get("COMFYUI_PATH", os.path.expanduser("~/comfy/ComfyUI"))
    if not os.path.isfile(os.path.join(root, "comfy", "sd.py")):
        raise SystemExit(f"ComfyUI not found at {root}; set COMFYUI_PATH")
    pack_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != pack_root]
    sys.path.insert(0, root)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options
    comfy.options.enable_args_parsing()


def _self_check(name: str) -> str:
    """Build one tiny model, run three 1-step KSampler runs; one line of facts (locals die on return, so ComfyUI
    does not warn about a still-referenced model when the next one loads)."""
    t0 = time.perf_counter()
    tiny = FACTORIES[name]()
    t1 = time.perf_counter()
    run_ksampler(tiny, steps=1)  # warm-up: the first call moves the model to the load device
    t2 = time.perf_counter()
    out = run_ksampler(tiny, steps=1)
    t3 = time.perf_counter()
    again = run_ksampler(tiny, steps=1)
    base = tiny.model.model
    params = sum(p.numel() for p in base.diffusion_model.parameters())
    assert out.shape == tiny.latent["samples"].shape, (name, out.shape)
    assert torch.isfinite(out).all() and out.abs().sum() > 0, name
    assert torch.equal(out, again), f"{name}: not deterministic"
    return (f"{name:6s} {tiny.family:10s} {base.model_type.name:5s} latent {tuple(out.shape)}  "
            f"params {params / 1e6:.2f}M  build {t1 - t0:.2f}s  first step {t2 - t1:.2f}s  step {t3 - t2:.3f}s")


if __name__ == "__main__":
    _import_host()
    for factory_name in FACTORIES:
        print(_self_check(factory_name))
    print("ok")
