"""SkipPathVisualizer and SkipPathOracle inside real ComfyUI, on a tiny random-weight SD1.5 UNet."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

PACK_ROOT = Path(__file__).resolve().parents[2]
CFG = 3.0
# one_thread (tests/host/conftest.py): a tiny UNet gains nothing from intra-op threads; on a busy 2-core machine
# they spin 10-20x slower
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tiny_models):
    return tiny_models.tiny_sd15(seed=0)


@pytest.fixture(scope="module", autouse=True)
def temp_dir(host, tmp_path_factory):
    """Previews go to a pytest folder, never into the ComfyUI tree."""
    import folder_paths

    before = folder_paths.get_temp_directory()
    folder_paths.set_temp_directory(str(tmp_path_factory.mktemp("comfy_temp")))
    yield Path(folder_paths.get_temp_directory())
    folder_paths.set_temp_directory(before)


def full_and_skip(host, tiny, steps, threshold, seed=0, sampler="euler", **kw):
    """(full-step LATENT, AdaptiveSkipKSampler LATENT, its SKIP_PATH) for the tiny model."""
    ks = host.mappings["AdaptiveSkipKSampler"]()
    args = dict(model=tiny.model, seed=seed, steps=steps, cfg=CFG, sampler_name=sampler, scheduler="karras",
                positive=tiny.positive, negative=tiny.negative, latent_image=tiny.latent, denoise=1.0,
                max_consecutive_skips=4, warmup_steps=4, criterion="official")
    args.update(kw)
    full = ks.sample(threshold=0.0, **args)["result"][0]
    latent, path = ks.sample(threshold=threshold, **args)["result"][:2]
    return full, latent, path


def oracle(host, tiny, steps, calls, seed=0, sampler="euler", reuse="hold", **kw):
    out = host.mappings["SkipPathOracle"]().search(
        tiny.model, tiny.positive, tiny.negative, tiny.latent, seed, steps, CFG, sampler, "karras", calls, 4,
        reuse, **kw)
    return out


def mse(a, b):
    return float(((a["samples"].float() - b["samples"].float()) ** 2).mean())


def test_nodes_register_with_tooltips_category_and_display_names(host):
    for name in ("SkipPathVisualizer", "SkipPathOracle"):
        cls = host.mappings[name]
        assert cls.CATEGORY == "sampling/adaptive_skip"
        for group in cls.INPUT_TYPES().values():
            for input_name, spec in group.items():
                assert spec[1].get("tooltip"), f"{name}.{input_name} lacks a tooltip"
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
        assert name in host.pack.NODE_DISPLAY_NAME_MAPPINGS


def test_visualizer_returns_an_image_tensor_and_a_page_preview(host, tiny, temp_dir):
    _, latent, path = full_and_skip(host, tiny, steps=12, threshold=0.5)
    out = host.mappings["SkipPathVisualizer"]().visualize(path)
    (image,) = out["result"]
    assert image.dtype == torch.float32 and image.ndim == 4 and image.shape[0] == 1 and image.shape[3] == 3
    assert image.shape[2] == 1000 and 200 < image.shape[1] < 600
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0 and float(image.std()) > 0.05
    (preview,) = out["ui"]["images"]
    assert preview["type"] == "temp" and (temp_dir / preview["subfolder"] / preview["filename"]).is_file()
    (record,) = out["ui"]["adaptive_skip_path"]
    assert record["computed"] == path.computed
    json.loads(json.dumps(record, allow_nan=False))  # what the page parses


def test_visualizer_compares_two_paths_and_fills_psnr_from_latents(host, tiny):
    full, latent_a, path_a = full_and_skip(host, tiny, steps=12, threshold=0.01)
    _, latent_b, path_b = full_and_skip(host, tiny, steps=12, threshold=1.0)
    node = host.mappings["SkipPathVisualizer"]()
    one = node.visualize(path_a)["result"][0]
    out = node.visualize(path_a, path_b, 800, full, latent_a, latent_b)
    two = out["result"][0]
    assert two.shape[2] == 800 and two.shape[1] > one.shape[1]
    records = out["ui"]["adaptive_skip_path"]
    assert len(records) == 2 and records[1]["computed"] == path_b.computed
    assert records[1]["psnr"] is not None and records[1]["psnr"] > 0
    assert path_b.psnr is None  # the input record is not modified


def test_visualizer_rejects_an_empty_path(host):
    from_core = host.pack.nodes.visualize.SkipPath  # the pack's own class
    with pytest.raises(ValueError, match="skip_path"):
        host.mappings["SkipPathVisualizer"]().visualize(from_core(sigmas=[]))


def test_oracle_spends_exactly_the_budget_and_its_replay_is_bitwise(host, tiny):
    steps, calls = 10, 6
    out = oracle(host, tiny, steps, calls)
    path, latent, full = out["result"]
    assert path.steps == steps and path.computed_steps == calls and path.model_calls == calls * 1
    assert path.computed[:4] == [True] * 4 and path.criterion == "oracle"
    assert path.psnr is not None and path.psnr > 0 and "batched" in path.note
    assert out["ui"]["adaptive_skip_path"][0]["computed"] == path.computed
    # replay the path through AdaptiveSkip Model Patch and ComfyUI's stock KSampler
    patched = host.mappings["AdaptiveSkipModel"]().patch(tiny.model, 0.01, 4, 4, "official", forced_path=path)[0]
    replay = host.nodes.KSampler().sample(patched, 0, steps, CFG, "euler", "karras", tiny.positive, tiny.negative,
                                          tiny.latent, denoise=1.0)[0]
    assert torch.equal(replay["samples"], latent["samples"])
    plain = host.nodes.KSampler().sample(tiny.model, 0, steps, CFG, "euler", "karras", tiny.positive, tiny.negative,
                                         tiny.latent, denoise=1.0)[0]
    assert torch.equal(plain["samples"], full["samples"])


@pytest.mark.parametrize("reuse", ["hold", "linear"])
def test_oracle_beats_or_ties_the_official_rule_at_the_same_call_count(host, tiny, reuse):
    steps = 12
    full, skipped, path = full_and_skip(host, tiny, steps, threshold=1.0, reuse=reuse)
    assert path.computed_steps < steps, "the official rule must skip here for the comparison to mean anything"
    found, latent, _ = oracle(host, tiny, steps, 1, reuse=reuse, match_path=path)["result"]
    assert found.computed_steps == path.computed_steps
    assert mse(latent, full) <= mse(skipped, full) * (1 + 1e-9)


def test_oracle_falls_back_to_one_candidate_at_a_time_for_ancestral_samplers(host, tiny):
    path, latent, full = oracle(host, tiny, 6, 5, sampler="euler_ancestral")["result"]
    assert path.computed_steps == 5 and "one by one" in path.note
    patched = host.mappings["AdaptiveSkipModel"]().patch(tiny.model, 0.01, 4, 4, "official", forced_path=path)[0]
    replay = host.nodes.KSampler().sample(patched, 0, 6, CFG, "euler_ancestral", "karras", tiny.positive,
                                          tiny.negative, tiny.latent, denoise=1.0)[0]
    assert torch.equal(replay["samples"], latent["samples"])


def test_oracle_rejects_bad_budgets_and_mismatched_paths(host, tiny):
    with pytest.raises(ValueError, match="budget"):
        oracle(host, tiny, 8, 2)  # below step 0 + 4 warm-up steps
    with pytest.raises(ValueError, match="budget"):
        oracle(host, tiny, 8, 9)
    _, _, path = full_and_skip(host, tiny, steps=12, threshold=1.0)
    with pytest.raises(ValueError, match="match_path"):
        oracle(host, tiny, 8, 5, match_path=path)


def test_oracle_stops_when_the_run_is_cancelled(host, tiny):
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            oracle(host, tiny, 8, 5)
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_shipped_workflow_and_its_api_twin_agree(host):
    spec = importlib.util.spec_from_file_location("adaptive_skip_workflow_convert",
                                                  PACK_ROOT / "scripts" / "workflow_convert.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    ui = json.loads((PACK_ROOT / "workflows" / "skip_path_visualizer.json").read_text())
    api = json.loads((PACK_ROOT / "workflows" / "api" / "skip_path_visualizer.json").read_text())
    assert convert.ui_to_api(ui, host.nodes.NODE_CLASS_MAPPINGS) == api
    types = {node["class_type"] for node in api.values()}
    assert {"UNETLoader", "AdaptiveSkipKSampler", "SkipPathOracle", "SkipPathVisualizer"} <= types
    skips = [n["inputs"] for n in api.values() if n["class_type"] == "AdaptiveSkipKSampler"]
    assert {s["criterion"] for s in skips} == {"budget"}  # the default mode, at two speedups
    assert sorted(s["speedup"] for s in skips) == [2.0, 3.0]
