"""Write the shipped UI-format workflows from their API-format definitions (one source, no drift).

    python scripts/make_workflows.py      # needs ComfyUI (for the node definitions)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_env  # noqa: E402
import workflow_convert  # noqa: E402

sys.path.remove(str(HERE))

MODEL = "adaptive_skip_digits.safetensors"
SKIP_DEFAULTS = {"threshold": 0.01, "max_consecutive_skips": 4, "warmup_steps": 4, "criterion": "official",
                 "reuse": "hold", "stride": 2, "target_calls": 0}


def basic() -> tuple[dict, dict]:
    """Full-step KSampler next to AdaptiveSkip's default budget mode (speedup 2) and its error rule with
    extrapolation."""
    sampling = {"seed": 0, "steps": 50, "cfg": 3.0, "sampler_name": "euler", "scheduler": "karras",
                "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": MODEL, "weight_dtype": "default"}},
        "2": {"class_type": "AdaptiveSkipDigitsConditioning", "inputs": {"digit": "3"}},
        "3": {"class_type": "AdaptiveSkipDigitsConditioning", "inputs": {"digit": "none"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 8}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], **sampling}},
        "6": {"class_type": "AdaptiveSkipKSampler", "inputs": {"model": ["1", 0], **sampling, **SKIP_DEFAULTS,
                                                              "criterion": "budget", "speedup": 2.0}},
        "7": {"class_type": "AdaptiveSkipKSampler", "inputs": {
            "model": ["1", 0], **sampling, **SKIP_DEFAULTS, "criterion": "error", "threshold": 0.05,
            "reuse": "quadratic", "max_consecutive_skips": 3}},
        "8": {"class_type": "AdaptiveSkipCompare", "inputs": {
            "reference": ["5", 0], "latent": ["6", 0], "skip_path": ["6", 1], "label": "budget, speedup 2"}},
        "9": {"class_type": "AdaptiveSkipCompare", "inputs": {
            "reference": ["5", 0], "latent": ["7", 0], "skip_path": ["7", 1], "label": "error rule, quadratic"}},
        "10": {"class_type": "AdaptiveSkipDigitsDecode", "inputs": {"samples": ["5", 0], "upscale": 8}},
        "11": {"class_type": "AdaptiveSkipDigitsDecode", "inputs": {"samples": ["6", 0], "upscale": 8}},
        "12": {"class_type": "AdaptiveSkipDigitsDecode", "inputs": {"samples": ["7", 0], "upscale": 8}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "adaptive_skip/full"}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "adaptive_skip/budget"}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "adaptive_skip/error"}},
    }
    titles = {"5": "Full 50 steps (reference)", "6": "AdaptiveSkip: budget mode, speedup 2 (the default)",
              "7": "AdaptiveSkip: error rule + quadratic reuse"}
    positions = {"1": (20, 40), "2": (20, 200), "3": (20, 330), "4": (20, 460), "5": (380, 40), "6": (380, 420),
                 "7": (380, 900), "8": (760, 420), "9": (760, 900), "10": (760, 40), "11": (1120, 420),
                 "12": (1120, 900), "13": (1120, 40), "14": (1480, 420), "15": (1480, 900)}
    return prompt, {"positions": positions, "titles": titles}


WORKFLOWS = {"adaptive_skip_basic.json": basic}


def main() -> int:
    _, nodes, _ = comfy_env.boot_comfyui()
    out_dir = comfy_env.PACK_ROOT / "workflows"
    for name, build in WORKFLOWS.items():
        prompt, layout = build()
        ui = workflow_convert.api_to_ui(prompt, nodes.NODE_CLASS_MAPPINGS, **layout)
        (out_dir / name).write_text(json.dumps(ui, indent=1) + "\n")
        print(f"wrote workflows/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
