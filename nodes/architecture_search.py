"""EvoArchitectureSearch: AutoDiffusion's second stage. On a fixed schedule (stage 1's SIGMAS) and sampler, search
which blocks run at each step at a block-compute budget, and return the patched MODEL, the BLOCK_PLAN and a report.

Candidates are scored in batches: one sampling run holds `candidates_per_call` plans x `num_seeds` seeds as rows
of one latent batch (the block replacement picks each row's plan), so a generation costs a few sampling runs.
Fitness `latent_mse` (fidelity): the mean squared difference of the final latents to the same sampler on the same
SIGMAS with every block, for the same seeds (the plan's own ceiling is 0). Fitness `frechet`: the Fréchet distance of
the decoded samples' features to real images (core/frechet_fitness.py, built by nodes/frechet_features.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import time

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils

from ..core.block_plan import PASS_THROUGH, SKIPPED_CHOICES, BlockPlan, BlockPlanError, random_plan
from ..core.block_plan_search import BlockSearchConfig, search_block_plan
from ..core.sampler_steps import sampler_function_name
from .block_plan import CATEGORY, StatsMailbox, apply_plans, model_blocks
from .block_plan_files import find_cached, save_plan
from .frechet_features import FEATURE_CHOICES, FRECHET_INPUTS, build_frechet_fitness
from .model_identity import conditioning_digest, model_identity

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


CACHE_VERSION = 1  # bump when a change makes the same inputs search differently


def search_key(model, positive, negative, latent_image: dict, sigmas: torch.Tensor, sampler, cfg: float,
               cost_target: float, fitness_identity: str, settings: dict) -> str:
    """The cache key of a search: the model's fingerprint, both conditionings, the latent shape, the schedule, the
    sampler object, cfg, the cost target, the fitness (with its reference set's digest) and the search settings."""
    payload = {"version": CACHE_VERSION, "model": model_identity(model), "positive": conditioning_digest(positive),
               "negative": conditioning_digest(negative), "latent_shape": list(latent_image["samples"].shape[1:]),
               "sigmas": [float(v) for v in sigmas.detach().float().cpu().tolist()],
               "sampler": conditioning_digest(sampler),
               "cfg": float(cfg), "cost_target": float(cost_target), "fitness": fitness_identity, **settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sampler_label(sampler_name: str, sampler) -> str:
    """The ComfyUI sampler name a plan records (what LoadBlockPlan gives back as its SAMPLER)."""
    if sampler is None:
        return sampler_name
    function = sampler_function_name(sampler).removeprefix("sample_")
    return function if function in comfy.samplers.KSampler.SAMPLERS else sampler_name


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
                    "File name of the record in models/adaptive_skip_block_plans: the plan with its SIGMAS, sampler "
                    "and search (empty: named after model, sampler, steps and the search). The same inputs again "
                    "return the saved plan without searching.")}),
                "candidates_per_call": ("INT", {"default": 8, "min": 1, "max": 64,
                                                "tooltip": "Plans sampled together in one batch (memory vs speed)."}),
                **{k: v for k, v in FRECHET_INPUTS.items() if k != "fitness"},
                "skipped": (list(SKIPPED_CHOICES), {"default": PASS_THROUGH, "tooltip": (
                    "What a skipped block does. pass_through: its input goes on unchanged. reuse: its input plus "
                    "the residual (output minus input) from the last step at which it ran, per stream and row "
                    "(block caching, as in Delta-DiT / FORA); the first step then runs every block. DiTs only.")}),
            },
        }

    def search(self, model, positive, negative, latent_image, sampler_name, sigmas, cfg, cost_target, num_seeds,
               population, generations, seed, fitness, sampler=None, save_name="", candidates_per_call=8,
               features=FEATURE_CHOICES[0], reference_images=None, vae=None, clip_vision=None,
               skipped=PASS_THROUGH):
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
        fitness_name = fitness if frechet is None else frechet.identity
        if skipped not in SKIPPED_CHOICES:
            raise BlockPlanError(f"EvoArchitectureSearch: skipped {skipped!r} must be one of {SKIPPED_CHOICES}")
        if skipped != PASS_THROUGH and info.kind != "dit":
            raise BlockPlanError(f"EvoArchitectureSearch: skipped {skipped!r} is for DiTs; this model's plan skips "
                                 "UNet attention, which adds nothing when skipped: set skipped to pass_through")
        settings = {"num_seeds": int(num_seeds), "population": int(population), "generations": int(generations),
                    "seed": int(seed)}
        if skipped != PASS_THROUGH:  # pass_through searches keep the cache keys of records saved before the field
            settings["skipped"] = skipped
        key = search_key(model, positive, negative, latent_image, sigmas, sampler_obj, cfg, cost_target,
                         fitness_name, settings)
        hit = find_cached(key)
        if hit is not None:
            filename, plan = hit
            report = (plan.search.get("report", plan.summary())
                      + f"\n(from the plan library: {filename}; same inputs, no search run)")
            logger.info("AdaptiveSkip EvoArchitectureSearch: same inputs as %s, returned from the plan library",
                        filename)
            return (apply_plans(model, [plan]), plan, report)
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
                                   sigmas=[float(s) for s in sigmas], skipped=skipped)
        rand = random_plan(steps, info.blocks, info.identity, float(cost_target), random.Random(int(seed) + 1),
                           sigmas=[float(s) for s in sigmas], skipped=skipped)
        random_fitness = score([rand])[0]
        search_seconds = time.perf_counter() - started
        label = "latent MSE to every block" if frechet is None else f"Fréchet distance ({frechet.feature_name})"
        found = BlockPlan(result.best.mask, result.best.blocks, result.best.model, sigmas=result.best.sigmas,
                          sampler=sampler_label(sampler_name, sampler), skipped=skipped)
        report = self._report(model, runner, found, result, random_fitness, search_seconds, label)
        if frechet is not None and frechet.stability_note(num_seeds):
            report += "\n" + frechet.stability_note(num_seeds)
        record = {"fitness": fitness_name, "fitness_label": label, "found": result.fitness,
                  "best_uniform": result.uniform_fitness, "best_uniform_mask": result.best_uniform.to_dict()["mask"],
                  "random": random_fitness, "evaluated": result.evaluated, "history": result.history,
                  "cfg": float(cfg), "cost_target": float(cost_target), **settings,
                  "seconds": round(search_seconds, 2), "report": report}
        plan = BlockPlan(found.mask, found.blocks, found.model, sigmas=found.sigmas, sampler=found.sampler,
                         skipped=skipped,
                         note=f"EvoArchitectureSearch {fitness_name} {result.fitness:.4g}, cfg {cfg}, "
                              f"{num_seeds} seeds", cache_key=key, search=record)
        name = save_name.strip() or (f"{info.identity.split('/')[0]}_{plan.sampler or 'sampler'}_{steps}steps_"
                                     f"cost{round(float(cost_target) * 100)}_{key[:8]}")
        report += f"\nsaved as {save_plan(plan, name)}"
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
