"""The frechet fitness in real ComfyUI: EvoTimestepSchedule and EvoArchitectureSearch scored against real IMAGEs
through the pack's digits classifier (decoded by the bundled model's latent map, no VAE); the fitness identity and
reference digest in the cache key and the saved record; missing inputs named."""
from __future__ import annotations

import json

import pytest
import torch

BUNDLED = "adaptive_skip_digits.safetensors"
SMALL = dict(sampler_name="dpmpp_2m", steps=4, cfg=4.0, num_seeds=4, budget=300, seed=5, population=6, top_k=2,
             generations=2, reference_steps=30, validation_seeds=2)
pytestmark = pytest.mark.usefixtures("one_thread")  # one_thread and library: tests/host/conftest.py


@pytest.fixture(scope="module")
def digits(host):
    """The bundled model, its conditioning, and 'real' digits: 16 decoded 60-step samples of other seeds."""
    import comfy.sample
    model = host.nodes.NODE_CLASS_MAPPINGS["UNETLoader"]().load_unet(BUNDLED, "default")[0]
    cond = host.mappings["AdaptiveSkipDigitsConditioning"]()
    pos, neg = cond.encode("3")[0], cond.encode("none")[0]
    latent = torch.zeros(16, 4, 4, 4)
    noise = comfy.sample.prepare_noise(latent, 1234)
    out = comfy.sample.sample(model, noise, 60, 4.0, "dpmpp_2m", "karras", pos, neg, latent, seed=1234,
                              disable_pbar=True)
    images = host.mappings["AdaptiveSkipDigitsDecode"]().decode({"samples": out}, upscale=4)[0]
    return model, pos, neg, {"samples": torch.zeros(1, 4, 4, 4)}, images


def test_schedule_search_with_frechet_keys_and_records_the_reference(host, library, digits):
    model, pos, neg, latent, images = digits
    node = host.mappings["EvoTimestepSchedule"]()
    out = node.search(model, pos, neg, latent, **SMALL, fitness="frechet", features="digits_classifier",
                      reference_images=images)
    sigmas, report, _ = out["result"]
    assert len(sigmas) == SMALL["steps"] + 1 and "Fréchet" in report
    record = json.loads(next(library.glob("*.json")).read_text())
    fitness_id = record["search"]["fitness"]
    assert fitness_id.startswith("frechet:")
    # the fitness name and the reference set's digest are saved with the schedule
    assert record["search"]["fitness_name"] == "frechet"
    digest = record["search"]["fitness_params"]["reference"]
    assert len(digest) == 16 and digest in record["fitness_metric"]
    assert record["search"]["fitness_params"]["rows"] == len(images)
    assert "singular" in report  # 4 seeds for 64 features: said plainly
    again = node.search(model, pos, neg, latent, **SMALL, fitness="frechet", features="digits_classifier",
                        reference_images=images)
    assert "no search run" in again["result"][1]  # same inputs, same reference set: the cache answers
    other = node.search(model, pos, neg, latent, **SMALL, fitness="frechet", features="digits_classifier",
                        reference_images=images[:12])
    assert "no search run" not in other["result"][1]  # another reference set is another search
    records = [json.loads(p.read_text()) for p in sorted(library.glob("*.json"))]
    assert len(records) == 2
    assert len({r["search"]["fitness_params"]["reference"] for r in records}) == 2
    assert len({r["cache_key"] for r in records}) == 2 and len({r["search"]["fitness"] for r in records}) == 2
    default = node.search(model, pos, neg, latent, **SMALL)
    assert "no search run" not in default["result"][1]
    newest = max(library.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    saved = json.loads(newest.read_text())["search"]
    assert saved["fitness_name"] == "fidelity" and saved["fitness"] == "fidelity" and saved["fitness_params"] == {}


def test_architecture_search_with_frechet_and_missing_inputs_named(host, digits):
    model, pos, neg, latent, images = digits
    import comfy.samplers
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", 4)
    node = host.mappings["EvoArchitectureSearch"]()
    args = (model, pos, neg, latent, "euler", sigmas, 4.0, 0.5, 4, 4, 1, 0)
    _, plan, report = node.search(*args, "frechet", features="digits_classifier", reference_images=images)
    assert plan.steps == 4 and "Fréchet distance (digits_classifier" in report and "frechet:" in plan.note
    with pytest.raises(ValueError, match="reference_images"):
        node.search(*args, "frechet", features="digits_classifier")
    with pytest.raises(ValueError, match="CLIP_VISION"):
        node.search(*args, "frechet", features="clip_vision", reference_images=images)


def test_mixed_fitness_is_appended_to_the_dropdown_keyed_and_recorded(host, library, digits):
    model, pos, neg, latent, images = digits
    node = host.mappings["EvoTimestepSchedule"]()
    choices = node.INPUT_TYPES()["optional"]["fitness"][0]
    assert choices[:3] == ["fidelity", "frechet", "mixed"]
    before = set(library.glob("*.json"))
    out = node.search(model, pos, neg, latent, **SMALL, fitness="mixed", features="digits_classifier",
                      reference_images=images)
    assert "no search run" not in out["result"][1]  # not the frechet search of the same inputs
    new = sorted(set(library.glob("*.json")) - before)
    assert len(new) == 1
    record = json.loads(new[0].read_text())
    assert record["search"]["fitness_name"] == "mixed" and record["search"]["fitness"].startswith("mixed:")
    assert record["search"]["fitness_params"]["weight"] == 0.5
    assert "0.5 x latent MSE / reference variance" in record["fitness_metric"]
    assert record["cache_key"] not in {json.loads(p.read_text())["cache_key"] for p in before}
    with pytest.raises(ValueError, match="fitness 'mixed' needs reference_images"):
        node.search(model, pos, neg, latent, **SMALL, fitness="mixed", features="digits_classifier")
