"""Side effects of loading the pack inside ComfyUI: model folders and scheduler names."""
from __future__ import annotations

from .demo_model import register_model_folder
from .schedule import register_schedule_library
from .skip_library import register_path_folder


def on_load() -> None:
    """Run once when ComfyUI imports the pack: list the bundled model in UNETLoader's dropdown, register the
    schedule library folder and offer every saved schedule as an "evo_<name>" scheduler in KSampler dropdowns."""
    register_model_folder()
    register_schedule_library()
    register_path_folder()
