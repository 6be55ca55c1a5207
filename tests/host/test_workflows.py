"""Every shipped workflow converts from the UI format, validates in ComfyUI and executes headless."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((PACK_ROOT / "workflows").glob("*.json"))
GENERATORS = ("make_workflows", "make_autodiffusion_workflow")  # scripts/ that write workflows/


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_executes(host, workflow, tmp_path):
    import run_workflow as runner  # scripts/ is on sys.path (tests/conftest.py)
    result = runner.run(workflow, tmp_path)
    assert result["ok"]
    ui = json.loads(workflow.read_text())
    saves = [n for n in ui["nodes"] if n["type"] == "SaveImage"]
    assert len(result["images"]) >= len(saves)
    for path in result["paths"]:
        assert path["model_calls"] <= path["sampler_calls"]


def test_basic_workflow_reports_calls_and_fidelity(host, tmp_path):
    import run_workflow as runner  # scripts/ is on sys.path (tests/conftest.py)
    result = runner.run(PACK_ROOT / "workflows" / "adaptive_skip_basic.json", tmp_path)
    assert any("PSNR" in t and "model calls" in t for t in result["texts"])
    assert all(p["model_calls"] < p["sampler_calls"] for p in result["paths"]), "the default settings must skip"


def test_ui_to_api_round_trip(host):
    import make_workflows as make
    import workflow_convert as convert
    for name, build in make.WORKFLOWS.items():
        prompt, layout = build()
        ui = json.loads((PACK_ROOT / "workflows" / name).read_text())
        converted = convert.ui_to_api(ui, host.nodes.NODE_CLASS_MAPPINGS)
        assert set(converted) == set(prompt), name
        for node_id, node in prompt.items():
            got = converted[node_id]
            assert got["class_type"] == node["class_type"]
            # inputs the source leaves out take their defaults in the UI file
            assert {k: got["inputs"][k] for k in node["inputs"]} == node["inputs"], f"{name} node {node_id} drifted"


def test_shipped_workflows_are_what_their_generators_write(host):
    """Every file in workflows/ (UI files and API twins) is byte for byte what scripts/make_workflows.py or
    scripts/make_autodiffusion_workflow.py writes today, so a changed builder or a node input appended without
    regenerating fails here instead of drifting. On another ComfyUI than the one they are written on
    (make_workflows.WRITTEN_ON) stock nodes may declare other outputs: there those are left out of the comparison
    of the UI files, and everything else is still compared."""
    import make_workflows
    written = {}
    for generator in GENERATORS:
        for path, text in importlib.import_module(generator).render_all(host.nodes.NODE_CLASS_MAPPINGS).items():
            assert path not in written, f"workflows/{path} is written by two generators"
            written[path] = (generator, text)
    shipped = {p.relative_to(PACK_ROOT / "workflows").as_posix()
               for p in (PACK_ROOT / "workflows").rglob("*.json")}
    assert shipped == set(written), "every shipped workflow file comes from a generator, and every one is shipped"
    pinned = importlib.import_module("comfyui_version").__version__ == make_workflows.WRITTEN_ON
    for path, (generator, text) in written.items():
        have = (PACK_ROOT / "workflows" / path).read_text()
        if not pinned and not path.startswith("api/"):
            have, text = (_without_stock_outputs(json.loads(t), host.mappings) for t in (have, text))
        assert have == text, f"workflows/{path} is not what its generator writes: run python scripts/{generator}.py"


def _without_stock_outputs(ui: dict, pack_nodes: dict) -> dict:
    for node in ui["nodes"]:
        if node["type"] not in pack_nodes:
            node.pop("outputs")
    return ui
