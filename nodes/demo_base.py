"""The node shape both bundled demo models share: a digit-class conditioning node, a decode node that inverts the
model's exact latent map (no VAE), and the loader of the model's conditioning tables.

nodes/demo_model.py (the digits UNet) and nodes/flow_demo_model.py (the MNIST flow DiT) subclass these and give
only what differs: their tables, their latent map, their texts.
"""
from __future__ import annotations

import os

import torch

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(PACK_DIR, "models")
CATEGORY = "sampling/adaptive_skip/demo"
NULL_CHOICE = "none"
DIGIT_CHOICES = [str(k) for k in range(10)] + [NULL_CHOICE]
NULL_INDEX = 10  # the tables' row of the null class (the negative prompt)


def load_tables(path: str, model: str, script: str) -> dict[str, torch.Tensor]:
    """The conditioning tables and latent constants a training script saved next to a bundled model."""
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{model} conditioning file not found: {path} (build it with {script})")
    return load_file(path)


class DigitConditioningNode:
    """CONDITIONING for one digit class of a bundled model, or its null class for the negative prompt.
    A subclass gives DIGIT_TOOLTIP and `conditioning(row)` (row 0-9, or NULL_INDEX)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    DIGIT_TOOLTIP = ""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "digit": (DIGIT_CHOICES, {"default": "3", "tooltip": cls.DIGIT_TOOLTIP}),
        }}

    def encode(self, digit: str):
        if digit not in DIGIT_CHOICES:
            raise ValueError(f"digit must be one of {DIGIT_CHOICES}; got {digit!r}")
        return (self.conditioning(NULL_INDEX if digit == NULL_CHOICE else int(digit)),)

    def conditioning(self, row: int) -> list:
        raise NotImplementedError


class LatentDecodeNode:
    """LATENT of a bundled model -> grey IMAGE shown as RGB, enlarged by nearest-neighbour upscaling.
    A subclass gives CHANNELS, LATENT_SOURCE (named in the channel error), the tooltips, the upscale widget's
    default and maximum, and `to_grey(latent)`: the latent map's inverse, (B, C, h, w) -> (B, 1, H, W) in [0, 1]."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CHANNELS = 4
    LATENT_SOURCE = ""
    SAMPLES_TOOLTIP = ""
    UPSCALE_DEFAULT = 1
    UPSCALE_MAX = 64
    UPSCALE_TOOLTIP = ""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {"tooltip": cls.SAMPLES_TOOLTIP}),
            "upscale": ("INT", {"default": cls.UPSCALE_DEFAULT, "min": 1, "max": cls.UPSCALE_MAX, "step": 1,
                                "tooltip": cls.UPSCALE_TOOLTIP}),
        }}

    def decode(self, samples: dict, upscale: int | None = None):
        """`upscale` None is the widget's default."""
        upscale = self.UPSCALE_DEFAULT if upscale is None else upscale
        if int(upscale) < 1:
            raise ValueError(f"upscale must be an integer >= 1; got {upscale}")
        latent = samples["samples"]
        if latent.ndim != 4 or latent.shape[1] != self.CHANNELS:
            raise ValueError(f"samples must be a {self.CHANNELS}-channel image latent (B, {self.CHANNELS}, h, w)"
                             f"{self.LATENT_SOURCE}; got shape {tuple(latent.shape)}")
        grey = self.to_grey(latent.float().cpu())
        if upscale > 1:
            grey = grey.repeat_interleave(int(upscale), dim=2).repeat_interleave(int(upscale), dim=3)
        return (grey[:, 0, :, :, None].expand(-1, -1, -1, 3).contiguous(),)

    def to_grey(self, latent: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
