"""Run a BLOCK_PLAN: per sampler step, only the planned blocks of the network run (AutoDiffusion's architecture
stage), through ComfyUI's public block replacement points on a clone of the model. The nodes are in
block_plan_nodes.py, the plan library in block_plan_files.py.

- DiT families: `transformer_options["patches_replace"]["dit"][("double_block", i)]` / `("single_block", i)`
  (ModelPatcher.set_model_patch_replace, the mechanism of ComfyUI's SkipLayerGuidanceDiT). A running block calls
  `original_block`. A skipped block returns its inputs unchanged (plan.skipped "pass_through"), or its inputs plus
  its residual from the last step it ran (plan.skipped "reuse": core/block_plan_reuse.py, one cache per run).
- UNets: the attn1/attn2 replacement of each transformer block (set_model_attn1_replace / _attn2_replace) skips the
  attention itself, and an attn1/attn2 output patch zeroes what is left (to_out's bias), so a skipped attention
  adds nothing to the residual. The q/k/v and output projections still run: a UNet plan saves the attention only.

Which step a call belongs to is read from the call's σ (transformer_options["sigmas"]) against the run's
schedule (row i governs the σ in (σ[i+1], σ[i]] of its step; a heun corrector at σ[i+1] uses row i + 1), kept in
per-run state that an OUTER_SAMPLE wrapper creates for each sampling run (nothing on the model,
nothing global). Rows of one call may belong to different plans (`rows_per_plan`, used by the search to evaluate
many plans in one batch); then the block runs on the whole batch and skipped rows keep their input.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

import comfy.model_patcher
import comfy.patcher_extension

from ..core.block_plan import PASS_THROUGH, REUSE, BlockId, BlockPlan, BlockPlanError
from ..core.block_plan_reuse import ResidualCache, mix, reuse_call

logger = logging.getLogger(__name__)

CATEGORY = "sampling/adaptive_skip"
WRAPPER_KEY = "adaptive_skip_block_plan"
SETUP_KEY = "adaptive_skip_block_plan"
RUN_KEY = "adaptive_skip_block_plan_run"

# Diffusion-model classes whose forward reads patches_replace["dit"] with transformer_options in the block's args
# (read in ComfyUI 0.3.64's model files): class name -> (module list of double blocks, of single blocks).
# Left out on purpose: WanModel_S2V and HunYuanDiT (their args carry no transformer_options, so a block cannot
# tell its step), and the audio DiT (its blocks sit in a nested module).
DIT_BLOCK_LISTS = {
    "OpenAISignatureMMDITWrapper": ("joint_blocks", None),  # SD3 / SD3.5 (mmdit.py)
    "Flux": ("double_blocks", "single_blocks"),             # Flux (flux/model.py)
    "Chroma": ("double_blocks", "single_blocks"),           # Chroma (chroma/model.py)
    "HunyuanVideo": ("double_blocks", "single_blocks"),     # hunyuan_video/model.py
    "Hunyuan3Dv2": ("double_blocks", "single_blocks"),      # hunyuan3d/model.py
    "MMDiT": ("double_layers", "single_layers"),            # AuraFlow (aura/mmdit.py)
    "WanModel": ("blocks", None),                           # Wan 2.1/2.2 (wan/model.py), and variants below
    "VaceWanModel": ("blocks", None),
    "CameraWanModel": ("blocks", None),
    "HumoWanModel": ("blocks", None),
    "AnimateWanModel": ("blocks", None),                    # wan/model_animate.py
    "LTXVModel": ("transformer_blocks", None),              # lightricks/model.py
    "QwenImageTransformer2DModel": ("transformer_blocks", None),  # qwen_image/model.py
    "AsymmDiTJoint": ("blocks", None),                      # Mochi (genmo/joint_model/asymm_models_joint.py)
}


# --- what a model offers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelBlocks:
    identity: str               # architecture identity a plan is made for
    blocks: tuple[BlockId, ...]
    kind: str                   # "dit" or "unet"


def model_blocks(model) -> ModelBlocks:
    """The replaceable blocks of a MODEL (ModelPatcher); BlockPlanError naming the supported families otherwise."""
    dm = model.model.diffusion_model
    family = type(model.model.model_config).__name__
    name = type(dm).__name__
    if name in DIT_BLOCK_LISTS:
        double_attr, single_attr = DIT_BLOCK_LISTS[name]
        blocks = [("double_block", i) for i in range(len(getattr(dm, double_attr)))]
        if single_attr is not None:
            blocks += [("single_block", i) for i in range(len(getattr(dm, single_attr)))]
        singles = sum(1 for b in blocks if b[0] == "single_block")
        identity = f"{family}/{name}/double_block x{len(blocks) - singles}" + (
            f"+single_block x{singles}" if singles else "")
        return ModelBlocks(identity, tuple(blocks), "dit")
    if name == "UNetModel":
        units = tuple(unet_attention_units(dm))
        if units:
            return ModelBlocks(f"{family}/{name}/attn x{len(units)}", units, "unet")
    raise BlockPlanError(
        f"this model ({family}, diffusion model {name}) has no block replacement point the pack knows; block plans "
        "work on UNets with transformer blocks (SD1.x, SDXL) and on DiTs: " + ", ".join(sorted(DIT_BLOCK_LISTS)))


def unet_attention_units(dm):
    """("attn1"|"attn2", block name, block number, transformer index) of every transformer attention, in the
    order the UNet runs them (input blocks, middle, output blocks)."""
    from comfy.ldm.modules.attention import SpatialTransformer

    groups = [("input", i, b) for i, b in enumerate(dm.input_blocks)]
    if getattr(dm, "middle_block", None) is not None:
        groups.append(("middle", 0, dm.middle_block))
    groups += [("output", i, b) for i, b in enumerate(dm.output_blocks)]
    for block_name, number, seq in groups:
        for layer in seq:
            if isinstance(layer, SpatialTransformer):
                for index, tb in enumerate(layer.transformer_blocks):
                    yield ("attn1", block_name, number, index)
                    if getattr(tb, "attn2", None) is not None:
                        yield ("attn2", block_name, number, index)


# --- per-run state -----------------------------------------------------------------------------------------------
class StatsMailbox:
    """Where finished runs publish their BlockRunStats; shared by clones (deep copy returns itself)."""

    def __init__(self, keep: int = 8) -> None:
        self.keep, self.runs = keep, []

    def __deepcopy__(self, memo):
        return self

    def publish(self, stats: "BlockRunStats") -> None:
        self.runs.append(stats)
        del self.runs[:-self.keep]

    @property
    def last(self) -> "BlockRunStats | None":
        return self.runs[-1] if self.runs else None


@dataclass(frozen=True)
class BlockSetup:
    plans: tuple[BlockPlan, ...]    # one plan, or one per group of rows (search)
    blocks: tuple[BlockId, ...]
    rows_per_plan: int = 0          # rows of x per plan when several plans share a batch
    mailbox: StatsMailbox = field(default_factory=StatsMailbox, compare=False)

    @property
    def skipped(self) -> str:
        return self.plans[0].skipped


@dataclass
class BlockRunStats:
    steps: int
    block_calls: int = 0            # blocks run, counted once per model call
    block_skips: int = 0
    model_calls: int = 0
    calls_per_step: list[int] = field(default_factory=list)
    seconds: float = 0.0
    reused: int = 0                 # skipped block calls served by residual reuse (skipped="reuse")
    reuse_misses: int = 0           # block calls run because a skipped row had no residual yet
    residual_steps: list[int] = field(default_factory=list)  # the step of every call that stored a residual

    @property
    def fraction(self) -> float:
        total = self.block_calls + self.block_skips
        return self.block_calls / total if total else 1.0


class BlockRun:
    """Per-run state: the run's schedule, the plans, and the counters."""

    def __init__(self, setup: BlockSetup, sigmas: list[float]):
        self.setup, self.sigmas = setup, sigmas
        self.index = {b: i for i, b in enumerate(setup.blocks)}
        self.stats = BlockRunStats(steps=len(sigmas) - 1, calls_per_step=[0] * (len(sigmas) - 1))
        self.first_block = setup.blocks[0]
        self.call_steps: list[int] = []
        self.cache = ResidualCache() if setup.skipped == REUSE else None
        # per block: the last step any plan skips it (a residual stored after it is never read, so not stored)
        self.last_skip = [max((s for p in setup.plans for s, row in enumerate(p.mask) if not row[c]), default=-1)
                          for c in range(len(setup.blocks))]

    def step_of(self, sigma: float) -> int:
        """Sampler step i with sigmas[i] >= σ > sigmas[i+1]. A plan row thus governs the noise levels of its step:
        a multi-call step's inner σ belong to it, a corrector call at σ[i+1] (heun) to step i + 1."""
        tol = 1e-5 * max(abs(sigma), 1e-8)
        count = sum(1 for s in self.sigmas[:-1] if s >= sigma - tol)
        return min(max(count - 1, 0), len(self.sigmas) - 2)

    def rows_on(self, block: BlockId, transformer_options: dict, rows: int, tally: bool = True) -> list[bool]:
        """Whether `block` runs, for each of the call's `rows` rows (tally: count the model call at the first
        block)."""
        sig = transformer_options.get("sigmas")
        values = [float(v) for v in sig.reshape(-1).tolist()] if isinstance(sig, torch.Tensor) else [self.sigmas[0]]
        if rows % len(values):
            raise BlockPlanError(f"block plan: a call of {rows} rows does not fit {len(values)} sigmas")
        steps = [self.step_of(v) for v in values]
        self.call_steps = steps
        col = self.index[block]
        plans, per = self.setup.plans, self.setup.rows_per_plan
        x_rows = len(values)
        if len(plans) > 1 and (per <= 0 or x_rows != per * len(plans)):
            raise BlockPlanError(f"block plan search: {x_rows} rows for {len(plans)} plans of {per} rows")
        out = []
        for r in range(rows):
            xr = r % x_rows
            plan = plans[xr // per] if len(plans) > 1 else plans[0]
            out.append(plan.mask[steps[xr]][col])
        if tally and block == self.first_block:
            self.stats.model_calls += 1
            self.stats.calls_per_step[steps[0]] += 1
        return out

    def count(self, ran: bool) -> None:
        if ran:
            self.stats.block_calls += 1
        else:
            self.stats.block_skips += 1

    def reuse_block(self, block: BlockId, args: dict, on: list[bool], original):
        """A block call under skipped="reuse" (core/block_plan_reuse.py): skipped rows get input + their last
        residual; a skipped row with none yet runs the block, counted as a block call and a miss."""
        store = self.last_skip[self.index[block]] > min(self.call_steps)  # a later step skips it: keep residuals
        out, ran, missed = reuse_call(self.cache, block, args, on, original, store)
        self.count(ran)
        self.stats.reused += not ran
        self.stats.reuse_misses += missed
        if ran and store:
            self.stats.residual_steps.append(self.call_steps[0])
        return out


def _run_of(options: dict) -> BlockRun | None:
    return options.get(RUN_KEY) if isinstance(options, dict) else None


def dit_replacement(block: BlockId):
    """The patches_replace["dit"] entry for one block: run it or pass its inputs through, as the plan says."""
    def replace(args, extra):
        run = _run_of(args.get("transformer_options"))
        if run is None:  # sampled outside a run this pack set up (no schedule to read the step from)
            return extra["original_block"](args)
        on = run.rows_on(block, args["transformer_options"], args["img"].shape[0])
        if run.cache is not None:
            return run.reuse_block(block, args, on, extra["original_block"])
        run.count(any(on))
        if all(on):
            return extra["original_block"](args)
        if not any(on):
            return args
        out = extra["original_block"](args)
        return {k: (mix(on, v, args[k]) if isinstance(v, torch.Tensor) and k in args else v) for k, v in out.items()}
    return replace


def unet_attention_replacement(unit: BlockId):
    """attn1/attn2 replacement for one transformer block: the stock attention when on, zeros when off."""
    def replace(q, k, v, extra_options):
        import comfy.ldm.modules.attention as attention

        run = _run_of(extra_options)
        on = run.rows_on(unit, extra_options, q.shape[0]) if run is not None else [True] * q.shape[0]
        if run is not None:
            run.count(any(on))
        if not any(on):
            return torch.zeros_like(q)
        out = attention.optimized_attention(q, k, v, extra_options["n_heads"],
                                            attn_precision=extra_options.get("attn_precision"),
                                            transformer_options=extra_options)
        return out if all(on) else mix(on, out, torch.zeros_like(out))
    return replace


def unet_output_patch(kind: str):
    """attn1/attn2 output patch: zero the skipped rows' attention output (to_out's bias), so nothing is added."""
    def patch(n, extra_options):
        run = _run_of(extra_options)
        block = extra_options.get("block")
        if run is None or block is None:
            return n
        unit = (kind, block[0], block[1], extra_options.get("block_index", 0))
        if unit not in run.index:
            return n
        on = run.rows_on(unit, extra_options, n.shape[0], tally=False)  # the replacement counted this call
        if all(on):
            return n
        return mix(on, n, torch.zeros_like(n))
    return patch


def outer_sample_wrapper(executor, *args, **kwargs):
    """A fresh BlockRun per sampling run (in a copy of the guider's options); publish its counts at the end."""
    guider = executor.class_obj
    setup: BlockSetup | None = guider.model_options.get("transformer_options", {}).get(SETUP_KEY)
    names = ("noise", "latent_image", "sampler", "sigmas", "denoise_mask", "callback", "disable_pbar", "seed")
    bound = dict(zip(names, args), **kwargs)
    if setup is None or "sigmas" not in bound:
        return executor(*args, **kwargs)
    sigmas = [float(s) for s in bound["sigmas"].flatten().tolist()]
    if len(sigmas) < 2:
        return executor(*args, **kwargs)
    for plan in setup.plans:
        plan.check_for(plan.model, setup.blocks, len(sigmas) - 1)
    run = BlockRun(setup, sigmas)
    original = guider.model_options
    guider.model_options = comfy.model_patcher.create_model_options_clone(original)
    guider.model_options["transformer_options"][RUN_KEY] = run
    start = time.perf_counter()
    try:
        return executor(**bound)
    finally:
        guider.model_options = original
        run.stats.seconds = time.perf_counter() - start
        setup.mailbox.publish(run.stats)
        s = run.stats
        logger.info("AdaptiveSkip block plan: %d of %d block calls run (%.2f) over %d model calls, %.2fs%s",
                    s.block_calls, s.block_calls + s.block_skips, s.fraction, s.model_calls, s.seconds,
                    f"; {s.reused} skipped calls reused a residual, {s.reuse_misses} ran for lack of one"
                    if run.cache is not None else "")


def apply_plans(model, plans: list[BlockPlan], rows_per_plan: int = 0, mailbox: StatsMailbox | None = None):
    """A clone of `model` running `plans` (one, or one per group of rows); the input model is left untouched."""
    info = model_blocks(model)
    for plan in plans:
        plan.check_for(info.identity, info.blocks)
    if len({p.skipped for p in plans}) > 1:
        raise BlockPlanError("plans evaluated in one batch must agree on what a skipped block does ('skipped')")
    if plans[0].skipped != PASS_THROUGH and info.kind != "dit":
        raise BlockPlanError(f"skipped {plans[0].skipped!r} is for DiT block plans; a UNet attention plan skips "
                             "the attention (it adds nothing): use skipped \"pass_through\"")
    patched = model.clone()
    patched.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY)
    setup = BlockSetup(tuple(plans), info.blocks, rows_per_plan, mailbox or StatsMailbox())
    patched.model_options.setdefault("transformer_options", {})[SETUP_KEY] = setup
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, outer_sample_wrapper)
    if info.kind == "dit":
        for block in info.blocks:
            patched.set_model_patch_replace(dit_replacement(block), "dit", block[0], block[1])
    else:
        for unit in info.blocks:
            kind, block_name, number, index = unit
            setter = patched.set_model_attn1_replace if kind == "attn1" else patched.set_model_attn2_replace
            setter(unet_attention_replacement(unit), block_name, number, index)
        patched.set_model_attn1_output_patch(unet_output_patch("attn1"))
        patched.set_model_attn2_output_patch(unet_output_patch("attn2"))
    return patched


def stats_of(model) -> BlockRunStats | None:
    """The last finished run's counts of a model patched by apply_plans."""
    setup = model.model_options.get("transformer_options", {}).get(SETUP_KEY)
    return setup.mailbox.last if setup is not None else None
