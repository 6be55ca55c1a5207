"""EvoTimestepSchedule, LoadTimestepSchedule, TimestepScheduleFromText and the scheduler dropdown, in real ComfyUI."""
from __future__ import annotations

import json
import time

import pack_loader
import pytest
import torch

BUNDLED = "adaptive_skip_digits.safetensors"
NODES = ("EvoTimestepSchedule", "LoadTimestepSchedule", "TimestepScheduleFromText")
# a small search: cheap on a CPU, still seeded with every built-in
SMALL = dict(sampler_name="dpmpp_2m", steps=4, cfg=4.0, num_seeds=2, budget=400, seed=5, population=6, top_k=2,
             generations=2, reference_steps=50, validation_seeds=2)
# one_thread and library (a temporary user folder plus the pack's shipped one): tests/host/conftest.py
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.library(shipped=True)]


def pack_module(host, name):
    return pack_loader.pack_module(name)


@pytest.fixture(scope="module")
def digits(host):
    """The bundled model through the stock UNETLoader, and its conditioning."""
    model = host.nodes.NODE_CLASS_MAPPINGS["UNETLoader"]().load_unet(BUNDLED, "default")[0]
    cond = host.mappings["AdaptiveSkipDigitsConditioning"]()
    return model, cond.encode("3")[0], cond.encode("none")[0], {"samples": torch.zeros(1, 4, 4, 4)}


@pytest.fixture(scope="module")
def searched(host, library, digits):
    """One small search on the bundled model, with the progress bar hook recorded."""
    import comfy.utils
    model, pos, neg, latent = digits
    ticks = []
    saved_hook = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: ticks.append((value, total)))
    try:
        started = time.perf_counter()
        out = host.mappings["EvoTimestepSchedule"]().search(model, pos, neg, latent, **SMALL)
        assert out["ui"]["text"] == [out["result"][1]]
        sigmas, report, _ = out["result"]
        seconds = time.perf_counter() - started
    finally:
        comfy.utils.set_progress_bar_global_hook(saved_hook)
    files = sorted(library.glob("*.json"))
    assert len(files) == 1, files
    return sigmas, report, files[0], ticks, seconds


def test_nodes_register_with_tooltips_and_category(host):
    for name in NODES:
        cls = host.mappings[name]
        assert cls.CATEGORY == "sampling/adaptive_skip"
        for group in cls.INPUT_TYPES().values():
            for input_name, spec in group.items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{input_name} lacks a tooltip"
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 7, 10, 20, 50, 100])
def test_builtin_schedules_match_comfyui(host, tiny_sd15, steps):
    """The baselines are the stock KSampler's schedules (and the AYS node's), name by name."""
    import comfy.samplers
    baselines = pack_module(host, "nodes.builtin_schedules")
    found = baselines.builtin_baselines(tiny_sd15, "euler", steps)
    assert list(found) == [n for n in baselines.COMPARED_SCHEDULERS + ("ays",)
                           if not (n == "kl_optimal" and steps == 1)], "every built-in, in the seeds' order"
    for name, ours in found.items():
        if name == "ays":
            theirs = host.nodes.NODE_CLASS_MAPPINGS["AlignYourStepsScheduler"].execute("SD1", steps, 1.0).result[0]
        else:
            theirs = comfy.samplers.KSampler(tiny_sd15, steps=steps, device="cpu", sampler="euler",
                                             scheduler=name).sigmas.cpu()
        assert torch.equal(ours, theirs.float()), (name, steps, ours, theirs)


def test_baselines_follow_ksampler_for_penultimate_dropping_samplers(host, tiny_sd15):
    import comfy.samplers
    runner = pack_module(host, "nodes.builtin_schedules")
    ks = comfy.samplers.KSampler(tiny_sd15, steps=6, device="cpu", sampler="uni_pc", scheduler="karras")
    assert torch.allclose(runner.builtin_baselines(tiny_sd15, "uni_pc", 6)["karras"], ks.sigmas.cpu(), atol=1e-6)


def test_candidate_runner_equals_separate_sampler_runs(host, tiny_sd15, tiny_conds):
    """Lock-step batching shares model calls only: each candidate's result is what SamplerCustom gives alone."""
    import comfy.sample
    import comfy.samplers
    runner_mod = pack_module(host, "nodes.schedule_runner")
    schedules = [[14.614641, 2.0, 0.0], [14.614641, 5.0, 0.1, 0.0], [14.614641, 3.0, 0.0]]
    calls = {}
    for sampler_name in ("euler", "heun", "dpmpp_2m_sde", "dpmpp_2m_cfg_pp"):  # one call, two, Brownian noise, CFG++
        runner = runner_mod.CandidateRunner(tiny_sd15, *tiny_conds, 3.0, sampler_name,
                                            {"samples": torch.zeros(1, 4, 4, 4)}, num_seeds=2, seed=11,
                                            candidates_per_call=2)
        outs = runner.run(schedules)
        for sched, out in zip(schedules, outs):
            alone = comfy.sample.sample_custom(
                tiny_sd15, runner.noise, 3.0, comfy.samplers.sampler_object(sampler_name), torch.tensor(sched),
                *tiny_conds, runner.latent, disable_pbar=True, seed=11)
            assert torch.allclose(out, alone, atol=1e-4, rtol=1e-4), (sampler_name, sched)
        calls[sampler_name] = runner.calls
    # 7 steps x 2 seeds, less the first call shared inside the first chunk of 2 candidates
    assert calls["euler"] == (sum(len(s) - 1 for s in schedules) - 1) * 2, "the shared first call is made once"


def test_candidate_runner_takes_any_seeds(host, tiny_sd15, tiny_conds):
    """`seeds` (stratified fitness seeds) gives each listed seed the noise it has in the seed..seed+K-1 runner."""
    runner_mod = pack_module(host, "nodes.schedule_runner")
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    block = runner_mod.CandidateRunner(tiny_sd15, *tiny_conds, 3.0, "euler", latent, num_seeds=6, seed=40)
    picked = runner_mod.CandidateRunner(tiny_sd15, *tiny_conds, 3.0, "euler", latent, num_seeds=2, seed=40,
                                        seeds=[45, 42])
    assert torch.equal(picked.noise, block.noise[[5, 2]])
    with pytest.raises(ValueError, match="seeds lists 1 seeds but num_seeds is 2"):
        runner_mod.CandidateRunner(tiny_sd15, *tiny_conds, 3.0, "euler", latent, num_seeds=2, seed=40, seeds=[1])


def test_searched_sigmas_are_valid_and_no_worse_than_any_builtin(host, searched, digits):
    sched = pack_module(host, "nodes.schedule")
    library_mod = pack_module(host, "core.schedule_library")
    sigmas, report, path, ticks, _ = searched
    model = digits[0]
    ms = model.get_model_object("model_sampling")
    assert sigmas.dtype == torch.float32 and len(sigmas) == SMALL["steps"] + 1 and float(sigmas[-1]) == 0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    assert float(sigmas[0]) == pytest.approx(float(ms.sigma_max)) and float(sigmas[-2]) >= float(ms.sigma_min)
    record = library_mod.load_record(str(path))
    assert record.sigmas == sigmas.tolist()
    assert {"karras", "exponential", "simple", "sgm_uniform", "beta", "ays"} <= set(record.baselines)
    assert record.fitness <= min(record.baselines.values())
    assert record.search["model_calls"] > 0 and record.cache_key and record.model_type == "SD15/EPS"
    for name in record.baselines:
        assert name in report
    assert ticks and ticks[-1][0] > 0, "the ProgressBar must advance"
    assert sched.scheduler_name(path.name) in sched.comfy.samplers.KSampler.SCHEDULERS


def test_same_inputs_return_instantly_from_the_library(host, searched, digits):
    sigmas, _, _, _, seconds = searched
    model, pos, neg, latent = digits
    started = time.perf_counter()
    again, report, _ = host.mappings["EvoTimestepSchedule"]().search(model, pos, neg, latent, **SMALL)["result"]
    assert time.perf_counter() - started < min(1.0, seconds / 5)
    assert torch.equal(again, sigmas) and "from the schedule library" in report


def test_cache_key_follows_model_weights_and_conditioning(host, digits, tiny_sd15):
    runner = pack_module(host, "nodes.model_identity")
    model, pos, neg, _ = digits
    cond = host.mappings["AdaptiveSkipDigitsConditioning"]()
    assert runner.model_identity(model) == runner.model_identity(model.clone())
    assert runner.model_identity(model) != runner.model_identity(tiny_sd15)
    patched = model.clone()
    key = next(k for k in patched.model.state_dict() if k.endswith("out.2.weight"))
    patched.add_patches({key: (torch.ones_like(patched.model.state_dict()[key]),)}, 0.1)
    assert runner.model_identity(patched) != runner.model_identity(model), "a LoRA-style patch changes the key"
    skipping = host.mappings["AdaptiveSkipModel"]().patch(model, 0.01, 4, 4, "official")[0]
    assert runner.model_identity(skipping) != runner.model_identity(model), "a sampling wrapper changes the key"
    assert runner.conditioning_digest(pos) == runner.conditioning_digest(cond.encode("3")[0])
    assert runner.conditioning_digest(pos) != runner.conditioning_digest(cond.encode("4")[0])


def test_searched_sigmas_drive_samplercustom_and_adaptive_skip(host, searched, digits):
    import comfy.samplers
    sigmas = searched[0]
    model, pos, neg, latent = digits
    sampler = host.nodes.NODE_CLASS_MAPPINGS["KSamplerSelect"]().get_sampler("dpmpp_2m")[0]
    custom = host.nodes.NODE_CLASS_MAPPINGS["SamplerCustom"]().sample(model, True, 3, 4.0, pos, neg, sampler,
                                                                     sigmas, latent)[0]["samples"]
    skip = host.mappings["AdaptiveSkipKSampler"]().sample(
        model, 3, 20, 4.0, "dpmpp_2m", "karras", pos, neg, latent, 1.0, threshold=0.0, max_consecutive_skips=4,
        warmup_steps=4, criterion="official", sigmas=sigmas)["result"]
    assert torch.allclose(skip[0]["samples"], custom, atol=1e-5)
    assert skip[1].steps == SMALL["steps"]
    ks = host.nodes.NODE_CLASS_MAPPINGS["KSampler"]().sample(
        model, 3, SMALL["steps"], 4.0, "dpmpp_2m", "karras", pos, neg, latent)[0]["samples"]
    assert not torch.allclose(ks, custom), "the searched schedule must differ from karras"
    assert comfy.samplers.KSampler.SCHEDULERS is comfy.samplers.SCHEDULER_NAMES


def test_registered_scheduler_runs_in_the_stock_ksampler(host, searched, digits):
    sched = pack_module(host, "nodes.schedule")
    sigmas, _, path, _, _ = searched
    model, pos, neg, latent = digits
    name = sched.scheduler_name(path.name)
    choices = host.nodes.NODE_CLASS_MAPPINGS["KSampler"].INPUT_TYPES()["required"]["scheduler"][0]
    assert name in choices
    ks = host.nodes.NODE_CLASS_MAPPINGS["KSampler"]().sample(model, 7, SMALL["steps"], 4.0, "dpmpp_2m", name, pos,
                                                             neg, latent)[0]["samples"]
    sampler = host.nodes.NODE_CLASS_MAPPINGS["KSamplerSelect"]().get_sampler("dpmpp_2m")[0]
    custom = host.nodes.NODE_CLASS_MAPPINGS["SamplerCustom"]().sample(model, True, 7, 4.0, pos, neg, sampler,
                                                                     sigmas, latent)[0]["samples"]
    assert torch.allclose(ks, custom, atol=1e-6)
    import comfy.samplers
    stretched = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), name, 9)
    assert len(stretched) == 10 and float(stretched[0]) == pytest.approx(float(sigmas[0]))
    assert float(stretched[-2]) == pytest.approx(float(sigmas[-2]), rel=1e-5)


def test_on_load_registers_saved_files(host, library, digits, searched):
    import comfy.samplers
    sched = pack_module(host, "nodes.schedule")
    data = json.loads(searched[2].read_text())
    data["sigmas"] = [14.614641189575195, 1.0, 0.0]
    data["steps"] = 2
    (library / "two_step_test.json").write_text(json.dumps(data))
    (library / "broken_test.json").write_text("{not json")
    names = sched.register_schedule_library()
    assert "evo_two_step_test" in names and "evo_two_step_test" in comfy.samplers.SCHEDULER_NAMES
    assert "evo_broken_test" not in comfy.samplers.SCHEDULER_NAMES
    (library / "broken_test.json").unlink()


def test_load_schedule_round_trip_and_range_mapping(host, searched, digits, tiny_sd15):
    sigmas, report, path, _, _ = searched
    model = digits[0]
    load = host.mappings["LoadTimestepSchedule"]()
    assert path.name in host.mappings["LoadTimestepSchedule"].INPUT_TYPES()["required"]["schedule"][0]
    loaded, text, sampler = load.load(path.name, model)["result"]
    assert sampler.sampler_function.__name__ == "sample_dpmpp_2m"  # the record's sampler as a SAMPLER
    assert torch.equal(loaded, sigmas) and text.splitlines()[0] == report.splitlines()[0]
    stretched, _, _ = load.load(path.name, model, steps=8)["result"]
    assert len(stretched) == 9
    # the same schedule for a model with another sigma range (a flow model, σ in (0, 1]) is refused, or mapped
    import comfy.model_sampling
    flow = tiny_sd15.clone()

    class Flow(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        pass
    flow.add_object_patch("model_sampling", Flow(None))
    ms = flow.get_model_object("model_sampling")
    mapped, note, _ = load.load(path.name, flow, allow_other_model_type=True)["result"]
    assert float(mapped[0]) == pytest.approx(float(ms.sigma_max), rel=1e-4) and "mapped in log sigma" in note
    assert float(mapped[-2]) >= float(ms.sigma_min) * 0.999


def test_load_schedule_errors_name_the_problem(host, library, searched, digits, tiny_sd15):
    import comfy.model_base
    load = host.mappings["LoadTimestepSchedule"]()
    model = digits[0]
    with pytest.raises(ValueError, match="not in the schedule library"):
        load.load("no_such_schedule.json", model)
    good = searched[2].read_text()
    cases = {"truncated_test.json": (good[: len(good) // 2], "truncated"),
             "notjson_test.json": ("sigmas: 1, 0\n", "not valid JSON"),
             "empty_test.json": ("", "empty"),
             "other_test.json": (json.dumps({"format": "something else"}), "not an AdaptiveSkip schedule"),
             "nosigmas_test.json": (json.dumps({**json.loads(good), "sigmas": [1.0, 2.0, 0.0]}),
                                    "strictly decreasing")}
    for name, (text, message) in cases.items():
        (library / name).write_text(text)
        with pytest.raises(ValueError, match=message) as err:
            load.load(name, model)
        assert name in str(err.value)
        (library / name).unlink()
    other = dict(json.loads(good), model_type="SDXL/EPS")
    (library / "sdxl_test.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="model type SDXL/EPS.*allow_other_model_type"):
        load.load("sdxl_test.json", model)
    assert len(load.load("sdxl_test.json", model, allow_other_model_type=True)["result"][0]) == SMALL["steps"] + 1
    (library / "sdxl_test.json").unlink()
    assert isinstance(model.model, comfy.model_base.BaseModel)


def test_schedule_from_text_round_trip_and_errors(host, searched, digits):
    sigmas, report, _, _, _ = searched
    model = digits[0]
    node = host.mappings["TimestepScheduleFromText"]()
    parsed, text = node.parse(report.splitlines()[0], model)
    assert torch.allclose(parsed, sigmas, rtol=1e-5, atol=0)
    assert torch.equal(node.parse(text, model)[0], parsed)
    for bad, message in [("14, 3, x, 0", "text holds 'x'"), ("", "text is empty"), ("1, 3, 0", "strictly decreasing"),
                         ("5, 1, 0.5", "must end in 0"), ("100, 1, 0", "above this model's sigma_max"),
                         ("10, 0.001, 0", "below this model's sigma_min")]:
        with pytest.raises(ValueError, match=message):
            node.parse(bad, model)
    assert len(node.parse("100, 1, 0")[0]) == 3, "without a model only order and the final 0 are checked"


def test_cancel_keeps_progress_and_the_rerun_resumes(host, library, tiny_sd15, tiny_conds, monkeypatch):
    """Cancel mid-search (ComfyUI's interrupt flag) stops cleanly; the same inputs then resume and finish with the
    result an uninterrupted search gives."""
    import comfy.model_management
    runner_mod = pack_module(host, "nodes.schedule_runner")
    node = host.mappings["EvoTimestepSchedule"]()
    args = dict(SMALL, steps=2, num_seeds=1, generations=3, budget=10_000, reference_steps=10, seed=9,
                validation_seeds=0)
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    uninterrupted = node.search(tiny_sd15, *tiny_conds, latent, **dict(args, save_as="uninterrupted"))["result"][0]
    (library / "uninterrupted.json").unlink()  # else the same inputs would come straight from the library

    real = runner_mod.CandidateRunner._on_call
    count = {"n": 0}

    def interrupt_later(self, rows):
        count["n"] += 1
        if count["n"] == 13:  # 10 reference calls, then 2 batched calls a generation: inside generation 2
            comfy.model_management.interrupt_current_processing(True)
        return real(self, rows)

    monkeypatch.setattr(runner_mod.CandidateRunner, "_on_call", interrupt_later)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        node.search(tiny_sd15, *tiny_conds, latent, **dict(args, save_as="resumed"))
    assert list(library.glob(".*.evostate")), "progress must be kept on Cancel"
    monkeypatch.setattr(runner_mod.CandidateRunner, "_on_call", real)
    resumed = node.search(tiny_sd15, *tiny_conds, latent, **dict(args, save_as="resumed"))["result"][0]
    assert torch.equal(resumed, uninterrupted)
    assert not list(library.glob(".*.evostate"))


SCHEDULE_WORKFLOWS = ("evo_schedule_search.json", "evo_schedule_load.json", "evo_schedule_with_skip.json")
# EvoTimestepSchedule inputs that are not SearchSettings fields (reference_sampler is resolved, features picks the
# frechet fitness's features and enters the key through its identity)
NOT_SETTINGS = ("candidates_per_call", "save_as", "reference_sampler", "features")


@pytest.mark.parametrize("name", SCHEDULE_WORKFLOWS)
def test_schedule_workflows_match_their_api_twins(host, name):
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "workflows"
    ui, api = json.loads((root / name).read_text()), json.loads((root / "api" / name).read_text())
    import workflow_convert  # scripts/ is on sys.path (tests/conftest.py)
    converted = workflow_convert.ui_to_api(ui, host.nodes.NODE_CLASS_MAPPINGS)
    assert set(converted) == set(api)
    for node_id, node in api.items():
        assert converted[node_id]["class_type"] == node["class_type"]
        assert {k: converted[node_id]["inputs"][k] for k in node["inputs"]} == node["inputs"], (name, node_id)


def test_shipped_schedules_load_and_the_search_workflows_hit_them(host, digits):
    """Every shipped schedule loads for the bundled model, and the search workflows' inputs have the cache key of a
    shipped result, so they open instantly instead of searching."""
    from pathlib import Path
    sched = pack_module(host, "nodes.schedule")
    runner = pack_module(host, "nodes.model_identity")
    model = digits[0]
    shipped = sorted(Path(sched.SHIPPED_DIR).glob("*.json"))
    assert len(shipped) >= 3
    for path in shipped:
        sigmas = host.mappings["LoadTimestepSchedule"]().load(path.name, model)["result"][0]
        assert float(sigmas[-1]) == 0 and bool((sigmas[1:] < sigmas[:-1]).all())
    root = Path(__file__).resolve().parents[2] / "workflows" / "api"
    cond = host.mappings["AdaptiveSkipDigitsConditioning"]()
    model_id = runner.model_identity(model)
    for name in ("evo_schedule_search.json", "evo_schedule_with_skip.json"):
        prompt = json.loads((root / name).read_text())
        node = next(n for n in prompt.values() if n["class_type"] == "EvoTimestepSchedule")
        inputs = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}
        settings = sched.SearchSettings(**{k: v for k, v in inputs.items()
                                           if k not in NOT_SETTINGS},
                                        reference_sampler=sched._resolve_reference(inputs["sampler_name"],
                                                                                   inputs["reference_sampler"]))
        pos = cond.encode(prompt[node["inputs"]["positive"][0]]["inputs"]["digit"])[0]
        neg = cond.encode(prompt[node["inputs"]["negative"][0]]["inputs"]["digit"])[0]
        key = sched.search_key(model_id, pos, neg, {"samples": torch.zeros(8, 4, 4, 4)}, settings)
        assert sched.find_cached(key) is not None, f"{name}: no shipped schedule has its cache key"


def test_another_fitness_is_not_served_the_shipped_result(host, digits):
    """The shipped search workflow's inputs hit the shipped schedule with the default fitness, and miss it with any
    other fitness identity (the identity is in the cache key)."""
    from dataclasses import replace
    from pathlib import Path
    sched = pack_module(host, "nodes.schedule")
    fitness = pack_module(host, "core.fitness")
    model_id = pack_module(host, "nodes.model_identity").model_identity(digits[0])
    prompt = json.loads((Path(__file__).resolve().parents[2] / "workflows" / "api" / "evo_schedule_search.json")
                        .read_text())
    inputs = next(n for n in prompt.values() if n["class_type"] == "EvoTimestepSchedule")["inputs"]
    settings = sched.SearchSettings(**{k: v for k, v in inputs.items() if not isinstance(v, list)
                                       and k not in NOT_SETTINGS},
                                    reference_sampler=sched._resolve_reference(inputs["sampler_name"],
                                                                               inputs["reference_sampler"]))
    _, pos, neg, _ = digits
    latent = {"samples": torch.zeros(8, 4, 4, 4)}
    assert settings.fitness == fitness.make_fitness().identity
    assert sched.find_cached(sched.search_key(model_id, pos, neg, latent, settings)) is not None

    class Other(fitness.LatentMSE):
        name = "other_test_fitness"

    other = replace(settings, fitness=Other().identity)
    assert sched.find_cached(sched.search_key(model_id, pos, neg, latent, other)) is None
