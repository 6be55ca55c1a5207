"""Searched skip paths: the evolutionary search beats its evenly spaced seeds, saves, loads and replays."""
from __future__ import annotations

import torch


def test_evolutionary_search_saves_loads_and_replays(host, tiny_sd15, tiny_conds, tmp_path, monkeypatch):
    import folder_paths
    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path))
    host.pack.nodes.skip_library.register_path_folder()
    oracle = host.mappings["SkipPathOracle"]()
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    out = oracle.search(tiny_sd15, tiny_conds[0], tiny_conds[1], latent, 0, 12, 4.0, "euler", "karras", 6, 2,
                        "linear", method="evolutionary", generations=3, population=6)
    path, searched, _ = out["result"]
    assert path.criterion == "searched" and path.computed_steps == 6 and path.computed[:2] == [True, True]
    saved, = host.mappings["SaveSkipPath"]().save(path, "found")["result"]
    assert saved.endswith("found.json")
    loaded, summary = host.mappings["LoadSkipPath"]().load("found.json")
    assert loaded.computed == path.computed and "6 of 12 steps computed" in summary
    patched = host.mappings["AdaptiveSkipModel"]().patch(tiny_sd15, 0.01, 4, 2, "official", reuse="linear",
                                                        forced_path=loaded)[0]
    import comfy.sample
    noise = comfy.sample.prepare_noise(latent["samples"], 0)
    replay = comfy.sample.sample(patched, noise, 12, 4.0, "euler", "karras", *tiny_conds, latent["samples"],
                                 seed=0, disable_pbar=True)
    assert torch.allclose(replay, searched["samples"], atol=1e-5)
