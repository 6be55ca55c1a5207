"""Write the shipped workflows (UI format, plus API-format twins in workflows/api/ for the schedule, flow and
visualizer ones) from one source, their API-format definitions here; both files come from that one description
(workflow_convert.workflow_files), and tests/host/test_workflows.py fails when a shipped file differs from what
this script writes (run it after changing a builder or a node's inputs).

    python scripts/make_workflows.py               # write the workflow files (needs ComfyUI)
    python scripts/make_workflows.py --populate    # also run the schedule searches once and ship their results
                                                   # in schedules/, so the search workflows open instantly

The search workflows' EvoTimestepSchedule nodes find their result in the pack's schedules/ folder (same model,
conditioning, latent shape and settings => same cache key), so they run in seconds; change any input and they
search (about a minute per search on a 2-core CPU for these settings).
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
import comfy_env
import pack_loader
import run_workflow
import workflow_convert

sys.path.remove(str(HERE))

MODEL = "adaptive_skip_digits.safetensors"
# The ComfyUI the shipped workflows are written on (the pinned host). The UI files list every node's outputs as the
# host declares them, and stock nodes change there: on 0.33.0 SaveImage and PreviewImage have an IMAGE output and
# PreviewAny a STRING one, none on 0.3.64. The API twins do not depend on it.
WRITTEN_ON = "0.3.64"
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



# --- schedule workflows ---------------------------------------------------------------------------------
SHIPPED = "digits_workflow_dpmpp_2m_5steps.json"  # shipped by --populate (the search workflow's own result)
SEARCH = {"sampler_name": "dpmpp_2m", "steps": 5, "cfg": 3.0, "num_seeds": 8, "budget": 2500, "seed": 0,
          "population": 16, "top_k": 4, "mutation_prob": 0.3, "generations": 25, "reference_steps": 200,
          "reference_sampler": "auto", "validation_seeds": 8, "candidates_per_call": 8, "save_as": ""}


def _common() -> dict:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": MODEL, "weight_dtype": "default"}},
        "2": {"class_type": "AdaptiveSkipDigitsConditioning", "inputs": {"digit": "3"}},
        "3": {"class_type": "AdaptiveSkipDigitsConditioning", "inputs": {"digit": "none"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 8}},
    }


def _custom(sigmas: list, seed: int = 0) -> dict:
    return {"class_type": "SamplerCustom", "inputs": {
        "model": ["1", 0], "add_noise": True, "noise_seed": seed, "cfg": 3.0, "positive": ["2", 0],
        "negative": ["3", 0], "sampler": ["6", 0], "sigmas": sigmas, "latent_image": ["4", 0]}}


def _ksampler(steps: int, scheduler: str) -> dict:
    return {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "seed": 0, "steps": steps, "cfg": 3.0, "sampler_name": "dpmpp_2m", "scheduler": scheduler,
        "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}}


def _decode_save(prompt: dict, first_id: int, latent: list, prefix: str) -> None:
    prompt[str(first_id)] = {"class_type": "AdaptiveSkipDigitsDecode", "inputs": {"samples": latent, "upscale": 8}}
    prompt[str(first_id + 1)] = {"class_type": "SaveImage", "inputs": {
        "images": [str(first_id), 0], "filename_prefix": f"adaptive_skip/{prefix}"}}


def search() -> tuple[dict, dict]:
    """Search a 5-step dpmpp_2m schedule; sample with it and with karras; both against a 200-step reference."""
    prompt = _common()
    prompt["5"] = {"class_type": "EvoTimestepSchedule", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], **SEARCH}}
    prompt["6"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}}
    prompt["7"] = _custom(["5", 0])
    prompt["8"] = _ksampler(5, "karras")
    prompt["9"] = _ksampler(200, "karras")
    prompt["10"] = {"class_type": "AdaptiveSkipCompare", "inputs": {
        "reference": ["9", 0], "latent": ["7", 0], "label": "searched schedule, 5 steps"}}
    prompt["11"] = {"class_type": "AdaptiveSkipCompare", "inputs": {
        "reference": ["9", 0], "latent": ["8", 0], "label": "karras, 5 steps"}}
    _decode_save(prompt, 12, ["7", 0], "evo_searched")
    _decode_save(prompt, 14, ["8", 0], "evo_karras")
    titles = {"5": "Search a 5-step schedule (cached in schedules/)", "7": "Sample with the searched schedule",
              "8": "Same 5 steps with karras", "9": "200-step reference"}
    positions = {"1": (20, 40), "2": (20, 200), "3": (20, 330), "4": (20, 460), "5": (380, 40), "6": (380, 560),
                 "7": (760, 40), "8": (760, 420), "9": (760, 800), "10": (1140, 40), "11": (1140, 260),
                 "12": (1140, 480), "13": (1500, 480), "14": (1140, 760), "15": (1500, 760)}
    return prompt, {"positions": positions, "titles": titles}


def load() -> tuple[dict, dict]:
    """A saved schedule three ways: LoadTimestepSchedule, pasted text, and the evo_ scheduler in the stock KSampler."""
    record = json.loads((comfy_env.PACK_ROOT / "schedules" / SHIPPED).read_text())
    text = ", ".join(f"{v:.8g}" if v else "0" for v in record["sigmas"])
    prompt = _common()
    prompt["5"] = {"class_type": "LoadTimestepSchedule", "inputs": {
        "schedule": SHIPPED, "model": ["1", 0], "steps": 0, "allow_other_model_type": False}}
    prompt["6"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}}
    prompt["7"] = _custom(["5", 0])
    prompt["8"] = {"class_type": "TimestepScheduleFromText", "inputs": {"text": text, "model": ["1", 0]}}
    prompt["9"] = _custom(["8", 0])
    prompt["10"] = _ksampler(record["steps"], "evo_" + SHIPPED[:-len(".json")])
    _decode_save(prompt, 11, ["7", 0], "evo_loaded")
    _decode_save(prompt, 13, ["9", 0], "evo_from_text")
    _decode_save(prompt, 15, ["10", 0], "evo_scheduler")
    titles = {"5": "Load a saved schedule", "8": "Or paste it (travels with the workflow)",
              "10": "Or pick it as a KSampler scheduler"}
    positions = {"1": (20, 40), "2": (20, 200), "3": (20, 330), "4": (20, 460), "5": (380, 40), "6": (380, 260),
                 "7": (760, 40), "8": (380, 420), "9": (760, 420), "10": (760, 800), "11": (1140, 40),
                 "12": (1500, 40), "13": (1140, 420), "14": (1500, 420), "15": (1140, 800), "16": (1500, 800)}
    return prompt, {"positions": positions, "titles": titles}


def with_skip() -> tuple[dict, dict]:
    """A searched 10-step schedule driving AdaptiveSkipKSampler through its sigmas input, in the budget mode at
    speedup 2 (5 model calls) and at speedup 1.43 (7 calls, next to the best built-in schedule at 7 steps)."""
    prompt = _common()
    prompt["5"] = {"class_type": "EvoTimestepSchedule", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
        **dict(SEARCH, steps=10, budget=5000)}}
    prompt["6"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}}
    skip = {"model": ["1", 0], "seed": 0, "steps": 10, "cfg": 3.0, "sampler_name": "dpmpp_2m", "scheduler": "karras",
            "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0, "threshold": 0.01,
            "max_consecutive_skips": 2, "warmup_steps": 3, "criterion": "budget", "reuse": "quadratic",
            "sigmas": ["5", 0], "speedup": 2.0}
    prompt["7"] = {"class_type": "AdaptiveSkipKSampler", "inputs": skip}
    prompt["8"] = _custom(["5", 0])
    prompt["9"] = _ksampler(200, "karras")
    prompt["10"] = {"class_type": "AdaptiveSkipCompare", "inputs": {
        "reference": ["9", 0], "latent": ["7", 0], "skip_path": ["7", 1],
        "label": "searched 10-step schedule + AdaptiveSkip (budget, speedup 2)"}}
    prompt["11"] = {"class_type": "AdaptiveSkipCompare", "inputs": {
        "reference": ["9", 0], "latent": ["8", 0], "label": "searched 10-step schedule, every call"}}
    prompt["12"] = {"class_type": "AdaptiveSkipKSampler", "inputs": dict(skip, speedup=1.43)}  # round(10/1.43) = 7
    prompt["13"] = {"class_type": "AdaptiveSkipCompare", "inputs": {
        "reference": ["9", 0], "latent": ["12", 0], "skip_path": ["12", 1],
        "label": "searched 10-step schedule, 7 model calls"}}
    prompt["14"] = _ksampler(7, "exponential")
    prompt["15"] = {"class_type": "AdaptiveSkipCompare", "inputs": {
        "reference": ["9", 0], "latent": ["14", 0], "label": "exponential, 7 steps (7 calls)"}}
    _decode_save(prompt, 16, ["7", 0], "evo_skip")
    _decode_save(prompt, 18, ["12", 0], "evo_skip_7calls")
    _decode_save(prompt, 20, ["8", 0], "evo_noskip")
    titles = {"5": "Search a 10-step schedule (cached in schedules/)",
              "7": "AdaptiveSkip (budget, speedup 2) on the searched schedule",
              "8": "Searched schedule, no skipping", "9": "200-step reference",
              "12": "Searched schedule, 7 of 10 calls", "14": "Best built-in at 7 steps"}
    positions = {"1": (20, 40), "2": (20, 200), "3": (20, 330), "4": (20, 460), "5": (380, 40), "6": (380, 560),
                 "7": (760, 40), "8": (760, 560), "9": (760, 900), "10": (1140, 40), "11": (1140, 260),
                 "12": (380, 900), "13": (1140, 480), "14": (760, 1240), "15": (1140, 700), "16": (1500, 40),
                 "17": (1860, 40), "18": (1500, 400), "19": (1860, 400), "20": (1500, 760), "21": (1860, 760)}
    return prompt, {"positions": positions, "titles": titles}


VISUALIZER_STEPS = 20  # the oracle's search stays under a minute on a laptop CPU
VISUALIZER_SPEEDUPS = (2.0, 3.0)  # 10 and 7 of 20 model calls
VISUALIZER_SAMPLING = {"seed": 0, "cfg": 3.0, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}


def visualizer() -> tuple[dict, dict]:
    """The skip path drawn inside the node: the budget mode at two speedups, each above the oracle's path at the
    same number of model calls (SkipPathOracle's match_path), with both results' PSNR against the full run."""
    steps = VISUALIZER_STEPS
    common = {"positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "steps": steps}
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": MODEL, "weight_dtype": "default"}},
        "2": {"class_type": "AdaptiveSkipDigitsConditioning", "inputs": {"digit": "3"}},
        "3": {"class_type": "AdaptiveSkipDigitsConditioning", "inputs": {"digit": "none"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
    }
    titles, positions = {}, {"1": (20, 40), "2": (20, 200), "3": (20, 320), "4": (20, 440)}
    for k, speedup in enumerate(VISUALIZER_SPEEDUPS):
        ks, orc, vis, dec, prev = (str(5 + 5 * k + j) for j in range(5))
        y = 40 + 760 * k
        prompt[ks] = {"class_type": "AdaptiveSkipKSampler", "inputs": {
            "model": ["1", 0], **VISUALIZER_SAMPLING, **common, **SKIP_DEFAULTS, "criterion": "budget",
            "reuse": "quadratic", "speedup": speedup}}
        prompt[orc] = {"class_type": "SkipPathOracle", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": VISUALIZER_SAMPLING["seed"], "steps": steps, "cfg": VISUALIZER_SAMPLING["cfg"],
            "sampler_name": VISUALIZER_SAMPLING["sampler_name"], "scheduler": VISUALIZER_SAMPLING["scheduler"],
            "model_calls": steps, "warmup_steps": 1, "reuse": "quadratic", "match_path": [ks, 1]}}
        prompt[vis] = {"class_type": "SkipPathVisualizer", "inputs": {
            "skip_path": [ks, 1], "skip_path_b": [orc, 0], "reference": [orc, 2], "latent": [ks, 0],
            "latent_b": [orc, 1]}}
        prompt[dec] = {"class_type": "AdaptiveSkipDigitsDecode", "inputs": {"samples": [orc, 1], "upscale": 8}}
        prompt[prev] = {"class_type": "PreviewImage", "inputs": {"images": [dec, 0]}}
        calls = round(steps / speedup)
        titles.update({ks: f"AdaptiveSkip KSampler: budget, speedup {speedup:g} ({calls} of {steps} calls)",
                       orc: f"Oracle at {calls} calls", vis: f"Skip path: speedup {speedup:g} (A) vs oracle (B)",
                       dec: "Decode oracle result", prev: "Oracle result"})
        positions.update({ks: (380, y), orc: (380, y + 420), vis: (760, y), dec: (1540, y), prev: (1540, y + 160)})
    sizes = {"SkipPathVisualizer": [740, 620], "AdaptiveSkipKSampler": [340, 400], "SkipPathOracle": [340, 380]}
    return prompt, {"positions": positions, "titles": titles, "sizes": sizes}


FLOW_MODEL = "adaptive_skip_mnist_dit.safetensors"  # the bundled flow DiT (issue 13)
# The model card's default sampling (models/README.md): euler / simple, 30 steps, cfg 3.
FLOW_SAMPLING = {"seed": 0, "steps": 30, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}
FLOW_SKIP = {"threshold": 0.01, "max_consecutive_skips": 4, "warmup_steps": 4, "criterion": "official",
             "reuse": "hold", "stride": 2, "target_calls": 0, "per_sample": False}


def flow() -> tuple[dict, dict]:
    """The basic workflow on the bundled flow DiT (MNIST, loaded as SD3): full-step KSampler next to the same
    KSampler on AdaptiveSkipModel's clone, its skip path and fidelity report, both decoded."""
    sampling = {**FLOW_SAMPLING, "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": FLOW_MODEL, "weight_dtype": "default"}},
        "2": {"class_type": "AdaptiveSkipMnistDiTConditioning", "inputs": {"digit": "3"}},
        "3": {"class_type": "AdaptiveSkipMnistDiTConditioning", "inputs": {"digit": "none"}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 8}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], **sampling}},
        "6": {"class_type": "AdaptiveSkipModel", "inputs": {"model": ["1", 0], **FLOW_SKIP}},
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


WORKFLOWS = {"adaptive_skip_basic.json": basic, "evo_schedule_search.json": search, "evo_schedule_load.json": load,
             "evo_schedule_with_skip.json": with_skip, "adaptive_skip_flow.json": flow,
             "skip_path_visualizer.json": visualizer}
# these also get an API-format twin in workflows/api/ (converted back from the UI file, every widget value spelled
# out, as the page posts them: the browser and schedule tests read them)
API_TWINS = ("evo_schedule_search.json", "evo_schedule_load.json", "evo_schedule_with_skip.json",
             "skip_path_visualizer.json", "adaptive_skip_flow.json")
POPULATE = ("evo_schedule_search.json", "evo_schedule_with_skip.json")  # their searches are shipped in schedules/


def render(name: str, node_classes: dict) -> dict[str, str]:
    """The text of workflow `name`'s files (UI file, API twin) by path under workflows/; writes nothing. The load
    workflow reads the shipped schedule, so that must exist (--populate)."""
    prompt, layout = WORKFLOWS[name]()
    return workflow_convert.workflow_files(name, prompt, node_classes, api_twin=name in API_TWINS, **layout)


def render_all(node_classes: dict) -> dict[str, str]:
    """Every file this script writes, by path under workflows/ (tests/host/test_workflows.py compares them with
    the shipped files)."""
    return {path: text for name in WORKFLOWS for path, text in render(name, node_classes).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--populate", action="store_true", help="run the schedule searches and ship their results")
    args = parser.parse_args(argv)
    _, nodes, _ = comfy_env.boot_comfyui()
    out_dir = comfy_env.PACK_ROOT / "workflows"
    for name in POPULATE:
        workflow_convert.write_files(render(name, nodes.NODE_CLASS_MAPPINGS), out_dir)
    if args.populate:
        import folder_paths
        sched = pack_loader.pack_module("nodes.schedule")
        holder = Path(tempfile.mkdtemp(prefix="evo_populate_"))
        folder_paths.folder_names_and_paths[sched.FOLDER] = ([str(holder), sched.SHIPPED_DIR], {".json"})
        for name in POPULATE:
            result = run_workflow.run(out_dir / name, holder / "out")
            print(name, f"{result['seconds']:.0f} s", *result["texts"], sep="\n  ")
        for path in sorted(holder.glob("*.json")):
            record = json.loads(path.read_text())
            target = Path(sched.SHIPPED_DIR) / f"digits_workflow_{record['sampler']}_{record['steps']}steps.json"
            shutil.copyfile(path, target)
            print(f"shipped schedules/{target.name}")
        shutil.rmtree(holder)
    if not (comfy_env.PACK_ROOT / "schedules" / SHIPPED).is_file():
        raise SystemExit(f"schedules/{SHIPPED} is missing: run with --populate first")
    for name in WORKFLOWS:
        if name not in POPULATE:
            workflow_convert.write_files(render(name, nodes.NODE_CLASS_MAPPINGS), out_dir)  # load reads SHIPPED
    return 0


if __name__ == "__main__":
    sys.exit(main())
