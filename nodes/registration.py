"""Side effects of loading the pack inside ComfyUI: model folders and scheduler names."""
from __future__ import annotations

from .demo_model import register_model_folder


def on_load() -> None:
    """Run once when ComfyUI imports the pack: list the bundled model in UNETLoader's dropdown."""
    register_model_folder()
