"""BLOCK_PLAN inside real ComfyUI, on the tiny random SD3 MMDiT, Wan 2.1 DiT and SD1.5 UNet: exactness with every
block on, the user's MODEL untouched, block calls as planned, skipped blocks passing their input on, bad plans
refused with the fix named, batched plan evaluation, composition with AdaptiveSkipModel, the search node."""
from __future__ import annotations

import copy
import random

import pytest
import torch

NODES = {"ApplyBlockPlan", "LoadBlockPlan", "SaveBlockPlan", "EvoArchitectureSearch"}


@pytest.fixture(scope="module")
def pack_modules(host):
    import sys
    name = host.pack.__name__
    return (sys.modules[f"{name}.nodes.block_plan"], sys.modules[f"{name}.core.block_plan"])


def use_plan_folder(host, tmp_path, monkeypatch):
    """Point the plan library at tmp_path for one test (folder_paths restored afterwards)."""
    import sys

    import folder_paths
    lib = sys.modules[f"{host.pack.__name__}.nodes.block_plan_files"]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, lib.FOLDER, ([str(tmp_path)], {lib.EXTENSION}))


def tiny_flux(tiny_models, seed: int = 6):
    """A random Flux with 2 double and 2 single blocks, built from ComfyUI's own Flux config (its state-dict
    detection fixes the width at 3072, too big here)."""
    import dataclasses

    import comfy.ldm.flux.model
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    params = dict(in_channels=16, out_channels=16, vec_in_dim=8, context_in_dim=16, hidden_size=64, mlp_ratio=2.0,
                  num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[8, 12, 12], theta=10000, patch_size=2,
                  qkv_bias=True, guidance_embed=False)
    # the host's FluxParams decides the fields: newer ComfyUI (0.33) requires txt_ids_dims, which an original
    # Flux checkpoint leaves empty (model_detection); fields this builder does not know must have defaults
    fields = {f.name: f for f in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}
    if "txt_ids_dims" in fields:
        params["txt_ids_dims"] = []
    missing = [n for n, f in fields.items() if n not in params and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    assert not missing, f"this ComfyUI's FluxParams needs {missing}: teach tiny_flux those fields"
    params = {k: v for k, v in params.items() if k in fields}
    config = comfy.supported_models.Flux(dict(image_model="flux", **params))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    model.diffusion_model.load_state_dict(tiny_models.random_state_dict(model.diffusion_model, seed))
    patcher = comfy.model_patcher.ModelPatcher(model, mm.get_torch_device(), mm.unet_offload_device())
    gen = torch.Generator().manual_seed(seed + 1)

    def cond():
        return [[torch.randn(1, 4, 16, generator=gen), {"pooled_output": torch.randn(1, 8, generator=gen)}]]
    return tiny_models.TinyModel(patcher, cond(), cond(), {"samples": torch.zeros(1, 16, 8, 8)}, "Flux")


@pytest.fixture(scope="module")
def tinies(tiny_models):
    return {"sd3": tiny_models.tiny_sd3(seed=3), "sd15": tiny_models.tiny_sd15(seed=4),
            "wan21": tiny_models.tiny_wan21(seed=5), "flux": tiny_flux(tiny_models)}


def _with_model(tiny, model):
    return type(tiny)(model, tiny.positive, tiny.negative, tiny.latent, tiny.family)


def _run(tiny_models, tiny, model, steps=4, sampler="euler"):
    return tiny_models.run_ksampler(_with_model(tiny, model), steps=steps, sampler_name=sampler)


def test_nodes_register_with_tooltips(host):
    assert NODES <= set(host.mappings)
    for name in NODES:
        cls = host.mappings[name]
        for group in cls.INPUT_TYPES().values():
            for input_name, spec in group.items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{input_name} lacks a tooltip"
        assert cls.CATEGORY.startswith("sampling/adaptive_skip")


@pytest.mark.parametrize("family", ["sd3", "wan21", "flux", "sd15"])
def test_every_block_on_is_bit_identical_and_the_model_is_untouched(host, tiny_models, tinies, pack_modules, family):
    bp, core = pack_modules
    tiny = tinies[family]
    before = copy.copy(tiny.model.model_options["transformer_options"])
    wrappers_before = copy.copy(tiny.model.wrappers)
    base = _run(tiny_models, tiny, tiny.model)
    info = bp.model_blocks(tiny.model)
    plan = core.full_plan(4, info.blocks, info.identity)
    patched = host.mappings["ApplyBlockPlan"]().apply(tiny.model, plan)[0]
    out = _run(tiny_models, tiny, patched)
    assert torch.equal(base, out)
    stats = bp.stats_of(patched)
    assert stats.block_calls == 4 * len(info.blocks) and stats.block_skips == 0 and stats.model_calls == 4
    assert tiny.model.model_options["transformer_options"] == before and tiny.model.wrappers == wrappers_before
    assert "patches_replace" not in tiny.model.model_options["transformer_options"]
    assert torch.equal(_run(tiny_models, tiny, tiny.model), base)  # the original still samples as before


@pytest.mark.parametrize("family, sampler, steps", [("sd3", "euler", 5), ("sd3", "heun", 4), ("flux", "dpmpp_2m", 4),
                                                    ("sd15", "dpmpp_2m", 5), ("sd15", "heun", 3)])
def test_block_calls_match_the_plan(host, tiny_models, tinies, pack_modules, family, sampler, steps):
    bp, core = pack_modules
    tiny = tinies[family]
    info = bp.model_blocks(tiny.model)
    plan = core.random_plan(steps, info.blocks, info.identity, 0.5, random.Random(steps))
    patched = bp.apply_plans(tiny.model, [plan])
    out = _run(tiny_models, tiny, patched, steps=steps, sampler=sampler)
    stats = bp.stats_of(patched)
    per_step = stats.calls_per_step
    assert sum(per_step) == stats.model_calls
    if sampler == "heun":  # its corrector call at σ[i+1] is governed by the row of step i + 1 (σ decides)
        assert per_step == [1] + [2] * (steps - 1)
    assert stats.block_calls == sum(c * sum(row) for c, row in zip(per_step, plan.mask))
    assert stats.block_calls + stats.block_skips == stats.model_calls * len(info.blocks)
    assert torch.isfinite(out).all() and not torch.equal(out, _run(tiny_models, tiny, tiny.model, steps, sampler))


@pytest.mark.parametrize("family, block", [("sd3", ("double_block", 1)), ("flux", ("double_block", 0)),
                                           ("flux", ("single_block", 1))])
def test_a_skipped_dit_block_passes_its_input_through(host, tiny_models, tinies, pack_modules, family, block):
    bp, core = pack_modules
    tiny = tinies[family]
    info = bp.model_blocks(tiny.model)
    plan = core.uniform_plan(4, info.blocks, info.identity, dropped=[info.blocks.index(block)])
    by_hand = tiny.model.clone()  # what ComfyUI's SkipLayerGuidance does to a block
    by_hand.set_model_patch_replace(lambda args, extra: args, "dit", *block)
    assert torch.equal(_run(tiny_models, tiny, bp.apply_plans(tiny.model, [plan])),
                       _run(tiny_models, tiny, by_hand))


def test_a_skipped_unet_attention_adds_nothing_to_the_residual(host, tiny_models, tinies, pack_modules):
    bp, core = pack_modules
    tiny = tinies["sd15"]
    key = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_out.0."
    state = tiny.model.model.state_dict()
    biased = tiny.model.clone()  # a non-zero output bias: a skip must drop it too
    biased.add_patches({key + "bias": (torch.full_like(state[key + "bias"], 0.3),)}, 1.0)
    info = bp.model_blocks(biased)
    plan = core.uniform_plan(4, info.blocks, info.identity, dropped=[info.blocks.index(("attn2", "input", 1, 0))])
    silenced = biased.clone()  # the attention's output projection zeroed: it adds exactly nothing
    silenced.add_patches({key + "weight": (-state[key + "weight"],), key + "bias": (-state[key + "bias"] - 0.3,)},
                         1.0)
    assert torch.equal(_run(tiny_models, tiny, bp.apply_plans(biased, [plan])), _run(tiny_models, tiny, silenced))


def test_bad_plans_are_refused_with_the_fix_named(host, tiny_models, tinies, pack_modules):
    bp, core = pack_modules
    sd3, sd15 = tinies["sd3"], tinies["sd15"]
    unet = bp.model_blocks(sd15.model)
    apply = host.mappings["ApplyBlockPlan"]().apply
    with pytest.raises(core.BlockPlanError, match="made for 'SD15.*EvoArchitectureSearch"):
        apply(sd3.model, core.full_plan(4, unet.blocks, unet.identity))
    dit = bp.model_blocks(sd3.model)
    forged = core.full_plan(4, dit.blocks[:1], dit.identity)  # right name, wrong block list
    with pytest.raises(core.BlockPlanError, match="blocks the model does not have|EvoArchitectureSearch"):
        apply(sd3.model, forged)
    patched = apply(sd3.model, core.full_plan(4, dit.blocks, dit.identity))[0]
    with pytest.raises(core.BlockPlanError, match="4-step SIGMAS"):
        _run(tiny_models, sd3, patched, steps=6)
    loader = host.mappings["LoadBlockPlan"]()
    with pytest.raises(core.BlockPlanError, match="one entry per block"):
        text = core.full_plan(2, dit.blocks, dit.identity).to_text().replace('"11"', '"1"', 1)
        loader.load("(pasted text)", text.replace('"cost": 1.0,', ""))
    with pytest.raises(core.BlockPlanError, match="'text' is empty"):
        loader.load("(pasted text)", "")


@pytest.mark.parametrize("skipped", ["pass_through", "reuse"])
def test_plans_batched_as_rows_score_like_single_runs(host, tinies, pack_modules, skipped):
    import sys
    import comfy.samplers
    search = sys.modules[f"{host.pack.__name__}.nodes.architecture_search"]
    bp, core = pack_modules
    tiny = tinies["sd3"]
    info = bp.model_blocks(tiny.model)
    sigmas = comfy.samplers.calculate_sigmas(tiny.model.get_model_object("model_sampling"), "simple", 5)
    runner = search.PlanSampler(tiny.model, tiny.positive, tiny.negative, tiny.latent, sigmas,
                                comfy.samplers.sampler_object("euler"), 3.0, num_seeds=2, seed=7)
    plans = [core.random_plan(5, info.blocks, info.identity, 0.6, random.Random(i), skipped=skipped)
             for i in range(3)]
    together = runner.plans(plans)
    for plan, batched in zip(plans, together):
        alone = runner.plans([plan])[0]
        assert batched.shape == alone.shape and torch.allclose(batched, alone, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(together[0], together[1])


def test_composes_with_adaptive_skip_a_reused_step_runs_no_block(host, tiny_models, tinies, pack_modules):
    bp, core = pack_modules
    tiny = tinies["sd3"]
    info = bp.model_blocks(tiny.model)
    steps = 10
    plan = core.random_plan(steps, info.blocks, info.identity, 0.5, random.Random(1))
    skip = host.mappings["AdaptiveSkipModel"]().patch(tiny.model, 1.0, max_consecutive_skips=2, warmup_steps=2,
                                                      criterion="strict")[0]
    both = host.mappings["ApplyBlockPlan"]().apply(skip, plan)[0]
    out = _run(tiny_models, tiny, both, steps=steps)
    path = host.mappings["AdaptiveSkipLastPath"]().read(both, {"samples": None})["result"][0]
    stats = bp.stats_of(both)
    assert torch.isfinite(out).all() and path.model_calls < steps  # some steps were reused
    assert stats.model_calls == path.model_calls
    assert stats.block_calls == sum(sum(row) for row, computed in zip(plan.mask, path.computed) if computed)


def test_save_load_round_trip_and_the_search_node(host, tinies, pack_modules, tmp_path, monkeypatch):
    import comfy.samplers
    bp, core = pack_modules
    tiny = tinies["sd3"]
    use_plan_folder(host, tmp_path, monkeypatch)
    sigmas = comfy.samplers.calculate_sigmas(tiny.model.get_model_object("model_sampling"), "simple", 6)
    model, plan, report = host.mappings["EvoArchitectureSearch"]().search(
        tiny.model, tiny.positive, tiny.negative, tiny.latent, "euler", sigmas, 3.0, 0.5, 2, 6, 2, 0, "latent_mse",
        save_name="found")
    assert plan.steps == 6 and plan.cost == pytest.approx(0.5) and "best uniform plan" in report
    assert "6 of 12 block calls" in report and "saved as" in report
    assert (tmp_path / "found.json").is_file()
    assert "found.json" in host.mappings["LoadBlockPlan"].INPUT_TYPES()["required"]["plan"][0]
    loaded, loaded_sigmas, summary, sampler = host.mappings["LoadBlockPlan"]().load("found.json")
    assert loaded == plan and "cost 0.500" in summary and "sampler euler" in summary
    # the combined record: stage 1's SIGMAS and the sampler come back too, and what the search measured
    assert torch.equal(loaded_sigmas, sigmas.float())
    assert sampler.sampler_function is comfy.samplers.sampler_object("euler").sampler_function
    assert loaded.cache_key and loaded.search["best_uniform"] >= loaded.search["found"]
    pasted = host.mappings["LoadBlockPlan"]().load("(pasted text)", plan.to_text())[0]
    assert pasted == plan and pasted.cache_key == plan.cache_key


def test_the_same_search_again_is_served_from_the_library(host, tinies, pack_modules, tmp_path, monkeypatch):
    import sys

    import comfy.samplers
    bp, _ = pack_modules
    node_module = sys.modules[f"{host.pack.__name__}.nodes.architecture_search"]
    tiny = tinies["sd3"]
    use_plan_folder(host, tmp_path, monkeypatch)
    sigmas = comfy.samplers.calculate_sigmas(tiny.model.get_model_object("model_sampling"), "simple", 4)
    searches = []
    real_search = node_module.search_block_plan

    def counted(*args, **kwargs):
        searches.append(kwargs.get("config") or args[4])
        return real_search(*args, **kwargs)
    monkeypatch.setattr(node_module, "search_block_plan", counted)
    node = host.mappings["EvoArchitectureSearch"]()

    def search(sig=sigmas, cost=0.5, seed=0, sampler_name="euler", positive=tiny.positive, **kw):
        return node.search(tiny.model, positive, tiny.negative, tiny.latent, sampler_name, sig, 3.0, cost, 2, 4, 1,
                           seed, "latent_mse", **kw)
    first = search()
    assert len(searches) == 1 and len(list(tmp_path.glob("*.json"))) == 1  # always saved: the search's record
    again = search()
    assert len(searches) == 1, "the same inputs searched again"
    assert again[1] == first[1] and "no search run" in again[2] and first[2].split("\nsaved as")[0] in again[2]
    wired = comfy.samplers.sampler_object("euler")  # what KSamplerSelect returns
    assert search(sampler=wired)[1] == first[1] and len(searches) == 1  # the same sampler, wired
    # each input of the key searches anew: the schedule, the cost, the search seed, the sampler, the conditioning
    search(sig=comfy.samplers.calculate_sigmas(tiny.model.get_model_object("model_sampling"), "normal", 4))
    search(cost=0.75)
    search(seed=1)
    search(sampler_name="dpmpp_2m")
    search(positive=tiny.negative)
    assert len(searches) == 6 and len(list(tmp_path.glob("*.json"))) == 6
    keys = {core_plan_key(p) for p in tmp_path.glob("*.json")}
    assert len(keys) == 6


def core_plan_key(path) -> str:
    import json
    return json.loads(path.read_text())["cache_key"]


# --- skipped = "reuse": a skipped block returns its input + its residual from the last step it ran ----------------
def _reuse_by_hand(model, plan, blocks):
    """A clone whose blocks do by hand what a reuse plan says (one sampling run; euler: one call per step): run
    the block and remember output - input per conditioning chunk (transformer_options["uuids"]) and stream, or,
    when the plan skips it and the chunk has a residual, return input + that residual."""
    patched, state = model.clone(), {}

    def make(col):
        def replace(args, extra):
            step = state.get(("step", col), 0)
            state[("step", col)] = step + 1
            uuids = args["transformer_options"]["uuids"]
            streams = [k for k in ("img", "txt") if isinstance(args.get(k), torch.Tensor)]
            runs = [plan.mask[step][col] or (col, u) not in state for u in uuids]
            out = extra["original_block"](args) if any(runs) else {}
            result = dict(args)
            if any(runs):  # which streams the block returns (SD3's pre_only last block returns no txt)
                state[("streams", col)] = [k for k in streams if isinstance(out.get(k), torch.Tensor)]
            for k in streams:
                if k not in state[("streams", col)]:
                    result[k] = out.get(k) if all(runs) else args[k]
                    continue
                parts = []
                for c, u in enumerate(uuids):
                    x = args[k].chunk(len(uuids))[c]
                    if runs[c]:
                        y = out[k].chunk(len(uuids))[c]
                        state.setdefault((col, u), {})[k] = y - x
                        parts.append(y)
                    else:
                        parts.append(x + state[(col, u)][k])
                result[k] = torch.cat(parts)
            return result
        return replace
    for col, block in enumerate(blocks):
        patched.set_model_patch_replace(make(col), "dit", *block)
    return patched


@pytest.mark.parametrize("family", ["sd3", "wan21", "flux"])
def test_reuse_with_every_block_on_is_bit_identical_and_the_model_is_untouched(host, tiny_models, tinies,
                                                                               pack_modules, family):
    bp, core = pack_modules
    tiny = tinies[family]
    before = copy.copy(tiny.model.model_options["transformer_options"])
    base = _run(tiny_models, tiny, tiny.model)
    info = bp.model_blocks(tiny.model)
    patched = bp.apply_plans(tiny.model, [core.full_plan(4, info.blocks, info.identity, skipped="reuse")])
    assert torch.equal(_run(tiny_models, tiny, patched), base)
    stats = bp.stats_of(patched)
    assert stats.block_calls == 4 * len(info.blocks) and stats.reused == stats.reuse_misses == 0
    assert stats.residual_steps == []  # no block is ever skipped: nothing is stored
    assert tiny.model.model_options["transformer_options"] == before
    assert torch.equal(_run(tiny_models, tiny, tiny.model), base)


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_a_reuse_plan_adds_the_cached_residual_as_computed_by_hand(host, tiny_models, tinies, pack_modules, family):
    bp, core = pack_modules
    tiny = tinies[family]
    info = bp.model_blocks(tiny.model)
    steps = 6
    plan = core.random_plan(steps, info.blocks, info.identity, 0.6, random.Random(3), skipped="reuse")
    patched = bp.apply_plans(tiny.model, [plan])
    out = _run(tiny_models, tiny, patched, steps=steps)
    assert torch.equal(out, _run(tiny_models, tiny, _reuse_by_hand(tiny.model, plan, info.blocks), steps=steps))
    pass_through = core.BlockPlan(plan.mask, plan.blocks, plan.model)
    assert not torch.allclose(out, _run(tiny_models, tiny, bp.apply_plans(tiny.model, [pass_through]), steps=steps))
    stats = bp.stats_of(patched)
    assert stats.block_calls == plan.block_calls and stats.reused == stats.block_skips > 0
    assert stats.reuse_misses == 0


def test_a_conditioning_first_seen_late_runs_the_block_instead_of_borrowing_a_residual(host, tiny_models, tinies,
                                                                                       pack_modules):
    """Two positive conditionings on halves of the schedule (ConditioningSetTimestepRange): the second appears at
    a step where the plan skips block 0. Its rows have no residual of their own: the block runs for them (a miss,
    counted as a block call) while the negative's rows reuse theirs; never the first conditioning's residual."""
    bp, core = pack_modules
    tiny = tinies["sd3"]
    (ctx, opts), = tiny.positive
    (other, _), = tiny.negative
    positive = [[ctx, {**opts, "start_percent": 0.0, "end_percent": 0.5}],
                [other * 0.5, {**opts, "start_percent": 0.5, "end_percent": 1.0}]]
    ranged = type(tiny)(tiny.model, positive, tiny.negative, tiny.latent, tiny.family)
    info = bp.model_blocks(tiny.model)
    steps = 6
    plan = core.uniform_plan(steps, info.blocks, info.identity, dropped=[0], skipped="reuse")
    patched = bp.apply_plans(tiny.model, [plan])
    out = _run(tiny_models, ranged, patched, steps=steps)
    assert torch.equal(out, _run(tiny_models, ranged, _reuse_by_hand(tiny.model, plan, info.blocks), steps=steps))
    stats = bp.stats_of(patched)
    assert stats.reuse_misses == 1 and stats.block_calls == plan.block_calls + 1
    assert stats.model_calls == steps


@pytest.mark.parametrize("sampler, steps", [("euler", 5), ("heun", 4), ("dpmpp_2m", 5)])
def test_reuse_block_calls_match_the_plan(host, tiny_models, tinies, pack_modules, sampler, steps):
    bp, core = pack_modules
    tiny = tinies["sd3"]
    info = bp.model_blocks(tiny.model)
    plan = core.random_plan(steps, info.blocks, info.identity, 0.7, random.Random(steps), skipped="reuse")
    patched = bp.apply_plans(tiny.model, [plan])
    out = _run(tiny_models, tiny, patched, steps=steps, sampler=sampler)
    stats = bp.stats_of(patched)
    per_step = stats.calls_per_step
    assert stats.block_calls == sum(c * sum(row) for c, row in zip(per_step, plan.mask))
    assert stats.reused == stats.block_skips and stats.reuse_misses == 0
    assert torch.isfinite(out).all()


def test_reuse_composes_with_adaptive_skip_a_reused_step_stores_no_residual(host, tiny_models, tinies,
                                                                            pack_modules):
    """A step AdaptiveSkipModel reuses makes no model call: no block runs and no residual is stored (the cache
    keeps the residuals of the last computed step, never values from a step that did not run)."""
    bp, core = pack_modules
    tiny = tinies["sd3"]
    info = bp.model_blocks(tiny.model)
    steps = 10
    plan = core.random_plan(steps, info.blocks, info.identity, 0.6, random.Random(4), skipped="reuse")
    skip = host.mappings["AdaptiveSkipModel"]().patch(tiny.model, 1.0, max_consecutive_skips=2, warmup_steps=2,
                                                      criterion="strict")[0]
    both = bp.apply_plans(skip, [plan])
    out = _run(tiny_models, tiny, both, steps=steps)
    path = host.mappings["AdaptiveSkipLastPath"]().read(both, {"samples": None})["result"][0]
    stats = bp.stats_of(both)
    computed = [i for i, c in enumerate(path.computed) if c]
    assert torch.isfinite(out).all() and path.model_calls < steps
    assert stats.block_calls == sum(sum(plan.mask[i]) for i in computed)
    assert stats.reused == sum(len(info.blocks) - sum(plan.mask[i]) for i in computed)
    assert stats.residual_steps and set(stats.residual_steps) <= set(computed)


def test_reuse_is_refused_for_unet_attention_plans(host, tinies, pack_modules):
    bp, core = pack_modules
    sd15 = tinies["sd15"]
    info = bp.model_blocks(sd15.model)
    with pytest.raises(core.BlockPlanError, match="UNet attention plan.*pass_through"):
        bp.apply_plans(sd15.model, [core.full_plan(2, info.blocks, info.identity, skipped="reuse")])


def test_the_search_node_finds_and_saves_reuse_plans(host, tinies, pack_modules, tmp_path, monkeypatch):
    import comfy.samplers
    bp, core = pack_modules
    tiny = tinies["sd3"]
    use_plan_folder(host, tmp_path, monkeypatch)
    sigmas = comfy.samplers.calculate_sigmas(tiny.model.get_model_object("model_sampling"), "simple", 6)
    node = host.mappings["EvoArchitectureSearch"]()

    def search(skipped, model=tiny.model):
        return node.search(model, tiny.positive, tiny.negative, tiny.latent, "euler", sigmas, 3.0, 0.75, 2, 6, 2,
                           0, "latent_mse", skipped=skipped)
    _, plan, report = search("reuse")
    assert plan.skipped == "reuse" and all(plan.mask[0]) and plan.block_calls == 9
    assert "reuse their last residual" in report
    saved = [core.BlockPlan.from_text(p.read_text()) for p in tmp_path.glob("*.json")]
    assert saved == [plan] and saved[0].search["skipped"] == "reuse"
    passed = search("pass_through")[1]
    assert passed.skipped == "pass_through" and passed.cache_key != plan.cache_key
    assert "skipped" not in passed.search  # pass_through keys are those of records saved before the field
    with pytest.raises(core.BlockPlanError, match="set skipped to pass_through"):
        search("reuse", model=tinies["sd15"].model)
