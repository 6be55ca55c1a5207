"""Side effects of loading the pack inside ComfyUI: model folders and scheduler names."""
from __future__ import annotations


def on_load() -> None:
    """Run once when ComfyUI imports the pack."""
