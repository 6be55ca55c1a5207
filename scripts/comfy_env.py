"""Find a ComfyUI install and boot it in this process with this pack loaded the way ComfyUI loads custom nodes.

Used by the headless runner, the benchmark and the host tests. ComfyUI is the host, never vendored: it is found
through COMFYUI_PATH, else ~/comfy/ComfyUI, else an enclosing ComfyUI/custom_nodes folder.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import sys
import tempfile
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "ComfyUI-AdaptiveSkip"
HOW_TO_POINT = ("ComfyUI was not found: set COMFYUI_PATH to your ComfyUI folder, install it at ~/comfy/ComfyUI, "
                "or clone this pack into ComfyUI/custom_nodes")


def is_comfyui(path: Path) -> bool:
    return (path / "comfy" / "samplers.py").is_file() and (path / "execution.py").is_file()


def find_comfyui() -> Path | None:
    """The ComfyUI folder by the pack's host rules, or None."""
    candidates = []
    if os.environ.get("COMFYUI_PATH"):
        candidates.append(Path(os.environ["COMFYUI_PATH"]).expanduser())
    candidates.append(Path.home() / "comfy" / "ComfyUI")
    if PACK_ROOT.parent.name == "custom_nodes":
        candidates.append(PACK_ROOT.parent.parent)
    for path in candidates:
        if is_comfyui(path):
            return path.resolve()
    return None


_BOOTED: dict[str, object] = {}


def boot_comfyui(extra_nodes: bool = True):
    """Import ComfyUI (CPU), register its built-in extra nodes and load this pack from a custom_nodes folder.

    Returns (comfy_root, nodes_module, pack_module). Idempotent within a process.
    """
    if _BOOTED:
        return _BOOTED["root"], _BOOTED["nodes"], _BOOTED["pack"]
    root = find_comfyui()
    if root is None:
        raise RuntimeError(HOW_TO_POINT)
    # ComfyUI parses sys.argv at import; keep it on the CPU and quiet. The pack root stays off sys.path so
    # ComfyUI's own top-level `nodes` and `utils` are the ones imported.
    sys.argv = [sys.argv[0], "--cpu", "--disable-all-custom-nodes"]
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != PACK_ROOT]
    sys.path.insert(0, str(root))
    import comfy.options
    comfy.options.enable_args_parsing()
    import utils.extra_config  # noqa: F401  (main.py imports it before nodes)
    import nodes
    if extra_nodes:
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    pack_dir = _pack_in_custom_nodes(root)
    ok = asyncio.run(nodes.load_custom_node(str(pack_dir)))
    if not ok:
        raise RuntimeError(f"ComfyUI failed to load the pack from {pack_dir}; see the log above")
    pack = sys.modules[str(pack_dir).replace(".", "_x_")]
    _BOOTED.update(root=root, nodes=nodes, pack=pack)
    return root, nodes, pack


def _pack_in_custom_nodes(root: Path) -> Path:
    """The pack's folder as ComfyUI sees it: itself when installed in custom_nodes, else a symlink in a temp
    custom_nodes folder (never inside the ComfyUI tree, which we do not modify)."""
    if PACK_ROOT.parent.name == "custom_nodes":
        return PACK_ROOT
    holder = Path(tempfile.mkdtemp(prefix="adaptive_skip_custom_nodes_"))
    link = holder / PACK_NAME
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    atexit.register(_remove_link, link, os.getpid())  # else every test run, script and subprocess leaves one
    return link


def _remove_link(link: Path, owner: int) -> None:
    """Remove the temp custom_nodes folder at exit of the process that made it (not of a forked child): the symlink
    itself, never what it points to, then the folder, now empty."""
    if os.getpid() != owner:
        return
    try:
        link.unlink()
        link.parent.rmdir()
    except OSError:
        pass
