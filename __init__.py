"""ComfyUI-AdaptiveSkip: skip noise-prediction calls where the trajectory is smooth, and search sampling schedules.

Registration only. The pack refuses to register (one log line, no crash) on a ComfyUI without the wrapper API
it hooks into.
"""
import logging

from .nodes.host import host_problem

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
WEB_DIRECTORY = "./js"

_problem = host_problem()
if _problem:
    logging.getLogger(__name__).error("AdaptiveSkip: not loaded: %s", _problem)
else:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F811
    from .nodes.registration import on_load

    on_load()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
