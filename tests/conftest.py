"""Shared test set-up: scripts/ goes on sys.path (never the pack root: it would shadow ComfyUI's own top-level
`nodes` and `utils`), and the host-free core is imported as package `adaptive_skip_core` by scripts/pack_loader.py,
the loader scripts use too."""
from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = str(Path(__file__).resolve().parent.parent / "scripts")
# tests/core's helper modules (budget_schedules) are imported by name under --import-mode=importlib
CORE_TESTS = str(Path(__file__).resolve().parent / "core")
for path in (SCRIPTS, CORE_TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)

import pack_loader

pack_loader.core()
