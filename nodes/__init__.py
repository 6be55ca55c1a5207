"""ComfyUI adapter: node classes and wrappers. Every node family's mappings are merged here.

Importing this package never fails for want of ComfyUI: without the host API the mappings stay empty and
HOST_PROBLEM says why (the pack's __init__ logs it once).
"""
from .host import host_problem

HOST_PROBLEM = host_problem()
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
if HOST_PROBLEM is None:
    from . import compare, demo_model, flow_demo_model, oracle, schedule, skip, skip_library, visualize

    for _module in (compare, demo_model, flow_demo_model, schedule, skip, skip_library, visualize, oracle):
        NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
        NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
    from . import architecture_search, block_plan_nodes  # issue 14: AutoDiffusion's architecture stage

    for _module in (architecture_search, block_plan_nodes):
        NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
        NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
