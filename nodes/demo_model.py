"""Nodes for the bundled digits model: class conditioning, latent decode, and the pack's model folder.

The model itself is loaded by ComfyUI's stock "Load Diffusion Model" (UNETLoader) once ``register_model_folder``
has added the pack's ``models/`` folder to ``diffusion_models``. See models/README.md for the latent map.
"""
from __future__ import annotations

import logging
import os

import torch

from ..core.digits_features import latent_to_digits

logger = logging.getLogger(__name__)

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(PACK_DIR, "models")
UNET_FILE = "adaptive_skip_digits.safetensors"
COND_FILE = "adaptive_skip_digits_cond.safetensors"
CATEGORY = "sampling/adaptive_skip/demo"
NULL_CHOICE = "none"
DIGIT_CHOICES = [str(k) for k in range(10)] + [NULL_CHOICE]
NULL_INDEX = 10


def register_model_folder() -> None:
    """Add the pack's models/ folder to ComfyUI's "diffusion_models" so UNETLoader lists the digits model."""
    import folder_paths

    # only the UNet's own folder, so the conditioning and classifier files stay out of the dropdown
    folder_paths.add_model_folder_path("diffusion_models", os.path.join(MODELS_DIR, "diffusion_models"),
                                       is_default=False)


def load_digits_cond(path: str | None = None) -> dict[str, torch.Tensor]:
    """The class embeddings (11, 768) and latent constants saved by scripts/train_digits_model.py."""
    from safetensors.torch import load_file

    path = path or os.path.join(MODELS_DIR, COND_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"digits conditioning file not found: {path} "
                                "(build it with scripts/train_digits_model.py)")
    return load_file(path)


def digits_conditioning(embeddings: torch.Tensor, labels) -> list:
    """CONDITIONING for the bundled model: the learned embedding of each sample's class (0-9, or NULL_INDEX for the
    null embedding of the negative), shape (B, 1, 768) for B labels. The one place digits conditioning is built
    (the node, the benchmark and the reports use it)."""
    rows = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    return [[embeddings.float()[rows].unsqueeze(1).contiguous(), {}]]


class AdaptiveSkipDigitsConditioning:
    """CONDITIONING for one digit class of the bundled model, or its null embedding for the negative prompt."""

    DESCRIPTION = ("Conditioning for the bundled digits model (adaptive_skip_digits.safetensors): a learned "
                   "embedding per digit 0-9, or 'none' for the null embedding to use as the negative.")
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["demo", "digits", "mnist", "class conditioning"]
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("Cross-attention conditioning, shape (1, 1, 768), for the bundled digits model only.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "digit": (DIGIT_CHOICES, {"default": "3", "tooltip": (
                "Digit class 0-9 to generate. 'none' gives the null (unconditional) embedding: use it as the "
                "negative for classifier-free guidance.")}),
        }}

    def encode(self, digit: str):
        if digit not in DIGIT_CHOICES:
            raise ValueError(f"digit must be one of {DIGIT_CHOICES}; got {digit!r}")
        row = NULL_INDEX if digit == NULL_CHOICE else int(digit)
        return (digits_conditioning(load_digits_cond()["class_embeddings"], [row]),)


class AdaptiveSkipDigitsDecode:
    """LATENT from the bundled digits model -> IMAGE, by inverting its 2x2 space-to-depth latent map."""

    DESCRIPTION = ("Decodes latents of the bundled digits model (no VAE needed): a 4x4 latent becomes an 8x8 "
                   "grey digit, shown as RGB and enlarged by nearest-neighbour upscaling.")
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["demo", "digits", "mnist", "decode"]
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("Images (B, 2*h*upscale, 2*w*upscale, 3) in [0, 1]; an EmptyLatentImage of 32x32 gives "
                       "8x8 digits before upscaling.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {"tooltip": "Latent sampled with the bundled digits model (4 channels)."}),
            "upscale": ("INT", {"default": 8, "min": 1, "max": 64, "step": 1, "tooltip": (
                "Nearest-neighbour enlargement factor; 8 shows an 8x8 digit as 64x64. 1 keeps the native size.")}),
        }}

    def decode(self, samples: dict, upscale: int = 8):
        if int(upscale) < 1:
            raise ValueError(f"upscale must be an integer >= 1; got {upscale}")
        latent = samples["samples"]
        if latent.ndim != 4 or latent.shape[1] != 4:
            raise ValueError(f"samples must be a 4-channel image latent (B, 4, h, w); got shape {tuple(latent.shape)}")
        cond = load_digits_cond()
        grey = latent_to_digits(latent.float().cpu(), float(cond["latent_mean"]), float(cond["latent_std"]),
                                float(cond["latent_scale"]))
        if upscale > 1:
            grey = grey.repeat_interleave(int(upscale), dim=2).repeat_interleave(int(upscale), dim=3)
        return (grey[:, 0, :, :, None].expand(-1, -1, -1, 3).contiguous(),)


NODE_CLASS_MAPPINGS = {
    "AdaptiveSkipDigitsConditioning": AdaptiveSkipDigitsConditioning,
    "AdaptiveSkipDigitsDecode": AdaptiveSkipDigitsDecode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AdaptiveSkipDigitsConditioning": "Digits Conditioning (AdaptiveSkip demo)",
    "AdaptiveSkipDigitsDecode": "Digits Decode (AdaptiveSkip demo)",
}
