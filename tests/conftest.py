"""Shared test set-up: the host-free core is imported as package `adaptive_skip_core` straight from its folder,
so no test puts the pack root on sys.path (it would shadow ComfyUI's own top-level `nodes` and `utils`)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parent.parent
CORE_NAME = "adaptive_skip_core"


def _import_core():
    if CORE_NAME in sys.modules:
        return sys.modules[CORE_NAME]
    spec = importlib.util.spec_from_file_location(CORE_NAME, PACK_ROOT / "core" / "__init__.py",
                                                  submodule_search_locations=[str(PACK_ROOT / "core")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[CORE_NAME] = module
    spec.loader.exec_module(module)
    return module


_import_core()
