"""Nodes for the bundled MNIST flow DiT (loaded by ComfyUI as SD3): class conditioning, decode and encode.

The model itself is loaded by ComfyUI's stock "Load Diffusion Model" (UNETLoader) from the pack's
models/diffusion_models/ folder (registered by ``demo_model.register_model_folder``). See models/README.md for the
latent map: an exact 4x4 space-to-depth of the 32x32 frame, no VAE.
"""
from __future__ import annotations

import os

import torch

from ..core.mnist_features import MNIST_SIZE, latent_to_frames, latent_to_mnist, mnist_to_latent
from .demo_base import CATEGORY, MODELS_DIR, DigitConditioningNode, LatentDecodeNode, load_tables
from .demo_base import NULL_CHOICE, NULL_INDEX  # noqa: F401  (scripts read them here)

DIT_FILE = "adaptive_skip_mnist_dit.safetensors"
COND_FILE = "adaptive_skip_mnist_dit_cond.safetensors"
MNIST_LATENT = 8  # latent side of one 28x28 digit (its 32x32 frame / 4)


def load_mnist_dit_cond(path: str | None = None) -> dict[str, torch.Tensor]:
    """Class tables (context (11, T, 64), pooled (11, 64)) and latent constants saved by scripts/train_mnist_dit.py."""
    return load_tables(path or os.path.join(MODELS_DIR, COND_FILE), "MNIST DiT", "scripts/train_mnist_dit.py")


def _latent_constants() -> tuple[float, float]:
    cond = load_mnist_dit_cond()
    return float(cond["latent_mean"]), float(cond["latent_std"])


class AdaptiveSkipMnistDiTConditioning(DigitConditioningNode):
    """CONDITIONING (context tokens + pooled vector, as SD3 takes) for one digit class, or the null class."""

    DESCRIPTION = ("Conditioning for the bundled MNIST flow DiT (adaptive_skip_mnist_dit.safetensors, loaded as "
                   "SD3): learned context tokens and a pooled vector per digit 0-9, or 'none' for the null class "
                   "to use as the negative.")
    SEARCH_ALIASES = ['demo', 'mnist', 'flow dit', 'sd3', 'class conditioning']
    OUTPUT_TOOLTIPS = ("SD3-style conditioning: context (1, 2, 64) and pooled_output (1, 64); for the bundled "
                       "MNIST DiT only.",)
    DIGIT_TOOLTIP = ("Digit class 0-9 to generate. 'none' gives the null (unconditional) class: use it as the "
                     "negative for classifier-free guidance.")

    def conditioning(self, row: int) -> list:
        cond = load_mnist_dit_cond()
        context = cond["context"][row].float()[None].clone()
        pooled = cond["pooled"][row].float()[None].clone()
        return [[context, {"pooled_output": pooled}]]


class AdaptiveSkipMnistDiTDecode(LatentDecodeNode):
    """LATENT of the bundled MNIST DiT -> IMAGE, by inverting its exact space-to-depth latent map."""

    DESCRIPTION = ("Decodes latents of the bundled MNIST flow DiT (no VAE): an 8x8x16 latent is the 32x32 frame of "
                   "one 28x28 digit, shown as RGB and enlarged by nearest-neighbour upscaling.")
    SEARCH_ALIASES = ['demo', 'mnist', 'flow dit', 'decode']
    OUTPUT_TOOLTIPS = ("Images in [0, 1]: (B, 28*upscale, 28*upscale, 3) for 8x8 latents (the digit without its "
                       "2-pixel border); other latent sizes give the whole (4h x 4w) frame.",)
    CHANNELS = 16
    LATENT_SOURCE = " from the MNIST DiT"
    SAMPLES_TOOLTIP = ("Latent sampled with the bundled MNIST DiT (16 channels); an EmptySD3LatentImage of 64x64 "
                       "gives one digit.")
    UPSCALE_DEFAULT, UPSCALE_MAX = 4, 32
    UPSCALE_TOOLTIP = ("Nearest-neighbour enlargement factor; 4 shows a 28x28 digit as 112x112. 1 keeps the native "
                       "size.")

    def to_grey(self, latent: torch.Tensor) -> torch.Tensor:
        mean, std = _latent_constants()
        if tuple(latent.shape[-2:]) == (MNIST_LATENT, MNIST_LATENT):
            return latent_to_mnist(latent, mean, std)
        return latent_to_frames(latent, mean, std)


class AdaptiveSkipMnistDiTEncode:
    """IMAGE of 28x28 grey digits -> LATENT of the bundled MNIST DiT (exact; for img2img with denoise < 1)."""

    DESCRIPTION = ("Encodes 28x28 images (e.g. a decoded sample, or a digit drawn in another tool) into the "
                   "bundled MNIST DiT's latent, exactly (no VAE). RGB is averaged to grey.")
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ['demo', 'mnist', 'flow dit', 'encode']
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("LATENT (B, 16, 8, 8) for the MNIST DiT; decoding it gives the image back.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "Images (B, 28, 28, C) in [0, 1]; white digit on black, like MNIST."}),
        }}

    def encode(self, image: torch.Tensor):
        if image.ndim != 4 or tuple(image.shape[1:3]) != (MNIST_SIZE, MNIST_SIZE):
            raise ValueError(f"image must be 28x28 (B, 28, 28, C); got shape {tuple(image.shape)}. Decode with "
                             "upscale 1, or scale the image to 28x28 first")
        grey = image[..., :3].float().mean(dim=-1).clamp(0.0, 1.0)
        mean, std = _latent_constants()
        return ({"samples": mnist_to_latent(grey.cpu(), mean, std)},)


NODE_CLASS_MAPPINGS = {
    "AdaptiveSkipMnistDiTConditioning": AdaptiveSkipMnistDiTConditioning,
    "AdaptiveSkipMnistDiTDecode": AdaptiveSkipMnistDiTDecode,
    "AdaptiveSkipMnistDiTEncode": AdaptiveSkipMnistDiTEncode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AdaptiveSkipMnistDiTConditioning": "MNIST DiT Conditioning (AdaptiveSkip demo)",
    "AdaptiveSkipMnistDiTDecode": "MNIST DiT Decode (AdaptiveSkip demo)",
    "AdaptiveSkipMnistDiTEncode": "MNIST DiT Encode (AdaptiveSkip demo)",
}
