"""Benchmark AdaptiveSkip against every peer on the bundled models, in one process, runs interleaved.

    python scripts/benchmark.py --quick          # CI-sized (minutes)
    python scripts/benchmark.py --full           # the numbers in BENCHMARKS.md (both bundled models)
    python scripts/benchmark.py --full --model mnist_dit   # only the flow DiT (MNIST, loaded as SD3)
    python scripts/benchmark.py --smoke          # tiny random model, seconds (used by the tests)
    python scripts/benchmark.py --skip-report    # the README's default-settings table only

For each sampler under test (euler, ddim, dpmpp_2m, dpmpp_2m_sde at 50 steps) it runs, through ComfyUI's real
samplers (comfy.sample.sample): the full-step run and a high-accuracy reference; fewer steps of the same sampler
and of ComfyUI's higher-order samplers at each call budget; AdaptiveSkip (pack patch, nodes.patch.attach) over
its rules, reuse modes and targets; ComfyUI's EasyCache and LazyCache nodes; the skip-path oracle and searched
schedules. Then it scores every run against both references and writes
results/benchmark.csv, results/benchmark.md and Pareto plots, plus the controller's overhead on an SD1.5-shaped
UNet. All runs of a pass are shuffled together so machine noise hits every method alike.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import comfy_env
from bench import plan as P
from pack_loader import pack_module

log = logging.getLogger("adaptive_skip.benchmark")


# --model choice -> Mode.model
MODEL_CHOICES = {"digits": "bundled", "mnist_dit": "mnist_dit"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick", help="CI-sized run (default)")
    size.add_argument("--full", dest="mode", action="store_const", const="full", help="the full benchmark")
    size.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="smallest configuration on a tiny random-weight model (seconds; for tests)")
    ap.add_argument("--model", choices=tuple(MODEL_CHOICES),
                    help="bundled model to measure: digits (SD1.5-shaped eps UNet, 8x8 digits) or mnist_dit (flow "
                         "MMDiT loaded as SD3, 28x28 MNIST); default: both in --full, digits in --quick, a tiny random "
                         "model in --smoke")
    ap.add_argument("--out", type=Path, default=comfy_env.PACK_ROOT / "results",
                    help="output folder (mnist_dit writes into its mnist_dit/ subfolder)")
    ap.add_argument("--seeds", type=int, help="seeds (batch size) instead of the mode's")
    ap.add_argument("--sections", help="comma-separated samplers under test, e.g. euler,dpmpp_2m")
    ap.add_argument("--repeats", type=int, help="timing passes (wall time = median over passes)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: on a shared machine more threads mostly wait on each other)")
    ap.add_argument("--no-sd15", action="store_true", help="skip the SD1.5-shaped overhead measurement")
    ap.add_argument("--no-oracle", action="store_true", help="skip the oracle section")
    ap.add_argument("--resume", action="store_true",
                    help="reuse runs (and oracle paths) cached in OUT/runs_<mode>.pt by an earlier run of the same "
                         "mode; only missing runs are sampled")
    ap.add_argument("--publish", action="store_true",
                    help="also write BENCHMARKS.md and copy the plots to docs/bench/ (keeps its analysis block)")
    ap.add_argument("--no-schedules", action="store_true", help="skip the searched-schedule section")
    ap.add_argument("--skip-report", action="store_true",
                    help="only print the README's table of the published rule at default settings on the bundled "
                         "model (--seeds default 16, --repeats default 3)")
    ap.set_defaults(mode="quick")
    return ap.parse_args(argv)


def machine_description() -> dict[str, str]:
    import torch
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 ** 2:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        comfy_version = importlib.import_module("comfyui_version").__version__
    except Exception:  # only a label
        comfy_version = "unknown"
    return {"cpu": f"{cpu}, {os.cpu_count()} logical cores, {mem}", "torch_threads": str(torch.get_num_threads()),
            "python": platform.python_version(), "torch": torch.__version__, "comfyui": comfy_version,
            "os": platform.platform(), "load_average_start": " ".join(f"{v:.2f}" for v in os.getloadavg())}


CHECKPOINT_S = 300  # how often a long run saves its finished runs for --resume (a killed run loses at most this)


def run_all(harness, specs: list[P.RunSpec], repeats: int, rng: random.Random, cached: dict | None = None,
            checkpoint=None) -> dict:
    """Run every spec `repeats` times; each pass in a new random order. Samples come from the first pass.
    Specs whose key is in `cached` are taken from there instead. `checkpoint(results)`, when given, is called
    every CHECKPOINT_S seconds with the runs finished so far."""
    cached = cached or {}
    last_save = time.perf_counter()
    results: dict[str, object] = {k: v for k, v in cached.items() if k in {s.key for s in specs}}
    specs = [s for s in specs if s.key not in results]
    total, done, start = len(specs) * repeats, 0, time.perf_counter()
    for rep in range(repeats):
        order = specs[:]
        rng.shuffle(order)
        for spec in order:
            res = harness.run(spec)
            done += 1
            if spec.key in results:
                first = results[spec.key]
                first.walls.append(res.wall)
                first.wall = statistics.median(first.walls)
            else:
                results[spec.key] = res
            if checkpoint is not None and rep == 0 and time.perf_counter() - last_save > CHECKPOINT_S:
                checkpoint(results)
                last_save = time.perf_counter()
            if done % 10 == 0 or done == total:
                elapsed = time.perf_counter() - start
                log.warning("benchmark: %d/%d runs, %.0f s elapsed, ~%.0f s left", done, total, elapsed,
                            elapsed / done * (total - done))
    return results


# The pack files whose code decides what an AdaptiveSkip or oracle run computes.
MEASURED_CODE = ("core/config.py", "core/controller.py", "core/estimators.py", "core/reuse.py", "core/skip_path.py",
                 "core/sampler_steps.py", "core/oracle.py", "core/replay.py", "core/registry.py", "nodes/patch.py",
                 "nodes/oracle.py", *(f"core/{d}/{f.name}" for d in ("criteria", "reuse_modes")
                                      for f in sorted((comfy_env.PACK_ROOT / "core" / d).glob("*.py"))))


def code_identity() -> dict[str, str]:
    """The pack code a run measured: git commit, whether core/ or nodes/ had uncommitted changes, and a hash of
    the files in MEASURED_CODE (what --resume compares before reusing AdaptiveSkip and oracle runs)."""
    import hashlib
    import subprocess
    root = comfy_env.PACK_ROOT
    digest = hashlib.sha256()
    for name in MEASURED_CODE:
        path = root / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    out = {"code_hash": digest.hexdigest()[:16], "commit": "unknown", "dirty": ""}
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                       text=True, timeout=10).stdout.strip() or "unknown"
        status = subprocess.run(["git", "status", "--porcelain", "--", "core", "nodes"], cwd=root,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        out["dirty"] = "yes" if status else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return out


@dataclass
class Session:
    """One benchmark invocation's state, handed from plan to run, score and write."""

    args: argparse.Namespace
    mode: P.Mode
    command: str
    harness: Any
    pack: Any
    machine: dict[str, str]
    wall_start: float
    notes: list[str] = field(default_factory=list)
    plans: list = field(default_factory=list)
    specs: dict[str, P.RunSpec] = field(default_factory=dict)
    checks: list = field(default_factory=list)
    schedule_entries: list = field(default_factory=list)
    oracle_found: dict[str, object] = field(default_factory=dict)
    cache_path: Path | None = None
    cached: dict = field(default_factory=dict)
    cached_machine: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)


def models_to_run(args: argparse.Namespace) -> list[str]:
    """Mode.model values this invocation measures, in order."""
    if args.model:
        return [MODEL_CHOICES[args.model]]
    if args.mode == "smoke":
        return ["tiny"]
    return ["bundled", "mnist_dit"] if args.mode == "full" else ["bundled"]


def resolve_mode(args: argparse.Namespace, model: str | None = None) -> P.Mode:
    mode = P.MODES[args.mode]
    sections = None
    if args.sections:
        names = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = [n for n in names if n not in P.SECTIONS]
        if unknown:
            raise SystemExit(f"--sections: unknown {unknown}; choose from {', '.join(P.SECTIONS)}")
        sections = tuple(P.SECTIONS[n] for n in names)
    cfg = None
    if model == "mnist_dit":
        from bench.models import MNIST_DIT_CFG as cfg  # the DiT runs at its model card's cfg
    return P.with_overrides(mode, seeds=args.seeds, sections=sections, repeats=args.repeats, model=model, cfg=cfg)


def start(args: argparse.Namespace, mode: P.Mode, command: str) -> Session:
    """Boot ComfyUI, describe the machine, load the model and its inputs."""
    args.out.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()
    root, _nodes, pack = comfy_env.boot_comfyui()
    logging.getLogger().setLevel(logging.WARNING)  # one INFO line per sampling run would drown the progress
    import torch
    torch.set_num_threads(max(1, args.threads))
    from bench import harness as H
    from bench import models as M

    machine = machine_description()
    machine.update(code_identity())
    log.warning("benchmark %s on %s (ComfyUI %s at %s)", mode.name, machine["cpu"], machine["comfyui"], root)
    if mode.model == "mnist_dit":
        model, tables, decode = M.load_mnist_dit()
        positive, negative, latent, noise, _labels = M.mnist_dit_inputs(tables, mode.seeds)
    else:
        model, emb, decode = M.load_digits_model(mode.model)
        positive, negative, latent, noise, _labels = M.digits_inputs(emb, mode.seeds, mode.latent_side)
    harness = H.Harness(pack, model, positive, negative, latent, noise, mode.cfg, seed=0, decode=decode)
    return Session(args, mode, command, harness, pack, machine, wall_start)


def plan(ses: Session) -> None:
    """Every run to sample: the section plans, references, convergence checks, oracle paths, schedules; and what
    --resume can take from the cache."""
    from bench import harness as H
    from bench import optional as OPT
    args, mode, harness, notes = ses.args, ses.mode, ses.harness, ses.notes
    plans = P.build_plan(mode)
    for sp in plans:
        sp.high = H.high_accuracy_spec(harness, sp.section, mode)
    specs = ses.specs
    for sp in plans:
        for spec in [sp.full, sp.high] + sp.runs:
            specs.setdefault(spec.key, spec)
    if mode.check_steps:
        ode = next((sp for sp in plans if sp.section.kind == "ode" and sp.section.scheduler == "karras"), None)
        if ode is not None:
            check = H.high_accuracy_spec(harness, ode.section, mode, steps=mode.check_steps, sampler="heun")
            ses.checks.append((ode, check))
            specs.setdefault(check.key, check)
    ses.cache_path = args.out / f"runs_{mode.name}.pt"
    cached, cached_oracle, cached_machine = H.load_results(ses.cache_path) if args.resume else ({}, {}, {})
    if cached and cached_machine.get("code_hash") != ses.machine["code_hash"]:
        stale = [k for k, r in cached.items() if r.spec.method in (P.ADAPTIVE, P.ORACLE)]
        for k in stale:
            del cached[k]
        cached_oracle = {}
        notes.append(f"--resume: the pack's skip code (MEASURED_CODE in benchmark.py) changed since "
                     f"{ses.cache_path.name} was written; its {len(stale)} AdaptiveSkip and oracle runs were sampled "
                     "again" + ("" if args.no_oracle else " and the oracle re-searched"))
    ses.cached, ses.cached_machine = cached, cached_machine
    if args.no_oracle:
        notes.append("oracle: skipped (--no-oracle)")
    elif not mode.oracle:
        notes.append(f"oracle: not searched in {mode.name} mode (its greedy search costs thousands of batched "
                     "sampling runs; see --full)")
    elif cached_oracle:
        for sp in plans:
            sp.runs += cached_oracle["specs"].get(sp.section.name, [])
        notes += cached_oracle["notes"] + [f"oracle: paths reused from {ses.cache_path.name} (--resume)"]
        ses.oracle_found = cached_oracle
    else:
        before = {sp.section.name: len(sp.runs) for sp in plans}
        driver_full: dict = {}
        oracle_notes = OPT.oracle_specs(harness, plans, mode, lambda m: log.warning("%s", m), driver_full)
        notes += oracle_notes
        ses.oracle_found = {"notes": oracle_notes, "driver_full": driver_full,
                            "specs": {sp.section.name: sp.runs[before[sp.section.name]:] for sp in plans}}
    for sp in plans:
        for spec in sp.runs:
            specs.setdefault(spec.key, spec)
    if not args.no_schedules:
        ses.schedule_entries, schedule_notes = OPT.schedule_specs(ses.pack, harness, comfy_env.PACK_ROOT,
                                                                  mode.ode_peers)
        notes += schedule_notes
        for _rec, mine, builtins, rivals in ses.schedule_entries:
            for spec in [mine] + builtins + rivals:
                specs.setdefault(spec.key, spec)
    ses.plans = plans


def run(ses: Session) -> None:
    """Sample every planned run (interleaved passes), and keep them in the --resume cache."""
    from bench import harness as H
    mode, specs, machine, cached = ses.mode, ses.specs, ses.machine, ses.cached
    log.warning("benchmark: %d distinct runs x %d pass(es), %d seeds, %s", len(specs), mode.repeats, mode.seeds,
                ", ".join(sp.section.name for sp in ses.plans))
    rng = random.Random(0)
    fresh = sum(1 for k in specs if k not in cached)
    identity = {k: machine[k] for k in ("code_hash", "commit", "dirty")}

    def checkpoint(done: dict) -> None:  # --resume takes these up if this run is stopped
        H.save_results(ses.cache_path, done, ses.oracle_found, dict(ses.cached_machine, **identity) if cached
                       else machine)
    if ses.oracle_found and not cached:
        checkpoint({})  # the oracle's paths are saved at once: its search is the longest part of a full run
    ses.results = run_all(ses.harness, list(specs.values()), mode.repeats, rng, cached, checkpoint)
    machine.update({"sampling_wall_s": f"{time.perf_counter() - ses.wall_start:.0f}",
                    "load_average_sampling_end": " ".join(f"{v:.2f}" for v in os.getloadavg())})
    original: dict[str, str] = {}
    if cached:
        original = ses.cached_machine
        if not original and (ses.args.out / "meta.json").is_file():
            original = json.loads((ses.args.out / "meta.json").read_text()).get("machine", {})
        original_end = original.get("load_average_end", original.get("load_average_sampling_end", "?"))
        machine.update(resumed="yes", fresh_runs=str(fresh),
                       original_wall_s=original.get("benchmark_wall_s", original.get("sampling_wall_s", "?")),
                       original_load=f"{original.get('load_average_start', '?')} / {original_end}")
        ses.notes.append(f"re-scored with --resume from {ses.cache_path.name}: {len(specs) - fresh} runs taken from "
                         f"the cache, {fresh} sampled now")
    H.save_results(ses.cache_path, ses.results, ses.oracle_found, dict(original, **identity) if cached else machine)


def score(ses: Session) -> tuple[list[dict], list[str], str]:
    """Every run against both references: (CSV rows, reference lines, the schedule table)."""
    from bench import harness as H
    from bench import models as M
    from bench import optional as OPT
    from bench import report as R
    results, notes = ses.results, ses.notes
    metrics, features = pack_module("core.metrics"), pack_module("core.digits_features")
    if ses.mode.model == "mnist_dit":
        mnist = pack_module("core.mnist_features")
        scorer = R.MnistScorer(metrics, mnist, mnist.load_mnist_classifier(M.MNIST_CLASSIFIER_PATH),
                               ses.harness.decode, distance=features.feature_distance)
    else:
        scorer = R.Scorer(metrics, features, features.load_digits_classifier(M.CLASSIFIER_PATH), ses.harness.decode)
    if any(s.method == P.EASYCACHE for s in ses.specs.values()) and H.easycache_needs_fix():
        notes.append(H.EASYCACHE_FIX_NOTE)
    schedule_md = ""
    ode_high = next((sp.high for sp in ses.plans if sp.section.kind == "ode" and sp.section.scheduler == "karras"),
                    None)
    if ses.schedule_entries and ode_high is not None:
        schedule_md = OPT.schedule_markdown(ses.schedule_entries, results, results[ode_high.key].samples, scorer,
                                            ses.mode.ode_peers)
    notes += OPT.driver_check(ses.oracle_found.get("driver_full", {}), ses.plans, results,
                              lambda a, b: float(metrics.latent_psnr(a, b)))
    rows = []
    for sp in ses.plans:
        rows += R.score_section(sp, results, scorer)
    reference_lines = []
    for sp in ses.plans:
        full, high = results[sp.full.key], results[sp.high.key]
        f = scorer.fidelity(full.samples, high.samples)
        reference_lines.append(f"- {sp.section.name}: full-step run = {sp.full.label} ({full.model_calls:g} calls); "
                               f"high-accuracy = {sp.high.label} ({high.model_calls:g} calls); full vs high: latent "
                               f"PSNR {f['psnr_latent']:.2f} dB, SSIM {f['ssim_latent']:.4f}")
    for sp, check in ses.checks:
        f = scorer.fidelity(results[check.key].samples, results[sp.high.key].samples)
        reference_lines.append(f"- convergence check: {check.label} vs {sp.high.label}: latent PSNR "
                               f"{f['psnr_latent']:.2f} dB, SSIM {f['ssim_latent']:.4f}")
    return rows, reference_lines, schedule_md


def measure_overhead(ses: Session) -> dict | None:
    """The controller's overhead on an SD1.5-shaped UNet (reused under --resume when the pack code is the same)."""
    args, mode, machine, out = ses.args, ses.mode, ses.machine, ses.args.out
    saved_overhead = json.loads((out / "overhead_sd15.json").read_text()) if args.resume and \
        (out / "overhead_sd15.json").is_file() else {}
    if mode.sd15_steps and not args.no_sd15 and saved_overhead.get("code_hash") == machine["code_hash"]:
        ses.notes.append("SD1.5 overhead: reused from overhead_sd15.json (--resume, same pack code)")
        return saved_overhead
    if mode.model == "mnist_dit" and mode.sd15_steps and not args.no_sd15:
        ses.notes.append("SD1.5 overhead: measured with the digits model only (it does not depend on the model "
                         "under test)")
        return None
    if mode.sd15_steps and not args.no_sd15:
        from bench import overhead as O
        overhead = O.measure_sd15_overhead(ses.pack, mode.sd15_steps, repeats=1, log=lambda m: log.warning("%s", m))
        overhead["code_hash"] = machine["code_hash"]
        (out / "overhead_sd15.json").write_text(json.dumps(overhead, indent=2))
        return overhead
    return None


def write(ses: Session, rows: list[dict], reference_lines: list[str], schedule_md: str,
          overhead: dict | None) -> None:
    """CSV, plots, the markdown report (and BENCHMARKS.md with --publish), meta.json and the skip paths."""
    from bench import harness as H
    from bench import markdown as MD
    from bench import plot as PL
    from bench import report as R
    args, mode, machine, out, results = ses.args, ses.mode, ses.machine, ses.args.out, ses.results
    R.write_csv(rows, out / "benchmark.csv")
    pareto_paths = PL.plot_pareto(rows, out)
    machine["load_average_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    machine["benchmark_wall_s"] = f"{time.perf_counter() - ses.wall_start:.0f}"
    if not ses.cached:  # the cache keeps the description of the session that sampled the runs
        H.save_results(ses.cache_path, results, ses.oracle_found, machine)
    md = MD.markdown_report(mode, ses.plans, rows, reference_lines, ses.notes, machine, ses.command, overhead,
                            schedule_md, [p.name for p in pareto_paths])
    (out / "benchmark.md").write_text(md)
    if args.publish:
        log.warning("benchmark: wrote %s", MD.publish(md, out, comfy_env.PACK_ROOT, [p.name for p in pareto_paths],
                                                      model=mode.model))
    meta = {"mode": mode.name, "seeds": mode.seeds, "steps": mode.steps, "cfg": mode.cfg, "budgets": list(mode.budgets),
            "machine": machine, "command": ses.command, "notes": ses.notes, "runs": len(ses.specs),
            "repeats": mode.repeats}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    with open(out / "skip_paths.jsonl", "w") as fh:
        for spec_key, res in results.items():
            if res.skip_path is not None:
                fh.write(json.dumps({"key": spec_key, "path": res.skip_path}) + "\n")
    log.warning("benchmark: wrote %s (%s s)", out / "benchmark.md", machine["benchmark_wall_s"])


def main(argv: list[str] | None = None) -> int:
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.skip_report:
        comfy_env.boot_comfyui()
        from bench.skip_report import skip_report
        skip_report(seeds=args.seeds or 16, repeats=args.repeats or 3)
        return 0
    for model in models_to_run(args):
        out = args.out / "mnist_dit" if model == "mnist_dit" else args.out
        ses = start(argparse.Namespace(**{**vars(args), "out": out}), resolve_mode(args, model), command)
        plan(ses)
        run(ses)
        rows, reference_lines, schedule_md = score(ses)
        write(ses, rows, reference_lines, schedule_md, measure_overhead(ses))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.exit(main())
