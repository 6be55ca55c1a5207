"""Benchmark sections that depend on modules other engineers write: the skip-path oracle (core/oracle.py) and
searched schedules (core/schedule_library.py records in schedules/). Each returns notes saying what ran or why it
was left out, so a missing or changed module never breaks the rest of the benchmark.

Oracle search: core.oracle.greedy_skip_path with an `evaluate(masks) -> errors` callback. The callback runs
ComfyUI's own k-diffusion sampler function on a batch holding one copy of the oracle seeds per mask, with the
core's BatchedReplay deciding per row which calls to compute (shared prefixes computed once) and the CFG model
call made with ComfyUI's BaseModel.apply_model. Error = latent MSE against the same driver's full-step run. The
masks it finds are then replayed on all seeds through the real pack patch (forced_path), like every other run.
"""
from __future__ import annotations

import importlib
import math
import time
from pathlib import Path
from typing import Any

import torch

from . import plan as P

SAMPLER_FUNCTION = {"ddim": "euler"}  # ComfyUI runs ddim as sample_euler


class OracleDriver:
    """Batched evaluation of compute masks for one deterministic sampler on the first `seeds` seeds."""

    def __init__(self, pack, harness, section: P.Section, steps: int, reuse: str, seeds: int) -> None:
        import comfy.samplers
        self.oracle = importlib.import_module(f"{pack.__name__}.core.oracle")
        sampler_steps = importlib.import_module(f"{pack.__name__}.core.sampler_steps")
        orders = importlib.import_module(f"{pack.__name__}.core.reuse").ORDERS
        self.harness, self.seeds, self.order = harness, seeds, orders[reuse]
        self.sigmas = harness.sigmas_for(section.sampler, section.scheduler, steps)
        self.function = comfy.samplers.ksampler(SAMPLER_FUNCTION.get(section.sampler, section.sampler)).sampler_function
        self.calls_in_step = sampler_steps.calls_per_step(self.function.__name__)
        if self.calls_in_step is None:
            raise ValueError(f"sampler {section.sampler} cannot be replayed by the oracle")
        self.base = harness.model.model
        ms = harness.model_sampling
        max_denoise = math.isclose(float(ms.sigma_max), float(self.sigmas[0]), rel_tol=1e-5) or \
            float(self.sigmas[0]) > float(ms.sigma_max)
        noise = harness.noise[:seeds]
        self.x0 = ms.noise_scaling(self.sigmas[0], noise.clone(), self.base.process_latent_in(harness.latent[:seeds]),
                                   max_denoise)
        self.cond = harness.positive[0][0][:seeds]
        self.uncond = harness.negative[0][0]
        self.memo: dict[tuple[bool, ...], float] = {}
        self.rows_computed = 0
        self.evaluations = 0
        self.full = self._run([[True] * steps])[0]

    @torch.no_grad()
    def _run(self, masks: list[list[bool]]) -> list[torch.Tensor]:
        n, b = len(masks), self.seeds
        x = self.x0.repeat(n, 1, 1, 1)
        cond = self.cond.repeat(n, 1, 1)
        uncond = self.uncond.expand(n * b, -1, -1)
        replay = self.oracle.BatchedReplay(masks, b, [float(s) for s in self.sigmas], self.calls_in_step, self.order)
        cfg = self.harness.cfg

        def model_fn(x_in: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
            def compute(rows: list[int]) -> torch.Tensor:
                xs, sig = x_in[rows], sigma[rows]
                out = self.base.apply_model(torch.cat([xs, xs]), torch.cat([sig, sig]),
                                            c_crossattn=torch.cat([cond[rows], uncond[rows]]))
                c, u = out.chunk(2)
                return u + (c - u) * cfg
            return replay(x_in, float(sigma.flatten()[0]), compute)

        out = self.function(model_fn, x, self.sigmas, extra_args={}, callback=None, disable=True)
        self.rows_computed += replay.row_calls
        final = self.base.process_latent_out(out.float())
        return [final[i * b:(i + 1) * b] for i in range(n)]

    def evaluate(self, masks: list[list[bool]]) -> list[float]:
        """Latent MSE of each mask's final samples against the full-step run (memoised across searches)."""
        todo = [m for m in dict.fromkeys(tuple(m) for m in masks) if m not in self.memo]
        if todo:
            finals = self._run([list(m) for m in todo])
            self.evaluations += len(todo)
            for m, f in zip(todo, finals):
                self.memo[m] = float(((f - self.full) ** 2).mean())
        return [self.memo[tuple(m)] for m in masks]


def oracle_specs(pack, harness, plans: list[P.SectionPlan], mode: P.Mode, log) -> list[str]:
    """Search oracle paths for every deterministic section, reuse mode and budget; append their replay runs to the
    section plans. Returns notes (cost, driver check, what was left out)."""
    notes = []
    for sp in plans:
        if sp.section.kind != "ode":
            notes.append(f"oracle: {sp.section.name} left out: batched replay needs a deterministic sampler (an SDE "
                         "sampler's Brownian noise depends on the batch shape)")
            continue
        for reuse in [r for name, r in mode.oracle if name == sp.section.sampler]:
            start = time.perf_counter()
            driver = OracleDriver(pack, harness, sp.section, mode.steps, reuse, mode.oracle_seeds)
            found = 0
            for budget in sorted(mode.oracle_budgets, reverse=True):
                res = driver.oracle.greedy_skip_path(mode.steps, budget, driver.evaluate, warmup_steps=4,
                                                     batch_size=48, swap_passes=1, swap_reach=2)
                cfg = dict(forced_path=tuple(res.mask), reuse=reuse)
                sp.runs.append(P.RunSpec(P.ORACLE, sp.section.sampler, sp.section.scheduler, mode.steps,
                                         label=f"oracle {budget} {reuse}", skip=tuple(sorted(cfg.items()))))
                found += 1
            took = time.perf_counter() - start
            notes.append(f"oracle: {sp.section.name} {reuse}: {found} budgets searched on {mode.oracle_seeds} seeds, "
                         f"{driver.evaluations} masks evaluated, {driver.rows_computed} model rows (per-seed CFG "
                         f"calls), {took:.0f} s")
            log(notes[-1])
    return notes


def driver_check(pack, harness, plans: list[P.SectionPlan], results: dict, mode: P.Mode) -> list[str]:
    """How closely the oracle's own driver reproduces ComfyUI's full-step run on the oracle seeds."""
    metrics = importlib.import_module(f"{pack.__name__}.core.metrics")
    notes = []
    for sp in plans:
        if sp.section.kind != "ode" or not any(name == sp.section.sampler for name, _ in mode.oracle):
            continue
        driver = OracleDriver(pack, harness, sp.section, mode.steps, "hold", mode.oracle_seeds)
        ref = results[sp.full.key].samples[:mode.oracle_seeds]
        value = metrics.mean_db(metrics.psnr(driver.full, ref))
        notes.append(f"oracle driver check ({sp.section.name}): its full-step run vs ComfyUI's, latent PSNR "
                     f"{value:.1f} dB")
    return notes


# ------------------------------------------------------------------------------------------- schedules
SCHEDULE_DIRS = ("schedules",)
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
    library = importlib.import_module(f"{pack.__name__}.core.schedule_library")
    from comfy_extras.nodes_align_your_steps import AlignYourStepsScheduler
    out, notes = [], []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                rec = library.load_record(str(path))
            except ValueError as err:
                notes.append(f"searched schedules: skipped {path.name}: {err}")
                continue
            n = rec.steps
            mine = P.RunSpec(P.SCHEDULE, rec.sampler, "custom", n, label=f"searched {path.stem}",
                             sigmas=tuple(float(s) for s in rec.sigmas))
            ays = AlignYourStepsScheduler.execute("SD1", n, 1.0).result[0]
            rivals = [run for peer in peers if peer != rec.sampler for run in _schedule_runs(peer, n, ays)]
            out.append((rec, mine, _schedule_runs(rec.sampler, n, ays), rivals))
    if not out:
        notes.append("searched schedules: the schedules/ folder holds no readable schedule; section left out")
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
