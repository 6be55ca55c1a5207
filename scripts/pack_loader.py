"""Import this pack's modules as a package, for scripts and tests: the one place that knows how.

The pack root must stay off sys.path: its `nodes/` (and a `utils` anywhere near it) would shadow ComfyUI's own
top-level `nodes` and `utils`. So the pack is imported as a package under another name:
- `core(name)`: the host-free core alone, as package `adaptive_skip_core` (no ComfyUI needed);
- `pack_module(name)`: any module of the pack as ComfyUI loaded it from custom_nodes (boots ComfyUI first);
- `bare_module(name)`: a module of the pack as package `adaptive_skip_pack` without running the pack's
  `__init__` (which registers every node family): for the training scripts, which import ComfyUI themselves;
- `file_module(name, path)`: one self-contained file as module `name`, from this tree or another (the
  architecture studies read another tree's core/mnist_features.py and MNIST split with it).
Scripts find this file next to them; tests/conftest.py puts scripts/ on sys.path.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parent.parent
CORE_NAME = "adaptive_skip_core"
BARE_NAME = "adaptive_skip_pack"


def core(name: str = ""):
    """The core package (or its module `name`, e.g. "metrics"), imported from its folder as adaptive_skip_core."""
    if CORE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(CORE_NAME, PACK_ROOT / "core" / "__init__.py",
                                                      submodule_search_locations=[str(PACK_ROOT / "core")])
        module = importlib.util.module_from_spec(spec)
        sys.modules[CORE_NAME] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{CORE_NAME}.{name}" if name else CORE_NAME)


def pack_module(name: str):
    """The pack's module `name` (e.g. "nodes.schedule") as ComfyUI loaded the pack: boots ComfyUI if needed."""
    import comfy_env
    _, _, pack = comfy_env.boot_comfyui()
    return importlib.import_module(f"{pack.__name__}.{name}")


def bare_module(name: str):
    """The pack's module `name` under package adaptive_skip_pack, without the pack's __init__ (no registration)."""
    if BARE_NAME not in sys.modules:
        package = types.ModuleType(BARE_NAME)
        package.__path__ = [str(PACK_ROOT)]
        sys.modules[BARE_NAME] = package
    return importlib.import_module(f"{BARE_NAME}.{name}")


def file_module(name: str, path: Path):
    """The file at `path` (no relative imports) executed as module `name`, registered in sys.modules (dataclasses
    look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
