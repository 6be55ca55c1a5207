"""The block-plan nodes: ApplyBlockPlan (run a BLOCK_PLAN on a clone), LoadBlockPlan (from the library or pasted
text) and SaveBlockPlan (to the library, shown as shareable text)."""
from __future__ import annotations

import logging
import os

import torch

from ..core.block_plan import BlockPlan, BlockPlanError
from .block_plan import CATEGORY, apply_plans
from .block_plan_files import library_files, load_plan_file, save_plan

logger = logging.getLogger(__name__)


class ApplyBlockPlan:
    """MODEL + BLOCK_PLAN -> a clone that runs only the plan's blocks at each step."""

    CATEGORY = CATEGORY
    SEARCH_ALIASES = ['block skipping', 'layer skip', 'autodiffusion', 'speed', 'cache']
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"
    DESCRIPTION = ("Run only the blocks a BLOCK_PLAN keeps at each sampler step (a skipped block passes its input "
                   "on, or, in a plan with skipped \"reuse\", adds the residual from its last run). Sample with the "
                   "SIGMAS the plan was searched on (same step count).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The model to run the plan on; it is cloned, never modified."}),
            "block_plan": ("BLOCK_PLAN", {"tooltip": "From EvoArchitectureSearch or LoadBlockPlan; made for this "
                                                     "model's architecture."})}}

    def apply(self, model, block_plan):
        patched = apply_plans(model, [block_plan])
        logger.info("AdaptiveSkip: %s", block_plan.summary())
        return (patched,)


TEXT_CHOICE = "(pasted text)"


class LoadBlockPlan:
    """A BLOCK_PLAN from the library folder, or from pasted text (the text wins when given)."""

    CATEGORY = CATEGORY
    SEARCH_ALIASES = ['block plan', 'load plan', 'autodiffusion', 'layer skip']
    DESCRIPTION = ("Load a BLOCK_PLAN (which blocks run at each sampler step) from the plan library or from pasted "
                   "text, with the schedule it was searched on.")
    RETURN_TYPES = ("BLOCK_PLAN", "SIGMAS", "STRING", "SAMPLER")
    RETURN_NAMES = ("block_plan", "sigmas", "summary", "sampler")
    OUTPUT_TOOLTIPS = ("The plan, for ApplyBlockPlan.",
                       "The schedule the plan was searched on (stage 1 of the two-stage search), for SamplerCustom; "
                       "empty when the plan carries none.",
                       "What the plan holds.",
                       "The sampler the plan was searched with, for SamplerCustom (euler when the plan names none "
                       "or one this ComfyUI lacks; the summary says so).")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"plan": ([TEXT_CHOICE] + library_files(),
                                      {"tooltip": "A plan saved in models/adaptive_skip_block_plans, or "
                                                  f"{TEXT_CHOICE} to use the text below."})},
                "optional": {"text": ("STRING", {"multiline": True, "default": "",
                                                 "tooltip": "A plan's JSON text (as SaveBlockPlan shows it); when "
                                                            "given it is used instead of the file."})}}

    def load(self, plan, text=""):
        if text.strip():
            loaded = BlockPlan.from_text(text)
        elif plan == TEXT_CHOICE:
            raise BlockPlanError("LoadBlockPlan: 'plan' is set to pasted text but 'text' is empty; paste a plan's "
                                 "text or pick a saved plan")
        else:
            loaded = load_plan_file(plan)
        import comfy.samplers

        summary = loaded.summary() + (f"; sampler {loaded.sampler}" if loaded.sampler else "")
        if not loaded.sigmas:
            summary += "; it carries no SIGMAS: sample with a schedule of its step count"
        sampler_name = loaded.sampler
        if sampler_name not in comfy.samplers.KSampler.SAMPLERS:
            summary += (f"; its sampler {sampler_name!r} is not one of this ComfyUI's samplers: the sampler "
                        "output is euler" if sampler_name else "; it names no sampler: the sampler output is euler")
            logger.warning("AdaptiveSkip LoadBlockPlan: %s", summary)
            sampler_name = "euler"
        return (loaded, torch.tensor(loaded.sigmas, dtype=torch.float32), summary,
                comfy.samplers.sampler_object(sampler_name))


class SaveBlockPlan:
    """Save a BLOCK_PLAN to the plan library (models/adaptive_skip_block_plans) and show its shareable text."""

    CATEGORY = CATEGORY
    SEARCH_ALIASES = ['block plan', 'save plan', 'autodiffusion', 'layer skip']
    DESCRIPTION = ("Save a BLOCK_PLAN to the plan library (models/adaptive_skip_block_plans) and show it as "
                   "shareable text.")
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "block_plan": ("BLOCK_PLAN", {"tooltip": "The plan to save."}),
            "name": ("STRING", {"default": "block_plan", "tooltip": "File name in models/adaptive_skip_block_plans "
                                                                    "(an existing file of that name is replaced)."})}}

    def save(self, block_plan, name):
        path = save_plan(block_plan, name)
        return {"ui": {"text": [f"saved {os.path.basename(path)}: {block_plan.summary()}"]},
                "result": (block_plan.to_text(),)}


NODE_CLASS_MAPPINGS = {"ApplyBlockPlan": ApplyBlockPlan, "LoadBlockPlan": LoadBlockPlan,
                       "SaveBlockPlan": SaveBlockPlan}
NODE_DISPLAY_NAME_MAPPINGS = {"ApplyBlockPlan": "Apply Block Plan (AdaptiveSkip)",
                              "LoadBlockPlan": "Load Block Plan (AdaptiveSkip)",
                              "SaveBlockPlan": "Save Block Plan (AdaptiveSkip)"}
