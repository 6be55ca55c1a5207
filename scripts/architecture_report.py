"""Issue-14 report: AutoDiffusion's architecture stage (per-step block plans) on the bundled MNIST flow DiT.

    python scripts/architecture_report.py                      # costs 1.0 0.8 0.6 0.5 at N = 10, euler
    python scripts/architecture_report.py --root /work/wt13    # model, classifier and MNIST split from another tree
    python scripts/architecture_report.py --skipped reuse --out docs/architecture_stage_reuse  # residual reuse

For each block cost c: the plan EvoArchitectureSearch finds (fitness: latent MSE to every block on the same SIGMAS,
on --fit-seeds seeds), the best uniform plan (the same blocks dropped at every step; the best of the search's
uniform seeds by that fitness) and random plans of the same cost. Next to them, "timesteps only": every block at
fewer steps (the same block compute as cost c at N steps), and optionally a stage-1 schedule (--schedule FILE, a
saved EvoTimestepSchedule record) with the two-stage result on it. Every point is scored on held-out seeds (classes
cycling 0-9): the Fréchet distance of MNIST-classifier features against the held-out real digits, the PSNR of the
decoded digits against a high-accuracy reference (--reference-steps of the same sampler, every block), and the
wall time of sampling the held-out batch (best of --repeats). Writes a JSON of all rows and a Pareto plot.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
PACK = HERE.parent
sys.path.insert(0, str(HERE))
import comfy_env  # noqa: E402
import pack_loader  # noqa: E402

sys.path.remove(str(HERE))
DIT = "models/diffusion_models/adaptive_skip_mnist_dit.safetensors"
COND = "models/adaptive_skip_mnist_dit_cond.safetensors"
CLASSIFIER = "models/mnist_classifier.safetensors"
HOLDOUT_SEED = 10_000
NEGATIVE_ROW = 10  # the tables' null class


def conditioning(table: dict, classes: list[int]):
    """The class rows of a model's tables as CONDITIONING: context tokens, plus the pooled vector where the model
    has one (the bundled SD3-detected DiT; the Wan-detected study model has context only)."""
    ctx = table["context"][classes]
    return [[ctx, {"pooled_output": table["pooled"][classes]}]] if "pooled" in table else [[ctx, {}]]


def empty_latent(model) -> dict:
    """One empty 8x8 MNIST latent in the model's latent format: (1, 16, 8, 8), or one video frame (1, 16, 1, 8, 8)
    for a Wan21-format model."""
    if model.model.latent_format.latent_dimensions == 3:
        return {"samples": torch.zeros(1, 16, 1, 8, 8)}
    return {"samples": torch.zeros(1, 16, 8, 8)}


@dataclass
class Study:
    """What both architecture studies (this script and architecture_wall_time.py) set up: the pack's block-plan
    modules, the MNIST DiT and its tables from `root`, the MNIST classifier, the held-out real digits and their
    classifier features, and the sampler."""

    pack: Any
    bp: Any  # nodes.block_plan
    search_node: Any  # nodes.architecture_search
    core_plan: Any  # core.block_plan
    plan_search: Any  # core.block_plan_search
    frechet: Any  # core.frechet
    mf: Any  # core/mnist_features.py of `root`
    model: Any
    table: dict
    classifier: Any
    held: Any  # held-out real digits (N, 28, 28) and their labels
    held_labels: Any
    real: torch.Tensor  # classifier features of every held-out digit
    sampler: Any
    model_sampling: Any
    info: Any  # bp.model_blocks(model)
    cfg: float
    latent: dict  # empty_latent(model)
    wan_latent: Any = None  # core/mnist_wan_latent.py for a Wan21-format model, else None

    def runner(self, sigmas, count: int, first_seed: int, classes=range(10)):
        """A PlanSampler of `count` seeds from `first_seed`, classes cycling through `classes`, negative null."""
        classes = list(classes)
        rows = [classes[i % len(classes)] for i in range(count)]
        return self.search_node.PlanSampler(self.model, conditioning(self.table, rows),
                                            conditioning(self.table, [NEGATIVE_ROW] * count),
                                            self.latent, sigmas, self.sampler, self.cfg, count, first_seed)

    def digits(self, latent: torch.Tensor) -> torch.Tensor:
        if self.wan_latent is not None:  # the Wan21 LATENT of a digit -> the bundled map's SD3 LATENT
            latent = self.wan_latent.wan_latent_to_sd3_latent(latent, self.mf.SD3_SCALE, self.mf.SD3_SHIFT)
        return self.mf.latent_to_mnist(latent, float(self.table["latent_mean"]), float(self.table["latent_std"]))


def load_study(root: Path, sampler_name: str, cfg: float, model_file: str = "", cond_file: str = "") -> Study:
    """Boot ComfyUI (progress bars off) and load everything a Study holds; `root` holds models/,
    core/mnist_features.py and scripts/train_mnist_classifier.py (this tree, or another one). The model is the
    bundled DiT unless `model_file` and `cond_file` name another MNIST model and its tables (e.g. the Wan-detected
    one of scripts/train_mnist_wan.py); the latent layout follows the model's latent format."""
    _, _, pack = comfy_env.boot_comfyui()
    import comfy.samplers
    import comfy.sd
    import comfy.utils
    from safetensors.torch import load_file
    comfy.utils.set_progress_bar_enabled(False)
    mf = pack_loader.file_module("arch_mnist_features", root / "core" / "mnist_features.py")
    split = pack_loader.file_module("arch_mnist_split", root / "scripts" / "train_mnist_classifier.py")
    if bool(model_file) != bool(cond_file):
        raise SystemExit("--model-file and --cond-file go together (the model's class tables and latent constants)")
    model = comfy.sd.load_diffusion_model(str(Path(model_file) if model_file else root / DIT))
    classifier = mf.load_mnist_classifier(root / CLASSIFIER)
    _, _, held, held_labels = split.mnist_split()
    bp = pack_loader.pack_module("nodes.block_plan")
    latent = empty_latent(model)
    return Study(pack=pack, bp=bp, search_node=pack_loader.pack_module("nodes.architecture_search"),
                 core_plan=pack_loader.pack_module("core.block_plan"),
                 plan_search=pack_loader.pack_module("core.block_plan_search"),
                 frechet=pack_loader.pack_module("core.frechet"), mf=mf, model=model,
                 table=load_file(str(Path(cond_file) if cond_file else root / COND)), classifier=classifier,
                 held=held, held_labels=held_labels, latent=latent,
                 wan_latent=pack_loader.core("mnist_wan_latent") if latent["samples"].ndim == 5 else None,
                 real=mf.mnist_features(classifier, torch.as_tensor(held)),
                 sampler=comfy.samplers.sampler_object(sampler_name),
                 model_sampling=model.get_model_object("model_sampling"), info=bp.model_blocks(model), cfg=cfg)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model-file / --cond-file, as both architecture studies take them (default: the bundled DiT)."""
    parser.add_argument("--model-file", default="", help="another MNIST flow model (a diffusion_models file, e.g. "
                                                         "/tmp/wan_study/adaptive_skip_mnist_wan.safetensors); "
                                                         "default: the bundled DiT")
    parser.add_argument("--cond-file", default="", help="its class tables and latent constants (with --model-file)")


def add_skipped_argument(parser: argparse.ArgumentParser) -> None:
    """--skipped, as this study and scripts/architecture_wall_time.py take it (core.block_plan.SKIPPED_CHOICES)."""
    parser.add_argument("--skipped", choices=("pass_through", "reuse"), default="pass_through",
                        help="what a skipped block does: pass its input on, or add its residual from the last "
                             "step it ran (the plan then runs every block at its first step)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(PACK), help="tree holding models/, core/mnist_features.py and "
                                                          "scripts/train_mnist_classifier.py")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="simple")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--costs", nargs="+", type=float, default=[1.0, 0.8, 0.6, 0.5])
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--fit-seeds", type=int, default=10)
    parser.add_argument("--eval", type=int, default=200, help="held-out samples per point (classes cycle 0-9)")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--random-plans", type=int, default=3)
    parser.add_argument("--reference-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2, help="wall time: best of this many runs")
    add_skipped_argument(parser)
    add_model_arguments(parser)
    parser.add_argument("--schedule", default="", help="a saved EvoTimestepSchedule record (stage 1) at --steps")
    parser.add_argument("--stage1", action="store_true",
                        help="run EvoTimestepSchedule (stage 1) at --steps and at each timesteps-only step count "
                             "(10 seeds, classes 0-9; records kept in a temporary folder)")
    parser.add_argument("--stage1-budget", type=int, default=6000)
    parser.add_argument("--fewer-steps", nargs="*", type=int, default=None,
                        help="timesteps-only step counts (default: round(c * N) for each cost)")
    parser.add_argument("--no-builtin", action="store_true",
                        help="skip the built-in schedule's points (e.g. when another process runs them)")
    parser.add_argument("--merge", nargs="+", default=None,
                        help="only merge these JSON results (runs split over processes) into --out's JSON + plot")
    parser.add_argument("--out", default=str(PACK / "docs" / "architecture_stage"))
    args = parser.parse_args(argv)
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        rows = [r for part in parts for r in part["rows"]]
        meta = {"merged": args.merge, **parts[0]["meta"]}
        out = Path(args.out)
        out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        plot(rows, out.with_suffix(".png"), meta["reference_frechet"], meta["args"].get("skipped", "pass_through"))
        print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
        return 0
    torch.set_num_threads(1)

    study = load_study(Path(args.root), args.sampler, args.cfg, args.model_file, args.cond_file)
    pack, bp, core_plan, plan_search = study.pack, study.bp, study.core_plan, study.plan_search
    frechet, mf, classifier, real = study.frechet, study.mf, study.classifier, study.real
    model, table, info = study.model, study.table, study.info
    runner, digits, negative_row = study.runner, study.digits, NEGATIVE_ROW
    print(f"model {info.identity}; blocks {len(info.blocks)}; real held-out digits {len(study.held)}")

    def sigmas_for(steps: int):
        import comfy.samplers
        return comfy.samplers.calculate_sigmas(study.model_sampling, args.scheduler, steps).float().cpu()

    reference = digits(runner(sigmas_for(args.reference_steps), args.eval, HOLDOUT_SEED).full())
    ref_fd = frechet.frechet(mf.mnist_features(classifier, reference), real)
    print(f"reference: {args.reference_steps} steps; Fréchet {ref_fd.distance:.3f} {ref_fd.note}")
    rows = []
    partial = Path(args.out).with_suffix(".partial.json")  # rows so far, in case a long run is stopped

    def score(label: str, family: str, sigmas, plan, cost: float, fitness: float | None = None):
        run = runner(sigmas, args.eval, HOLDOUT_SEED)
        patched = bp.apply_plans(model, [plan]) if plan is not None else model
        best, out = None, None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = run._run(patched, 1)
            best = min(best or 1e9, time.perf_counter() - start)
        img = digits(out)
        fd = frechet.frechet(mf.mnist_features(classifier, img), real)
        psnr = float((10 * torch.log10(1.0 / ((img - reference) ** 2).flatten(1).mean(1))).mean())
        row = {"label": label, "family": family, "steps": len(sigmas) - 1, "cost": cost,
               "block_compute": cost * (len(sigmas) - 1), "frechet": fd.distance, "frechet_stable": fd.stable,
               "psnr": psnr, "seconds": best, "fitness": fitness,
               "plan": plan.to_dict()["mask"] if plan is not None else None}
        rows.append(row)
        partial.write_text(json.dumps({"meta": {"args": vars(args), "reference_frechet": ref_fd.distance,
                                                "model": info.identity}, "rows": rows}, indent=1))
        print(f"{label:34s} steps {row['steps']:3d} cost {cost:.2f}  FD {fd.distance:8.3f}  PSNR {psnr:6.2f} dB  "
              f"{best:6.3f}s" + (f"  fitness {fitness:.4g}" if fitness is not None else ""), flush=True)
        return row

    schedules = {} if args.no_builtin else {f"{args.scheduler}": sigmas_for(args.steps)}
    fewer = args.fewer_steps or sorted({max(1, round(c * args.steps)) for c in args.costs if c < 1.0})
    searched = {}
    if args.schedule:
        record = json.loads(Path(args.schedule).read_text())
        searched[len(record["sigmas"]) - 1] = torch.tensor(record["sigmas"], dtype=torch.float32)
    if args.stage1:
        searched.update({n: stage1(pack, model, table, negative_row, args, n, study.latent)
                         for n in sorted({args.steps, *fewer})})
    if args.steps in searched:
        schedules["stage1"] = searched[args.steps]
    for n in fewer:
        if not args.no_builtin:
            score(f"timesteps only, {args.scheduler} N={n}", "timesteps only", sigmas_for(n), None, 1.0)
        if n in searched:
            score(f"timesteps only, searched N={n}", "searched timesteps", searched[n], None, 1.0)
    for sched_name, sigmas in schedules.items():
        steps = len(sigmas) - 1
        fit = runner(sigmas, args.fit_seeds, 0)
        target = fit.full()
        for cost in args.costs:
            if cost >= 1.0:
                fam = "searched timesteps" if sched_name == "stage1" else "every block"
                score(f"{sched_name} N={steps}, every block", fam, sigmas, None, 1.0)
                continue

            def fitness(plans):
                out = []
                for start in range(0, len(plans), 8):
                    out += [float(((o - target) ** 2).mean()) for o in fit.plans(plans[start:start + 8])]
                return out
            config = plan_search.BlockSearchConfig(cost_target=cost, population=args.population,
                                                   parents=max(2, args.population // 4),
                                                   generations=args.generations, seed=0)
            start = time.perf_counter()
            result = plan_search.search_block_plan(steps, info.blocks, info.identity, fitness, config,
                                                   sigmas=[float(s) for s in sigmas], skipped=args.skipped)
            seconds = time.perf_counter() - start
            print(f"search c={cost}: {result.evaluated} plans, {seconds:.1f}s, history {result.history}")
            prefix = "two-stage" if sched_name == "stage1" else f"{sched_name} N={steps}"
            score(f"{prefix}, found plan", "found plan" if sched_name != "stage1" else "two-stage", sigmas,
                  result.best, result.best.cost, result.fitness)
            score(f"{prefix}, best uniform plan", "uniform plan", sigmas, result.best_uniform,
                  result.best_uniform.cost, result.uniform_fitness)
            for r in range(args.random_plans):
                plan = core_plan.random_plan(steps, info.blocks, info.identity, cost, random.Random(100 + r),
                                             skipped=args.skipped)
                score(f"{prefix}, random plan {r}", "random plan", sigmas, plan, plan.cost, fitness([plan])[0])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"args": vars(args), "reference_frechet": ref_fd.distance, "model": info.identity}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    plot(rows, out.with_suffix(".png"), ref_fd.distance, args.skipped)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


def stage1(pack, model, table, negative_row: int, args, steps: int, latent: dict | None = None) -> torch.Tensor:
    """EvoTimestepSchedule's schedule for `steps` (10 fitness and 10 validation seeds, classes 0-9), its record
    saved in a temporary folder (never in ComfyUI's models folder)."""
    import tempfile

    import folder_paths
    sched = sys.modules[f"{pack.__name__}.nodes.schedule"]
    holder = tempfile.mkdtemp(prefix="arch_report_stage1_")
    folder_paths.folder_names_and_paths[sched.FOLDER] = ([holder], {".json"})
    classes = list(range(10))
    start = time.perf_counter()
    out = sched.EvoTimestepSchedule().search(
        model, conditioning(table, classes), conditioning(table, [negative_row] * 10),
        latent or {"samples": torch.zeros(1, 16, 8, 8)}, args.sampler, steps, args.cfg, 10, args.stage1_budget, 0,
        validation_seeds=10, reference_steps=args.reference_steps)
    sigmas = out["result"][0]
    print(f"stage 1, N={steps}: {time.perf_counter() - start:.1f}s; " + out["result"][1].splitlines()[0])
    return sigmas.float()


def plot(rows: list[dict], path: Path, reference_fd: float, skipped: str = "pass_through") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    styles = {"timesteps only": ("k", "s"), "every block": ("k", "*"), "searched timesteps": ("tab:purple", "s"),
              "found plan": ("tab:blue", "o"), "uniform plan": ("tab:orange", "^"), "random plan": ("tab:gray", "x"),
              "two-stage": ("tab:green", "D")}
    panels = [("seconds", "wall time of the held-out batch, s"),
              ("block_compute", "block compute: steps x block cost (full-network steps)")]
    for row, (xkey, xlabel) in enumerate(panels):
        for ax, key, label in ((axes[row][0], "frechet", "Fréchet distance to real digits (lower better)"),
                               (axes[row][1], "psnr", "PSNR vs 100-step reference, dB (higher better)")):
            for fam, (colour, marker) in styles.items():
                pts = sorted((r[xkey], r[key]) for r in rows if r["family"] == fam)
                if pts:
                    ax.plot(*zip(*pts), marker=marker, color=colour, label=fam,
                            linestyle="-" if fam != "random plan" else "")
            if key == "frechet":
                ax.axhline(reference_fd, color="k", linestyle=":", linewidth=1, label="high-accuracy reference")
            ax.set_xlabel(xlabel, fontsize=9)
            ax.set_ylabel(label, fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Architecture stage on the MNIST flow DiT: block plans vs uniform/random plans and fewer steps"
                 + ("\n(skipped blocks reuse their last residual)" if skipped == "reuse" else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
