"""SkipPathOracle: search the skip path that keeps the final latent closest to the full-step run for a call budget.

The search is host-free (core/oracle.py greedy, core/skip_path_search.py evolutionary) and so is the batched
replay that evaluates many candidates in one run (core/replay.py); this file runs them through ComfyUI's samplers
with the patch's wrapper life cycle.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import torch

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils

from ..core.config import REUSE_MODES, SkipConfig
from ..core.metrics import latent_mse, latent_psnr
from ..core.oracle import fixed_steps, greedy_skip_path
from ..core.replay import BatchedReplay
from ..core.sampler_steps import calls_per_step, sampler_function_name, unsupported_reason
from ..core.skip_path import SkipPath
from ..core.skip_path_search import evolve_skip_path
from .patch import (SETUP_KEY, WRAPPER_KEY, SkipSetup, attach, bind_outer_sample_args, bind_predict_noise_args,
                    run_with_state)
from .visualize import UI_KEY

logger = logging.getLogger(__name__)

CATEGORY = "sampling/adaptive_skip"
SKIP_PATH = "SKIP_PATH"
ORACLE_KEY = "adaptive_skip_oracle"  # wrapper key and transformer_options entry of the batched evaluation
ORACLE_RUN_KEY = "adaptive_skip_oracle_run"

class _OracleSpec:
    """What the batched-evaluation wrappers need: one mask per candidate and the latent batch size."""

    def __init__(self, masks: list[list[bool]], rows_per_mask: int, reuse: str) -> None:
        self.masks, self.rows_per_mask, self.reuse = masks, rows_per_mask, reuse

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
    name = sampler_function_name(bound["sampler"])
    replay = BatchedReplay(spec.masks, spec.rows_per_mask, sigmas, calls_per_step(name), spec.reuse)

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


def _budget(model_calls: int, match_path: SkipPath | None, steps: int) -> int:
    """The search's budget K: model_calls, or match_path's computed steps when one is connected."""
    if match_path is None:
        return int(model_calls)
    if not isinstance(match_path, SkipPath) or match_path.steps == 0:
        raise ValueError("match_path must be a SKIP_PATH of a finished run")
    if match_path.steps != steps:
        raise ValueError(f"match_path has {match_path.steps} steps but steps is {steps}; "
                         "set steps to match the run whose budget you want")
    return match_path.computed_steps


class _CandidateRuns:
    """Runs candidate compute masks of one search against the full-step reference: all in one batched run (a
    BatchedReplay row per candidate) when the sampler is deterministic, else one replay at a time."""

    def __init__(self, base, run, noise: torch.Tensor, latent: torch.Tensor, reuse: str, scheduler: str,
                 steps: int) -> None:
        self.base, self.run, self.noise, self.latent = base, run, noise, latent
        self.reuse, self.scheduler, self.rows = reuse, scheduler, latent.shape[0]
        self.reference = run(base, noise, latent).float()
        # Batched rows only equal single runs for deterministic samplers: check on two copies of the full path.
        probe = self.batched([[True] * steps, [True] * steps])
        scale = float((self.reference ** 2).mean()) or 1.0
        self.use_batch = all(latent_mse(p, self.reference) <= 1e-8 * scale for p in probe)

    def batched(self, masks: list[list[bool]]) -> list[torch.Tensor]:
        patched = self.base.clone()
        patched.model_options.setdefault("transformer_options", {})[ORACLE_KEY] = _OracleSpec(
            masks, self.rows, self.reuse)
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, ORACLE_KEY, _oracle_outer_sample)
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, ORACLE_KEY,
                                     _oracle_predict_noise)
        n = len(masks)
        out = self.run(patched, self.noise.repeat(n, 1, 1, 1), self.latent.repeat(n, 1, 1, 1)).float()
        return [out[k * self.rows:(k + 1) * self.rows] for k in range(n)]

    def replayed(self, mask: list[bool]) -> tuple[torch.Tensor, SkipPath]:
        """The patch's own replay of one mask: the latent and its record."""
        setup = SkipSetup(config=SkipConfig(forced_path=tuple(mask), reuse=self.reuse), scheduler=self.scheduler)
        return self.run(attach(self.base, setup), self.noise, self.latent), setup.mailbox.last

    def evaluate(self, masks: list[list[bool]]) -> list[float]:
        """MSE of each mask's final latent against the reference (the searches' `evaluate`)."""
        comfy.model_management.throw_exception_if_processing_interrupted()
        outs = self.batched(masks) if self.use_batch else [self.replayed(m)[0].float() for m in masks]
        return [latent_mse(o, self.reference) for o in outs]


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
    SEARCH_ALIASES = ["optimal skip", "oracle", "skip search", "best cache steps"]
    DESCRIPTION = ("Greedy optimal skip path (AdaptiveDiffusion's oracle): starting from all steps, repeatedly skip "
                   "the step whose reuse changes the final latent least, then polish by local swaps.")

    def search(self, model, positive, negative, latent_image, seed, steps, cfg, sampler_name, scheduler,
               model_calls, warmup_steps, reuse, match_path=None, batch_size=16, method="greedy", generations=10,
               population=16):
        if reuse not in REUSE_MODES:
            raise ValueError(f"reuse must be one of {', '.join(REUSE_MODES)}; got {reuse!r}")
        budget = _budget(model_calls, match_path, steps)
        lowest = sum(fixed_steps(steps, warmup_steps))
        if not lowest <= budget <= steps:
            source = "match_path's computed steps" if match_path is not None else "model_calls"
            raise ValueError(f"{source} (the search's budget, {budget}) must be between {lowest} (step 0 and "
                             f"warmup_steps {warmup_steps}) "
                             f"and steps ({steps}); change model_calls, or lower warmup_steps / raise steps")
        function_name = sampler_function_name(comfy.samplers.sampler_object(sampler_name))
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
        candidates = _CandidateRuns(base, run, noise, latent, reuse, scheduler, steps)
        if not candidates.use_batch:
            logger.info("SkipPathOracle: %s draws per-row noise; evaluating candidates one at a time", sampler_name)
        pbar = comfy.utils.ProgressBar(1)
        chunk = max(1, int(batch_size) // candidates.rows) if candidates.use_batch else 1
        progress = lambda done, total: pbar.update_absolute(done, total)  # noqa: E731
        if method == "evolutionary":
            seeds = [match_path.computed] if match_path is not None else []
            result = evolve_skip_path(steps, budget, candidates.evaluate, warmup_steps=warmup_steps,
                                      seed_masks=seeds, population=int(population), parents=min(4, int(population)),
                                      generations=int(generations), seed=int(seed), batch_size=chunk,
                                      progress=progress)
        else:
            result = greedy_skip_path(steps, budget, candidates.evaluate, warmup_steps=warmup_steps,
                                      batch_size=chunk, progress=progress)
        reference, use_batch, replayed = candidates.reference, candidates.use_batch, candidates.replayed
        comfy.model_management.throw_exception_if_processing_interrupted()
        samples, recorded = replayed(result.mask)  # the node's latent is the patch's replay itself
        # the record of the replay, as what the search found: no threshold decided it
        path = dataclasses.replace(recorded, kind="oracle" if method == "greedy" else "searched",
                                   config=dataclasses.replace(recorded.config, threshold=0.0),
                                   warmup=[i < warmup_steps for i in range(steps)],
                                   psnr=latent_psnr(samples, reference))
        path.note = (f"oracle: {result.evaluations} candidate paths ({'batched' if use_batch else 'one by one'}) "
                     f"in {time.perf_counter() - start:.1f} s, MSE {result.error:.3g}")
        logger.info("SkipPathOracle: %d of %d steps computed, PSNR %.2f dB vs full-step run; %s",
                    path.computed_steps, path.steps, path.psnr, path.note)
        out = latent_image.copy()
        out["samples"] = samples
        full = latent_image.copy()
        full["samples"] = reference
        return {"ui": {UI_KEY: [path.to_dict()]}, "result": (path, out, full)}


NODE_CLASS_MAPPINGS = {"SkipPathOracle": SkipPathOracle}
NODE_DISPLAY_NAME_MAPPINGS = {"SkipPathOracle": "Skip Path Oracle (AdaptiveSkip)"}
