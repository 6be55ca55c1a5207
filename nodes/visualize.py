"""SkipPathVisualizer and SkipPathOracle: draw skip paths, and search the best skip path for a call budget.

The drawing and the search live in the host-free core (core/draw.py, core/oracle.py); this file converts to
ComfyUI types, runs the candidate paths through ComfyUI's samplers, and publishes the picture to the page.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import time

import numpy as np
import torch

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils

from ..core.config import REUSE_MODES, SkipConfig
from ..core.draw import draw_skip_path
from ..core.metrics import frames_as_images, latent_mse, psnr
from ..core.skip_path_search import evolve_skip_path
from ..core.oracle import BatchedReplay, greedy_skip_path
from ..core.skip_path import SkipPath
from ..core.reuse import ORDERS
from ..core.sampler_steps import calls_per_step, unsupported_reason
from .patch import (SETUP_KEY, WRAPPER_KEY, SkipSetup, attach, bind_outer_sample_args, bind_predict_noise_args,
                    run_with_state)

logger = logging.getLogger(__name__)

CATEGORY = "sampling/adaptive_skip"
SKIP_PATH = "SKIP_PATH"
UI_KEY = "adaptive_skip_path"  # node UI output read by js/adaptive_skip_path.js
ORACLE_KEY = "adaptive_skip_oracle"  # wrapper key and transformer_options entry of the batched evaluation
ORACLE_RUN_KEY = "adaptive_skip_oracle_run"


def ui_path_dict(path: SkipPath) -> dict:
    """path.to_dict() safe for the page's JSON.parse (no Infinity/NaN)."""
    data = path.to_dict()
    if data.get("psnr") is not None and not math.isfinite(data["psnr"]):
        data["psnr"] = None
        data["identical"] = True
    return data


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


def latent_psnr(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean PSNR in dB over the batch (a video's frames one by one) against the full-step latent (peak = the
    reference's range)."""
    if samples.shape != reference.shape:
        raise ValueError(f"latent shape {tuple(samples.shape)} differs from the full-step reference "
                         f"{tuple(reference.shape)}; connect the reference of the same run")
    values = psnr(frames_as_images(samples.float().cpu()), frames_as_images(reference.float().cpu()))
    return float(values.mean()) if bool(torch.isfinite(values).all()) else math.inf


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
        ui = {"images": [save_temp_preview(image)], UI_KEY: [ui_path_dict(p) for p in paths]}
        return {"ui": ui, "result": (image_to_tensor(image),)}


# --------------------------------------------------------------------------------------------------- oracle
class _OracleSpec:
    """What the batched-evaluation wrappers need: one mask per candidate and the latent batch size."""

    def __init__(self, masks: list[list[bool]], rows_per_mask: int, order: int) -> None:
        self.masks, self.rows_per_mask, self.order = masks, rows_per_mask, order

    def __deepcopy__(self, memo):
        return self  # read-only during a run; ModelPatcher.clone deep-copies model_options


def _oracle_outer_sample(executor, *args, **kwargs):
    """A BatchedReplay per sampling run, in a copy of the guider's model_options (the patch's life cycle)."""
    guider = executor.class_obj
    spec = guider.model_options.get("transformer_options", {}).get(ORACLE_KEY)
    if spec is None:
        return executor(*args, **kwargs)
    bound = bind_outer_sample_args(args, kwargs)
    sigmas = [float(s) for s in bound["sigmas"].flatten().tolist()]
    name = getattr(getattr(bound["sampler"], "sampler_function", None), "__name__", "")
    replay = BatchedReplay(spec.masks, spec.rows_per_mask, sigmas, calls_per_step(name), spec.order)

    def check_step(i):
        if i != replay.step:
            raise RuntimeError(f"oracle step attribution drifted (sampler reported step {i}, expected "
                               f"{replay.step}); this sampler cannot be evaluated batched")

    return run_with_state(executor, bound, ORACLE_RUN_KEY, replay, check_step)


def _oracle_predict_noise(executor, *args, **kwargs):
    """Every row follows its own mask; rows still identical are computed once."""
    bound = bind_predict_noise_args(args, kwargs)
    x, sigma, model_options, seed = bound["x"], bound["timestep"], bound["model_options"], bound["seed"]
    replay = model_options.get("transformer_options", {}).get(ORACLE_RUN_KEY)
    if replay is None:
        return executor(*args, **kwargs)

    def compute(rows: list[int]) -> torch.Tensor:
        if len(rows) == x.shape[0]:
            return executor(x, sigma, model_options, seed)
        index = torch.tensor(rows, device=x.device)
        return executor(x[index], sigma[index], model_options, seed)

    return replay(x, float(sigma.flatten()[0]), compute)


def _unpatched(model):
    """A clone without AdaptiveSkip's own wrappers, so a patched model passed in samples every step."""
    base = model.clone()
    base.model_options.get("transformer_options", {}).pop(SETUP_KEY, None)
    for kind in (comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, comfy.patcher_extension.WrappersMP.PREDICT_NOISE):
        base.remove_wrappers_with_key(kind, WRAPPER_KEY)
        base.remove_wrappers_with_key(kind, ORACLE_KEY)
    return base


class SkipPathOracle:
    """Search the skip path that keeps the final latent closest to the full-step run for a call budget."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to sample with (an AdaptiveSkip-patched model is used "
                                               "unpatched)."}),
                "positive": ("CONDITIONING", {"tooltip": "Conditioning to include."}),
                "negative": ("CONDITIONING", {"tooltip": "Conditioning to exclude."}),
                "latent_image": ("LATENT", {"tooltip": "The latent to denoise (denoise 1.0)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff,
                                 "tooltip": "Seed of the initial noise; the path is searched for this seed."}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 1000,
                                  "tooltip": "Sampler steps N. The search runs about N²/2 candidate paths "
                                             "(batched), so keep N modest on a CPU."}),
                "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "Classifier-free guidance scale."}),
                "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {
                    "tooltip": "Sampler; deterministic ones (euler, dpmpp_2m, ...) are searched batched, "
                               "ancestral/SDE ones one candidate at a time."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"tooltip": "Sigma schedule."}),
                "model_calls": ("INT", {"default": 25, "min": 1, "max": 1000,
                                        "tooltip": "Budget K: steps that call the model (warm-up and step 0 "
                                                   "included; equals model calls for one-call-per-step samplers "
                                                   "such as euler). K = steps returns the full-step path."}),
                "warmup_steps": ("INT", {"default": 4, "min": 0, "max": 1000,
                                         "tooltip": "The first steps are always computed (step 0 always is). "
                                                    "0 lets the search skip from step 1 on."}),
                "reuse": (list(REUSE_MODES), {"default": "hold",
                                              "tooltip": "What a skipped step uses; replay the path with the same "
                                                         "reuse. hold: last prediction (the paper)."}),
            },
            "optional": {
                "match_path": (SKIP_PATH, {"tooltip": "When connected, the budget is this path's computed steps "
                                                      "(e.g. an AdaptiveSkip KSampler run), overriding model_calls."}),
                "batch_size": ("INT", {"default": 16, "min": 1, "max": 256,
                                       "tooltip": "Candidate paths sampled together in one batch; lower it if "
                                                  "memory is short. 1 runs one candidate at a time."}),
                # appended after batch_size: widget order of saved workflows must not shift
                "method": (["greedy", "evolutionary"], {
                    "default": "greedy",
                    "tooltip": "greedy: the paper's oracle (about N²/2 candidate runs). evolutionary: AutoDiffusion-"
                               "style search over K-call paths (population × generations runs), seeded with "
                               "evenly spaced paths and with match_path, so never worse than those."}),
                "generations": ("INT", {"default": 10, "min": 1, "max": 500,
                                        "tooltip": "evolutionary: generations of the search."}),
                "population": ("INT", {"default": 16, "min": 2, "max": 256,
                                       "tooltip": "evolutionary: candidate paths per generation (top 4 kept)."}),
            },
        }

    RETURN_TYPES = (SKIP_PATH, "LATENT", "LATENT")
    RETURN_NAMES = ("skip_path", "LATENT", "full_step_latent")
    OUTPUT_TOOLTIPS = ("The best path found, PSNR vs the full-step run filled in; replay it with AdaptiveSkip "
                       "Model Patch's forced_path.",
                       "The latent sampled along that path (what the replay reproduces).",
                       "The full-step result the search compared against.")
    FUNCTION = "search"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Greedy optimal skip path (AdaptiveDiffusion's oracle): starting from all steps, repeatedly skip "
                   "the step whose reuse changes the final latent least, then polish by local swaps.")

    def search(self, model, positive, negative, latent_image, seed, steps, cfg, sampler_name, scheduler,
               model_calls, warmup_steps, reuse, match_path=None, batch_size=16, method="greedy", generations=10,
               population=16):
        if reuse not in REUSE_MODES:
            raise ValueError(f"reuse must be one of {', '.join(REUSE_MODES)}; got {reuse!r}")
        budget = int(model_calls)
        if match_path is not None:
            if not isinstance(match_path, SkipPath) or match_path.steps == 0:
                raise ValueError("match_path must be a SKIP_PATH of a finished run")
            if match_path.steps != steps:
                raise ValueError(f"match_path has {match_path.steps} steps but steps is {steps}; "
                                 "set steps to match the run whose budget you want")
            budget = match_path.computed_steps
        sampler = comfy.samplers.sampler_object(sampler_name)
        function_name = getattr(getattr(sampler, "sampler_function", None), "__name__", sampler_name)
        if calls_per_step(function_name) is None:
            raise ValueError(f"sampler_name {sampler_name} cannot be searched: {unsupported_reason(function_name)}; "
                             "pick another sampler")
        base = _unpatched(model)
        latent = comfy.sample.fix_empty_latent_channels(base, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        noise_mask = latent_image.get("noise_mask")

        def run(patched, noise_in, latent_in):
            return comfy.sample.sample(patched, noise_in, steps, cfg, sampler_name, scheduler, positive, negative,
                                       latent_in, denoise=1.0, noise_mask=noise_mask, disable_pbar=True, seed=seed)

        start = time.perf_counter()
        reference = run(base, noise, latent).float()
        rows = latent.shape[0]

        def batched(masks):
            patched = base.clone()
            patched.model_options.setdefault("transformer_options", {})[ORACLE_KEY] = _OracleSpec(
                masks, rows, ORDERS[reuse])
            patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, ORACLE_KEY,
                                         _oracle_outer_sample)
            patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, ORACLE_KEY,
                                         _oracle_predict_noise)
            out = run(patched, noise.repeat(len(masks), 1, 1, 1), latent.repeat(len(masks), 1, 1, 1)).float()
            return [out[k * rows:(k + 1) * rows] for k in range(len(masks))]

        def replayed(mask):
            setup = SkipSetup(config=SkipConfig(forced_path=tuple(mask), reuse=reuse), scheduler=scheduler)
            return run(attach(base, setup), noise, latent), setup.mailbox.last

        # Batched rows only equal single runs for deterministic samplers: check on two copies of the full path.
        probe = batched([[True] * steps, [True] * steps])
        scale = float((reference ** 2).mean()) or 1.0
        use_batch = all(latent_mse(p, reference) <= 1e-8 * scale for p in probe)
        if not use_batch:
            logger.info("SkipPathOracle: %s draws per-row noise; evaluating candidates one at a time", sampler_name)
        pbar = comfy.utils.ProgressBar(1)

        def evaluate(masks):
            comfy.model_management.throw_exception_if_processing_interrupted()
            outs = batched(masks) if use_batch else [replayed(m)[0].float() for m in masks]
            return [latent_mse(o, reference) for o in outs]

        chunk = max(1, int(batch_size) // rows) if use_batch else 1
        progress = lambda done, total: pbar.update_absolute(done, total)  # noqa: E731
        if method == "evolutionary":
            seeds = [match_path.computed] if match_path is not None else []
            result = evolve_skip_path(steps, budget, evaluate, warmup_steps=warmup_steps, seed_masks=seeds,
                                      population=int(population), parents=min(4, int(population)),
                                      generations=int(generations), seed=int(seed), batch_size=chunk,
                                      progress=progress)
        else:
            result = greedy_skip_path(steps, budget, evaluate, warmup_steps=warmup_steps, batch_size=chunk,
                                      progress=progress)
        comfy.model_management.throw_exception_if_processing_interrupted()
        samples, recorded = replayed(result.mask)  # the node's latent is the patch's replay itself
        path = copy.copy(recorded)
        path.criterion = "oracle" if method == "greedy" else "searched"
        path.warmup = [i < warmup_steps for i in range(steps)]
        path.threshold = 0.0
        path.psnr = latent_psnr(samples, reference)
        path.note = (f"oracle: {result.evaluations} candidate paths ({'batched' if use_batch else 'one by one'}) "
                     f"in {time.perf_counter() - start:.1f} s, MSE {result.error:.3g}")
        logger.info("SkipPathOracle: %d of %d steps computed, PSNR %.2f dB vs full-step run; %s",
                    path.computed_steps, path.steps, path.psnr, path.note)
        out = latent_image.copy()
        out["samples"] = samples
        full = latent_image.copy()
        full["samples"] = reference
        return {"ui": {UI_KEY: [ui_path_dict(path)]}, "result": (path, out, full)}


NODE_CLASS_MAPPINGS = {
    "SkipPathVisualizer": SkipPathVisualizer,
    "SkipPathOracle": SkipPathOracle,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SkipPathVisualizer": "Skip Path Visualizer (AdaptiveSkip)",
    "SkipPathOracle": "Skip Path Oracle (AdaptiveSkip)",
}
