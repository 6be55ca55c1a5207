"""Batched replay: one sampling run that follows a different compute mask in each batch row, so the oracle and
the skip-path search evaluate many candidate paths for the cost of one batched run (host-free; the adapter in
nodes/oracle.py feeds it the model calls)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .reuse import PredictionCache
from .sampler_steps import StepCounter, StepOverrun


class BatchedReplay:
    """One sampling run that replays a different compute mask in each batch row (for batched oracle evaluation).

    Row r follows masks[r // rows_per_mask]: on a computed step its model output is cached as d = (x - D)/σ, on a
    skipped one D' is rebuilt from that row's own cache (hold or extrapolated, as the patch's replay does). Rows
    with the same latent index and the same input are computed once, so candidates that share a prefix share its
    model calls. Only valid for deterministic samplers: ancestral and SDE samplers draw different noise per row.

    Args:
        masks: compute masks, one per candidate, each `steps` long.
        rows_per_mask: latent batch size B (rows r*B .. r*B+B-1 belong to mask r).
        sigmas: the run's schedule (steps+1 values).
        calls_in_step: (step, sigmas) -> model calls the sampler makes in that step.
        reuse: the reuse mode, by name (or its polynomial order: 0 hold, 1 linear, 2 quadratic).
    """

    def __init__(self, masks: Sequence[Sequence[bool]], rows_per_mask: int, sigmas: Sequence[float],
                 calls_in_step: Callable[[int, Sequence[float]], int], reuse: str | int = "hold") -> None:
        steps = len(sigmas) - 1
        for m in masks:
            if len(m) != steps:
                raise ValueError(f"a mask has {len(m)} steps but the run has {steps}")
        self.masks = [list(m) for m in masks]
        self.rows_per_mask = rows_per_mask
        self.sigmas = list(sigmas)
        self.counter = StepCounter(self.sigmas, calls_in_step)
        self.caches = [PredictionCache(reuse) for _ in range(len(masks) * rows_per_mask)]
        self.row_calls = 0  # rows actually sent through the model, after sharing identical ones

    @property
    def step(self) -> int:
        return self.counter.step

    def _computes(self, row: int) -> bool:
        return len(self.caches[row]) == 0 or self.masks[row // self.rows_per_mask][self.step]

    def __call__(self, x: torch.Tensor, sigma: float, compute: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
        """The denoised output for every row of `x` [rows, ...]; `compute(rows)` runs the model on those rows."""
        if x.shape[0] != len(self.caches):
            raise ValueError(f"the batch has {x.shape[0]} rows but {len(self.caches)} were prepared")
        try:
            self.counter.next_call()
        except StepOverrun as err:
            raise RuntimeError(f"{err}; this sampler cannot be replayed") from None
        rows = range(x.shape[0])
        computing = [r for r in rows if self._computes(r)]
        reps: list[int] = []
        rep_of: dict[int, int] = {}
        for r in computing:
            for k, q in enumerate(reps):
                if q % self.rows_per_mask == r % self.rows_per_mask and torch.equal(x[q], x[r]):
                    rep_of[r] = k
                    break
            else:
                rep_of[r] = len(reps)
                reps.append(r)
        out = torch.empty_like(x)
        if reps:
            computed = compute(reps)
            self.row_calls += len(reps)
            for r in computing:
                out[r] = computed[rep_of[r]]
                self.caches[r].store(x[r:r + 1], out[r:r + 1], sigma)
        for r in rows:
            if r not in rep_of:
                out[r] = self.caches[r].predict(x[r:r + 1], sigma)[0]
        return out
