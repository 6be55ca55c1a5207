"""AdaptiveSkipCompare: fidelity of a skipped run to its full-step reference, as a report and an updated SKIP_PATH."""
from __future__ import annotations

import dataclasses

from ..core.metrics import frames_as_images, latent_psnr, ssim
from ..core.skip_path import SkipPath

CATEGORY = "sampling/adaptive_skip"


class AdaptiveSkipCompare:
    """PSNR/SSIM of a latent against a reference latent (e.g. the full-step run), with the SKIP_PATH's calls."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "reference": ("LATENT", {"tooltip": "The full-step (or high-accuracy) result to compare with."}),
            "latent": ("LATENT", {"tooltip": "The accelerated result."}),
        }, "optional": {
            "skip_path": ("SKIP_PATH", {"tooltip": "The accelerated run's SKIP_PATH; its PSNR field is filled in."}),
            "label": ("STRING", {"default": "", "tooltip": "A name for this comparison in the report."}),
        }}

    RETURN_TYPES = ("STRING", "SKIP_PATH")
    RETURN_NAMES = ("report", "skip_path")
    OUTPUT_TOOLTIPS = ("One line: model calls, speedup, PSNR and SSIM against the reference.",
                       "A copy of the SKIP_PATH with its PSNR set (empty record when none was connected).")
    FUNCTION = "compare"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["psnr", "ssim", "compare latents", "quality", "cache quality"]
    DESCRIPTION = ("PSNR and SSIM of a latent against a reference latent (e.g. the full-step run), shown on the "
                   "node; with a SKIP_PATH connected the report adds its model calls and the path gets the PSNR.")

    def compare(self, reference, latent, skip_path=None, label=""):
        ref, out = reference["samples"].float(), latent["samples"].float()
        if ref.shape != out.shape:
            raise ValueError(f"reference has shape {tuple(ref.shape)} but latent has {tuple(out.shape)}; compare "
                             "runs made from the same empty latent, seed and batch size")
        db = latent_psnr(out, ref)
        ref, out = frames_as_images(ref), frames_as_images(out)
        similarity = float(ssim(out, ref).mean()) if min(ref.shape[-2:]) >= 3 else float("nan")
        head = f"{label}: " if label else ""
        if skip_path is not None:
            skip_path = dataclasses.replace(skip_path, psnr=db)
            head += f"{skip_path.model_calls} of {skip_path.sampler_calls} model calls ({skip_path.speedup:.2f}x), "
        else:
            skip_path = SkipPath(sigmas=[], psnr=db, note="no SKIP_PATH connected")
        report = f"{head}PSNR {db:.2f} dB, SSIM {similarity:.4f} against the reference"
        return {"ui": {"text": [report]}, "result": (report, skip_path)}


NODE_CLASS_MAPPINGS = {"AdaptiveSkipCompare": AdaptiveSkipCompare}
NODE_DISPLAY_NAME_MAPPINGS = {"AdaptiveSkipCompare": "AdaptiveSkip Compare to Reference"}
