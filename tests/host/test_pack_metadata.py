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
