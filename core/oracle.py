"""The optimal skip path under a call budget, approximated as AdaptiveDiffusion does (arXiv 2410.09873, Sec. 3):
start from the full-step path and greedily drop the step whose reuse hurts the final latent least, re-evaluating
after every drop, until K computed steps remain. A local swap pass then moves single computed steps to nearby
skipped ones while that lowers the error, which repairs most of greedy's early commitments at little cost.

The search is host-free: the caller supplies `evaluate(masks) -> errors` (run each compute mask, compare its final
latent with the full-step one, lower is better) and receives the masks in batches so it can run them batched
(core/replay.py runs one mask per batch row in a single sampling run).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .controller import even_plan
from .replay import BatchedReplay  # noqa: F401  (older imports: scripts/bench)

Mask = list[bool]
Evaluate = Callable[[list[Mask]], Sequence[float]]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class OracleStep:
    """One accepted move: the path then had `computed` computed steps and `error`; `action` says what changed."""

    computed: int
    error: float
    action: str


@dataclass
class OracleResult:
    mask: Mask
    error: float
    trace: list[OracleStep] = field(default_factory=list)
    evaluations: int = 0

    @property
    def computed(self) -> int:
        return sum(self.mask)


def fixed_steps(total_steps: int, warmup_steps: int) -> list[bool]:
    """Steps the search may not skip: step 0 (nothing is cached yet) and the warm-up."""
    return [i == 0 or i < warmup_steps for i in range(total_steps)]


class _Evaluator:
    """Batches, memoises and counts calls to the caller's evaluate."""

    def __init__(self, evaluate: Evaluate, batch_size: int, progress: Progress | None) -> None:
        self.evaluate, self.batch_size, self.progress = evaluate, batch_size, progress
        self.memo: dict[tuple[bool, ...], float] = {}
        self.count = 0
        self.expected = 0

    def __call__(self, masks: list[Mask]) -> list[float]:
        todo = list(dict.fromkeys(tuple(m) for m in masks if tuple(m) not in self.memo))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            errors = list(self.evaluate([list(m) for m in chunk]))
            if len(errors) != len(chunk):
                raise ValueError(f"evaluate returned {len(errors)} errors for {len(chunk)} masks; it must return one "
                                 "error per mask, in order")
            for m, e in zip(chunk, errors):
                e = float(e)
                self.memo[m] = e if not math.isnan(e) else math.inf
            self.count += len(chunk)
            if self.progress is not None:
                self.expected = max(self.expected, self.count)
                self.progress(self.count, self.expected)
        return [self.memo[tuple(m)] for m in masks]


def greedy_skip_path(total_steps: int, budget: int, evaluate: Evaluate, warmup_steps: int = 1,
                     batch_size: int = 16, swap_passes: int = 4, swap_reach: int = 2,
                     extra_starts: Sequence[Mask] | None = None, progress: Progress | None = None) -> OracleResult:
    """Greedy approximation of the best compute mask with `budget` computed steps.

    Args:
        total_steps: sampler steps N.
        budget: K, computed steps to keep (step 0 and the warm-up count towards it); K = N returns the full path.
        evaluate: masks (each N bools, True = call the model) -> error of each one's final latent against the
            full-step result (e.g. MSE); called with at most `batch_size` masks at a time.
        warmup_steps: the first steps are never skipped (step 0 never is).
        swap_passes: at most this many improving moves of the local swap pass after greedy; 0 is plain greedy.
        swap_reach: a swap moves one computed step by at most this many steps onto a skipped one.
        extra_starts: further K-step masks polished by the same swap search; the best result wins. None uses
            the evenly spaced plan, which helps extrapolated reuse, where greedy drops can get stuck; [] for none.
        progress: called as progress(evaluations done, evaluations expected) after each batch.
    Returns:
        OracleResult with the mask, its error, the accepted moves and the number of masks evaluated.
    """
    for name, value in (("total_steps", total_steps), ("budget", budget), ("warmup_steps", warmup_steps),
                        ("batch_size", batch_size), ("swap_passes", swap_passes), ("swap_reach", swap_reach)):
        if int(value) != value:
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    fixed = fixed_steps(total_steps, warmup_steps)
    if not sum(fixed) <= budget <= total_steps:
        raise ValueError(f"budget (model calls) must be between {sum(fixed)} (step 0 and the warm-up of "
                         f"{warmup_steps}) and {total_steps} (every step), got {budget}")
    if batch_size < 1 or swap_passes < 0 or swap_reach < 1:
        raise ValueError("batch_size and swap_reach must be >= 1 and swap_passes >= 0, "
                         f"got {batch_size}, {swap_reach}, {swap_passes}")
    ev = _Evaluator(evaluate, batch_size, progress)
    mask = [True] * total_steps
    ev.memo[tuple(mask)] = 0.0
    error = 0.0  # the full-step path is the reference itself
    trace: list[OracleStep] = []
    free = sum(not f for f in fixed)
    ev.expected = sum(free - d for d in range(total_steps - budget)) + swap_passes * 2 * swap_reach * budget // 2
    while sum(mask) > budget:
        candidates = [i for i in range(total_steps) if mask[i] and not fixed[i]]
        masks = [[m and j != i for j, m in enumerate(mask)] for i in candidates]
        errors = ev(masks)
        # least harm first; on a tie drop the later step (less left to propagate the error through)
        best = min(range(len(candidates)), key=lambda k: (errors[k], -candidates[k]))
        mask, error = masks[best], errors[best]
        trace.append(OracleStep(sum(mask), error, f"skip step {candidates[best]}"))
    mask, error, moves = _polish(mask, error, fixed, ev, swap_passes, swap_reach)
    trace += moves
    starts = even_starts(total_steps, budget, warmup_steps) if extra_starts is None else extra_starts
    for start in starts:
        if len(start) != total_steps:
            raise ValueError(f"extra_starts must be masks of {total_steps} steps, got one of {len(start)}")
        start = [bool(v) or f for v, f in zip(start, fixed)]
        if sum(start) != budget:
            raise ValueError(f"extra_starts must have {budget} computed steps (step 0 and the warm-up included), "
                             f"got one with {sum(start)}")
        start_error = ev([start])[0]
        other, other_error, other_moves = _polish(start, start_error, fixed, ev, swap_passes, swap_reach)
        if other_error < error:
            label = "restart from evenly spaced calls" if extra_starts is None else "restart from a given mask"
            trace += [OracleStep(budget, start_error, label)] + other_moves
            mask, error = other, other_error
    return OracleResult(mask=mask, error=error, trace=trace, evaluations=ev.count)


def even_starts(total_steps: int, budget: int, warmup_steps: int) -> list[Mask]:
    """Evenly spaced K-call masks: warm-up then regular gaps (as the 'calls' criterion spends them), and a
    uniform grid over all steps with the warm-up forced in (adjusted to K calls)."""
    first = even_plan(total_steps, max(warmup_steps, 1), budget)
    fixed = fixed_steps(total_steps, warmup_steps)
    grid = list(fixed)
    for j in range(total_steps):  # walk the uniform grid, then fill from the end until K calls are spent
        i = (j * total_steps) // budget if j < budget else total_steps - 1 - (j - budget)
        if sum(grid) >= budget:
            break
        grid[i] = True
    return [first] if grid == first else [first, grid]


def _polish(mask: Mask, error: float, fixed: list[bool], ev: _Evaluator, passes: int,
            reach: int) -> tuple[Mask, float, list[OracleStep]]:
    """Local search: move one computed step by at most `reach` onto a skipped one, best move first, while that
    lowers the error (at most `passes` moves)."""
    trace: list[OracleStep] = []
    n = len(mask)
    for _ in range(passes):
        moves = [(c, s) for c in range(n) if mask[c] and not fixed[c]
                 for s in range(max(c - reach, 0), min(c + reach, n - 1) + 1) if not mask[s] and not fixed[s]]
        if not moves:
            break
        masks = []
        for c, s in moves:
            m = list(mask)
            m[c], m[s] = False, True
            masks.append(m)
        errors = ev(masks)
        best = min(range(len(moves)), key=lambda k: errors[k])
        if not errors[best] < error:
            break
        mask, error = masks[best], errors[best]
        trace.append(OracleStep(sum(mask), error, f"compute step {moves[best][1]} instead of {moves[best][0]}"))
    return mask, error, trace
