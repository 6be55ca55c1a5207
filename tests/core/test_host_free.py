"""The core never imports ComfyUI: it imports with comfy, folder_paths, server and nodes made unimportable."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib.util, pkgutil, sys
for name in ("comfy", "folder_paths", "server", "nodes", "comfy_extras", "execution"):
    sys.modules[name] = None  # any import of these now raises ImportError
root = sys.argv[1]
spec = importlib.util.spec_from_file_location("core_probe", root + "/core/__init__.py",
                                              submodule_search_locations=[root + "/core"])
core = importlib.util.module_from_spec(spec)
sys.modules["core_probe"] = core
spec.loader.exec_module(core)
names = [m.name for m in pkgutil.iter_modules([root + "/core"])]
for name in names:
    importlib.import_module("core_probe." + name)
print(len(names))
"""


def test_every_core_module_imports_without_comfyui():
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(PACK_ROOT)], capture_output=True, text=True,
                            cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 8
