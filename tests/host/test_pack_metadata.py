"""What the node library shows: every node has a description and search aliases; loaders see overwritten files."""
from __future__ import annotations

import importlib
import json

import pytest


def test_every_node_has_a_description_and_search_aliases(host):
    for name, cls in host.mappings.items():
        assert getattr(cls, "DESCRIPTION", "").strip(), f"{name} has no DESCRIPTION"
        aliases = getattr(cls, "SEARCH_ALIASES", None)
        assert aliases and all(isinstance(a, str) and a for a in aliases), f"{name} has no SEARCH_ALIASES"


@pytest.mark.parametrize("word", ["cache", "teacache", "speed"])
def test_searching_what_users_type_finds_the_skip_nodes(host, word):
    found = {name for name, cls in host.mappings.items() if any(word in a for a in getattr(cls, "SEARCH_ALIASES", []))}
    assert {"AdaptiveSkipModel", "AdaptiveSkipKSampler"} <= found, (word, found)


def test_load_skip_path_sees_an_overwritten_file(host, tmp_path, monkeypatch):
    import folder_paths
    library = importlib.import_module(f"{host.pack.__name__}.nodes.skip_library")
    SkipPath = importlib.import_module(f"{host.pack.__name__}.core.skip_path").SkipPath
    monkeypatch.setitem(folder_paths.folder_names_and_paths, library.FOLDER, ([str(tmp_path)], {".json"}))
    target = tmp_path / "walk.json"
    first = SkipPath(sigmas=[3.0, 1.0, 0.0], computed=[True, False])
    target.write_text(first.to_json())
    loader = host.mappings["LoadSkipPath"]
    before = loader.IS_CHANGED(name="walk.json")
    assert loader.IS_CHANGED(name="walk.json") == before, "an unchanged file must hit ComfyUI's cache"
    target.write_text(json.dumps(dict(first.to_dict(), computed=[True, True])))
    assert loader.IS_CHANGED(name="walk.json") != before
    assert loader().load("walk.json")[0].computed == [True, True]


@pytest.fixture()
def schedule_library(host, tmp_path, monkeypatch):
    import folder_paths
    sched = importlib.import_module(f"{host.pack.__name__}.nodes.schedule")
    sched.register_schedule_folder()
    paths, exts = folder_paths.folder_names_and_paths[sched.FOLDER]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, sched.FOLDER, ([str(tmp_path)] + list(paths), exts))
    return tmp_path


def test_load_timestep_schedule_sees_an_overwritten_file(host, schedule_library):
    shipped = host.mappings["LoadTimestepSchedule"].INPUT_TYPES()["required"]["schedule"][0][0]
    sched = importlib.import_module(f"{host.pack.__name__}.nodes.schedule")
    data = json.loads(open(sched.library_path(shipped), encoding="utf-8").read())
    target = schedule_library / "walk_copy.json"
    target.write_text(json.dumps(data))
    loader = host.mappings["LoadTimestepSchedule"]
    before = loader.IS_CHANGED(schedule="walk_copy.json")
    assert loader.IS_CHANGED(schedule="walk_copy.json") == before
    target.write_text(json.dumps(dict(data, created="later")))
    assert loader.IS_CHANGED(schedule="walk_copy.json") != before


def test_schedule_loaders_keep_the_tail_under_denoise(host, tiny_sd15):
    from_text = host.mappings["TimestepScheduleFromText"]()
    full = from_text.parse("14.61, 6.0, 3.2, 1.5, 0.9, 0.4, 0.2, 0")[0]
    half = from_text.parse("14.61, 6.0, 3.2, 1.5, 0.9, 0.4, 0.2, 0", denoise=0.5)[0]
    assert len(half) == len(full) and half[-1] == 0 and half[0] < full[0] * 0.5  # 7 steps from the low half
    assert len(from_text.parse("14.61, 3.2, 0.9, 0.2, 0", denoise=0.0)[0]) == 0
    shipped = host.mappings["LoadTimestepSchedule"].INPUT_TYPES()["required"]["schedule"][0][0]
    load = host.mappings["LoadTimestepSchedule"]()
    whole = load.load(shipped, tiny_sd15, allow_other_model_type=True)["result"][0]
    tail = load.load(shipped, tiny_sd15, allow_other_model_type=True, denoise=0.6)["result"][0]
    assert len(tail) == len(whole) and tail[0] < whole[0] and tail[-1] == 0
    assert all(a > b for a, b in zip(tail[:-1], tail[1:]))


def test_a_search_budget_that_buys_nothing_returns_a_built_in_with_a_note(host, tiny_sd15, tiny_conds):
    import torch
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    out = host.mappings["EvoTimestepSchedule"]().search(tiny_sd15, tiny_conds[0], tiny_conds[1], latent, "euler",
                                                        5, 3.0, 2, 1, 0)
    sigmas, report, _ = out["result"]
    assert len(sigmas) == 6 and sigmas[-1] == 0
    assert "budget 1 cannot pay for one candidate" in report and "at least 10" in report
    assert out["ui"]["text"] == [report]
