"""The schedule-search benchmark and the search-space study run end to end at tiny sizes in a subprocess (both build
on the same Bench, so a change to one can break the other), and print the rows their docs quote."""
from __future__ import annotations

import os
import subprocess
import sys

from .conftest import COMFY_ROOT, PACK_ROOT


def _run(script: str, *args: str) -> str:
    env = dict(os.environ, COMFYUI_PATH=str(COMFY_ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(PACK_ROOT / "scripts" / "bench" / script), *args], cwd=str(PACK_ROOT),
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_autodiffusion_schedule_quick_runs_plain_and_stratified_searches():
    out = _run("autodiffusion_schedule.py", "--quick", "--models", "digits", "--steps", "3", "--samplers", "euler",
               "dpmpp_2m", "--spaces", "warp", "warp_linear", "--frechet-steps", "--screen-seeds", "8")
    rows = [line for line in out.splitlines() if line.startswith("| digits | 3 |")]
    labels = {row.split("|")[3].strip() for row in rows}
    assert labels == {"warp, fidelity", "warp_linear, fidelity", "warp, fidelity, strata",
                      "warp_linear, fidelity, strata"}, out[-3000:]


def test_schedule_space_study_runs_its_variants(tmp_path):
    out = _run("schedule_space_study.py", "--model", "digits", "--steps", "3", "--samplers", "euler", "dpmpp_2m",
               "--fit-seeds", "2", "--validation-seeds", "2", "--held-seeds", "2", "--reference-steps", "10",
               "--full-steps", "5", "--held-pairs", "2", "--variants", "warp/2/4", "warp_linear/2/4",
               "--cache", str(tmp_path))
    variants = [line.split()[0] for line in out.splitlines() if line.startswith("  warp")]
    assert variants == ["warp/2/4", "warp_linear/2/4"], out[-3000:]


def test_schedule_space_study_scores_several_held_out_sets_and_their_pool(tmp_path):
    out = _run("schedule_space_study.py", "--model", "digits", "--steps", "3", "--samplers", "euler", "dpmpp_2m",
               "--fit-seeds", "2", "--validation-seeds", "2", "--held-sets", "10000:2", "20000:3", "--reference-gap",
               "--reference-steps", "10", "--full-steps", "5", "--held-pairs", "2", "--variants", "warp/2/4",
               "--cache", str(tmp_path))
    cells = [line.split(" (")[0].strip() for line in out.splitlines() if " seeds): vs 10-step " in line]
    assert cells == ["digits-held-2-10000", "digits-held-3-20000", "pooled"], out[-3000:]
    assert "pooled (5 seeds)" in out and "pooled 5-step run: vs 10-step" in out, out[-3000:]


def test_schedule_rescore_scores_a_find_and_the_pairs_on_other_seeds(tmp_path):
    study = ["--model", "digits", "--steps", "3", "--samplers", "euler", "dpmpp_2m", "--fit-seeds", "2",
             "--validation-seeds", "2", "--held-seeds", "3", "--reference-steps", "10", "--full-steps", "5",
             "--held-pairs", "2", "--variants", "warp/2/2", "--fitness-sets", "held", "--cache", str(tmp_path)]
    out = _run("schedule_space_study.py", *study)
    find = next(line for line in out.splitlines() if line.startswith("  warp/2/2"))
    sampler = find.split("] ")[1].split()[0]
    sigmas = find.split("sigmas [")[1].rstrip("]").replace(" ", "")
    out = _run("schedule_rescore.py", "--model", "digits", "--steps", "3", "--samplers", "euler", "dpmpp_2m",
               "--pairs", "0", "--test-seeds", "2",
               "--reference-steps", "10", "--full-steps", "5", "--cache", str(tmp_path),
               "--find", f"oracle={sampler}:{sigmas}")
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert len(rows) >= 3 and rows[-1] == "oracle", out[-3000:]  # every pair, then the find
    assert all(" flips " in line for line in out.splitlines() if line.startswith("  ")), out[-3000:]
