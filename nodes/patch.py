"""Hook AdaptiveSkip into a cloned ModelPatcher through ComfyUI's keyed wrapper API.

Life cycle (the same as comfy_extras/nodes_easycache.py): the node stores a frozen setup in the clone's
transformer_options; the OUTER_SAMPLE wrapper creates a fresh RunState for each sampling run in a copy of the
guider's model_options and drops it in `finally`; the PREDICT_NOISE wrapper (the whole CFG call) asks the run's
controller to compute or reuse. Nothing is stored on the user's model, in globals, or on node instances.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import comfy.model_patcher
import comfy.patcher_extension

from ..core.budget import BROWNIAN_TREE
from ..core.budget_run import TRIMMED, BudgetChoice, BudgetSkipController, abscissa_for, choose as choose_budget
from ..core.config import SkipConfig
from ..core.controller import SkipController
from ..core.sigmas import recognise_schedule
from ..core.skip_path import SkipPath, merge_per_sample
from ..core.sampler_steps import (StepCounter, StepOverrun, calls_per_step, reuse_space, sampler_function_name,
                                  unsupported_reason)

logger = logging.getLogger(__name__)

WRAPPER_KEY = "adaptive_skip"
SETUP_KEY = "adaptive_skip"  # transformer_options entry holding the node's SkipSetup
RUN_KEY = "adaptive_skip_run"  # transformer_options entry holding the current run's RunState


class PathMailbox:
    """Where finished runs publish their SKIP_PATH so a node downstream can read it. Shared by clones of one
    patched model (ModelPatcher.clone deep-copies model_options), holding the last few records only."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self.paths: list[SkipPath] = []

    def __deepcopy__(self, memo: dict) -> "PathMailbox":
        return self

    def publish(self, path: SkipPath) -> None:
        self.paths.append(path)
        del self.paths[:-self.keep]

    @property
    def last(self) -> SkipPath | None:
        return self.paths[-1] if self.paths else None


@dataclass(frozen=True)
class SkipSetup:
    """What the node attaches to the cloned model: the frozen config, labels for the record, and the mailbox."""

    config: SkipConfig
    mailbox: PathMailbox = field(default_factory=PathMailbox, compare=False)
    scheduler: str = ""


@dataclass
class RunState:
    """Per-run state: created by the OUTER_SAMPLE wrapper, dropped when the run ends."""

    config: SkipConfig
    calls_in_step: Callable[[int, list[float]], int] | None
    sigmas: list[float]
    model_sampling: Any
    controllers: list[SkipController] = field(default_factory=list)  # one, or one per image (per-sample mode)
    decisions: list[bool] = field(default_factory=list)
    desynced: bool = False
    model_calls: int = 0
    sampler_calls: int = 0
    notes: list[str] = field(default_factory=list)
    function_name: str = ""
    scheduler: str = ""
    budget: BudgetChoice | None = None  # criterion "budget": skip on this schedule, or a resampled one

    def __post_init__(self) -> None:
        self.counter = StepCounter(self.sigmas, self.calls_in_step) if self.calls_in_step is not None else None

    @property
    def step(self) -> int:
        return self.counter.step if self.counter is not None else -1

    @property
    def active(self) -> bool:
        return self.calls_in_step is not None and not self.desynced

    def give_up(self, why: str) -> None:
        """Stop skipping for the rest of the run (never skip silently wrong) and say why once."""
        if not self.desynced:
            self.desynced = True
            self.notes.append(why)
            logger.warning("AdaptiveSkip: %s", why)

    def check_callback(self, i: int) -> None:
        """The sampler reports step i after that step's first call; a mismatch means our step count drifted."""
        if self.active and i != self.step:
            self.give_up(f"step attribution drifted (sampler reported step {i}, expected {self.step}); "
                         "computing every remaining call")

    def path(self) -> SkipPath:
        if len(self.controllers) == 1:
            return self.controllers[0].path
        return merge_per_sample([c.path for c in self.controllers])


# Host signature (comfy/samplers.py, CFGGuider.outer_sample, 0.3.64 and 0.8.0):
#   outer_sample(noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False, seed=None)
OUTER_SAMPLE_ARGS = ("noise", "latent_image", "sampler", "sigmas", "denoise_mask", "callback", "disable_pbar", "seed")


# Host signature (CFGGuider.outer_predict_noise, 0.3.64 and 0.8.0): (x, timestep, model_options={}, seed=None)
PREDICT_NOISE_ARGS = ("x", "timestep", "model_options", "seed")


def bind_outer_sample_args(args: tuple, kwargs: dict) -> dict[str, Any]:
    """Name the OUTER_SAMPLE wrapper's arguments instead of picking them by position."""
    bound = dict(zip(OUTER_SAMPLE_ARGS, args))
    bound.update(kwargs)
    return bound


def bind_predict_noise_args(args: tuple, kwargs: dict) -> dict[str, Any]:
    """Name the PREDICT_NOISE wrapper's arguments; model_options and seed default as the host's do."""
    bound = {"model_options": {}, "seed": None}
    bound.update(zip(PREDICT_NOISE_ARGS, args))
    bound.update(kwargs)
    return bound


def run_with_state(executor, bound: dict[str, Any], key: str, state: Any, check_step) -> Any:
    """Run OUTER_SAMPLE's executor with `state` at transformer_options[key] of a copy of the guider's
    model_options (the guider, shared by later runs, gets its own options back), calling check_step(i) at each of
    the sampler's step callbacks before the user's callback."""
    guider = executor.class_obj
    user_callback = bound.get("callback")

    def callback(i, denoised, x, total):
        check_step(i)
        if user_callback is not None:
            return user_callback(i, denoised, x, total)

    original = guider.model_options
    guider.model_options = comfy.model_patcher.create_model_options_clone(original)
    guider.model_options["transformer_options"][key] = state
    try:
        return executor(**dict(bound, callback=callback))
    finally:
        guider.model_options = original


def attach(model, setup: SkipSetup):
    """A clone of `model` that skips model calls as `setup` says; the input model is left untouched."""
    patched = model.clone()
    if SETUP_KEY in patched.model_options.get("transformer_options", {}):
        logger.info("AdaptiveSkip: the model was already patched; the new settings replace the old ones")
    for kind in (comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, comfy.patcher_extension.WrappersMP.PREDICT_NOISE):
        patched.remove_wrappers_with_key(kind, WRAPPER_KEY)  # one AdaptiveSkip per model, never stacked
    patched.model_options.setdefault("transformer_options", {})[SETUP_KEY] = setup
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, outer_sample_wrapper)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, WRAPPER_KEY, predict_noise_wrapper)
    return patched


def _new_run(guider, setup: SkipSetup, sampler, sigmas: list[float]) -> RunState:
    """Fresh state for one run; raises ValueError (before any model call) for settings this run cannot honour."""
    model_sampling = guider.model_patcher.get_model_object("model_sampling")
    function_name = sampler_function_name(sampler)
    config = setup.config
    state = RunState(config=config, calls_in_step=calls_per_step(function_name), sigmas=sigmas,
                     model_sampling=model_sampling)
    probe = SkipController(config, sigmas)  # validates forced_path length against this run
    steps = len(sigmas) - 1
    if state.calls_in_step is None:
        state.notes.append(f"sampler {function_name} runs without skipping: {unsupported_reason(function_name)}")
    elif config.disabled:
        state.notes.append(config.disabled_reason)
    elif config.forced_path is None and config.rule.judges_steps and steps <= probe.first_judged_step:
        state.notes.append(f"{steps} steps are too few: the {config.criterion} rule judges from step "
                           f"{probe.first_judged_step} on, so every step was computed")
    state.function_name = function_name
    return state


def _budget_choice(guider, setup: SkipSetup, sampler, sigmas: list[float]) -> BudgetChoice | None:
    """For criterion "budget": skip or resample (and the schedule to run); None when the run cannot skip."""
    config = setup.config
    if config.criterion != "budget" or config.disabled or config.forced_path is not None:
        return None
    function_name = sampler_function_name(sampler)
    calls_in_step = calls_per_step(function_name)
    if calls_in_step is None:
        return None  # _new_run says why the sampler runs unaccelerated
    model_sampling = guider.model_patcher.get_model_object("model_sampling")
    axis = abscissa_for(_signal_scale(model_sampling))
    name, scheduler = None, None
    if function_name in BROWNIAN_TREE and not config.windowed:  # only these resample to the scheduler itself
        name, scheduler = _user_scheduler(model_sampling, sigmas, function_name in TRIMMED, setup.scheduler)
    return choose_budget(config, function_name, sigmas, calls_in_step, axis, scheduler, name or "")


def _user_scheduler(model_sampling, sigmas: list[float], trimmed: bool, hint: str = ""):
    """(name, steps -> sigmas) of the ComfyUI scheduler that made this run's sigmas, as KSampler builds them
    (penultimate σ dropped for dpm_2 / uni_pc), recognised by recomputing each at the run's step count; (None,
    None) for sigmas no scheduler makes (custom sigmas, denoise < 1)."""
    import comfy.samplers

    def builder(name):
        def build(steps):
            out = comfy.samplers.calculate_sigmas(model_sampling, name, steps + 1 if trimmed else steps)
            out = torch.cat([out[:-2], out[-1:]]) if trimmed else out
            return [float(v) for v in out.flatten().tolist()]
        return build

    names = list(dict.fromkeys(([hint] if hint in comfy.samplers.SCHEDULER_NAMES else [])
                               + list(comfy.samplers.SCHEDULER_NAMES)))
    builders = {n: builder(n) for n in names}
    name = recognise_schedule(sigmas, builders)
    return (name, builders[name]) if name is not None else (None, None)


def _signal_scale(model_sampling) -> float:
    """α(0.5) of the model family's state x = α(σ)·x0 + σ·ε (1 for eps/v models, 0.5 for flow models)."""
    try:
        one = torch.ones(1, 1)
        return float(model_sampling.noise_scaling(torch.tensor([0.5]), torch.zeros_like(one), one).flatten()[0])
    except (AttributeError, TypeError, RuntimeError):  # an unusual model_sampling: keep the log σ axis
        return 1.0


def _controllers_for(state: RunState, batch: int, scheduler: str) -> list[SkipController]:
    if state.budget is not None:
        # one plan for the whole batch: every call serves every image, so per-image plans would overspend
        costs = [state.calls_in_step(i, state.sigmas) for i in range(len(state.sigmas) - 1)]
        budget = BudgetSkipController(state.config, state.sigmas, costs, state.budget.budget,
                                      reuse_space(state.function_name, "quadratic"), state.budget.forced,
                                      state.budget.placement, state.budget.abscissa, state.budget.last_gap)
        budget.path.sampler, budget.path.scheduler = state.function_name.removeprefix("sample_"), scheduler
        return [budget]
    count = batch if state.config.per_sample else 1
    space = reuse_space(state.function_name, state.config.reuse)
    controllers = [SkipController(state.config, state.sigmas, space) for _ in range(count)]
    for c in controllers:
        c.path.sampler, c.path.scheduler = state.function_name.removeprefix("sample_"), scheduler
    return controllers


def outer_sample_wrapper(executor, *args, **kwargs):
    """Fresh run state per sampling run; publish the SKIP_PATH and log one summary line when it ends."""
    guider = executor.class_obj
    setup: SkipSetup | None = guider.model_options.get("transformer_options", {}).get(SETUP_KEY)
    if setup is None:
        return executor(*args, **kwargs)
    bound = bind_outer_sample_args(args, kwargs)
    sigmas = [float(s) for s in bound["sigmas"].flatten().tolist()]  # copied: uni_pc rewrites the last σ in place
    if len(sigmas) < 2:  # no step to take (e.g. SplitSigmas at the last step): ComfyUI samples nothing, nor do we
        logger.info("AdaptiveSkip: the schedule holds %d value(s), no step to sample; passed through", len(sigmas))
        return executor(*args, **kwargs)
    budget = _budget_choice(guider, setup, bound["sampler"], sigmas)
    if budget is not None and budget.mode == "resample" and len(budget.sigmas) != len(sigmas):
        original = bound["sigmas"]
        bound["sigmas"] = torch.tensor(budget.sigmas, dtype=original.dtype, device=original.device)
        sigmas = list(budget.sigmas)
    state = _new_run(guider, setup, bound["sampler"], sigmas)
    state.scheduler = setup.scheduler
    if budget is not None:
        state.budget = budget
        state.notes.append(budget.note)
    start = time.perf_counter()
    try:
        return run_with_state(executor, bound, RUN_KEY, state, state.check_callback)
    finally:
        if not state.controllers:
            state.controllers = _controllers_for(state, 1, setup.scheduler)
        path = state.path()
        path.model_calls, path.sampler_calls = state.model_calls, state.sampler_calls
        if state.budget is not None and state.budget.mode == "resample":
            path.sampler_calls = state.budget.full_calls  # what the run would have cost unpatched
        path.wall_time = time.perf_counter() - start
        path.note = "; ".join(state.notes)
        setup.mailbox.publish(path)
        logger.info(path.summary())


def predict_noise_wrapper(executor, *args, **kwargs):
    """Compute the CFG-combined denoised output, or rebuild it from the cache on a skipped step."""
    bound = bind_predict_noise_args(args, kwargs)
    x: torch.Tensor = bound["x"]
    sigma: torch.Tensor = bound["timestep"]
    state: RunState | None = bound["model_options"].get("transformer_options", {}).get(RUN_KEY)
    if state is None:
        return executor(*args, **kwargs)
    state.sampler_calls += 1
    sigma_flat = sigma.flatten()
    sigma_value = float(sigma_flat[0])
    if not state.controllers:
        state.controllers = _controllers_for(state, x.shape[0], state.scheduler)
    if len(state.controllers) > 1 and x.shape[0] != len(state.controllers):
        state.give_up(f"the batch changed from {len(state.controllers)} to {x.shape[0]} mid-run; computing every call")
    elif not bool((sigma_flat == sigma_flat[0]).all()):
        state.give_up("the sampler mixes σ values within one batch; computing every call")
    if not state.active:
        state.model_calls += 1
        return executor(*args, **kwargs)
    try:
        new_step = state.counter.next_call()
    except StepOverrun as err:
        state.give_up(f"{err}; computing every remaining call")
        state.model_calls += 1
        return executor(*args, **kwargs)
    if new_step:
        x_measure = state.model_sampling.calculate_input(sigma, x)
        if len(state.controllers) == 1:
            state.decisions = [state.controllers[0].decide(state.step, x_measure, sigma_value)]
        else:
            state.decisions = [c.decide(state.step, x_measure[i:i + 1], sigma_value)
                               for i, c in enumerate(state.controllers)]
    out = None
    if any(state.decisions):
        out = executor(*args, **kwargs)
        state.model_calls += 1
    if len(state.controllers) == 1:
        controller = state.controllers[0]
        if out is None:
            return controller.predict(x, sigma_value)
        controller.store(x, out, sigma_value)
        return out
    # per-sample mode: the call serves the images that decided to compute; the others reuse, exactly as they
    # would if sampled alone (the conditioning cannot be split safely, so the call covers the whole batch)
    pieces = []
    for i, (controller, compute) in enumerate(zip(state.controllers, state.decisions)):
        if compute:
            controller.store(x[i:i + 1], out[i:i + 1], sigma_value)
            pieces.append(out[i:i + 1])
        else:
            pieces.append(controller.predict(x[i:i + 1], sigma_value))
    return torch.cat(pieces)
