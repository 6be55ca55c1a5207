"""EvoTimestepSchedule with sampler_name auto in real ComfyUI: the sampler genes and their model calls, mixed-sampler
lock-step batching, every sampler x scheduler pair seeded, the SAMPLER output, the record and LoadTimestepSchedule."""
from __future__ import annotations

import json

import pack_loader
import pytest
import torch

AUTO = dict(sampler_name="auto", steps=3, cfg=3.0, num_seeds=1, budget=3000, seed=2, population=4, top_k=2,
            generations=2, reference_steps=10, validation_seeds=1)
pytestmark = pytest.mark.usefixtures("one_thread")  # one_thread and library: tests/host/conftest.py


def test_genes_are_deterministic_samplers_at_no_more_than_n_calls(host, tiny_sd15, tiny_conds):
    """Each gene's calls are what ComfyUI's sampler really makes (counted by the runner) and fit in N."""
    import comfy.samplers
    builtins = pack_loader.pack_module("nodes.builtin_schedules")
    runner_mod = pack_loader.pack_module("nodes.schedule_runner")
    joint = pack_loader.pack_module("core.joint_schedule_search")
    genes = {name: (steps, calls) for name, steps, calls in builtins.joint_genes(4)}
    assert genes["euler"] == (4, 4) and genes["dpmpp_2m"] == (4, 4)
    assert genes["heun"] == (2, 3)  # 2 calls a step, 1 on the last: 3 steps would be 5 calls
    assert not any("ancestral" in n or "sde" in n for n in genes)
    assert set(genes) <= set(comfy.samplers.KSampler.SAMPLERS)
    ms = tiny_sd15.get_model_object("model_sampling")
    for name in ("euler", "heun", "heunpp2", "dpm_2", "uni_pc"):
        steps, calls = genes[name]
        sigmas = comfy.samplers.calculate_sigmas(ms, "karras", steps).tolist()
        runner = runner_mod.CandidateRunner(tiny_sd15, *tiny_conds, 3.0, "euler",
                                            {"samples": torch.zeros(1, 4, 4, 4)}, num_seeds=2, seed=3)
        runner.run([joint.SamplerSchedule(name, tuple(sigmas))])
        assert runner.calls == calls * 2 <= 4 * 2, name


def test_mixed_samplers_share_batches_and_equal_separate_runs(host, tiny_sd15, tiny_conds):
    import comfy.sample
    import comfy.samplers
    runner_mod = pack_loader.pack_module("nodes.schedule_runner")
    joint = pack_loader.pack_module("core.joint_schedule_search")
    cands = [joint.SamplerSchedule("euler", (14.614641, 2.0, 0.3, 0.0)),
             joint.SamplerSchedule("heun", (14.614641, 1.0, 0.0)),
             joint.SamplerSchedule("uni_pc", (14.614641, 3.0, 0.5, 0.0)),
             joint.SamplerSchedule("ipndm_v", (14.614641, 5.0, 0.8, 0.0))]
    runner = runner_mod.CandidateRunner(tiny_sd15, *tiny_conds, 3.0, "dpmpp_2m",
                                        {"samples": torch.zeros(1, 4, 4, 4)}, num_seeds=2, seed=7,
                                        candidates_per_call=4)
    outs = runner.run(cands)
    for cand, out in zip(cands, outs):
        alone = comfy.sample.sample_custom(
            tiny_sd15, runner.noise, 3.0, comfy.samplers.sampler_object(cand.sampler), torch.tensor(cand.sigmas),
            *tiny_conds, runner.latent, disable_pbar=True, seed=7)
        assert torch.allclose(out, alone, atol=1e-4, rtol=1e-4), cand.sampler
    # 3 + 3 + 3 + 3 calls per seed, the identical first call (same x, σ_max) made once
    assert runner.calls == (12 - 3) * 2


def test_auto_search_outputs_sampler_and_sigmas_records_both_and_load_returns_them(host, library, tiny_sd15,
                                                                                   tiny_conds):
    import comfy.samplers
    builtins = pack_loader.pack_module("nodes.builtin_schedules")
    node = host.mappings["EvoTimestepSchedule"]()
    assert "auto" in node.INPUT_TYPES()["required"]["sampler_name"][0]
    assert node.INPUT_TYPES()["required"]["sampler_name"][1]["default"] == "dpmpp_2m"
    assert node.RETURN_TYPES == ("SIGMAS", "STRING", "SAMPLER")
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    out = node.search(tiny_sd15, *tiny_conds, latent, **AUTO)
    sigmas, report, sampler = out["result"]
    files = sorted(library.glob("*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    genes = {n: (s, c) for n, s, c in builtins.joint_genes(3)}
    assert record["sampler"] in genes and len(record["sigmas"]) == genes[record["sampler"]][0] + 1
    assert torch.allclose(sigmas, torch.tensor(record["sigmas"]))
    function = comfy.samplers.sampler_object(record["sampler"]).sampler_function.__name__
    assert sampler.sampler_function.__name__ == function
    # every sampler x built-in scheduler pair was seeded and scored
    pairs = builtins.joint_baselines(tiny_sd15, builtins.joint_genes(3))
    assert set(record["baselines"]) == set(pairs) and len(pairs) >= 8 * len(genes) - len(genes)
    assert {p.split("+")[0] for p in pairs} == set(genes)
    assert sum(record["search"]["evaluated_per_sampler"].values()) == record["search"]["evaluated"]
    assert record["search"]["sampler_calls"] <= 3 and record["search"]["sampler_name"] == "auto"
    assert f"sampler searched (auto) among {len(genes)}" in report
    # LoadTimestepSchedule gives the same schedule and the same sampler
    loaded, _, loaded_sampler = host.mappings["LoadTimestepSchedule"]().load(files[0].name, tiny_sd15)["result"]
    assert torch.equal(loaded, sigmas) and loaded_sampler.sampler_function.__name__ == function
    again = node.search(tiny_sd15, *tiny_conds, latent, **AUTO)["result"]
    assert "no search run" in again[1] and again[2].sampler_function.__name__ == function


def test_warp_space_is_an_appended_input_searched_from_the_builtins_and_keyed_apart(host, library, tiny_sd15,
                                                                                    tiny_conds):
    node = host.mappings["EvoTimestepSchedule"]()
    optional = list(node.INPUT_TYPES()["optional"])
    assert optional[-1] == "search_space" and optional.index("search_space") > optional.index("clip_vision")
    assert node.INPUT_TYPES()["optional"]["search_space"][0] == ["steps", "warp", "warp_linear"]
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    before = set(library.glob("*.json"))
    node.search(tiny_sd15, *tiny_conds, latent, **AUTO, search_space="warp")
    new = sorted(set(library.glob("*.json")) - before)
    assert len(new) == 1  # not served the steps search's cached result
    record = json.loads(new[0].read_text())
    assert record["search"]["search_space"] == "warp"
    assert record["search"]["evaluated"] > len(record["baselines"])  # the warps were scored beyond the pairs
    steps_records = [json.loads(p.read_text()) for p in before]
    assert all(r["cache_key"] != record["cache_key"] for r in steps_records)
    with pytest.raises(ValueError, match="search_space 'bezier' is not one of steps, warp, warp_linear"):
        node.search(tiny_sd15, *tiny_conds, latent, **AUTO, search_space="bezier")


def test_warp_linear_space_runs_in_the_node_with_the_linear_schedules_scored(host, library, tiny_sd15, tiny_conds):
    """warp_linear reaches the node's pipeline (not the per-σ search): with the same budget it scores every gene's
    6 linear-in-σ schedules on top of what warp scores, and its record is keyed apart from warp's."""
    node = host.mappings["EvoTimestepSchedule"]()
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    records = {}
    for space in ("warp", "warp_linear"):
        before = set(library.glob("*.json"))
        node.search(tiny_sd15, *tiny_conds, latent, **dict(AUTO, generations=1), search_space=space)
        (new,) = sorted(set(library.glob("*.json")) - before)
        records[space] = json.loads(new.read_text())
        assert records[space]["search"]["search_space"] == space
    genes = len(records["warp"]["search"]["evaluated_per_sampler"])
    # generation 0 only (generations=1): the pairs for warp, the pairs plus 6 linear schedules per gene for
    # warp_linear (fewer when a linear schedule repairs into one already seen)
    extra = records["warp_linear"]["search"]["evaluated"] - records["warp"]["search"]["evaluated"]
    assert 0 < extra <= 6 * genes
    assert records["warp"]["cache_key"] != records["warp_linear"]["cache_key"]
