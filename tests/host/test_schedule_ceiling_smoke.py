"""The schedule-ceiling study (scripts/bench/schedule_ceiling.py) runs end to end at tiny sizes, and the batched
samples it scores (every seed of a set and several candidates in one lock-step run) equal per-seed runs."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
import torch
from bench.schedule_ceiling import mse

from .conftest import COMFY_ROOT, PACK_ROOT


def test_schedule_ceiling_tiny_run_prints_its_row(tmp_path):
    env = dict(os.environ, COMFYUI_PATH=str(COMFY_ROOT), OMP_NUM_THREADS="1")
    args = ["--model", "digits", "--steps", "3", "--samplers", "euler", "dpmpp_2m", "--seeds", "2",
            "--reference-steps", "10", "--full-steps", "5", "--max-evaluations", "6", "--seconds", "120",
            "--cache", str(tmp_path), "--study-caches"]
    proc = subprocess.run([sys.executable, str(PACK_ROOT / "scripts" / "bench" / "schedule_ceiling.py"), *args],
                          cwd=str(PACK_ROOT), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| 3 |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[8] == "held", row
    base, found = float(cells[1].split()[-1]), float(cells[2].split()[-1])
    assert found <= base, row  # the pairs are among the starts: the search never ends worse than the best pair
    assert float(cells[3].rstrip("x")) >= 1.0 and (tmp_path / "digits-2-10000-n3.pt").is_file()


def test_batched_samples_equal_per_seed_runs(host):
    import bench.autodiffusion_schedule as AS

    bench = AS.Bench.__new__(AS.Bench)
    bench.load("digits", argparse.Namespace(reference_steps=10, full_steps=5, samplers=["all"]))
    genes = tuple(g for g in bench.builtins.joint_genes(3) if g[0] in ("ipndm_v", "deis", "dpmpp_2m"))
    pairs = bench.builtins.joint_baselines(bench.model, genes)
    chosen = [pairs[p] for p in ("ipndm_v+karras", "deis+beta", "dpmpp_2m+exponential")]
    k, seed = 3, 10_000
    runner = bench.runner(k, seed)
    runner.candidates_per_call = len(chosen)
    with torch.inference_mode():
        batched = runner.run(chosen)
        single = [[bench.runner(1, seed, [i]).run([s])[0] for i in range(k)] for s in chosen]
        ref = runner.sample(bench.ref_sigmas, "dpmpp_2m")
    # equal up to float32 rounding (a batch of 3 seeds x 3 candidates rounds otherwise than a batch of 1): the
    # largest difference is below 1e-4 of the samples' scale, the scored MSE agrees to 1e-4
    for b, per in zip(batched, single):
        per = torch.cat(per)
        assert b.shape == per.shape
        scale = float(per.abs().max())
        assert float((b - per).abs().max()) <= 1e-4 * scale, float((b - per).abs().max())
        assert mse(b, ref) == pytest.approx(mse(per, ref), rel=1e-4)
    assert float((batched[0] - batched[1]).abs().max()) > 1e-2 * float(batched[1].abs().max())  # really different
