"""Nodes for the bundled digits model: class conditioning, latent decode, and the pack's model folder.

The model itself is loaded by ComfyUI's stock "Load Diffusion Model" (UNETLoader) once ``register_model_folder``
has added the pack's ``models/`` folder to ``diffusion_models``. See models/README.md for the latent map.
"""
from __future__ import annotations

import logging
import os

import torch

from ..core.digits_features import latent_to_digits
from .demo_base import MODELS_DIR, DigitConditioningNode, LatentDecodeNode, load_tables
from .demo_base import NULL_CHOICE, NULL_INDEX  # noqa: F401  (scripts read them here)

logger = logging.getLogger(__name__)

UNET_FILE = "adaptive_skip_digits.safetensors"
COND_FILE = "adaptive_skip_digits_cond.safetensors"


def register_model_folder() -> None:
    """Add the pack's models/ folder to ComfyUI's "diffusion_models" so UNETLoader lists the digits model."""
    import folder_paths

    # only the UNet's own folder, so the conditioning and classifier files stay out of the dropdown
    folder_paths.add_model_folder_path("diffusion_models", os.path.join(MODELS_DIR, "diffusion_models"),
                                       is_default=False)


def load_digits_cond(path: str | None = None) -> dict[str, torch.Tensor]:
    """The class embeddings (11, 768) and latent constants saved by scripts/train_digits_model.py."""
    return load_tables(path or os.path.join(MODELS_DIR, COND_FILE), "digits", "scripts/train_digits_model.py")


def digits_conditioning(embeddings: torch.Tensor, labels) -> list:
    """CONDITIONING for the bundled model: the learned embedding of each sample's class (0-9, or NULL_INDEX for the
    null embedding of the negative), shape (B, 1, 768) for B labels. The one place digits conditioning is built
    (the node, the benchmark and the reports use it)."""
    rows = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    return [[embeddings.float()[rows].unsqueeze(1).contiguous(), {}]]


class AdaptiveSkipDigitsConditioning(DigitConditioningNode):
    """CONDITIONING for one digit class of the bundled model, or its null embedding for the negative prompt."""

    DESCRIPTION = ("Conditioning for the bundled digits model (adaptive_skip_digits.safetensors): a learned "
                   "embedding per digit 0-9, or 'none' for the null embedding to use as the negative.")
    SEARCH_ALIASES = ["demo", "digits", "mnist", "class conditioning"]
    OUTPUT_TOOLTIPS = ("Cross-attention conditioning, shape (1, 1, 768), for the bundled digits model only.",)
    DIGIT_TOOLTIP = ("Digit class 0-9 to generate. 'none' gives the null (unconditional) embedding: use it as the "
                     "negative for classifier-free guidance.")

    def conditioning(self, row: int) -> list:
        return digits_conditioning(load_digits_cond()["class_embeddings"], [row])


class AdaptiveSkipDigitsDecode(LatentDecodeNode):
    """LATENT from the bundled digits model -> IMAGE, by inverting its 2x2 space-to-depth latent map."""

    DESCRIPTION = ("Decodes latents of the bundled digits model (no VAE needed): a 4x4 latent becomes an 8x8 "
                   "grey digit, shown as RGB and enlarged by nearest-neighbour upscaling.")
    SEARCH_ALIASES = ["demo", "digits", "mnist", "decode"]
    OUTPUT_TOOLTIPS = ("Images (B, 2*h*upscale, 2*w*upscale, 3) in [0, 1]; an EmptyLatentImage of 32x32 gives "
                       "8x8 digits before upscaling.",)
    CHANNELS = 4
    SAMPLES_TOOLTIP = "Latent sampled with the bundled digits model (4 channels)."
    UPSCALE_DEFAULT, UPSCALE_MAX = 8, 64
    UPSCALE_TOOLTIP = ("Nearest-neighbour enlargement factor; 8 shows an 8x8 digit as 64x64. 1 keeps the native "
                       "size.")

    def to_grey(self, latent: torch.Tensor) -> torch.Tensor:
        cond = load_digits_cond()
        return latent_to_digits(latent, float(cond["latent_mean"]), float(cond["latent_std"]),
                                float(cond["latent_scale"]))


NODE_CLASS_MAPPINGS = {
    "AdaptiveSkipDigitsConditioning": AdaptiveSkipDigitsConditioning,
    "AdaptiveSkipDigitsDecode": AdaptiveSkipDigitsDecode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AdaptiveSkipDigitsConditioning": "Digits Conditioning (AdaptiveSkip demo)",
    "AdaptiveSkipDigitsDecode": "Digits Decode (AdaptiveSkip demo)",
}
