"""Issue-5 report: searched sigma schedules against every built-in schedule on the bundled digits model.

    python scripts/schedule_report.py                       # euler and dpmpp_2m at N = 4, 5, 6, 8, 10
    python scripts/schedule_report.py --save-schedules schedules --save-steps 4 5 6 8

For each sampler: a 200-step reference (karras, same sampler) for the fitness, validation and held-out seeds; for
each N, every built-in schedule and two searches (different search seed, different fitness and validation seeds)
scored on the held-out seeds. A search is what EvoTimestepSchedule runs: evolution on the fitness seeds, then its 4
best finds and every built-in re-scored on the validation seeds; over both the best find wins if it beats the best
built-in by 5% (MIN_GAIN), else that built-in is kept. Fidelity is the latent MSE against the reference and the PSNR
of the decoded 8x8 digits (10 log10(1 / pixel MSE), pixels in [0, 1]). Search cost is in per-sample model calls
(a CFG pair counts once; calls shared between candidates count once) and wall seconds, references excluded (reported
once per sampler).
--digit picks the prompt (one digit class, as a workflow's conditioning is); --digit mixed cycles through 0-9.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_env  # noqa: E402
from pack_loader import pack_module  # noqa: E402

sys.path.remove(str(HERE))
HOLDOUT_SEED = 10_000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samplers", nargs="+", default=["euler", "dpmpp_2m"])
    parser.add_argument("--steps", nargs="+", type=int, default=[4, 5, 6, 8, 10])
    parser.add_argument("--digit", default="3", help="digit class 0-9 of the prompt, or 'mixed' (cycles 0-9)")
    parser.add_argument("--fit-seeds", type=int, default=8, help="K: samples each candidate is scored on")
    parser.add_argument("--validation-seeds", type=int, default=8,
                        help="V: fresh samples the finalists are re-scored on")
    parser.add_argument("--holdout-seeds", type=int, default=32)
    parser.add_argument("--budget", type=int, default=4000, help="search budget, per-sample model calls")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--generations", type=int, default=25)
    parser.add_argument("--search-seeds", nargs=2, type=int, default=[0, 1])
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--reference-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core CPU)")
    parser.add_argument("--save-schedules", default="", help="folder to save the first search's schedules in")
    parser.add_argument("--save-steps", nargs="*", type=int, default=None, help="N values to save (default all)")
    return parser.parse_args(argv)


class Report:
    """The bundled model, its conditioning and the pack's schedule pipeline, for one report run."""

    def __init__(self, args: argparse.Namespace):
        comfy_env.boot_comfyui()
        import comfy.sd
        import comfy.utils
        import folder_paths
        comfy.utils.set_progress_bar_enabled(False)
        torch.set_num_threads(args.threads)
        self.args = args
        self.runner_mod, self.evolution = pack_module("nodes.schedule_runner"), pack_module("core.schedule_search")
        self.library, self.demo = pack_module("core.schedule_library"), pack_module("nodes.demo_model")
        self.pipeline, self.identity = pack_module("core.schedule_pipeline"), pack_module("nodes.model_identity")
        self.builtins, self.features = pack_module("nodes.builtin_schedules"), pack_module("core.digits_features")
        self.fitness = pack_module("core.fitness").make_fitness()
        # as UNETLoader finds it
        self.model_path = Path(folder_paths.get_full_path_or_raise("diffusion_models", self.demo.UNET_FILE))
        self.model = comfy.sd.load_diffusion_model(str(self.model_path))
        cond = self.demo.load_digits_cond()
        self.emb = cond["class_embeddings"].float()
        self.decode = tuple(float(cond[k]) for k in ("latent_mean", "latent_std", "latent_scale"))
        self.info = self.identity.model_info(self.model)
        self.latent = {"samples": torch.zeros(1, 4, 4, 4)}

    def runner(self, sampler: str, k: int, seed: int, offset: int):
        """K seeds from `seed`; prompts digit `--digit`, or classes offset, offset + 1, ... with --digit mixed."""
        demo, digit = self.demo, self.args.digit
        labels = (torch.arange(k) + offset) % 10 if digit == "mixed" else torch.full((k,), int(digit))
        pos, neg = demo.digits_conditioning(self.emb, labels), demo.digits_conditioning(self.emb, [demo.NULL_INDEX] * k)
        return self.runner_mod.CandidateRunner(self.model, pos, neg, self.args.cfg, sampler, self.latent, k, seed,
                                               candidates_per_call=16)

    def score(self, outs, ref):
        """(latent MSE, pixel PSNR dB) per output against the reference."""
        ref_px = self.features.latent_to_digits(ref, *self.decode)
        res = []
        for o in outs:
            px_mse = float(((self.features.latent_to_digits(o, *self.decode) - ref_px) ** 2).mean())
            res.append((float(((o - ref) ** 2).mean()), 10 * math.log10(1.0 / max(px_mse, 1e-12))))
        return res

    def sampler_rows(self, sampler: str) -> list[dict]:
        """References once, then for each N every built-in and the two searches scored on the held-out seeds."""
        import comfy.samplers
        args, pipeline = self.args, self.pipeline
        ref_sigmas = comfy.samplers.calculate_sigmas(self.model.get_model_object("model_sampling"), "karras",
                                                     args.reference_steps)
        t0 = time.perf_counter()
        hold = self.runner(sampler, args.holdout_seeds, HOLDOUT_SEED, 0)
        ref_hold = hold.sample(ref_sigmas)
        fits = {}
        for s in args.search_seeds:
            r = self.runner(sampler, args.fit_seeds, 100 * s, 3 * s)
            v = self.runner(sampler, args.validation_seeds, 100 * s + 50, 3 * s + 5)
            fits[s] = (pipeline.SeedSet(r, r.sample(ref_sigmas)), pipeline.SeedSet(v, v.sample(ref_sigmas)))
        ref_calls = hold.calls + sum(f.runner.calls + v.runner.calls for f, v in fits.values())
        print(f"{sampler}: references {ref_calls} calls, {time.perf_counter() - t0:.0f} s", flush=True)
        rows = []
        for n in args.steps:
            baselines = {k: v.tolist() for k, v in self.builtins.builtin_baselines(self.model, sampler, n).items()}
            names = list(baselines)
            searches = {s: self.search(n, baselines, *fits[s], seed=s) for s in args.search_seeds}
            held = self.score(hold.run([baselines[k] for k in names] + [searches[s][0].sigmas
                                                                       for s in args.search_seeds]), ref_hold)
            base = dict(zip(names, held[:len(names)]))
            best = min(base, key=lambda k: base[k][0])
            row = {"sampler": sampler, "N": n, "base": base, "best": best, "search": {}}
            for s, h in zip(args.search_seeds, held[len(names):]):
                row["search"][s] = (h, *searches[s])
            rows.append(row)
            self.print_row(row, names)
        return rows

    def search(self, n: int, baselines: dict, fit, held, seed: int):
        """What EvoTimestepSchedule runs, on these fitness and validation seeds: (ScheduleFind, seconds)."""
        args, info = self.args, self.info
        config = self.evolution.EvoConfig(
            steps=n, sigma_min=info.sigma_min, sigma_max=info.sigma_max, population=args.population,
            top_k=args.top_k, generations=args.generations, budget=args.budget,
            calls_per_candidate=n * args.fit_seeds, seed=seed)
        t1 = time.perf_counter()
        find = self.pipeline.SchedulePipeline(config, self.fitness, baselines, fit, args.fit_seeds, lambda: held,
                                              args.validation_seeds).run()
        return find, time.perf_counter() - t1

    def print_row(self, row: dict, names: list[str]) -> None:
        base, best = row["base"], row["best"]
        line = " ".join(f"{k} {v[0]:.4g}" for k, v in base.items())
        print(f"{row['sampler']} N={row['N']}: {line}", flush=True)
        for s, (h, find, seconds) in row["search"].items():
            best_fit = min(find.baseline_fitness[k] for k in names)
            print(f"   search seed {s}: picked {find.pick}; held-out {h[0]:.4g} ({h[1]:.2f} dB), "
                  f"{base[best][0] / h[0]:.2f}x lower than {best}; fit+validation {find.fitness:.4g} vs best "
                  f"built-in {best_fit:.4g}; {find.result.evaluated} candidates, {find.model_calls} calls, "
                  f"{seconds:.1f} s; {self.library.format_sigmas(find.sigmas)}", flush=True)

    def save(self, row: dict) -> str:
        """The first search's schedule of this row as a library record (the shipped schedules/ files)."""
        args, info, library = self.args, self.info, self.library
        first, sampler, n = args.search_seeds[0], row["sampler"], row["N"]
        h, find, seconds = row["search"][first]
        record = library.ScheduleRecord(
            sigmas=[float(v) for v in torch.tensor(find.sigmas, dtype=torch.float32).tolist()],
            sampler=sampler, model_type=info.model_type, sigma_min=info.sigma_min, sigma_max=info.sigma_max,
            model_id=self.identity.model_identity(self.model), fitness=h[0],
            fitness_metric=(f"latent MSE vs {args.reference_steps}-step {sampler} (karras) on "
                            f"{args.holdout_seeds} held-out seeds, cfg {args.cfg}, digit {args.digit}"),
            baselines={k: v[0] for k, v in row["base"].items()},
            search={"population": args.population, "top_k": args.top_k, "generations": args.generations,
                    "budget": args.budget, "num_seeds": args.fit_seeds,
                    "validation_seeds": args.validation_seeds, "seed": first, "cfg": args.cfg,
                    "picked": find.pick, "evaluated": find.result.evaluated, "model_calls": find.model_calls,
                    "seconds": round(seconds, 1), "found_by": "scripts/schedule_report.py"},
            created=library.now_iso(),
            note=f"found on the bundled digits model ({self.demo.UNET_FILE}) by scripts/schedule_report.py")
        return library.save_record(record, args.save_schedules, f"digits_{sampler}_{n}steps")


def print_table(rows: list[dict], search_seeds: list[int]) -> None:
    a, b = search_seeds
    head = ["sampler", "N"] + [f"{k}" for k in rows[0]["base"]] + [
        "best built-in", f"searched (seed {a})", "gain", f"searched (seed {b})", "gain", "search cost (calls, s)"]
    print("Latent MSE vs the 200-step reference on held-out seeds (PSNR of decoded digits, dB); gain = best "
          "built-in MSE / searched MSE; [name] = validation kept that built-in\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        base, best = row["base"], row["best"]
        cells = [row["sampler"], str(row["N"])]
        cells += [f"{base[k][0]:.4g}" if k in base else "-" for k in rows[0]["base"]]
        cells.append(f"{best} {base[best][0]:.4g} ({base[best][1]:.1f})")
        costs = []
        for s in (a, b):
            h, find, seconds = row["search"][s]
            tag = "" if find.pick.startswith("search") else f" [{find.pick}]"
            cells += [f"{h[0]:.4g} ({h[1]:.1f}){tag}", f"{base[best][0] / h[0]:.2f}x"]
            costs.append(f"{find.model_calls}, {seconds:.0f}")
        cells.append(" / ".join(costs))
        print("| " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    args = parse_args(argv)
    report = Report(args)
    info = report.info
    print(f"bundled model {report.model_path.name} ({info.model_type}, sigma {info.sigma_min:.4g}..{info.sigma_max:.4g}); "
          f"cfg {args.cfg}; digit {args.digit}; reference {args.reference_steps} steps karras (same sampler); "
          f"fitness on {args.fit_seeds} seeds, validation on {args.validation_seeds}, table on {args.holdout_seeds} "
          f"held-out seeds; search: population "
          f"{args.population}, top-{args.top_k}, <= {args.generations} generations, budget {args.budget} calls; "
          f"torch threads {args.threads}", flush=True)
    rows, saved = [], []
    started_all = time.perf_counter()
    for sampler in args.samplers:
        for row in report.sampler_rows(sampler):
            rows.append(row)
            if args.save_schedules and (args.save_steps is None or row["N"] in args.save_steps):
                saved.append(report.save(row))
    print(f"\ntotal {time.perf_counter() - started_all:.0f} s\n")
    print_table(rows, args.search_seeds)
    for path in saved:
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    with torch.inference_mode():  # as ComfyUI's executor runs nodes (ipndm_v, for one, is not no_grad itself)
        sys.exit(main())
