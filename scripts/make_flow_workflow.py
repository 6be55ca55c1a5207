"""Write workflows/adaptive_skip_flow.json (UI format) and its API twin workflows/api/adaptive_skip_flow.json.

The basic workflow on the bundled flow DiT (MNIST, loaded as SD3): a full-step KSampler next to the same KSampler
on AdaptiveSkipModel's patched clone, its skip path and fidelity report, and both results decoded.

    python scripts/make_flow_workflow.py      # needs ComfyUI (for the node definitions)
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

NAME = "adaptive_skip_flow.json"
MODEL = "adaptive_skip_mnist_dit.safetensors"
# The model card's default sampling (models/README.md): euler / simple, 30 steps, cfg 3.
SAMPLING = {"seed": 0, "steps": 30, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}
SKIP = {"threshold": 0.01, "max_consecutive_skips": 4, "warmup_steps": 4, "criterion": "official", "reuse": "hold",
        "stride": 2, "target_calls": 0, "per_sample": False}


def flow() -> tuple[dict, dict]:
    """API prompt and layout of the flow workflow."""
    sampling = {**SAMPLING, "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": MODEL, "weight_dtype": "default"}},
        "2": {"class_type": "AdaptiveSkipMnistDiTConditioning", "inputs": {"digit": "3"}},
        "3": {"class_type": "AdaptiveSkipMnistDiTConditioning", "inputs": {"digit": "none"}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 8}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], **sampling}},
        "6": {"class_type": "AdaptiveSkipModel", "inputs": {"model": ["1", 0], **SKIP}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["6", 0], **sampling}},
        "8": {"class_type": "AdaptiveSkipLastPath", "inputs": {"model": ["6", 0], "latent": ["7", 0]}},
        "9": {"class_type": "AdaptiveSkipCompare", "inputs": {
            "reference": ["5", 0], "latent": ["7", 0], "skip_path": ["8", 0], "label": "AdaptiveSkipModel"}},
        "10": {"class_type": "AdaptiveSkipMnistDiTDecode", "inputs": {"samples": ["5", 0], "upscale": 4}},
        "11": {"class_type": "AdaptiveSkipMnistDiTDecode", "inputs": {"samples": ["7", 0], "upscale": 4}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["10", 0],
                                                     "filename_prefix": "adaptive_skip_flow/full"}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["11", 0],
                                                     "filename_prefix": "adaptive_skip_flow/skip"}},
    }
    titles = {"1": "Load Diffusion Model (MNIST DiT, loads as SD3)", "5": "Full 30 steps (reference)",
              "6": "AdaptiveSkip Model Patch", "7": "KSampler on the patched model"}
    positions = {"1": (20, 40), "2": (20, 200), "3": (20, 330), "4": (20, 460), "5": (380, 40), "6": (20, 640),
                 "7": (380, 560), "8": (760, 560), "9": (1120, 560), "10": (760, 40), "11": (1120, 800),
                 "12": (1120, 40), "13": (1480, 800)}
    return prompt, {"positions": positions, "titles": titles}


def main() -> int:
    _, nodes, _ = comfy_env.boot_comfyui()
    prompt, layout = flow()
    ui = workflow_convert.api_to_ui(prompt, nodes.NODE_CLASS_MAPPINGS, **layout)
    out_dir = comfy_env.PACK_ROOT / "workflows"
    (out_dir / NAME).write_text(json.dumps(ui, indent=1) + "\n")
    (out_dir / "api").mkdir(exist_ok=True)
    (out_dir / "api" / NAME).write_text(json.dumps(prompt, indent=1) + "\n")
    print(f"wrote workflows/{NAME} and workflows/api/{NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
