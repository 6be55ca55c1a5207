"""scripts/comfy_env.py boots ComfyUI with the pack linked from a temporary custom_nodes folder; the process that
made the folder removes it when it exits (test runs, scripts and the benchmark's subprocesses used to leave one in
the temp folder each), and never touches the pack the link points to."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import COMFY_ROOT, PACK_ROOT

BOOT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import comfy_env
_, _, pack = comfy_env.boot_comfyui(extra_nodes=False)
link = Path(pack.__file__).parent
print("LINK", link, link.is_symlink(), link.parent.is_dir())
"""


def test_the_temp_custom_nodes_folder_is_removed_at_exit():
    if PACK_ROOT.parent.name == "custom_nodes":
        pytest.skip("the pack sits in a custom_nodes folder: ComfyUI loads it from there, no temp link is made")
    env = dict(os.environ, COMFYUI_PATH=str(COMFY_ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", BOOT, str(PACK_ROOT / "scripts")], cwd=str(PACK_ROOT), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LINK "))
    _, link, was_link, had_folder = line.split()
    link = Path(link)
    assert (was_link, had_folder) == ("True", "True"), line  # the pack was loaded through a temp link
    assert link.parent.name.startswith("adaptive_skip_custom_nodes_")
    assert not link.parent.exists(), f"{link.parent} was left behind"
    assert (PACK_ROOT / "__init__.py").is_file() and (PACK_ROOT / "nodes").is_dir()  # the pack itself is intact
