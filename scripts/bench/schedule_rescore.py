"""Score given (sampler, σ) schedules next to the best built-in pairs on another seed set (issue 14, digits UNet).

    OMP_NUM_THREADS=1 python scripts/bench/schedule_rescore.py --model digits --steps 8 \
        --rank-cache /tmp/hu_study --rank-set held-128-10000 --test-seeds 128 --test-seed 1000 --cache /tmp/hu_study/b \
        --find "oracle=ipndm_v:14.6,5.2,...,0"

What it is for: a search run ON a seed set (schedule_space_study.py --fitness-sets held, an in-sample oracle there)
is also a plain search with that many fitness seeds. Scoring its find on a disjoint set of seeds makes it an honest
out-of-sample result: the fitness seeds are the study's seeds, the held-out seeds are --test-seeds from --test-seed.
The baseline is the best of the --pairs best built-in pairs on the ranking set (read from the study's cache, so
nothing is re-sampled there), picked with hindsight on the test seeds, against the 100-step and the 50-step
dpmpp_2m karras references of the test seeds (as scripts/bench/autodiffusion_schedule.py; cached with --cache).
Per schedule: mean MSE, the gain, the median per-seed gain, the share of the error in the worst 10% of seeds, and
class flips (the pack's digits classifier on the decoded sample differs from the reference's digit).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[1]
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
import comfy_env
from pack_loader import pack_module

import bench.autodiffusion_schedule as AS
from bench.schedule_space_study import DiskMemo


def parse_find(text: str):
    """NAME=SAMPLER:σ0,σ1,...: one schedule to score."""
    name, _, rest = text.partition("=")
    sampler, _, sigmas = rest.partition(":")
    if not (name and sampler and sigmas):
        raise SystemExit(f"--find wants NAME=SAMPLER:s0,s1,...,0, got {text!r}")
    return name, sampler, tuple(float(v) for v in sigmas.split(","))


def digit_classifier():
    """samples -> the pack's digits classifier's class of each decoded sample (the Fréchet features' network)."""
    features, df = pack_module("nodes.frechet_features"), pack_module("core.digits_features")
    decode, _, _ = features._digits_parts()
    clf = df.load_digits_classifier(str(Path(features.MODELS_DIR) / "digits_classifier.safetensors"))
    return lambda samples: clf(df.to_digit_batch(decode(samples))).argmax(1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="digits", choices=["digits", "mnist_dit"])
    ap.add_argument("--steps", type=int, required=True, help="N: the finds' and the pairs' model calls")
    ap.add_argument("--samplers", nargs="+", default=["dpmpp_2m", "ipndm", "ipndm_v", "deis", "uni_pc", "uni_pc_bh2"])
    ap.add_argument("--rank-cache", type=Path, help="the study cache that ranks the pairs")
    ap.add_argument("--rank-set", default="held-128-10000", help="its seed set (as in its file names)")
    ap.add_argument("--pairs", type=int, default=8, help="pairs (the best on the ranking set) scored on the test set; 0: every pair, no ranking set")
    ap.add_argument("--test-seeds", type=int, default=128)
    ap.add_argument("--test-seed", type=int, default=AS.FIT_SEED)
    ap.add_argument("--find", action="append", default=[], help="NAME=SAMPLER:s0,...,0 (repeatable)")
    ap.add_argument("--reference-steps", type=int, default=100)
    ap.add_argument("--full-steps", type=int, default=50)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--reference-file", type=Path, help="a study cache file holding the test seeds' 100-step "
                    "reference (e.g. digits-fit-128-1000-refs-100-50.pt): only the 50-step run is sampled")
    args = ap.parse_args(argv)
    comfy_env.boot_comfyui()
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    bench = AS.Bench.__new__(AS.Bench)
    bench.load(args.model, args)
    genes = tuple(g for g in bench.builtins.joint_genes(args.steps) if g[0] in args.samplers)
    pairs = bench.builtins.joint_baselines(bench.model, genes)
    rank, top = {}, list(pairs)
    if args.pairs > 0:
        stem = f"{args.model}-{args.rank_set}"
        rank_ref = torch.load(args.rank_cache / f"{stem}-refs-{args.reference_steps}-{args.full_steps}.pt")[0]
        rank_memo = torch.load(args.rank_cache / f"{stem}-n{args.steps}.pt")
        key = lambda s: (s.sampler, tuple(round(float(v), 9) for v in s.sigmas))
        missing = [p for p in pairs if key(pairs[p]) not in rank_memo]
        if missing:
            raise SystemExit(f"{len(missing)} pairs are not in {args.rank_cache}/{stem}-n{args.steps}.pt (e.g. "
                             f"{missing[0]}): pass --pairs 0 to score every pair on the test seeds")
        rank = {p: AS.mse(rank_memo[key(pairs[p])], rank_ref) for p in pairs}
        top = sorted(pairs, key=lambda p: (rank[p], p))[:args.pairs]

    runner = bench.runner(args.test_seeds, args.test_seed)
    ref_path = args.cache / f"{args.model}-test-{args.test_seeds}-{args.test_seed}-refs-{args.reference_steps}-" \
                            f"{args.full_steps}.pt"
    if ref_path.is_file():
        ref, full = torch.load(ref_path)
    else:
        ref = torch.load(args.reference_file)[0] if args.reference_file else None
        if ref is None or ref.shape[0] != args.test_seeds:
            ref = runner.sample(bench.ref_sigmas, "dpmpp_2m")
        full = runner.sample(bench.full_sigmas, "dpmpp_2m")
        torch.save((ref, full), ref_path)
    memo = DiskMemo(runner, args.cache / f"{args.model}-test-{args.test_seeds}-{args.test_seed}-n{args.steps}.pt")
    finds = {name: bench.joint.SamplerSchedule(sampler, sig) for name, sampler, sig in map(parse_find, args.find)}
    scheds = {**{p: pairs[p] for p in top}, **finds}
    outs = dict(zip(scheds, memo.run(list(scheds.values()))))
    classify = digit_classifier() if args.model == "digits" else None
    ref_class = classify(ref) if classify else None
    print(f"{args.model} N={args.steps}: {len(pairs)} pairs ranked on {args.rank_set}; test set {args.test_seeds} "
          f"seeds from {args.test_seed}; {time.perf_counter() - t0:.0f} s", flush=True)
    best = {r: min(top, key=lambda p: AS.mse(outs[p], t)) for r, t in (("high", ref), ("full", full))}
    per_best = AS.per_seed(outs[best["high"]], ref)
    for name, out in outs.items():
        err, err_full = AS.mse(out, ref), AS.mse(out, full)
        per = AS.per_seed(out, ref)
        flips = int((classify(out) != ref_class).sum()) if classify else -1
        b, bf = AS.mse(outs[best["high"]], ref), AS.mse(outs[best["full"]], full)
        print(f"  {name:<28} {scheds[name].sampler:<10} vs {args.reference_steps}-step {err:.4g} ({b / err:.2f}x "
              f"of best pair {best['high']}) | vs {args.full_steps}-step {err_full:.4g} ({bf / err_full:.2f}x of "
              f"{best['full']}) | median per-seed gain {float(per_best.median() / per.median()):.2f}x | worst-10% "
              f"share {AS.top_share(per):.2f} | flips {flips}/{len(per)} | rank-set MSE "
              f"{rank.get(name, float('nan')):.4g}", flush=True)
    return 0


if __name__ == "__main__":
    with torch.inference_mode():
        sys.exit(main())
