"""SkipPathVisualizer: draw one or two skip paths (the drawing is core/draw.py) and publish the picture and the
records to the page (js/adaptive_skip_path.js). The oracle node is nodes/oracle.py."""
from __future__ import annotations

import copy
import logging
import os

import numpy as np
import torch

from ..core.draw import draw_skip_path
from ..core.metrics import latent_psnr  # noqa: F401  (also read from here by scripts/render_example.py)
from ..core.skip_path import SkipPath

logger = logging.getLogger(__name__)

CATEGORY = "sampling/adaptive_skip"
SKIP_PATH = "SKIP_PATH"
UI_KEY = "adaptive_skip_path"  # node UI output read by js/adaptive_skip_path.js


def image_to_tensor(image) -> torch.Tensor:
    """PIL RGB image -> ComfyUI IMAGE [1, H, W, 3] float32 in 0..1."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None]


def save_temp_preview(image, prefix: str = "adaptive_skip_path") -> dict:
    """Save into ComfyUI's temp folder the way PreviewImage does; returns the UI 'images' entry."""
    import folder_paths  # ComfyUI's module; imported here so the pack's core stays host-free

    temp_dir = folder_paths.get_temp_directory()
    full_dir, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        f"{prefix}_temp_{os.getpid()}", temp_dir, image.width, image.height)
    os.makedirs(full_dir, exist_ok=True)
    name = f"{filename}_{counter:05}_.png"
    image.save(os.path.join(full_dir, name), compress_level=1)
    return {"filename": name, "subfolder": subfolder, "type": "temp"}


class SkipPathVisualizer:
    """SKIP_PATH (and optionally a second one) -> a picture of which steps were computed, and why."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "skip_path": (SKIP_PATH, {"tooltip": "The path to draw: the skip_path output of AdaptiveSkip "
                                                     "KSampler, AdaptiveSkip Last Skip Path or Skip Path Oracle."}),
            },
            "optional": {
                "skip_path_b": (SKIP_PATH, {"tooltip": "A second path drawn below the first to compare (another "
                                                       "threshold, or the oracle path). Leave empty for one path."}),
                "width": ("INT", {"default": 1000, "min": 400, "max": 4000, "step": 10,
                                  "tooltip": "Picture width in pixels; 1000 reads well at 1x on a laptop."}),
                "reference": ("LATENT", {"tooltip": "The full-step result (e.g. Skip Path Oracle's full_step_latent) "
                                                    "to print PSNR against; needs `latent` (and `latent_b`). "
                                                    "Leave empty to show the PSNR a path already carries."}),
                "latent": ("LATENT", {"tooltip": "The result sampled along skip_path, for its PSNR."}),
                "latent_b": ("LATENT", {"tooltip": "The result sampled along skip_path_b, for its PSNR."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The picture as an IMAGE [1, H, W, 3]: step timeline(s), estimator vs threshold, σ, and a "
                       "caption with calls, speedup and PSNR.",)
    FUNCTION = "visualize"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["skip path", "visualize cache", "cache steps", "which steps"]
    OUTPUT_NODE = True
    DESCRIPTION = ("Draws a skip path: one cell per sampler step (computed / reused / forced by C_max / warm-up), "
                   "the estimator per step against its threshold, σ per step, and a caption. Shown on the node.")

    def visualize(self, skip_path, skip_path_b=None, width=1000, reference=None, latent=None, latent_b=None):
        paths = []
        for name, path, result in (("skip_path", skip_path, latent), ("skip_path_b", skip_path_b, latent_b)):
            if path is None:
                continue
            if not isinstance(path, SkipPath):
                raise ValueError(f"{name} must be a SKIP_PATH from an AdaptiveSkip node, got {type(path).__name__}")
            if path.steps == 0:
                raise ValueError(f"{name} holds no steps (its sampler did not run); connect a finished run's path")
            if reference is not None and result is not None:
                path = copy.copy(path)
                path.psnr = latent_psnr(result["samples"], reference["samples"])
            paths.append(path)
        image = draw_skip_path(paths[0], paths[1] if len(paths) > 1 else None, width=int(width))
        ui = {"images": [save_temp_preview(image)], UI_KEY: [p.to_dict() for p in paths]}
        return {"ui": ui, "result": (image_to_tensor(image),)}


NODE_CLASS_MAPPINGS = {"SkipPathVisualizer": SkipPathVisualizer}
NODE_DISPLAY_NAME_MAPPINGS = {"SkipPathVisualizer": "Skip Path Visualizer (AdaptiveSkip)"}
