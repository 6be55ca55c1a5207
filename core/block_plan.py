"""BLOCK_PLAN: which blocks of the network run at each sampler step (AutoDiffusion's architecture stage).

A plan is a steps x blocks boolean mask. Its blocks are named the way ComfyUI names its replacement points:
("double_block", i) / ("single_block", i) for DiT families, ("attn1", "input", 1, 0) style ids (attention kind,
UNet block name, block number, transformer index) for UNet transformer attention. A plan is made for one model
architecture (`model`, e.g. "SD3/OpenAISignatureMMDITWrapper/double_block x24"): applying it to another is refused
with the fix named. Plans travel as JSON text (one "1101..." row per step), so they can be pasted and shared.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Sequence

FORMAT = "adaptive_skip.block_plan"
VERSION = 2  # 2 added "skipped"; a pass_through plan is still written as version 1 (older packs read it)
PASS_THROUGH, REUSE = "pass_through", "reuse"
SKIPPED_CHOICES = (PASS_THROUGH, REUSE)

BlockId = tuple  # ("double_block", 3), ("single_block", 0), ("attn1", "input", 1, 0), ...


class BlockPlanError(ValueError):
    """A plan that cannot be used as given; the message names the input and the fix."""


def _block_id(raw) -> BlockId:
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)) or not raw:
        raise BlockPlanError(f"block id {raw!r} is not a list such as [\"double_block\", 0]")
    if not all(isinstance(part, (str, int)) and not isinstance(part, bool) for part in raw):
        raise BlockPlanError(f"block id {raw!r} may hold only names and integers")
    return tuple(raw)


@dataclass(frozen=True)
class BlockPlan:
    """mask[step][block] is True when that block runs at that sampler step. What a skipped block does is `skipped`:
    "pass_through" (its input goes on unchanged; every plan before format version 2) or "reuse" (its input plus
    the residual, output minus input, of the last step at which it ran: the block caching of Delta-DiT / FORA /
    Wimbauer et al. 2024). A reuse plan runs every block at its first step, so every skipped block has a residual."""

    mask: tuple[tuple[bool, ...], ...]
    blocks: tuple[BlockId, ...]
    model: str
    sigmas: tuple[float, ...] = ()  # the schedule the plan was searched on (informational; may be empty)
    note: str = ""
    weights: tuple[float, ...] = field(default=())  # relative compute of each block; empty = all equal
    sampler: str = ""  # the sampler it was searched with: with `sigmas`, the two-stage search's whole result
    skipped: str = PASS_THROUGH  # what a skipped block returns: its input, or its input + its last residual
    # EvoArchitectureSearch's cache key and what the search measured (settings, fitness of the find, of the best
    # uniform and a random plan, time): the record a repeated search is served from; not part of plan equality
    cache_key: str = field(default="", compare=False)
    search: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", tuple(tuple(bool(v) for v in row) for row in self.mask))
        object.__setattr__(self, "blocks", tuple(_block_id(b) for b in self.blocks))
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if not self.blocks:
            raise BlockPlanError("a BLOCK_PLAN needs at least one block")
        if len(set(self.blocks)) != len(self.blocks):
            raise BlockPlanError("a BLOCK_PLAN lists a block twice; each block id must appear once")
        if not self.mask:
            raise BlockPlanError("a BLOCK_PLAN needs at least one step (one row of the mask)")
        for i, row in enumerate(self.mask):
            if len(row) != len(self.blocks):
                raise BlockPlanError(f"BLOCK_PLAN step {i} has {len(row)} entries but the plan names "
                                     f"{len(self.blocks)} blocks; every row needs one entry per block")
        if self.sigmas and len(self.sigmas) != len(self.mask) + 1:
            raise BlockPlanError(f"BLOCK_PLAN has {len(self.mask)} steps but {len(self.sigmas)} sigmas; "
                                 f"a schedule of N steps has N + 1 sigmas")
        if not isinstance(self.search, dict):
            raise BlockPlanError("BLOCK_PLAN \"search\" must be a mapping (what the search measured)")
        if self.weights and (len(self.weights) != len(self.blocks) or min(self.weights) <= 0):
            raise BlockPlanError("BLOCK_PLAN weights need one positive value per block")
        if self.skipped not in SKIPPED_CHOICES:
            raise BlockPlanError(f"BLOCK_PLAN \"skipped\" is {self.skipped!r}; it must be one of {SKIPPED_CHOICES}")
        if self.skipped == REUSE and not all(self.mask[0]):
            raise BlockPlanError("a BLOCK_PLAN with skipped \"reuse\" must run every block at its first step (a "
                                 "skipped block reuses the residual of an earlier step, and step 0 has none): set "
                                 "the first mask row to all 1, or use skipped \"pass_through\"")

    @property
    def steps(self) -> int:
        return len(self.mask)

    @property
    def block_calls(self) -> int:
        """Blocks run over the whole schedule, per model call of each step."""
        return sum(sum(row) for row in self.mask)

    @property
    def cost(self) -> float:
        """Fraction of the block compute of the full network at every step (weighted when weights are given)."""
        w = self.weights or (1.0,) * len(self.blocks)
        return sum(wi for row in self.mask for wi, on in zip(w, row) if on) / (sum(w) * self.steps)

    def runs(self, step: int, block: BlockId) -> bool:
        return self.mask[step][self.blocks.index(block)]

    def check_for(self, model: str, blocks: Sequence[BlockId], steps: int | None = None) -> None:
        """Raise BlockPlanError naming the fix when this plan does not fit the model (or the run's step count)."""
        if self.model != model:
            raise BlockPlanError(f"this BLOCK_PLAN was made for {self.model!r} but the model is {model!r}; "
                                 "search a plan for this model with EvoArchitectureSearch, or load one made for it")
        if tuple(blocks) != self.blocks:
            missing = [b for b in self.blocks if b not in tuple(blocks)][:3]
            raise BlockPlanError(f"this BLOCK_PLAN names blocks the model does not have ({missing} ...); "
                                 "search a plan for this model with EvoArchitectureSearch")
        if steps is not None and steps != self.steps:
            raise BlockPlanError(f"this BLOCK_PLAN has {self.steps} steps but the run samples {steps}; "
                                 f"sample with the {self.steps}-step SIGMAS it was searched on, or search a plan "
                                 f"for {steps} steps")

    def summary(self) -> str:
        return (f"block plan: {self.steps} steps x {len(self.blocks)} blocks, {self.block_calls} of "
                f"{self.steps * len(self.blocks)} block calls (cost {self.cost:.3f}), skipped blocks "
                f"{'reuse their last residual' if self.skipped == REUSE else 'pass their input on'}, "
                f"for {self.model}")

    # --- text form ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        version = VERSION if self.skipped != PASS_THROUGH else 1
        return {"format": FORMAT, "version": version, "model": self.model, "blocks": [list(b) for b in self.blocks],
                "mask": ["".join("1" if v else "0" for v in row) for row in self.mask],
                "cost": round(self.cost, 6), "sigmas": list(self.sigmas), "sampler": self.sampler,
                "weights": list(self.weights), "note": self.note,
                **({"skipped": self.skipped} if self.skipped != PASS_THROUGH else {}),
                **({"cache_key": self.cache_key} if self.cache_key else {}),
                **({"search": self.search} if self.search else {})}

    def to_text(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: dict) -> "BlockPlan":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BlockPlanError(f"this text is not a BLOCK_PLAN (no \"format\": \"{FORMAT}\"); paste the text "
                                 "that SaveBlockPlan/EvoArchitectureSearch wrote")
        if int(data.get("version", 0)) > VERSION:
            raise BlockPlanError(f"this BLOCK_PLAN is format version {data['version']}, newer than this pack's "
                                 f"{VERSION}; update ComfyUI-AdaptiveSkip")
        for key in ("model", "blocks", "mask"):
            if key not in data:
                raise BlockPlanError(f"BLOCK_PLAN text has no {key!r} entry")
        rows = data["mask"]
        if not isinstance(rows, list) or any(not isinstance(r, str) or set(r) - {"0", "1"} for r in rows):
            raise BlockPlanError("BLOCK_PLAN \"mask\" must be a list of strings of 0 and 1, one per step")
        plan = cls(mask=tuple(tuple(c == "1" for c in r) for r in rows), blocks=tuple(data["blocks"]),
                   model=str(data["model"]), sigmas=tuple(data.get("sigmas") or ()), note=str(data.get("note", "")),
                   weights=tuple(data.get("weights") or ()), sampler=str(data.get("sampler", "")),
                   skipped=str(data.get("skipped", PASS_THROUGH)),
                   cache_key=str(data.get("cache_key", "")), search=data.get("search") or {})
        if "cost" in data and abs(float(data["cost"]) - plan.cost) > 1e-4:
            raise BlockPlanError(f"BLOCK_PLAN text says cost {data['cost']} but its mask costs {plan.cost:.6f}; "
                                 "the text was edited inconsistently: fix the mask or delete the \"cost\" entry")
        return plan

    @classmethod
    def from_text(cls, text: str) -> "BlockPlan":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise BlockPlanError(f"BLOCK_PLAN text is not JSON ({err}); paste the whole text of a saved plan")
        return cls.from_dict(data)


# --- plan makers -------------------------------------------------------------------------------------------------
def full_plan(steps: int, blocks: Sequence[BlockId], model: str, **kw) -> BlockPlan:
    return BlockPlan(tuple((True,) * len(blocks) for _ in range(steps)), tuple(blocks), model, **kw)


def kept_calls(cost: float, steps: int, blocks: int) -> int:
    """Block calls a plan of this cost holds (at least one per step, since a step with no block is not a model)."""
    if not 0.0 < cost <= 1.0:
        raise BlockPlanError(f"cost_target {cost} must be in (0, 1]: the fraction of block compute kept")
    return max(steps, min(steps * blocks, round(cost * steps * blocks)))


def uniform_plan(steps: int, blocks: Sequence[BlockId], model: str, dropped: Sequence[int], **kw) -> BlockPlan:
    """The same blocks (indices into `blocks`) dropped at every step (at every step after the first for a reuse
    plan, skipped="reuse", whose first step runs every block)."""
    off = set(dropped)
    row = tuple(i not in off for i in range(len(blocks)))
    if not any(row):
        raise BlockPlanError("a uniform plan must keep at least one block")
    rows = [row] * steps
    if kw.get("skipped") == REUSE:
        rows[0] = (True,) * len(blocks)
    return BlockPlan(tuple(rows), tuple(blocks), model, **kw)


def evenly_dropped(blocks: int, count: int, offset: float = 0.5) -> list[int]:
    """`count` block indices spread evenly over 0..blocks-1 (offset in [0, 1) shifts the grid)."""
    if count <= 0:
        return []
    picks = sorted({min(blocks - 1, int((k + offset) * blocks / count)) for k in range(count)})
    rest = [i for i in range(blocks) if i not in picks]
    return picks + rest[:count - len(picks)]


def random_plan(steps: int, blocks: Sequence[BlockId], model: str, cost: float, rng: random.Random,
                **kw) -> BlockPlan:
    """A plan with exactly kept_calls(cost) block calls at random places, at least one block per step (a reuse
    plan, skipped="reuse": every block at the first step, the rest at random)."""
    n = len(blocks)
    keep = kept_calls(cost, steps, n)
    mask = [[False] * n for _ in range(steps)]
    first = 0
    if kw.get("skipped") == REUSE:
        check_reuse_budget(keep, steps, n)
        mask[0], first = [True] * n, 1
    for s in range(first, steps):
        mask[s][rng.randrange(n)] = True
    free = [(s, b) for s in range(first, steps) for b in range(n) if not mask[s][b]]
    for s, b in rng.sample(free, keep - sum(map(sum, mask))):
        mask[s][b] = True
    return BlockPlan(tuple(tuple(r) for r in mask), tuple(blocks), model, **kw)


def min_block_calls(steps: int, blocks: int, skipped: str) -> int:
    """The fewest block calls a plan can hold: one per step, and for a reuse plan every block at step 0."""
    return blocks + steps - 1 if skipped == REUSE else steps


def check_reuse_budget(keep: int, steps: int, blocks: int) -> None:
    """A reuse plan runs every block at step 0 and at least one at every later step: refuse a budget below that."""
    least = min_block_calls(steps, blocks, REUSE)
    if keep < least:
        raise BlockPlanError(f"a reuse plan of {steps} steps x {blocks} blocks runs every block at its first step "
                             f"and one block at each later step ({least} block calls) but the cost "
                             f"target keeps {keep}; raise cost_target to at least {least / (steps * blocks):.3f}")
