"""Check, without crashing ComfyUI's start-up, that the host has the API this pack hooks into."""
from __future__ import annotations

REQUIRED_WRAPPERS = ("OUTER_SAMPLE", "PREDICT_NOISE")


def host_problem() -> str | None:
    """None when ComfyUI's wrapper API is present, else one sentence saying what is missing."""
    try:
        import comfy.patcher_extension as pe
        import comfy.model_patcher as mp
    except ImportError as err:
        return f"ComfyUI's comfy package could not be imported ({err}); install the pack into ComfyUI/custom_nodes"
    missing = [name for name in REQUIRED_WRAPPERS if not hasattr(getattr(pe, "WrappersMP", None), name)]
    if missing or not hasattr(mp.ModelPatcher, "add_wrapper_with_key"):
        return ("this ComfyUI lacks the ModelPatcher wrapper API (comfy.patcher_extension.WrappersMP."
                f"{', '.join(missing) or 'add_wrapper_with_key'}); update ComfyUI to 0.3.64 or newer")
    return None
