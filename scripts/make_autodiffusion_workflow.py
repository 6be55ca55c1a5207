"""Write workflows/autodiffusion_two_stage.json (+ the API twin): AutoDiffusion's two-stage search on the bundled
MNIST flow DiT -- time steps first (EvoTimestepSchedule), then the per-step block plan on them
(EvoArchitectureSearch) -- sampled next to the searched schedule with every block and a high-accuracy reference.
The one combined record is stage 2's: the plan with the stage-1 SIGMAS and the sampler in it, and what the search
measured, saved as models/adaptive_skip_block_plans/mnist_dit_two_stage.json (LoadBlockPlan returns plan, SIGMAS
and SAMPLER; the same inputs again are served from it without searching).

    python scripts/make_autodiffusion_workflow.py              # needs ComfyUI and the MNIST DiT's nodes
    python scripts/make_autodiffusion_workflow.py --populate   # also run the schedule search once and ship its
                                                               # record in schedules/ (the workflow then opens fast)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_env  # noqa: E402
import run_workflow  # noqa: E402
import workflow_convert  # noqa: E402

sys.path.remove(str(HERE))

NAME = "autodiffusion_two_stage.json"
MODEL = "adaptive_skip_mnist_dit.safetensors"
SAMPLER = "euler"
STEPS = 8
STAGE1 = {"sampler_name": SAMPLER, "steps": STEPS, "cfg": 3.0, "num_seeds": 8, "budget": 2500, "seed": 0,
          "population": 16, "top_k": 4, "mutation_prob": 0.3, "generations": 25, "reference_steps": 200,
          "reference_sampler": "auto", "validation_seeds": 8, "candidates_per_call": 8, "save_as": ""}
# small budgets so the workflow runs headless in about a minute (stage 1 is served from the shipped record);
# skipped blocks reuse their last residual: on the MNIST DiT far closer to every block than passing the input on
STAGE2 = {"sampler_name": SAMPLER, "cfg": 3.0, "cost_target": 0.75, "num_seeds": 4, "population": 8,
          "generations": 3, "seed": 0, "fitness": "latent_mse", "save_name": "mnist_dit_two_stage",
          "candidates_per_call": 8, "skipped": "reuse"}


def two_stage() -> tuple[dict, dict]:
    sample = {"add_noise": True, "noise_seed": 0, "cfg": 3.0, "positive": ["2", 0], "negative": ["3", 0],
              "sampler": ["7", 0], "sigmas": ["5", 0], "latent_image": ["4", 0]}
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": MODEL, "weight_dtype": "default"}},
        "2": {"class_type": "AdaptiveSkipMnistDiTConditioning", "inputs": {"digit": "3"}},
        "3": {"class_type": "AdaptiveSkipMnistDiTConditioning", "inputs": {"digit": "none"}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 8}},
        "5": {"class_type": "EvoTimestepSchedule", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], **STAGE1}},
        "6": {"class_type": "EvoArchitectureSearch", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "sigmas": ["5", 0], **STAGE2}},
        "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": SAMPLER}},
        "8": {"class_type": "SamplerCustom", "inputs": {"model": ["6", 0], **sample}},
        "9": {"class_type": "SamplerCustom", "inputs": {"model": ["1", 0], **sample}},
        "10": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 0, "steps": 200, "cfg": 3.0, "sampler_name": SAMPLER, "scheduler": "simple",
            "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}},
        "11": {"class_type": "AdaptiveSkipCompare", "inputs": {
            "reference": ["10", 0], "latent": ["8", 0], "label": "two-stage: searched schedule + block plan"}},
        "12": {"class_type": "AdaptiveSkipCompare", "inputs": {
            "reference": ["10", 0], "latent": ["9", 0], "label": "searched schedule, every block"}},
        "13": {"class_type": "PreviewAny", "inputs": {"source": ["6", 2]}},
        "14": {"class_type": "AdaptiveSkipMnistDiTDecode", "inputs": {"samples": ["8", 0], "upscale": 4}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0],
                                                     "filename_prefix": "adaptive_skip/two_stage"}},
        "16": {"class_type": "AdaptiveSkipMnistDiTDecode", "inputs": {"samples": ["9", 0], "upscale": 4}},
        "17": {"class_type": "SaveImage", "inputs": {"images": ["16", 0],
                                                     "filename_prefix": "adaptive_skip/timesteps_only"}},
    }
    titles = {"5": "Stage 1: search the time steps (cached in schedules/)",
              "6": "Stage 2: search which blocks run at each step", "8": "Sample: two-stage result",
              "9": "Sample: searched schedule, every block", "10": "200-step reference",
              "13": "Stage 2's report; its record (plan + SIGMAS + sampler + search) is saved in "
                    "models/adaptive_skip_block_plans: LoadBlockPlan gives all three back"}
    positions = {"1": (20, 40), "2": (20, 200), "3": (20, 330), "4": (20, 460), "5": (380, 40), "6": (760, 40),
                 "7": (380, 620), "8": (1140, 40), "9": (1140, 420), "10": (1140, 800), "11": (1520, 40),
                 "12": (1520, 300), "13": (760, 620), "14": (1520, 560), "15": (1880, 560), "16": (1520, 860),
                 "17": (1880, 860)}
    return prompt, {"positions": positions, "titles": titles}


WORKFLOWS = {NAME: two_stage}


def render_all(node_classes: dict) -> dict[str, str]:
    """The text of the files this script writes (UI file and API twin), by path under workflows/; writes nothing
    (tests/host/test_architecture_workflow.py compares them with the shipped files)."""
    prompt, layout = two_stage()
    return workflow_convert.workflow_files(NAME, prompt, node_classes, **layout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--populate", action="store_true", help="run the stage-1 search and ship its record")
    args = parser.parse_args(argv)
    _, nodes, pack = comfy_env.boot_comfyui()
    out_dir = comfy_env.PACK_ROOT / "workflows"
    workflow_convert.write_files(render_all(nodes.NODE_CLASS_MAPPINGS), out_dir)
    if args.populate:
        import importlib

        import folder_paths
        sched = importlib.import_module(pack.__name__ + ".nodes.schedule")
        holder = Path(tempfile.mkdtemp(prefix="evo_populate_"))
        folder_paths.folder_names_and_paths[sched.FOLDER] = ([str(holder), sched.SHIPPED_DIR], {".json"})
        result = run_workflow.run(out_dir / NAME, holder / "out")
        print(NAME, f"{result['seconds']:.0f} s", *result["texts"], sep="\n  ")
        for path in sorted(holder.glob("*.json")):
            record = json.loads(path.read_text())
            # DiT records live in schedules/mnist_dit/: top-level shipped records must load on the digits model
            name = f"mnist_dit_workflow_{record['sampler']}_{record['steps']}steps.json"
            target = Path(sched.SHIPPED_DIR) / "mnist_dit" / name
            shutil.copyfile(path, target)
            print(f"shipped schedules/mnist_dit/{target.name}")
        shutil.rmtree(holder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
