"""Run a shipped workflow headless through ComfyUI's own executor, on the CPU, and print its report.

    python scripts/run_workflow.py [workflows/adaptive_skip_basic.json] [--output results/run]

ComfyUI is found through COMFYUI_PATH, ~/comfy/ComfyUI, or an enclosing ComfyUI/custom_nodes folder.
"""
from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_env  # noqa: E402
import workflow_convert  # noqa: E402

sys.path.remove(str(HERE))


class ServerStub:
    """What PromptExecutor needs of ComfyUI's server when no web UI runs."""

    client_id = None
    last_node_id = None
    last_prompt_id = None

    def __init__(self):
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))


def make_executor(execution, server):
    # 0.3.64 takes cache_size=, 0.8.0 takes cache_args={"lru": 0, "ram": 0}, 0.33 also reads "ram_inactive"
    params = inspect.signature(execution.PromptExecutor.__init__).parameters
    if "cache_args" in params:
        return execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC,
                                        cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
    return execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC, cache_size=None)


def run(workflow_path: Path, output_dir: Path) -> dict:
    """Execute one UI-format workflow; returns {"ok", "texts", "images", "paths", "seconds"}."""
    _, nodes, _ = comfy_env.boot_comfyui()
    import comfy.utils
    import execution
    import folder_paths

    comfy.utils.set_progress_bar_enabled(False)  # headless: the report below is the progress that matters
    workflow = json.loads(workflow_path.read_text())
    prompt = workflow_convert.ui_to_api(workflow, nodes.NODE_CLASS_MAPPINGS)
    prompt_id = str(uuid.uuid4())
    valid = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    if not valid[0]:
        raise RuntimeError(f"workflow {workflow_path.name} is not valid for this ComfyUI: {valid[1]} {valid[3]}")
    output_dir.mkdir(parents=True, exist_ok=True)
    folder_paths.set_output_directory(str(output_dir.resolve()))
    server = ServerStub()
    executor = make_executor(execution, server)
    start = time.perf_counter()
    executor.execute(prompt, prompt_id, {}, valid[2])
    seconds = time.perf_counter() - start
    if not executor.success:
        errors = [data for event, data in executor.status_messages if event == "execution_error"]
        detail = errors[0].get("exception_message", errors[0]) if errors else "see the log"
        raise RuntimeError(f"workflow {workflow_path.name} failed: {detail}")
    outputs = executor.history_result["outputs"]
    texts, images, paths = [], [], []
    for node_id, ui in outputs.items():
        texts += [t for t in ui.get("text", []) if isinstance(t, str)]
        images += [str(output_dir / i.get("subfolder", "") / i["filename"]) for i in ui.get("images", [])
                   if i.get("type") == "output"]
        paths += ui.get("adaptive_skip_path", [])
    return {"ok": True, "texts": texts, "images": images, "paths": paths, "seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", nargs="?", default=str(comfy_env.PACK_ROOT / "workflows" / "adaptive_skip_basic.json"))
    parser.add_argument("--output", default=str(comfy_env.PACK_ROOT / "results" / "run"),
                        help="folder for the saved images (default: results/run in the pack)")
    args = parser.parse_args(argv)
    if comfy_env.find_comfyui() is None:
        print(comfy_env.HOW_TO_POINT + ".", file=sys.stderr)
        return 2
    result = run(Path(args.workflow), Path(args.output))
    print(f"\n== {Path(args.workflow).name}: finished in {result['seconds']:.1f} s")
    for path in result["paths"]:
        print(f"  {path.get('sampler', '')}: {path['model_calls']} of {path['sampler_calls']} model calls "
              f"({path['sampler_calls'] / max(path['model_calls'], 1):.2f}x), "
              f"{sum(path['computed'])} of {len(path['computed'])} steps computed")
    for text in result["texts"]:
        print("  " + text)
    for image in result["images"]:
        print(f"  saved {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
