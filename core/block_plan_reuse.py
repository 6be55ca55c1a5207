"""Block residual reuse: what a skipped block does in a BLOCK_PLAN with skipped="reuse".

A skipped block returns its input plus the residual (output minus input) it produced at the last step at which it
ran, for each stream of the block (a joint block's "img" and "txt"), for each batch row: the block caching of
Delta-DiT, FORA and Wimbauer et al. ("Cache Me If You Can", CVPR 2024). Host-free: the ComfyUI adapter
(nodes/block_plan.py) creates one ResidualCache per sampling run and calls it from the block replacement.

Keys. ComfyUI batches the conditionings of one step into one call or splits them over several (memory, areas,
cfg = 1): each call's rows are `len(chunks)` equal chunks, one per conditioning, named by the call's
transformer_options["uuids"] (one uuid per conditioning, stable over the run). A residual is stored per (block,
stream, chunk label), with one validity flag per row of the chunk, and used only for a chunk of the same label and
the same shape: a residual can never land on the rows of another conditioning, and a row that has none yet (a
conditioning first seen at a later step) runs the block instead (counted as a block call and a miss).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch


def chunk_labels(transformer_options: dict, rows: int) -> tuple[Hashable, ...]:
    """One label per equal chunk of a call's rows: the conditionings' uuids (cond/uncond order of this call)
    when they divide the rows, else a single chunk named by the row count."""
    uuids = transformer_options.get("uuids") if isinstance(transformer_options, dict) else None
    if uuids and rows % len(uuids) == 0:
        return tuple(("uuid", str(u)) for u in uuids)
    return (("rows", rows),)


class ResidualCache:
    """Per-run residuals of blocks, by (block, stream, chunk label): (residual rows, valid rows). Which streams a
    block returns (outputs that are tensors of their input's shape) is learned at its first run."""

    def __init__(self) -> None:
        self._store: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._streams: dict[Hashable, tuple[str, ...]] = {}
        self.updates = 0  # rows x streams written (tests and the log read it)

    @staticmethod
    def _chunks(tensor: torch.Tensor, labels: Sequence[Hashable]) -> list[torch.Tensor]:
        return list(tensor.chunk(len(labels))) if len(labels) > 1 else [tensor]

    def available(self, block, labels: Sequence[Hashable], args: dict, rows: int) -> list[bool]:
        """Per row of the call: whether every stream of `block` has a residual for it (same label, same shape)."""
        per = rows // len(labels)
        names = self._streams.get(block)
        if not names or any(not isinstance(args.get(n), torch.Tensor) for n in names):
            return [False] * rows
        out: list[bool] = []
        for c, label in enumerate(labels):
            ok = torch.ones(per, dtype=torch.bool)
            for name in names:
                entry = self._store.get((block, name, label))
                part = self._chunks(args[name], labels)[c]
                if entry is None or entry[0].shape != part.shape:
                    ok = torch.zeros(per, dtype=torch.bool)
                    break
                ok &= entry[1]
            out += ok.tolist()
        return out

    def update(self, block, labels: Sequence[Hashable], args: dict, outputs: dict, ran: Sequence[bool]) -> None:
        """Store output - input of the rows that ran (`ran` per row) for every stream; other rows keep theirs."""
        names = tuple(stream_names(args, outputs))
        self._streams[block] = names
        for name in names:
            ins, outs = self._chunks(args[name], labels), self._chunks(outputs[name], labels)
            per = ins[0].shape[0]
            for c, label in enumerate(labels):
                pick = torch.tensor(list(ran[c * per:(c + 1) * per]), dtype=torch.bool)
                if not pick.any():
                    continue
                residual = (outs[c] - ins[c]).detach()
                key = (block, name, label)
                entry = self._store.get(key)
                if entry is None or entry[0].shape != residual.shape:
                    entry = (torch.zeros_like(residual), torch.zeros(per, dtype=torch.bool))
                stored, valid = entry
                shaped = pick.to(residual.device).reshape(-1, *([1] * (residual.ndim - 1)))
                self._store[key] = (torch.where(shaped, residual, stored), valid | pick)
                self.updates += int(pick.sum())

    def reused(self, block, labels: Sequence[Hashable], args: dict) -> dict:
        """The block's outputs by reuse: every stream is input + stored residual for the rows `available` found one
        for; other entries pass through as they would for a skipped block (e.g. "txt" of a pre_only block)."""
        out = dict(args)
        for name in self._streams.get(block, ()):
            parts = []
            for part, label in zip(self._chunks(args[name], labels), labels):
                entry = self._store.get((block, name, label))  # none (or another shape): rows that ran instead
                parts.append(part + entry[0].to(part) if entry is not None and entry[0].shape == part.shape
                             else part)
            out[name] = torch.cat(parts) if len(parts) > 1 else parts[0]
        return out


def mix(on: Sequence[bool], computed: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Row r of `computed` where on[r], else row r of `kept`."""
    pick = torch.tensor(list(on), device=computed.device).reshape(-1, *([1] * (computed.ndim - 1)))
    return torch.where(pick, computed, kept)


def reuse_call(cache: ResidualCache, block, args: dict, on: Sequence[bool], original, store: bool):
    """One block call under a reuse plan: (outputs, whether the block ran, whether it ran for a miss). Rows whose
    plan skips the block get input + their stored residual; skipped rows without one run it (a miss); the block
    runs on the whole batch when any row runs, and `store` keeps the residuals of the rows that ran."""
    rows = len(on)
    labels = chunk_labels(args.get("transformer_options"), rows)
    have = [True] * rows if all(on) else cache.available(block, labels, args, rows)
    ran = [o or not h for o, h in zip(on, have)]
    if not any(ran):
        return cache.reused(block, labels, args), False, False
    out = original(args)
    missed = not all(o or h for o, h in zip(on, have))
    if store:
        cache.update(block, labels, args, out, ran)
    if all(ran):
        return out, True, missed
    reused = cache.reused(block, labels, args)
    return ({k: (mix(ran, v, reused[k]) if isinstance(v, torch.Tensor) and isinstance(reused.get(k), torch.Tensor)
                 and reused[k].shape == v.shape else v) for k, v in out.items()}, True, missed)


def stream_names(args: dict, outputs: dict) -> list[str]:
    """The streams of a block call that carry a residual: outputs that are tensors of their input's shape (a joint
    block's "img" and "txt"; not "txt" of SD3's last, pre_only block, which returns None; not "vec" or "pe", which
    a block reads but does not return)."""
    return [k for k, v in outputs.items() if isinstance(v, torch.Tensor) and isinstance(args.get(k), torch.Tensor)
            and v.shape == args[k].shape]
