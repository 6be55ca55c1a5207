"""The shipped two-stage workflow (workflows/autodiffusion_two_stage.json): it is what its generator writes, its
stage 1 is served from the shipped schedule record (so it runs in about a minute), and its one combined record --
plan, stage-1 SIGMAS, sampler and the search -- comes back through LoadBlockPlan. tests/host/test_workflows.py
executes it as it does every shipped workflow."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

PACK_ROOT = Path(__file__).resolve().parents[2]
NAME = "autodiffusion_two_stage.json"


def _upstream(host, prompt: dict) -> dict:
    """The outputs of the workflow's loader, conditioning and latent nodes (ids 1-4), run directly."""
    maps = {**host.nodes.NODE_CLASS_MAPPINGS, **host.mappings}
    out = {}
    for node_id in ("1", "2", "3", "4"):
        node = prompt[node_id]
        cls = maps[node["class_type"]]
        out[node_id] = getattr(cls(), cls.FUNCTION)(**node["inputs"])
    return out


def _linked(inputs: dict, values: dict) -> dict:
    return {k: (values[v[0]][v[1]] if isinstance(v, list) else v) for k, v in inputs.items()}


def test_the_workflow_is_what_its_generator_writes(host):
    import make_autodiffusion_workflow as make
    import workflow_convert as convert
    prompt, _ = make.two_stage()
    ui = json.loads((PACK_ROOT / "workflows" / NAME).read_text())
    converted = convert.ui_to_api(ui, host.nodes.NODE_CLASS_MAPPINGS)
    assert json.loads((PACK_ROOT / "workflows" / "api" / NAME).read_text()) == converted
    assert set(converted) == set(prompt)
    for node_id, node in prompt.items():
        assert converted[node_id]["class_type"] == node["class_type"]
        assert {k: converted[node_id]["inputs"][k] for k in node["inputs"]} == node["inputs"], node_id
    types = [n["class_type"] for n in prompt.values()]
    assert types.index("EvoTimestepSchedule") < types.index("EvoArchitectureSearch")
    stage2 = next(n for n in prompt.values() if n["class_type"] == "EvoArchitectureSearch")
    assert stage2["inputs"]["sigmas"] == ["5", 0] and stage2["inputs"]["save_name"]  # stage 1's SIGMAS, a record


def test_stage_one_is_served_from_the_shipped_record(host, monkeypatch):
    import make_autodiffusion_workflow as make
    schedule = sys.modules[f"{host.pack.__name__}.nodes.schedule"]

    def no_search(*args, **kwargs):
        raise AssertionError("stage 1 of the two-stage workflow searched: its shipped record no longer matches; "
                             "run `python scripts/make_autodiffusion_workflow.py --populate`")
    monkeypatch.setattr(schedule, "run_search", no_search)
    prompt, _ = make.two_stage()
    values = _upstream(host, prompt)
    out = host.mappings["EvoTimestepSchedule"]().search(**_linked(prompt["5"]["inputs"], values))
    assert "no search run" in out["result"][1]
    assert len(out["result"][0]) == make.STEPS + 1


def test_stage_two_writes_one_combined_record(host, tmp_path, monkeypatch):
    """Stage 2 on stage 1's SIGMAS, as the workflow wires it (a smaller search here): the record it saves holds the
    plan, the schedule and the sampler, LoadBlockPlan returns all three, and the run is served from it next time."""
    import folder_paths
    import make_autodiffusion_workflow as make
    lib = sys.modules[f"{host.pack.__name__}.nodes.block_plan_files"]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, lib.FOLDER, ([str(tmp_path)], {lib.EXTENSION}))
    prompt, _ = make.two_stage()
    values = _upstream(host, prompt)
    values["5"] = host.mappings["EvoTimestepSchedule"]().search(**_linked(prompt["5"]["inputs"], values))["result"]
    inputs = dict(_linked(prompt["6"]["inputs"], values), population=4, generations=1, num_seeds=2)
    node = host.mappings["EvoArchitectureSearch"]()
    _, plan, report = node.search(**inputs)
    record = tmp_path / (make.STAGE2["save_name"] + ".json")
    assert record.is_file() and f"saved as {record}" in report
    loaded, sigmas, summary, sampler = host.mappings["LoadBlockPlan"]().load(record.name)
    assert loaded == plan and torch.equal(sigmas, values["5"][0].float())
    assert sampler.sampler_function.__name__ == f"sample_{make.SAMPLER}" and f"sampler {make.SAMPLER}" in summary
    assert loaded.search["cost_target"] == make.STAGE2["cost_target"] and "report" in loaded.search
    assert "no search run" in node.search(**inputs)[2]
