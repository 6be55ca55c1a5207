"""EvoArchitectureSearch: AutoDiffusion's second stage. On a fixed schedule (stage 1's SIGMAS) and sampler, search
which blocks run at each step at a block-compute budget, and return the patched MODEL, the BLOCK_PLAN and a report.

Candidates are scored in batches: one sampling run holds `candidates_per_call` plans x `num_seeds` seeds as rows
of one latent batch (the block replacement picks each row's plan), so a generation costs a few sampling runs.
Fitness `latent_mse` (fidelity): the mean squared difference of the final latents to the same sampler on the same
SIGMAS with every block, for the same seeds (the plan's own ceiling is 0). Fitness `frechet`: the Fréchet distance of
the decoded samples' features to real images (core/frechet_fitness.py, built by nodes/frechet_features.py).
"""
from __future__ import annotations

import logging
import random
import time

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils

from ..core.block_plan import BlockPlan, BlockPlanError, random_plan
from ..core.block_plan_search import BlockSearchConfig, search_block_plan
from .block_plan import CATEGORY, StatsMailbox, apply_plans, model_blocks, save_plan
from .frechet_features import FEATURE_CHOICES, FRECHET_INPUTS, build_frechet_fitness

logger = logging.getLogger(__name__)

FITNESS_CHOICES = ("latent_mse", "frechet")  # registry names of core/fitness.py (latent_mse here: to every block)


class PlanSampler:
    """Samples `num_seeds` seeds of one latent on fixed SIGMAS, for one plan or many plans in one batch."""

    def __init__(self, model, positive, negative, latent: dict, sigmas: torch.Tensor, sampler, cfg: float,
                 num_seeds: int, seed: int):
        self.model, self.positive, self.negative, self.sampler = model, positive, negative, sampler
        self.cfg, self.seed = float(cfg), int(seed)
        self.sigmas = sigmas.detach().float().cpu().clone()
        samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])[:1]
        self.latent = samples.repeat(num_seeds, *([1] * (samples.ndim - 1)))
        self.noise = torch.cat([comfy.sample.prepare_noise(samples, self.seed + i) for i in range(num_seeds)])
        self.num_seeds = num_seeds

    def _run(self, model, copies: int) -> torch.Tensor:
        comfy.model_management.throw_exception_if_processing_interrupted()
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(self.positive, self.negative)
        guider.set_cfg(self.cfg)
        rep = [copies] + [1] * (self.noise.ndim - 1)
        out = guider.sample(self.noise.repeat(*rep), self.latent.repeat(*rep), self.sampler, self.sigmas.clone(),
                            disable_pbar=True, seed=self.seed)
        return out.float().cpu()

    def full(self) -> torch.Tensor:
        """Every block (the unpatched model)."""
        return self._run(self.model, 1)

    def plans(self, plans: list[BlockPlan]) -> list[torch.Tensor]:
        """One (num_seeds, ...) result per plan, all plans in one sampling run."""
        patched = apply_plans(self.model, plans, rows_per_plan=self.num_seeds if len(plans) > 1 else 0)
        return list(torch.split(self._run(patched, len(plans)), self.num_seeds))

    def timed(self, model) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        out = self._run(model, 1)
        return out, time.perf_counter() - start


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean())


class EvoArchitectureSearch:
    """Search a per-step block plan on fixed SIGMAS at a block-compute budget (AutoDiffusion's second stage)."""

    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["autodiffusion", "architecture search", "block skipping", "layer skip", "speed"]
    RETURN_TYPES = ("MODEL", "BLOCK_PLAN", "STRING")
    RETURN_NAMES = ("model", "block_plan", "report")
    OUTPUT_TOOLTIPS = ("A clone of the model running the found plan: sample it with the same SIGMAS and sampler.",
                       "The found plan (save it with SaveBlockPlan, share its text).",
                       "What was found, next to the best uniform plan and a random plan of the same cost.")
    FUNCTION = "search"
    DESCRIPTION = ("AutoDiffusion's architecture stage: which blocks run at each step of a fixed schedule, found by "
                   "evolution at a fraction of the block compute. Wire stage 1's SIGMAS (EvoTimestepSchedule).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "A DiT (SD3, Flux, Wan, ...) or a UNet; it is cloned, never modified."}),
                "positive": ("CONDITIONING", {"tooltip": "Conditioning the plan is searched for."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative conditioning."}),
                "latent_image": ("LATENT", {"tooltip": "Latent size to search on (its first image)."}),
                "sampler_name": (comfy.samplers.KSampler.SAMPLERS,
                                 {"tooltip": "Sampler the plan is searched for (ignored when 'sampler' is wired)."}),
                "sigmas": ("SIGMAS", {"tooltip": "The schedule, e.g. from EvoTimestepSchedule (stage 1). The plan "
                                                 "has one row per step of it."}),
                "cfg": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 100.0, "step": 0.1,
                                  "tooltip": "Classifier-free guidance scale."}),
                "cost_target": ("FLOAT", {"default": 0.6, "min": 0.05, "max": 1.0, "step": 0.05,
                                          "tooltip": "Fraction of the block calls kept (1 = every block)."}),
                "num_seeds": ("INT", {"default": 4, "min": 1, "max": 64,
                                      "tooltip": "Seeds every candidate plan is scored on."}),
                "population": ("INT", {"default": 16, "min": 4, "max": 256, "tooltip": "Plans per generation."}),
                "generations": ("INT", {"default": 8, "min": 0, "max": 200, "tooltip": "Generations of evolution."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": "fixed",
                                 "tooltip": "Seed of the noise (seed + i for seed i) and of the search."}),
                "fitness": (list(FITNESS_CHOICES), {"tooltip": (
                    "latent_mse: closeness of the final latents to the same run with every block. frechet: Fréchet "
                    "distance of the decoded samples' features to real reference_images (AutoDiffusion's FID "
                    "signal); needs reference_images, and the VAE unless a bundled model's classifier is used.")}),
            },
            "optional": {
                "sampler": ("SAMPLER", {"tooltip": "A SAMPLER (e.g. KSamplerSelect); overrides sampler_name."}),
                "save_name": ("STRING", {"default": "", "tooltip": (
                    "Save the plan under this name in models/adaptive_skip_block_plans (empty: not saved).")}),
                "candidates_per_call": ("INT", {"default": 8, "min": 1, "max": 64,
                                                "tooltip": "Plans sampled together in one batch (memory vs speed)."}),
                **{k: v for k, v in FRECHET_INPUTS.items() if k != "fitness"},
            },
        }

    def search(self, model, positive, negative, latent_image, sampler_name, sigmas, cfg, cost_target, num_seeds,
               population, generations, seed, fitness, sampler=None, save_name="", candidates_per_call=8,
               features=FEATURE_CHOICES[0], reference_images=None, vae=None, clip_vision=None):
        if fitness not in FITNESS_CHOICES:
            raise BlockPlanError(f"fitness {fitness!r} is not one of {FITNESS_CHOICES}")
        frechet = None
        if fitness == "frechet":
            frechet = build_frechet_fitness(features, reference_images, vae=vae, clip_vision=clip_vision)
        sigmas = torch.as_tensor(sigmas).flatten()
        if len(sigmas) < 2:
            raise BlockPlanError("EvoArchitectureSearch: 'sigmas' needs at least 2 values (one step); wire a "
                                 "schedule such as EvoTimestepSchedule's SIGMAS")
        info = model_blocks(model)
        steps = len(sigmas) - 1
        sampler_obj = sampler if sampler is not None else comfy.samplers.sampler_object(sampler_name)
        runner = PlanSampler(model, positive, negative, latent_image, sigmas, sampler_obj, cfg, num_seeds, seed)
        started = time.perf_counter()
        reference = runner.full()
        config = BlockSearchConfig(cost_target=float(cost_target), population=int(population),
                                   parents=max(2, int(population) // 4), generations=int(generations),
                                   seed=int(seed))
        bar = comfy.utils.ProgressBar(config.population * (config.generations + 1))
        chunk = max(int(candidates_per_call), 1)

        def score(plans: list[BlockPlan]) -> list[float]:
            out = []
            for start in range(0, len(plans), chunk):
                part = plans[start:start + chunk]
                outputs = runner.plans(part)
                out += frechet.score(outputs, reference) if frechet is not None else [mse(o, reference)
                                                                                       for o in outputs]
                bar.update(len(part))
            return out

        result = search_block_plan(steps, info.blocks, info.identity, score, config,
                                   sigmas=[float(s) for s in sigmas])
        rand = random_plan(steps, info.blocks, info.identity, float(cost_target), random.Random(int(seed) + 1),
                           sigmas=[float(s) for s in sigmas])
        random_fitness = score([rand])[0]
        search_seconds = time.perf_counter() - started
        sampler_label = getattr(sampler_obj.sampler_function, "__name__", "?").removeprefix("sample_")
        fitness_name = fitness if frechet is None else frechet.identity
        plan = BlockPlan(result.best.mask, result.best.blocks, result.best.model, sigmas=result.best.sigmas,
                         sampler=sampler_name if sampler is None else sampler_label,
                         note=f"EvoArchitectureSearch {fitness_name} {result.fitness:.4g}, cfg {cfg}, "
                              f"{num_seeds} seeds")
        label = "latent MSE to every block" if frechet is None else f"Fréchet distance ({frechet.feature_name})"
        report = self._report(model, runner, plan, result, random_fitness, search_seconds, label)
        if frechet is not None and frechet.stability_note(num_seeds):
            report += "\n" + frechet.stability_note(num_seeds)
        if save_name.strip():
            report += f"\nsaved as {save_plan(plan, save_name)}"
        logger.info("AdaptiveSkip: %s", report.replace("\n", "; "))
        return (apply_plans(model, [plan]), plan, report)

    @staticmethod
    def _report(model, runner: PlanSampler, plan: BlockPlan, result, random_fitness: float, seconds: float,
                fitness: str) -> str:
        mailbox = StatsMailbox()
        _, plan_time = runner.timed(apply_plans(model, [plan], mailbox=mailbox))
        stats = mailbox.last
        _, full_time = runner.timed(model)
        ratio = (result.uniform_fitness / result.fitness) if result.fitness > 0 else float("inf")
        return (f"EvoArchitectureSearch: {plan.summary()}\n"
                f"{fitness}: found {result.fitness:.4g}; best uniform plan "
                f"{result.uniform_fitness:.4g} ({ratio:.2f}x the found plan's); random plan {random_fitness:.4g}\n"
                f"measured: {stats.block_calls} of {stats.block_calls + stats.block_skips} block calls; wall time "
                f"{plan_time:.3f}s vs {full_time:.3f}s for the unpatched model "
                f"({plan_time / max(full_time, 1e-9):.2f}x) "
                f"for {runner.num_seeds} seeds\n"
                f"search: {result.evaluated} plans in {seconds:.1f}s")


NODE_CLASS_MAPPINGS = {"EvoArchitectureSearch": EvoArchitectureSearch}
NODE_DISPLAY_NAME_MAPPINGS = {"EvoArchitectureSearch": "Evo Architecture Search (AdaptiveSkip)"}
