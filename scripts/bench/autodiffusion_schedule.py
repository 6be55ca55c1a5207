"""AutoDiffusion benchmark (issue 14): the sampler searched with the timesteps, the Fréchet fitness, schedule transfer.

    OMP_NUM_THREADS=1 python scripts/bench/autodiffusion_schedule.py            # both bundled models, all parts
    OMP_NUM_THREADS=1 python scripts/bench/autodiffusion_schedule.py --steps 4 --frechet-steps 4 --quick

On the digits UNet and the MNIST flow DiT (scripts/bench/models.py loads them as the benchmark does):
1. Sampler + timesteps: EvoTimestepSchedule's own pipeline with sampler_name auto (core/joint_schedule_search.py:
   every sampler x built-in scheduler pair at <= N model calls seeded), once per search space (--spaces: `steps`,
   every σ a gene, then evolution; `warp`, core/schedule_warp.py: warps of the best pairs), fitness = latent MSE to
   a --reference-steps dpmpp_2m (karras) reference on --fit-seeds seeds in one batch (seed i prompts digit i mod 10),
   then the finds and the --validated-pairs best pairs re-scored on --validation-seeds fresh seeds (the node's 5%
   rule). Scored on --held-seeds held-out seeds (other noise) against two references: the --reference-steps run
   (high accuracy) and a --full-steps dpmpp_2m karras run (the usual full-step run). Two baselines at the same calls:
   the best built-in (sampler, scheduler) pair ON THE HELD-OUT SEEDS, among the --held-pairs best pairs on the
   fitness seeds (picked with knowledge of the held-out seeds: favoured, not the search), and the pair a user
   would pick from the fitness (+ validation) seeds, as the pipeline ranks them. The spaces share the pairs'
   samples (each sampled once); the cost column counts each search as if run alone.
2. Fréchet fitness at N = 4-6, sampler dpmpp_2m (the node's default): Fréchet distance of the decoded samples'
   classifier features (digits / MNIST classifiers, nodes/frechet_features.py as the node builds it) to the
   models' held-out real digits; every built-in scheduler, the search and the 200-step reference scored on the same
   held-out seeds against the same real set.
   Stratified seeds (--screen-seeds S > 0, fidelity only; core/seed_strata.py): a pool of S fitness seeds and one of
   S validation seeds (other noise) are screened once, the --screen-pairs best pairs on the fitness seeds (one per
   sampler) sampled on them against the reference; the --hard-seeds seeds with the largest mean screening error are
   all fitness seeds (--hard-validation-seeds of the validation pool likewise), the rest drawn at random from the
   other seeds of the pool, weighted so that the fitness is an unbiased estimate of the pool's mean error. Run next
   to the plain search (same budget, same held-out seeds); its cost column adds the screening calls (the pools'
   references are printed apart). With more than 32 held-out seeds the figures on their first 32 are printed too
   (the held-out set of session 4).
3. Transfer: each model's searched (sampler, schedule) applied to the other model through the log-σ resampling
   LoadTimestepSchedule uses (nodes/schedule.fit_to_model), against that model's own search and best pair.
Cost is per-sample model calls (a CFG pair counts once, calls shared between candidates once) and wall seconds.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[1]
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
import comfy_env
from pack_loader import pack_module

FIT_SEED, VAL_SEED, HELD_SEED = 1000, 2000, 10_000
POOL_FIT_SEED, POOL_VAL_SEED = 20_000, 30_000  # the screened pools of stratified fitness / validation seeds
OLD_HELD = 32  # session 4's held-out seeds: the first 32 of ours
VALIDATED_FINDS = 4  # core.schedule_pipeline.VALIDATED_FINDS
BENCH_SAMPLERS = ("euler", "dpmpp_2m", "ipndm_v", "deis", "uni_pc")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["digits", "mnist_dit"], choices=["digits", "mnist_dit"])
    ap.add_argument("--steps", nargs="*", type=int, default=[4, 5, 6, 8, 10],
                    help="N: model calls per sample (none: skip the sampler + timesteps search)")
    ap.add_argument("--samplers", nargs="+", default=list(BENCH_SAMPLERS),
                    help="sampler genes; `all`: every deterministic sampler the node searches (13)")
    ap.add_argument("--fitnesses", nargs="+", default=["fidelity"], choices=["fidelity", "frechet", "mixed"],
                    help="the search's fitness (one search per fitness and space; held-out Fréchet distances are "
                         "reported when any is not fidelity)")
    ap.add_argument("--fit-seeds", type=int, default=32, help="fitness seeds (one batch; seed i: digit i mod 10)")
    ap.add_argument("--validation-seeds", type=int, default=16, help="0: no validation step")
    ap.add_argument("--validated-pairs", type=int, default=8, help="pairs (best on the fitness seeds) re-scored "
                    "on the validation seeds")
    ap.add_argument("--held-seeds", type=int, default=32)
    ap.add_argument("--held-pairs", type=int, default=12, help="pairs (best on the fitness seeds) scored on the "
                    "held-out seeds; the baseline is the best of them there (0: every pair)")
    ap.add_argument("--spaces", nargs="+", default=["steps", "warp"], choices=["steps", "warp", "warp_linear"],
                    help="search spaces (core.schedule_search.SPACES): every sigma (steps), warps of the built-ins "
                         "(warp), warps with every sampler's linear-in-sigma schedules added (warp_linear)")
    ap.add_argument("--screen-seeds", type=int, default=0, help="S: pool size screened for stratified fitness and "
                    "validation seeds (0: plain seeds only)")
    ap.add_argument("--hard-seeds", type=int, default=8, help="h: the hard stratum of the fitness seeds")
    ap.add_argument("--hard-validation-seeds", type=int, default=4, help="the hard stratum of the validation seeds")
    ap.add_argument("--screen-pairs", type=int, default=4, help="pairs that screen the pools (the best on the plain "
                    "fitness seeds, one per sampler)")
    ap.add_argument("--extra", type=int, default=24, help="evolution budget beyond the seeded pairs, in candidates")
    ap.add_argument("--population", type=int, default=12)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--reference-steps", type=int, default=200)
    ap.add_argument("--full-steps", type=int, default=50)
    ap.add_argument("--frechet-steps", nargs="*", type=int, default=[4, 5, 6])
    ap.add_argument("--frechet-seeds", type=int, default=8)
    ap.add_argument("--frechet-extra", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.held_seeds, args.extra, args.reference_steps, args.full_steps = 4, 4, 20, 10
        args.fit_seeds, args.validation_seeds, args.held_pairs = 4, 4, 3
        args.frechet_seeds, args.frechet_extra, args.generations = 4, 2, 2
        if args.screen_seeds:
            args.screen_seeds, args.hard_seeds, args.hard_validation_seeds, args.screen_pairs = 12, 2, 2, 2
        args.samplers = args.samplers[:3]
    return args


def frechet_wanted(args) -> bool:
    return any(f != "fidelity" for f in args.fitnesses)


class Bench:
    """One bundled model: its inputs, seed sets, references and the pack's pipeline pieces."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.load(name, args)
        t0 = time.perf_counter()
        self.fit = self.seed_set(args.fit_seeds, FIT_SEED)
        self.val = self.seed_set(args.validation_seeds, VAL_SEED) if args.validation_seeds else None
        self.held = self.runner(args.held_seeds, HELD_SEED)
        self.held_ref = self.held.sample(self.ref_sigmas, "dpmpp_2m")
        self.held_full = self.held.sample(self.full_sigmas, "dpmpp_2m")
        self.ref_seconds = time.perf_counter() - t0
        self.pools = {}
        if args.screen_seeds:
            t0 = time.perf_counter()
            self.pools["fit"] = self.pool(POOL_FIT_SEED)
            if args.validation_seeds:
                self.pools["val"] = self.pool(POOL_VAL_SEED)
            print(f"{name}: screened pools of {args.screen_seeds} seeds ({', '.join(self.pools)}): references "
                  f"{time.perf_counter() - t0:.0f} s, {len(self.pools) * args.screen_seeds * args.reference_steps} "
                  "calls", flush=True)
        print(f"{name}: {self.info.model_type}, sigma {self.info.sigma_min:.4g}..{self.info.sigma_max:.4g}, cfg "
              f"{self.cfg}; references ({args.reference_steps}-step and {args.full_steps}-step dpmpp_2m karras) "
              f"{self.ref_seconds:.0f} s", flush=True)

    def load(self, name: str, args: argparse.Namespace) -> None:
        """The pack's pipeline pieces, the model `name` and its reference schedules: everything but the seed sets
        (scripts/bench/schedule_space_study.py builds its own, cached on disk)."""
        import comfy.samplers

        self.name, self.args = name, args
        self.pipeline, self.joint = pack_module("core.schedule_pipeline"), pack_module("core.joint_schedule_search")
        self.evolution, self.builtins = pack_module("core.schedule_search"), pack_module("nodes.builtin_schedules")
        self.runner_mod, self.identity = pack_module("nodes.schedule_runner"), pack_module("nodes.model_identity")
        self.strata_mod = pack_module("core.seed_strata")
        self._fitnesses = {"fidelity": pack_module("core.fitness").make_fitness("fidelity")}
        self.load_model(name)
        self.info = self.identity.model_info(self.model)
        ms = self.model.get_model_object("model_sampling")
        self.ref_sigmas = comfy.samplers.calculate_sigmas(ms, "karras", args.reference_steps)
        self.full_sigmas = comfy.samplers.calculate_sigmas(ms, "karras", args.full_steps)

    def load_model(self, name: str) -> None:
        """The bundled model `name` with its conditioning by labels (seed i: digit i mod 10), latent, cfg and the
        classifier that gives its Fréchet features."""
        from bench import models as M
        if name == "digits":
            self.model, emb, _ = M.load_digits_model("bundled")
            demo = pack_module("nodes.demo_model")
            self.conds = lambda labels: (demo.digits_conditioning(emb, labels),
                                         demo.digits_conditioning(emb, [demo.NULL_INDEX]))
            self.latent, self.cfg, self.features = {"samples": torch.zeros(1, 4, 4, 4)}, 4.0, "digits_classifier"
        else:
            self.model, tables, _ = M.load_mnist_dit()
            null = torch.tensor([M.NULL_INDEX])
            self.conds = lambda labels: (
                [[tables["context"][labels].clone(), {"pooled_output": tables["pooled"][labels].clone()}]],
                [[tables["context"][null].clone(), {"pooled_output": tables["pooled"][null].clone()}]])
            self.latent, self.cfg = {"samples": torch.zeros(1, 16, 8, 8)}, M.MNIST_DIT_CFG
            self.features = "mnist_classifier"

    def runner(self, k: int, seed: int, indices=None):
        """k seeds seed + i (i in `indices`, default 0..k-1); seed + i prompts digit i mod 10."""
        indices = list(range(k)) if indices is None else list(indices)
        pos, neg = self.conds(torch.tensor(indices) % 10)
        return self.runner_mod.CandidateRunner(self.model, pos, neg, self.cfg, "dpmpp_2m", self.latent, k, seed,
                                               candidates_per_call=16, seeds=[seed + i for i in indices])

    def pool(self, seed: int) -> dict:
        r = self.runner(self.args.screen_seeds, seed)
        return {"seed": seed, "runner": r, "reference": r.sample(self.ref_sigmas, "dpmpp_2m")}

    def stratified(self, which: str, pairs: dict, screen: list, k: int, hard: int, n: int):
        """A SeedSet of k stratified seeds of pool `which`, screened by the `screen` pairs; (set, strata, calls)."""
        pool = self.pools[which]
        r = pool["runner"]
        before = r.calls
        outs = r.run([pairs[p] for p in screen])
        calls = r.calls - before
        errors = torch.stack([per_seed(o, pool["reference"]) for o in outs]).mean(0)
        strata = self.strata_mod.stratify(errors, k, hard, seed=n + (0 if which == "fit" else 1000))
        sub = self.runner(k, pool["seed"], strata.indices)
        seed_set = self.pipeline.SeedSet(Memo(sub), pool["reference"][strata.indices], strata.weights)
        share = float(errors[list(strata.hard)].sum() / errors.sum().clamp_min(1e-30))
        print(f"{self.name} N={n} strata ({which}): {len(strata.hard)} hard of {strata.pool_size} (screening error "
              f"{float(errors[list(strata.hard)].min()):.3g}..{float(errors.max()):.3g}, pool mean "
              f"{float(errors.mean()):.3g}, {share:.0%} of the pool's summed error) + {len(strata.easy)} drawn; "
              f"{calls} screening calls", flush=True)
        return seed_set, strata, calls

    def seed_set(self, k: int, seed: int):
        r = self.runner(k, seed)
        return self.pipeline.SeedSet(r, r.sample(self.ref_sigmas, "dpmpp_2m"))

    def genes(self, n: int):
        if "all" in self.args.samplers:
            return tuple(self.builtins.joint_genes(n))
        return tuple(g for g in self.builtins.joint_genes(n) if g[0] in self.args.samplers)

    def fitness_of(self, name: str):
        """The fitness the node builds for `name` (frechet / mixed: the bundled classifier, the held-out real set)."""
        if name not in self._fitnesses:
            features = pack_module("nodes.frechet_features")
            self._fitnesses[name] = features.build_fitness(name, self.features, self.real_images())
        return self._fitnesses[name]

    def search(self, n: int) -> dict:
        """The node's joint pipeline at N = n model calls, once per search space (--spaces), fitness (--fitnesses)
        and seeding (plain; stratified with --screen-seeds); every pair scored on the fitness seeds first (its
        samples shared by the searches), the finds and the --held-pairs best pairs on held-out seeds."""
        args, info = self.args, self.info
        genes = self.genes(n)
        pairs = self.builtins.joint_baselines(self.model, genes)
        k = args.fit_seeds
        gene_calls = {name: calls for name, _, calls in genes}
        seeding = sum(gene_calls[p.sampler] for p in pairs.values())  # per seed: every pair once
        fit, val = Memo(self.fit.runner), Memo(self.val.runner) if self.val else None
        sets = {"plain": (self.pipeline.SeedSet(fit, self.fit.reference),
                          self.pipeline.SeedSet(val, self.val.reference) if val else None, 0)}
        t0 = time.perf_counter()
        fit.run(list(pairs.values()))
        pair_seconds = time.perf_counter() - t0  # sampling every pair once; each search is charged with it
        row = {"N": n, "pairs": len(pairs), "spaces": {}}
        finds, fit_scores, user_picks = {}, {}, {}
        fidelity = self.fitness_of("fidelity")
        if self.pools:
            t0 = time.perf_counter()
            plain = dict(zip(pairs, sets["plain"][0].evaluator(fidelity)(list(pairs.values()))))
            best_per_sampler = {}
            for p in sorted(pairs, key=lambda p: (plain[p], p)):
                best_per_sampler.setdefault(pairs[p].sampler, p)
            screen = list(best_per_sampler.values())[:args.screen_pairs]
            fit_set, _, fit_calls = self.stratified("fit", pairs, screen, k, args.hard_seeds, n)
            val_set, val_calls = None, 0
            if val:
                val_set, _, val_calls = self.stratified("val", pairs, screen, args.validation_seeds,
                                                        args.hard_validation_seeds, n)
            fit_set.runner.run(list(pairs.values()))
            sets["strata"] = (fit_set, val_set, fit_calls + val_calls, time.perf_counter() - t0)
            print(f"{self.name} N={n}: screening pairs {', '.join(screen)}", flush=True)
        for fit_name in args.fitnesses:
            fitness = self.fitness_of(fit_name)
            for seeding_name, (fit_set, val_set, screen_calls, *screen_s) in sets.items():
                if seeding_name == "strata" and not fitness.supports_seed_weights:
                    print(f"{self.name} N={n} [{fit_name}]: no stratified run (the fitness cannot weight seeds)")
                    continue
                scores = dict(zip(pairs, fit_set.evaluator(fitness)(list(pairs.values()))))
                fit_scores[(fit_name, seeding_name)] = scores
                for space in args.spaces:
                    config = self.joint.JointConfig(
                        calls=n, samplers=genes, sigma_min=info.sigma_min, sigma_max=info.sigma_max, num_seeds=k,
                        population=args.population, top_k=4 if space == "steps" else 2, generations=args.generations,
                        budget=(seeding + args.extra * n) * k, seed=n, space=space)
                    t0 = time.perf_counter()
                    find = self.pipeline.SchedulePipeline(config, fitness, pairs, fit_set, k,
                                                          (lambda v=val_set: v) if val_set else None,
                                                          args.validation_seeds,
                                                          validated_baselines=args.validated_pairs).run()
                    seconds = time.perf_counter() - t0 + pair_seconds + sum(screen_s)
                    # calls as if run alone (the searches share samples): every candidate on the fitness seeds, and
                    # the finds + validated pairs on the validation seeds (at <= n calls each), + screening
                    finds_validated = min(VALIDATED_FINDS, find.result.evaluated - len(pairs))
                    calls = find.result.calls_used + ((finds_validated + args.validated_pairs)
                                                      * args.validation_seeds * n if val_set else 0) + screen_calls
                    found = self.joint.SamplerSchedule(find.sampler, tuple(find.sigmas))
                    key = (space, fit_name, seeding_name)
                    finds[key] = (find, found, seconds, calls)
                    # the pair a user would pick: the best over fitness (+ validation) seeds, as the pipeline ranks
                    user_picks.setdefault(key[1:], min(pairs, key=lambda p: (find.baseline_fitness[p], p)))
        if args.held_pairs > 0:
            top = []
            for scores in fit_scores.values():
                top += [p for p in sorted(pairs, key=lambda p: (scores[p], p))[:args.held_pairs] if p not in top]
        else:
            top = list(pairs)
        top += [p for p in user_picks.values() if p not in top]
        held = Memo(self.held)
        outs = dict(zip(top, held.run([pairs[p] for p in top])))
        fd = self.fitness_of("frechet") if frechet_wanted(args) else None
        pair_fd = {p: fd.distance(o) for p, o in outs.items()} if fd else {}
        refs = [("high", self.held_ref), ("full", self.held_full)]
        if args.held_seeds > OLD_HELD:
            refs += [("high32", self.held_ref[:OLD_HELD]), ("full32", self.held_full[:OLD_HELD])]
        for key, (find, found, seconds, calls) in finds.items():
            space, fit_name, seeding_name = key
            out = held.run([found])[0]
            user_pick = user_picks[key[1:]]
            res = {"find": found, "pick": find.pick, "seconds": seconds, "calls": calls, "fitness": fit_name,
                   "space": space, "seeding": seeding_name, "evaluated": find.result.evaluated}
            for ref_name, ref in refs:
                rows = ref.shape[0]
                errs = {p: mse(o[:rows], ref) for p, o in outs.items()}
                best = min(errs, key=errs.get)
                err = mse(out[:rows], ref)
                res[ref_name] = {"search": err, "best_pair": best, "best": errs[best], "user_pair": user_pick,
                                 "user": errs[user_pick], "gain": errs[best] / err if err > 0 else math.inf,
                                 "user_gain": errs[user_pick] / err if err > 0 else math.inf}
            per_find, per_best = per_seed(out, self.held_ref), per_seed(outs[res["high"]["best_pair"]], self.held_ref)
            res["robust"] = {"median_gain": float(per_best.median() / per_find.median()),
                             "trimmed_gain": trimmed(per_best) / trimmed(per_find),
                             "top_share_find": top_share(per_find), "top_share_best": top_share(per_best),
                             "median_find": float(per_find.median())}
            if fd:
                best = min(pair_fd, key=pair_fd.get)
                res["fd"] = {"search": fd.distance(out), "best_pair": best, "best": pair_fd[best],
                             "user_pair": user_pick, "user": pair_fd[user_pick], "reference": fd.distance(self.held_ref),
                             "full": fd.distance(self.held_full)}
            row["spaces"][key] = res
            h, f = res["high"], res["full"]
            extra = (f"; held-out FD {res['fd']['search']:.3f} | best pair {res['fd']['best_pair']} "
                     f"{res['fd']['best']:.3f} | user {res['fd']['user']:.3f} | {args.reference_steps}-step "
                     f"{res['fd']['reference']:.3f}") if fd else ""
            if "high32" in res:
                h32, f32 = res["high32"], res["full32"]
                extra += (f"; first {OLD_HELD} held-out seeds: {h32['search']:.4g} | {h32['best_pair']} "
                          f"{h32['best']:.4g} ({h32['gain']:.2f}x), vs {args.full_steps}-step {f32['search']:.4g} | "
                          f"{f32['best_pair']} {f32['best']:.4g} ({f32['gain']:.2f}x)")
            rb = res["robust"]
            extra += (f"; per held-out seed vs {args.reference_steps}-step (best pair / searched): median "
                      f"{rb['median_gain']:.2f}x, 10%-trimmed mean {rb['trimmed_gain']:.2f}x; share of the error "
                      f"in the worst 10% of seeds: searched {rb['top_share_find']:.2f}, best pair "
                      f"{rb['top_share_best']:.2f}")
            print(f"{self.name} N={n} [{label(key)}]: {found.sampler} {found.steps} steps ({find.pick}); "
                  f"held-out MSE vs {args.reference_steps}-step {h['search']:.4g} | best pair {h['best_pair']} "
                  f"{h['best']:.4g} ({h['gain']:.2f}x) | user "
                  f"pick {user_pick} {h['user']:.4g} ({h['user_gain']:.2f}x); vs {args.full_steps}-step "
                  f"{f['search']:.4g} | {f['best_pair']} {f['best']:.4g} ({f['gain']:.2f}x) | user {f['user']:.4g} "
                  f"({f['user_gain']:.2f}x){extra}; {len(pairs)} pairs, {len(top)} on held-out, "
                  f"{find.result.evaluated} candidates, {calls} calls, {seconds:.0f} s", flush=True)
        last = list(row["spaces"].values())[-1]
        row["find"], row["high"] = last["find"], last["high"]
        return row

    def real_images(self):
        if self.name == "digits":
            from train_digits_classifier import digits_split
            return torch.from_numpy(digits_split()[2])  # the 450 test digits (8x8)
        from train_mnist_classifier import mnist_split
        return torch.from_numpy(mnist_split()[2])[:, None]  # the 1,000 held-out digits (1x28x28)

    def frechet(self, steps: list[int]) -> list[dict]:
        """dpmpp_2m's schedule searched with the Fréchet fitness; FD on the held-out seeds of every built-in,
        the search and the 200-step reference."""
        if not steps:
            return []
        features = pack_module("nodes.frechet_features")
        fd = features.build_frechet_fitness(self.features, self.real_images())
        k, args, info = self.args.frechet_seeds, self.args, self.info
        fit = self.runner(k, FIT_SEED + 500)
        fit_set = self.pipeline.SeedSet(fit, torch.zeros(1))  # the Fréchet fitness ignores the reference
        ref_fd = fd.distance(self.held_ref)
        rows = []
        for n in steps:
            base = {s: v.tolist() for s, v in self.builtins.builtin_baselines(self.model, "dpmpp_2m", n).items()}
            config = self.evolution.EvoConfig(steps=n, sigma_min=info.sigma_min, sigma_max=info.sigma_max,
                                              population=8, top_k=3, generations=args.generations,
                                              budget=(len(base) + args.frechet_extra) * n * k,
                                              calls_per_candidate=n * k, seed=n)
            t0 = time.perf_counter()
            find = self.pipeline.SchedulePipeline(config, fd, base, fit_set, k).run()
            seconds, calls = time.perf_counter() - t0, find.model_calls
            names = list(base)
            outs = self.held.run([base[s] for s in names] + [find.sigmas])
            dists = [fd.distance(o) for o in outs]
            row = {"N": n, "builtins": dict(zip(names, dists[:-1])), "search": dists[-1], "reference": ref_fd,
                   "seconds": seconds, "calls": calls, "evaluated": find.result.evaluated}
            best = min(row["builtins"], key=row["builtins"].get)
            print(f"{self.name} frechet N={n}: search {dists[-1]:.3f}, best built-in {best} "
                  f"{row['builtins'][best]:.3f}, {self.args.reference_steps}-step reference {ref_fd:.3f}; "
                  f"{find.result.evaluated} candidates, {calls} calls, {seconds:.0f} s", flush=True)
            rows.append(row)
        return rows


class Memo:
    """A runner that samples each distinct (sampler, schedule) once: the search spaces share the seeded pairs'
    samples (their cost is counted once, in `calls`)."""

    def __init__(self, runner):
        self.runner, self.cache = runner, {}

    @property
    def calls(self) -> int:
        return self.runner.calls

    def run(self, schedules):
        keys = [(getattr(s, "sampler", None), tuple(round(float(v), 9) for v in getattr(s, "sigmas", s)))
                for s in schedules]
        todo = {}
        for key, sched in zip(keys, schedules):
            if key not in self.cache and key not in todo:
                todo[key] = sched
        if todo:
            self.cache.update(zip(todo, self.runner.run(list(todo.values()))))
        return [self.cache[key] for key in keys]


def label(key: tuple) -> str:
    """(space, fitness, seeding) as a table cell; the plain seeding is left out (as the tables before it)."""
    space, fit_name, seeding = key
    return f"{space}, {fit_name}" + ("" if seeding == "plain" else f", {seeding}")


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.float() - b.float()) ** 2).mean())


def per_seed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.float() - b.float()) ** 2).flatten(1).mean(1)


def trimmed(errors: torch.Tensor, drop: float = 0.1) -> float:
    """Mean of the per-seed errors without the worst `drop` fraction (the rare samples that change digit)."""
    keep = max(1, len(errors) - int(drop * len(errors)))
    return float(torch.sort(errors).values[:keep].mean())


def top_share(errors: torch.Tensor, drop: float = 0.1) -> float:
    """Fraction of the summed error in the worst `drop` fraction of seeds."""
    k = max(1, int(drop * len(errors)))
    return float(torch.sort(errors, descending=True).values[:k].sum() / errors.sum().clamp_min(1e-30))


def transfer(src: Bench, dst: Bench, src_rows: list[dict], dst_rows: list[dict]) -> list[dict]:
    """src's searched (sampler, schedule) mapped to dst's σ range in log σ, scored on dst's held-out seeds."""
    sched = pack_module("nodes.schedule")
    library = pack_module("core.schedule_library")
    own = {r["N"]: r for r in dst_rows}
    rows = []
    for r in src_rows:
        if r["N"] not in own:
            continue
        found = r["find"]
        record = library.ScheduleRecord(sigmas=list(found.sigmas), sampler=found.sampler,
                                        model_type=src.info.model_type, sigma_min=src.info.sigma_min,
                                        sigma_max=src.info.sigma_max)
        sigmas, _ = sched.fit_to_model(record, dst.info.sigma_min, dst.info.sigma_max)
        moved = src.joint.SamplerSchedule(found.sampler, tuple(float(v) for v in sigmas.tolist()))
        err = mse(dst.held.run([moved])[0], dst.held_ref)
        mine = own[r["N"]]["high"]
        rows.append({"N": r["N"], "sampler": found.sampler, "transferred": err, "own": mine["search"],
                     "best_pair": mine["best_pair"], "best": mine["best"]})
        print(f"transfer {src.name} -> {dst.name} N={r['N']}: {found.sampler} {err:.4g}; {dst.name}'s own search "
              f"{mine['search']:.4g}, best pair {mine['best_pair']} {mine['best']:.4g}", flush=True)
    return rows


def print_tables(results: dict, transfers: dict, args) -> None:
    print("\n### Sampler + timesteps (held-out MSE; gain = built-in pair / searched)\n")
    first = args.held_seeds > OLD_HELD
    print(f"| model | N | space, fitness | searched (sampler, steps) | vs {args.reference_steps}-step: searched | best pair on "
          "held-out | gain | "
          "user's pair (fit seeds) | gain | vs " f"{args.full_steps}-step: searched | best pair | gain | user's pair | "
          "gain | " + (f"first {OLD_HELD} held-out seeds: gain vs {args.reference_steps}-step, {args.full_steps}-step | "
                       if first else "") + "per seed: median gain, worst-10% share searched / best pair | "
          "search cost (calls, s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if first else "") + "---|---|")
    for name, (rows, _) in results.items():
        for r in rows:
            for key, x in r["spaces"].items():
                h, f, rb = x["high"], x["full"], x["robust"]
                old = f"{x['high32']['gain']:.2f}x, {x['full32']['gain']:.2f}x | " if first else ""
                print(f"| {name} | {r['N']} | {label(key)} | {x['find'].sampler}, {x['find'].steps} ({x['pick']}) | "
                      f"{h['search']:.4g} | {h['best_pair']} {h['best']:.4g} | {h['gain']:.2f}x | {h['user_pair']} "
                      f"{h['user']:.4g} | {h['user_gain']:.2f}x | {f['search']:.4g} | {f['best_pair']} "
                      f"{f['best']:.4g} | {f['gain']:.2f}x | {f['user']:.4g} | {f['user_gain']:.2f}x | {old}"
                      f"{rb['median_gain']:.2f}x, {rb['top_share_find']:.2f} / {rb['top_share_best']:.2f} | "
                      f"{x['calls']}, {x['seconds']:.0f} |")
    if frechet_wanted(args):
        print("\n### Held-out Fréchet distance of each search (classifier features vs held-out real digits)\n")
        print(f"| model | N | space, fitness | searched (sampler) | FD | best pair on held-out (FD) | user's pair (FD) "
              f"| {args.reference_steps}-step reference | {args.full_steps}-step run |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, (rows, _) in results.items():
            for r in rows:
                for key, x in r["spaces"].items():
                    d = x["fd"]
                    print(f"| {name} | {r['N']} | {label(key)} | {x['find'].sampler} ({x['pick']}) | "
                          f"{d['search']:.2f} | {d['best_pair']} {d['best']:.2f} | {d['user_pair']} {d['user']:.2f} | "
                          f"{d['reference']:.2f} | {d['full']:.2f} |")
    print("\n### Fréchet fitness (dpmpp_2m; Fréchet distance to held-out real digits on the held-out seeds)\n")
    print(f"| model | N | searched | best built-in | every built-in | {args.reference_steps}-step reference | "
          "search cost (calls, s) |")
    print("|---|---|---|---|---|---|---|")
    for name, (_, frows) in results.items():
        for r in frows:
            best = min(r["builtins"], key=r["builtins"].get)
            every = ", ".join(f"{k} {v:.2f}" for k, v in r["builtins"].items())
            print(f"| {name} | {r['N']} | {r['search']:.2f} | {best} {r['builtins'][best]:.2f} | {every} | "
                  f"{r['reference']:.2f} | {r['calls']}, {r['seconds']:.0f} |")
    print("\n### Transfer through log-σ resampling (held-out MSE vs the target model's "
          f"{args.reference_steps}-step reference)\n")
    print("| from -> to | N | transferred | target's own search | target's best pair |")
    print("|---|---|---|---|---|")
    for key, rows in transfers.items():
        for r in rows:
            print(f"| {key} | {r['N']} | {r['sampler']} {r['transferred']:.4g} | {r['own']:.4g} | "
                  f"{r['best_pair']} {r['best']:.4g} |")


def main(argv=None) -> int:
    args = parse_args(argv)
    comfy_env.boot_comfyui()
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)
    torch.set_num_threads(1)
    started = time.perf_counter()
    print(f"samplers {args.samplers}; fit seeds {args.fit_seeds}, validation {args.validation_seeds}, held-out "
          f"{args.held_seeds}; population {args.population}, <= {args.generations} generations, budget = every pair "
          f"+ {args.extra} candidates; Fréchet: {args.frechet_seeds} fitness seeds", flush=True)
    benches, results = {}, {}
    for name in args.models:
        bench = Bench(name, args)
        rows = [bench.search(n) for n in args.steps]
        results[name] = (rows, bench.frechet(args.frechet_steps))
        benches[name] = bench
    transfers = {}
    if len(benches) == 2:
        a, b = args.models
        transfers[f"{a} -> {b}"] = transfer(benches[a], benches[b], results[a][0], results[b][0])
        transfers[f"{b} -> {a}"] = transfer(benches[b], benches[a], results[b][0], results[a][0])
    print(f"\ntotal {time.perf_counter() - started:.0f} s (torch threads 1)")
    print_tables(results, transfers, args)
    return 0


if __name__ == "__main__":
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        sys.exit(main())
