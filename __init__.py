"""ComfyUI-AdaptiveSkip: skip noise-prediction calls where the trajectory is smooth, and search sampling schedules.

Registration only. On a ComfyUI without the wrapper API it hooks into, the pack registers nothing and says so in
one log line instead of breaking ComfyUI's start-up.
"""
import logging

from .nodes import HOST_PROBLEM, NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./js"

if HOST_PROBLEM:
    logging.getLogger(__name__).error("AdaptiveSkip: not loaded: %s", HOST_PROBLEM)
else:
    from .nodes.registration import on_load

    on_load()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
