"""Benchmark sections beyond the skip rules: the skip-path oracle and the shipped searched schedules. Each returns
notes saying what ran or why it was left out.

Oracle search: core.oracle.greedy_skip_path with an `evaluate(masks) -> errors` callback that is SkipPathOracle's
own batched evaluation: one ComfyUI sampling run (comfy.sample.sample, ComfyUI's CFG) of a batch holding one copy
of the oracle seeds per mask, the node's wrappers deciding per row which calls to compute (shared prefixes computed
once). Error = latent MSE against ComfyUI's full-step run of the same seeds. The masks it finds are then replayed on
all seeds through the real pack patch (forced_path), like every other run.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from pack_loader import pack_module

from . import plan as P

ORACLE_NODE = "nodes.oracle"  # SkipPathOracle and its batched evaluation (_OracleSpec and the two wrappers)


def _rows(value: Any, batch: int, seeds: int) -> Any:
    """`value`'s first `seeds` rows when it is a per-seed tensor of the conditioning's batch, else `value`."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return value[:seeds]
    return value


class OracleEvaluator:
    """Latent MSE of compute masks against the full-step run on the first `seeds` seeds, evaluated batched the way
    SkipPathOracle does (its own OUTER_SAMPLE / PREDICT_NOISE wrappers on a clone, ComfyUI's sampler and CFG);
    memoised across the budgets of one section."""

    def __init__(self, harness, section: P.Section, steps: int, reuse: str, seeds: int) -> None:
        import comfy.patcher_extension
        import comfy.sample
        self.node, self.harness, self.section, self.steps = pack_module(ORACLE_NODE), harness, section, steps
        self._pe, self._sample = comfy.patcher_extension, comfy.sample
        self.reuse = reuse
        self.seeds = seeds
        self.noise, self.latent = harness.noise[:seeds], harness.latent[:seeds]
        # the first `seeds` rows of the per-seed conditioning, its extras too (the DiT's pooled_output): ComfyUI
        # tiles them over a batch of masks
        self.positive = [[cond[:seeds], {k: _rows(v, cond.shape[0], seeds) for k, v in extra.items()}]
                         for cond, extra in harness.positive]
        self.memo: dict[tuple[bool, ...], float] = {}
        self.evaluations = self.runs = 0
        self.full = self._sample_batch(harness.model, 1)

    def _sample_batch(self, model, copies: int) -> torch.Tensor:
        with torch.no_grad():
            return self._sample.sample(model, self.noise.repeat(copies, 1, 1, 1), self.steps, self.harness.cfg,
                                       self.section.sampler, self.section.scheduler, self.positive,
                                       self.harness.negative, self.latent.repeat(copies, 1, 1, 1),
                                       disable_pbar=True, seed=self.harness.seed).float().cpu()

    def _run(self, masks: list[list[bool]]) -> list[torch.Tensor]:
        patched = self.harness.model.clone()
        patched.model_options.setdefault("transformer_options", {})[self.node.ORACLE_KEY] = self.node._OracleSpec(
            masks, self.seeds, self.reuse)
        patched.add_wrapper_with_key(self._pe.WrappersMP.OUTER_SAMPLE, self.node.ORACLE_KEY,
                                     self.node._oracle_outer_sample)
        patched.add_wrapper_with_key(self._pe.WrappersMP.PREDICT_NOISE, self.node.ORACLE_KEY,
                                     self.node._oracle_predict_noise)
        out = self._sample_batch(patched, len(masks))
        self.runs += 1
        return [out[k * self.seeds:(k + 1) * self.seeds] for k in range(len(masks))]

    def evaluate(self, masks: list[list[bool]]) -> list[float]:
        todo = [m for m in dict.fromkeys(tuple(m) for m in masks) if m not in self.memo]
        if todo:
            finals = self._run([list(m) for m in todo])
            self.evaluations += len(todo)
            for m, f in zip(todo, finals):
                self.memo[m] = float(((f - self.full) ** 2).mean())
        return [self.memo[tuple(m)] for m in masks]


def oracle_specs(harness, plans: list[P.SectionPlan], mode: P.Mode, log,
                 driver_full: dict[str, torch.Tensor] | None = None) -> list[str]:
    """Search oracle paths for every deterministic section, reuse mode and budget; append their replay runs to the
    section plans. Returns notes (cost, what was left out). `driver_full` receives, per section, the full-step
    samples the search compared against (for `driver_check`)."""
    oracle = pack_module("core.oracle")
    notes = []
    driver_full = {} if driver_full is None else driver_full
    for sp in plans:
        if sp.section.kind != "ode":
            notes.append(f"oracle: {sp.section.name} left out: batched replay needs a deterministic sampler (an SDE "
                         "sampler's Brownian noise depends on the batch shape)")
            continue
        for reuse in [r for name, r in mode.oracle if name == sp.section.sampler]:
            start = time.perf_counter()
            driver = OracleEvaluator(harness, sp.section, mode.steps, reuse, mode.oracle_seeds)
            driver_full[sp.section.name] = driver.full
            for budget in sorted(mode.oracle_budgets, reverse=True):
                res = oracle.greedy_skip_path(mode.steps, budget, driver.evaluate, warmup_steps=4,
                                              batch_size=48, swap_passes=1, swap_reach=2)
                cfg = dict(forced_path=tuple(res.mask), reuse=reuse)
                sp.runs.append(P.RunSpec(P.ORACLE, sp.section.sampler, sp.section.scheduler, mode.steps,
                                         label=f"oracle {budget} {reuse}", skip=tuple(sorted(cfg.items()))))
            took = time.perf_counter() - start
            notes.append(f"oracle: {sp.section.name} {reuse}: {len(mode.oracle_budgets)} budgets searched on "
                         f"{mode.oracle_seeds} seeds with SkipPathOracle's batched evaluation, {driver.evaluations} "
                         f"masks evaluated in {driver.runs} batched sampling runs, {took:.0f} s")
            log(notes[-1])
    return notes


def driver_check(driver_full: dict[str, torch.Tensor], plans: list[P.SectionPlan], results: dict, psnr) -> list[str]:
    """Notes: the search's full-step samples against the benchmark's full-step run of the same seeds (a search
    that optimised against another trajectory would show here, as the DiT's pooled conditioning once did)."""
    notes = []
    for sp in plans:
        mine = driver_full.get(sp.section.name)
        if mine is None or sp.full.key not in results:
            continue
        theirs = results[sp.full.key].samples[:mine.shape[0]]
        notes.append(f"oracle: {sp.section.name} driver check: the search's full-step run vs the benchmark's "
                     f"full-step run of the same {mine.shape[0]} seed(s): latent PSNR {psnr(mine, theirs):.1f} dB")
    return notes


# ------------------------------------------------------------------------------------------- schedules
SCHEDULE_DIRS = ("schedules", "schedules/mnist_dit")  # the flow DiT's searches in their own folder
COMFY_SCHEDULERS = ("karras", "exponential", "normal", "simple", "sgm_uniform", "beta", "kl_optimal")


def _schedule_runs(sampler: str, n: int, ays) -> list[P.RunSpec]:
    """`sampler` at N steps under every built-in scheduler and AYS (when it has a table for N)."""
    runs = [P.RunSpec(P.SCHEDULE, sampler, name, n, label=name) for name in COMFY_SCHEDULERS]
    if ays is not None:
        runs.append(P.RunSpec(P.SCHEDULE, sampler, "ays", n, label="ays", sigmas=tuple(float(s) for s in ays)))
    return runs


def schedule_specs(pack, harness, pack_root: Path, peers: tuple[str, ...]
                   ) -> tuple[list[tuple[Any, P.RunSpec, list[P.RunSpec], list[P.RunSpec]]], list[str]]:
    """For each shipped schedule record: (record, its run, built-in scheduler runs of its sampler at the same N,
    the same for every other peer sampler -- the best ComfyUI sampler at the same number of calls)."""
    folders = [pack_root / d for d in SCHEDULE_DIRS if (pack_root / d).is_dir()]
    if not folders or not (pack_root / "core" / "schedule_library.py").is_file():
        return [], ["searched schedules: no schedules/ folder with saved schedules; section left out"]
    library = pack_module("core.schedule_library")
    from comfy_extras.nodes_align_your_steps import AlignYourStepsScheduler
    base = harness.model.model
    model_type = f"{type(base.model_config).__name__}/{base.model_type.name}"
    out, notes, other = [], [], []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                rec = library.load_record(str(path))
            except ValueError as err:
                notes.append(f"searched schedules: skipped {path.name}: {err}")
                continue
            if rec.model_type != model_type:  # searched for another model: its sigmas mean nothing here
                other.append(path.name)
                continue
            n = rec.steps
            mine = P.RunSpec(P.SCHEDULE, rec.sampler, "custom", n, label=f"searched {path.stem}",
                             sigmas=tuple(float(s) for s in rec.sigmas))
            # AYS has an SD1.5 table, not one for flow models
            ays = AlignYourStepsScheduler.execute("SD1", n, 1.0).result[0] if model_type.startswith("SD15/") else None
            rivals = [run for peer in peers if peer != rec.sampler for run in _schedule_runs(peer, n, ays)]
            out.append((rec, mine, _schedule_runs(rec.sampler, n, ays), rivals))
    if other:
        notes.append(f"searched schedules: {len(other)} schedule(s) found for another model type than {model_type} "
                     f"left out ({', '.join(other)})")
    if not out:
        notes.append(f"searched schedules: the schedules/ folder holds no readable {model_type} schedule; section "
                     "left out")
    return out, notes


def schedule_markdown(entries, results: dict, high_samples: torch.Tensor, scorer, peers: tuple[str, ...]) -> str:
    """One table: each searched schedule next to every built-in scheduler at the same N, and next to the best
    other ComfyUI sampler under any built-in scheduler at the same number of model calls (latent PSNR against the
    ODE high-accuracy reference)."""
    if not entries:
        return ""
    lines = ["| sampler | N | searched | " + " | ".join(COMFY_SCHEDULERS) +
             " | ays | best built-in | best other sampler, any scheduler, same calls |",
             "|---|---|---|" + "---|" * (len(COMFY_SCHEDULERS) + 3)]

    def psnr_of(spec):
        res = results.get(spec.key)
        return None if res is None else scorer.fidelity(res.samples, high_samples)["psnr_latent"]

    def best_of(specs, calls):
        scored = [(psnr_of(s), s) for s in specs
                  if s.key in results and results[s.key].model_calls <= calls]
        scored = [(v, s) for v, s in scored if v is not None]
        return max(scored, key=lambda t: t[0]) if scored else (None, None)

    for rec, mine, builtins, rivals in sorted(entries, key=lambda e: (e[0].sampler, e[0].steps)):
        mine_value = psnr_of(mine)
        calls = results[mine.key].model_calls if mine.key in results else rec.steps
        by_name = {s.label: s for s in builtins}
        texts = []
        for name in list(COMFY_SCHEDULERS) + ["ays"]:
            value = psnr_of(by_name[name]) if name in by_name else None
            texts.append("—" if value is None else f"{value:.1f}")
        best_value, best_spec = best_of(builtins, math.inf)
        rival_value, rival_spec = best_of(rivals, calls)

        def verdict(value):
            if mine_value is None or value is None:
                return ""
            return " (searched ahead)" if mine_value > value else " (it is ahead)"
        best_text = "—" if best_spec is None else f"{best_spec.label} {best_value:.1f}{verdict(best_value)}"
        rival_text = ("—" if rival_spec is None else
                      f"{rival_spec.sampler} + {rival_spec.label} {rival_value:.1f}{verdict(rival_value)}")
        mine_text = "—" if mine_value is None else f"{mine_value:.1f}"
        lines.append(f"| {rec.sampler} | {rec.steps} | {mine_text} | " + " | ".join(texts) +
                     f" | {best_text} | {rival_text} |")
    return ("Schedules shipped in schedules/ (found by the pack's evolutionary search) against ComfyUI's built-in "
            "schedulers and AYS at the same number of steps N, and against the best of the other ODE samplers ("
            + ", ".join(peers) + ") under any of those schedules at no more model calls: latent PSNR (dB) "
            "against the ODE high-accuracy reference (all seeds of this benchmark, not the seeds the search used).\n\n"
            + "\n".join(lines))
