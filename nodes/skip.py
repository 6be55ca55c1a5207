"""AdaptiveSkipModel, AdaptiveSkipKSampler and AdaptiveSkipLastPath: the skip nodes (classic node API)."""
from __future__ import annotations

import logging

import comfy.sample
import comfy.samplers
import comfy.utils

from ..core import criteria, reuse_modes
from ..core.config import CRITERIA, REUSE_MODES, SkipConfig
from ..core.metrics import latent_psnr
from ..core.skip_path import SkipPath
from ..core.sigmas import resample_log_steps, validate_sigmas
from .patch import SETUP_KEY, SkipSetup, attach

logger = logging.getLogger(__name__)

CATEGORY = "sampling/adaptive_skip"
SKIP_PATH = "SKIP_PATH"

SKIP_INPUTS = {
    "threshold": ("FLOAT", {
        "default": 0.01, "min": 0.0, "max": 10.0, "step": 0.001, "round": False,
        "tooltip": "δ: skip a model call when the trajectory's third-order change is at most δ times its step size "
                   "(official/strict/paper), or when held and extrapolated predictions differ by at most δ (error). "
                   "Larger skips more. 0 turns skipping off. Paper default 0.01; try 0.005-0.05.",
    }),
    "max_consecutive_skips": ("INT", {
        "default": 4, "min": 1, "max": 1000,
        "tooltip": "C_max: after this many reused steps in a row the next step always calls the model. "
                   "The official rule only enforces it from step 9 on (as the released code does); 'strict' always.",
    }),
    "warmup_steps": ("INT", {
        "default": 4, "min": 0, "max": 10000,
        "tooltip": "The first steps always call the model (the official rule needs at least 4 to judge). The "
                   "budget criterion does not read it: its calls sit at regular gaps from the first step.",
    }),
    "criterion": (list(CRITERIA), {
        "default": "budget",  # new nodes; saved workflows store their value and keep it
        "tooltip": criteria.tooltip(),  # one sentence per registered criterion (core/criteria/)
    }),
}

OPTIONAL_SKIP_INPUTS = {
    "reuse": (list(REUSE_MODES), {
        "default": "hold",
        "tooltip": reuse_modes.tooltip(),  # one sentence per registered mode (core/reuse_modes/)
    }),
    "stride": ("INT", {
        "default": 2, "min": 1, "max": 100,
        "tooltip": "For criterion 'stride': call the model every stride-th step after warm-up. 1 turns skipping off.",
    }),
    "target_calls": ("INT", {
        "default": 0, "min": 0, "max": 10000,
        "tooltip": "For criterion 'calls': the number of model-call steps to spend, spread with regular gaps "
                   "(warm-up included). 0 computes every step.",
    }),
    "per_sample": ("BOOLEAN", {
        "default": False,
        "tooltip": "Off (the paper): one decision for the whole batch from its mean statistics. On: every image "
                   "decides on its own latents and gets exactly the result it would get sampled alone; the model "
                   "is called when any image needs it.",
    }),
    "forced_path": (SKIP_PATH, {
        "tooltip": "Replay a recorded SKIP_PATH (e.g. from SkipPathOracle) instead of deciding; the run must have "
                   "the same number of steps.",
    }),
}


# Appended after the older optional inputs (also after the KSampler's sigmas and compare): a saved workflow or
# API prompt without it takes the Python default, and reads it only under criterion "budget".
SPEEDUP_INPUT = {
    "speedup": ("FLOAT", {
        "default": 2.0, "min": 1.0, "max": 20.0, "step": 0.05, "round": 0.01,
        "tooltip": "For criterion 'budget': spend steps / speedup model calls (warm-up included; heun counts "
                   "calls), e.g. 2 at 50 steps spends 25. 1.0 turns skipping off. Other criteria ignore it.",
    }),
}

# Last in both nodes' optional inputs, after speedup (saved workflows store widget values by position).
WINDOW_INPUTS = {
    "start_percent": ("FLOAT", {
        "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
        "tooltip": "Skipping may start this far into the schedule (ComfyUI's percent convention: 0 = the first, "
                   "noisiest step). Steps before it always call the model. 0 allows skipping from the start; "
                   "EasyCache uses 0.15.",
    }),
    "end_percent": ("FLOAT", {
        "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
        "tooltip": "Skipping stops this far into the schedule; later steps always call the model (the fine detail "
                   "is made there). 1 allows skipping to the end; EasyCache uses 0.95.",
    }),
}


def window_sigmas(model, start_percent: float, end_percent: float) -> tuple[float, float]:
    """(highest, lowest) sigma a skipped step may have, by the model's own percent_to_sigma (as ComfyUI's nodes
    with start/end percent do)."""
    model_sampling = model.get_model_object("model_sampling")
    return float(model_sampling.percent_to_sigma(start_percent)), float(model_sampling.percent_to_sigma(end_percent))


def build_config(threshold, max_consecutive_skips, warmup_steps, criterion, reuse="hold", stride=2,
                 target_calls=0, forced_path: SkipPath | None = None, per_sample=False, model=None,
                 start_percent=0.0, end_percent=1.0, speedup=2.0) -> SkipConfig:
    """SkipConfig from node inputs; ValueError names the input and the allowed values."""
    path = None
    if forced_path is not None:
        if not isinstance(forced_path, SkipPath):
            raise ValueError("forced_path must be a SKIP_PATH from an AdaptiveSkip node")
        path = tuple(forced_path.computed)
    window = {}
    if (start_percent, end_percent) != (0.0, 1.0):
        SkipConfig(start_percent=start_percent, end_percent=end_percent)  # the percents' own errors first
        window = dict(start_percent=float(start_percent), end_percent=float(end_percent),
                      window_sigmas=window_sigmas(model, start_percent, end_percent))
    return SkipConfig(threshold=threshold, max_consecutive_skips=max_consecutive_skips, warmup_steps=warmup_steps,
                      criterion=criterion, reuse=reuse, stride=stride, target_calls=target_calls, forced_path=path,
                      per_sample=bool(per_sample), speedup=speedup, **window)


class AdaptiveSkipModel:
    """MODEL -> MODEL: a patched clone that skips noise-prediction calls under any sampler node."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "The model to patch; it is cloned, never modified."}),
                             **SKIP_INPUTS},
                "optional": {**OPTIONAL_SKIP_INPUTS, **SPEEDUP_INPUT, **WINDOW_INPUTS}}

    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A clone of the model that reuses or extrapolates predictions on skipped steps. Use it with "
                       "KSampler, KSamplerAdvanced, SamplerCustom or SamplerCustomAdvanced.",)
    FUNCTION = "patch"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["cache", "teacache", "easycache", "speed", "faster", "accelerate", "step skipping",
                      "skip steps", "adaptive diffusion", "adaptivediffusion"]
    DESCRIPTION = ("AdaptiveDiffusion (NeurIPS 2024): skip the model call on steps where the latent trajectory is "
                   "smooth, reusing the last prediction. Logs 'AdaptiveSkip: N of M model calls' after each run.")

    def patch(self, model, threshold, max_consecutive_skips, warmup_steps, criterion, reuse="hold", stride=2,
              target_calls=0, per_sample=False, forced_path=None, speedup=2.0, start_percent=0.0,
              end_percent=1.0):
        config = build_config(threshold, max_consecutive_skips, warmup_steps, criterion, reuse, stride,
                              target_calls, forced_path, per_sample, model, start_percent, end_percent,
                              speedup)
        return (attach(model, SkipSetup(config=config)),)


class AdaptiveSkipKSampler:
    """KSampler with AdaptiveSkip built in; also returns the run's SKIP_PATH."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model used for denoising; cloned, never modified."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                                 "tooltip": "Seed of the initial noise."}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 10000,
                                  "tooltip": "Sampler steps. Skipping saves model calls, not steps."}),
                "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "Classifier-free guidance scale; 1 runs without the negative pass."}),
                "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {"tooltip": "Any ComfyUI sampler."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"tooltip": "Sigma schedule."}),
                "positive": ("CONDITIONING", {"tooltip": "Conditioning to include."}),
                "negative": ("CONDITIONING", {"tooltip": "Conditioning to exclude."}),
                "latent_image": ("LATENT", {"tooltip": "The latent to denoise."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "Fraction of the schedule to run (img2img below 1)."}),
                **SKIP_INPUTS,
            },
            "optional": {
                **OPTIONAL_SKIP_INPUTS,
                "sigmas": ("SIGMAS", {"tooltip": "A custom schedule (e.g. from EvoTimestepSchedule); replaces steps, "
                                                 "scheduler and denoise when connected."}),
                "compare": ("BOOLEAN", {"default": False,
                                        "tooltip": "Also run the full-step sampler and plain sampling with as many "
                                                   "steps as model calls made, and report the PSNR of both (costs "
                                                   "two extra runs). Off: report calls only."}),
                **SPEEDUP_INPUT,
                **WINDOW_INPUTS,
            },
        }

    RETURN_TYPES = ("LATENT", SKIP_PATH, "STRING")
    RETURN_NAMES = ("LATENT", "skip_path", "report")
    OUTPUT_TOOLTIPS = ("The denoised latent.", "Which steps called the model, with estimator values and call counts.",
                       "Model calls and speedup; with compare on, PSNR against the full-step run and against "
                       "plain sampling with as many steps as calls made.")
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["cache", "teacache", "speed", "faster sampling", "ksampler skip", "adaptive diffusion"]
    DESCRIPTION = "KSampler that skips model calls where the trajectory is smooth (AdaptiveDiffusion, NeurIPS 2024)."

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise,
               threshold, max_consecutive_skips, warmup_steps, criterion, reuse="hold", stride=2, target_calls=0,
               per_sample=False, forced_path=None, sigmas=None, compare=False, speedup=2.0,
               start_percent=0.0, end_percent=1.0):
        import latent_preview  # ComfyUI's top-level module; imported here so the pack loads without it

        config = build_config(threshold, max_consecutive_skips, warmup_steps, criterion, reuse, stride,
                              target_calls, forced_path, per_sample, model, start_percent, end_percent,
                              speedup)
        if sigmas is None and warmup_steps > steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) is larger than steps ({steps}): nothing could be "
                             "skipped; lower warmup_steps or raise steps")
        if sigmas is not None:
            model_sampling = model.get_model_object("model_sampling")
            sigmas = validate_sigmas(sigmas, float(model_sampling.sigma_min), float(model_sampling.sigma_max))
            scheduler = "custom sigmas"
        setup = SkipSetup(config=config, scheduler=scheduler)
        patched = attach(model, setup)
        latent = comfy.sample.fix_empty_latent_channels(patched, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        n_steps = steps if sigmas is None else len(sigmas) - 1

        def run(m, n, preview=True):
            callback = latent_preview.prepare_callback(m, n) if preview else None
            common = dict(noise_mask=latent_image.get("noise_mask"), callback=callback,
                          disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
            if sigmas is None:
                return comfy.sample.sample(m, noise, n, cfg, sampler_name, scheduler, positive, negative, latent,
                                           denoise=denoise, **common)
            run_sigmas = sigmas if n == n_steps else resample_log_steps(sigmas, n)
            return comfy.sample.sample_custom(m, noise, cfg, comfy.samplers.sampler_object(sampler_name),
                                              run_sigmas, positive, negative, latent, **common)

        out = latent_image.copy()
        out["samples"] = run(patched, n_steps)
        path = setup.mailbox.last
        if path is None:  # the sampler returned without sampling (e.g. an empty schedule)
            path = SkipPath(sigmas=[], note="no sampling run happened")
        report = path.summary()
        if compare and path.steps:
            report = self._compare(run, model, n_steps, out["samples"], path)
        return {"ui": {"adaptive_skip_path": [path.to_dict()], "text": [report]}, "result": (out, path, report)}

    @staticmethod
    def _compare(run, model, n_steps, samples, path: SkipPath) -> str:
        """The honest comparison: the full-step run, and plain sampling with as many steps as the skip run made
        model-call steps (same sampler, schedule and seed). Costs two extra runs, so only on request."""
        full = run(model, n_steps, preview=False)
        fewer_steps = max(path.computed_steps, 1)
        fewer = run(model, fewer_steps, preview=False)
        skip_db = latent_psnr(samples, full)
        fewer_db = latent_psnr(fewer, full)
        path.psnr = skip_db
        verdict = "ahead of" if skip_db > fewer_db else "behind"
        subject = "the budget run" if path.kind == "budget" else "skipping"
        report = (f"{path.summary()}. PSNR vs the {n_steps}-step run: {skip_db:.2f} dB; {fewer_steps} plain steps "
                  f"(same calls): {fewer_db:.2f} dB, so {subject} is {verdict} fewer steps here")
        logger.info(report)
        return report


class AdaptiveSkipLastPath:
    """The SKIP_PATH of the latest run of a model patched by AdaptiveSkipModel."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The MODEL output of AdaptiveSkipModel."}),
            "latent": ("LATENT", {"tooltip": "The sampler's output, so this node runs after the sampler."}),
        }}

    RETURN_TYPES = (SKIP_PATH, "STRING")
    RETURN_NAMES = ("skip_path", "summary")
    OUTPUT_TOOLTIPS = ("The latest run's SKIP_PATH.", "Its one-line summary.")
    FUNCTION = "read"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["skip path", "cache report", "model calls"]
    DESCRIPTION = ("The SKIP_PATH of the latest run of a model patched by AdaptiveSkip Model Patch (which steps "
                   "called the model), for the visualizer, SaveSkipPath or forced_path. Connect the sampler's LATENT "
                   "so it runs after the sampler.")

    def read(self, model, latent):
        setup = model.model_options.get("transformer_options", {}).get(SETUP_KEY)
        if not isinstance(setup, SkipSetup):
            raise ValueError("model is not patched by AdaptiveSkip: connect the MODEL output of AdaptiveSkipModel")
        path = setup.mailbox.last
        if path is None:
            raise ValueError("this patched model has not sampled yet: connect the sampler's LATENT output to 'latent'")
        return {"ui": {"adaptive_skip_path": [path.to_dict()]}, "result": (path, path.summary())}


NODE_CLASS_MAPPINGS = {
    "AdaptiveSkipModel": AdaptiveSkipModel,
    "AdaptiveSkipKSampler": AdaptiveSkipKSampler,
    "AdaptiveSkipLastPath": AdaptiveSkipLastPath,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AdaptiveSkipModel": "AdaptiveSkip Model Patch",
    "AdaptiveSkipKSampler": "AdaptiveSkip KSampler",
    "AdaptiveSkipLastPath": "AdaptiveSkip Last Skip Path",
}
