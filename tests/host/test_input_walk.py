"""Every input of every node of the pack, at its edges, through ComfyUI's own validation and executor.

For each node a small graph around it on the bundled model (4x4 latents, few steps, small search budgets: the
node's other inputs at cheap values; the MNIST DiT's own nodes on the second bundled model), and for each of its
widget inputs the values minimum, maximum, default and one bad value of the right type (below the minimum, an option
not in the list, text that cannot be parsed); a node with links only runs its base graph once. Each case
goes through execution.validate_prompt and, when valid, execution.PromptExecutor (one executor for the whole walk,
so unchanged upstream nodes come from its cache). The outcome of every case is one of:

- runs: validation passes and the graph executes (a case still running after CAP_SECONDS is interrupted the way
  the Cancel button does it and counted as running: e.g. a 10-million-call search budget);
- refused: one clear error naming the input: a bad value (or empty text) refused by name; or a legal value that
  conflicts with another input at the walk's cheap settings, refused with an error naming that other input (the
  user's fix);
- crash: anything else: an uncaught exception whose message names no input, an error in another node, or a legal
  value (inside the declared range) refused by an error that names only the input itself (its range lies).

Zero crashes are allowed. The table of cases goes to tests/artifacts/input_walk.txt. Nothing is written into the
ComfyUI tree: the model folders the pack writes to and the output folders point at a temporary directory.
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import re
import threading
import time
import uuid
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = PACK_ROOT / "tests" / "artifacts" / "input_walk.txt"
BUNDLED = "adaptive_skip_digits.safetensors"
MNIST_DIT = "adaptive_skip_mnist_dit.safetensors"  # the second bundled model (SD3-detected), for its own nodes
CAP_SECONDS = 2.0
T = "T"  # the node under test's id in every graph

# Upstream nodes every graph can use; only the ones a graph links to are executed.
BASE = {
    "L": {"class_type": "UNETLoader", "inputs": {"unet_name": BUNDLED, "weight_dtype": "default"}},
    "P": {"class_type": "AdaptiveSkipDigitsConditioning", "inputs": {"digit": "3"}},
    "N": {"class_type": "AdaptiveSkipDigitsConditioning", "inputs": {"digit": "none"}},
    "E": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
    "K": {"class_type": "KSampler", "inputs": {"model": ["L", 0], "positive": ["P", 0], "negative": ["N", 0],
                                               "latent_image": ["E", 0], "seed": 0, "steps": 3, "cfg": 3.0,
                                               "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}},
    "S": {"class_type": "AdaptiveSkipKSampler", "inputs": {
        "model": ["L", 0], "positive": ["P", 0], "negative": ["N", 0], "latent_image": ["E", 0], "seed": 0,
        "steps": 6, "cfg": 3.0, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0, "threshold": 0.05,
        "max_consecutive_skips": 4, "warmup_steps": 2, "criterion": "official"}},
    # the MNIST DiT's base graph (16-channel 8x8 latent = one 28x28 digit)
    "LD": {"class_type": "UNETLoader", "inputs": {"unet_name": MNIST_DIT, "weight_dtype": "default"}},
    "PD": {"class_type": "AdaptiveSkipMnistDiTConditioning", "inputs": {"digit": "3"}},
    "ND": {"class_type": "AdaptiveSkipMnistDiTConditioning", "inputs": {"digit": "none"}},
    "ED": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "KD": {"class_type": "KSampler", "inputs": {"model": ["LD", 0], "positive": ["PD", 0], "negative": ["ND", 0],
                                                "latent_image": ["ED", 0], "seed": 0, "steps": 3, "cfg": 3.0,
                                                "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
    "DD": {"class_type": "AdaptiveSkipMnistDiTDecode", "inputs": {"samples": ["KD", 0], "upscale": 1}},
}
# Block plans: the schedule of the base graph's plans, and a BLOCK_PLAN for the base model (its text is filled in by
# _block_plan_base, which needs the loaded model's blocks)
BLOCK_PLAN_BASE = {
    "BS": {"class_type": "BasicScheduler", "inputs": {"model": ["L", 0], "scheduler": "simple", "steps": 3,
                                                      "denoise": 1.0}},
    "BP": {"class_type": "LoadBlockPlan", "inputs": {"plan": "(pasted text)", "text": ""}},
}
# The link inputs of the node under test, by type: where they come from.
LINKS = {"MODEL": ["L", 0], "CONDITIONING": ["P", 0], "LATENT": ["E", 0], "SKIP_PATH": ["S", 1],
         "SIGMAS": ["BS", 0], "BLOCK_PLAN": ["BP", 0]}
LINK_OVERRIDES = {("AdaptiveSkipCompare", "reference"): ["K", 0], ("AdaptiveSkipCompare", "latent"): ["S", 0],
                  ("AdaptiveSkipLastPath", "latent"): ["K", 0], ("AdaptiveSkipDigitsDecode", "samples"): ["K", 0],
                  ("TimestepScheduleFromText", "model"): ["L", 0], ("SkipPathVisualizer", "skip_path"): ["S", 1],
                  ("AdaptiveSkipMnistDiTDecode", "samples"): ["KD", 0], ("AdaptiveSkipMnistDiTEncode", "image"): ["DD", 0]}
# Cheap values for the inputs the walk is not varying (the defaults of a search cost minutes).
CHEAP = {
    "EvoTimestepSchedule": {"steps": 2, "cfg": 3.0, "num_seeds": 1, "budget": 200, "population": 2, "top_k": 1,
                            "generations": 1, "reference_steps": 10, "validation_seeds": 0,
                            "candidates_per_call": 8, "sampler_name": "euler"},
    "AdaptiveSkipKSampler": {"steps": 6, "cfg": 3.0, "warmup_steps": 2, "threshold": 0.05},
    "SkipPathOracle": {"steps": 4, "cfg": 3.0, "model_calls": 3, "warmup_steps": 1, "batch_size": 1,
                       "generations": 1, "population": 2},
    "SaveSkipPath": {"name": "walk_path"},
}
# A sink that makes the node's first output part of an executed graph (a graph runs only what outputs need).
SINKS = {
    "MODEL": lambda out: {"KS": {"class_type": "KSampler", "inputs": dict(BASE["K"]["inputs"], model=out, steps=4)},
                          "D": {"class_type": "AdaptiveSkipDigitsDecode",
                                "inputs": {"samples": ["KS", 0], "upscale": 1}},
                          "O": {"class_type": "PreviewImage", "inputs": {"images": ["D", 0]}}},
    "LATENT": lambda out: {"D": {"class_type": "AdaptiveSkipDigitsDecode", "inputs": {"samples": out, "upscale": 1}},
                           "O": {"class_type": "PreviewImage", "inputs": {"images": ["D", 0]}}},
    "IMAGE": lambda out: {"O": {"class_type": "PreviewImage", "inputs": {"images": out}}},
    "CONDITIONING": lambda out: SINKS["LATENT"](["KC", 0]) | {
        "KC": {"class_type": "KSampler", "inputs": dict(BASE["K"]["inputs"], positive=out)}},
    "SIGMAS": lambda out: SINKS["LATENT"](["SC", 0]) | {
        "KSS": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "SC": {"class_type": "SamplerCustom", "inputs": {
            "model": ["L", 0], "add_noise": True, "noise_seed": 0, "cfg": 3.0, "positive": ["P", 0],
            "negative": ["N", 0], "sampler": ["KSS", 0], "sigmas": out, "latent_image": ["E", 0]}}},
    "SKIP_PATH": lambda out: {"O": {"class_type": "SkipPathVisualizer", "inputs": {"skip_path": out, "width": 400}}},
}
# A block-planned model samples the plan's schedule: ApplyBlockPlan's / EvoArchitectureSearch's MODEL and
# LoadBlockPlan's record (plan, SIGMAS, SAMPLER) go into SamplerCustom on the plan's 3 steps.
def _plan_sink(model, sigmas, sampler) -> dict:
    return SINKS["LATENT"](["PC", 0]) | {"PC": {"class_type": "SamplerCustom", "inputs": {
        "model": model, "add_noise": True, "noise_seed": 0, "cfg": 3.0, "positive": ["P", 0], "negative": ["N", 0],
        "sampler": sampler, "sigmas": sigmas, "latent_image": ["E", 0]}},
        "PS": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}}


# Sinks of nodes whose output only the MNIST DiT can use.
def _dit_latent_sink(out) -> dict:
    return {"D": {"class_type": "AdaptiveSkipMnistDiTDecode", "inputs": {"samples": out, "upscale": 1}},
            "O": {"class_type": "PreviewImage", "inputs": {"images": ["D", 0]}}}


NODE_SINKS = {
    "AdaptiveSkipMnistDiTConditioning": lambda out: _dit_latent_sink(["KC", 0]) | {
        "KC": {"class_type": "KSampler", "inputs": dict(BASE["KD"]["inputs"], positive=out)}},
    "AdaptiveSkipMnistDiTEncode": _dit_latent_sink,
    "ApplyBlockPlan": lambda out: _plan_sink(out, ["BS", 0], ["PS", 0]),
    "EvoArchitectureSearch": lambda out: _plan_sink(out, ["BS", 0], ["PS", 0]),
    "LoadBlockPlan": lambda out: _plan_sink(["PA", 0], [T, 1], [T, 3]) | {
        "PA": {"class_type": "ApplyBlockPlan", "inputs": {"model": ["L", 0], "block_plan": out}}},
}
CHEAP["EvoArchitectureSearch"] = {"cfg": 3.0, "num_seeds": 1, "population": 4, "generations": 1,
                                  "candidates_per_call": 4}
# Nodes the walk has no base graph for yet (its base graph is the digits UNet; the MNIST DiT's nodes have theirs).
# Named, not silently dropped, and checked below so a new node cannot slip out of the walk unnoticed.
NOT_WALKED: dict[str, str] = {
}
BAD_TEXT = {"text": "14.6, three, 0", "name": "../outside", "save_as": "../outside", "label": "x" * 2000}


def _values(spec, key: str = "") -> list[tuple[str, object]]:
    """(case, value) pairs for one widget input: min, max, default and one bad value of the right type."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    if isinstance(kind, (list, tuple)):
        options = list(kind)
        cases = [("first", options[0]), ("last", options[-1])] if options else []
        if "default" in opts:
            cases.append(("default", opts["default"]))
        return cases + [("bad", "not-an-option")]
    if kind in ("INT", "FLOAT"):
        step = opts.get("step", 1 if kind == "INT" else 0.01)
        lo, hi = opts.get("min"), opts.get("max")
        cases = [("min", lo), ("max", hi), ("default", opts.get("default"))]
        cases = [(c, v) for c, v in cases if v is not None]
        if lo is not None:
            cases.append(("bad", lo - step))
        elif hi is not None:
            cases.append(("bad", hi + step))
        return cases
    if kind == "BOOLEAN":
        return [("min", False), ("max", True), ("default", opts.get("default", False))]
    if kind == "STRING":
        cases = [("default", opts.get("default", "")), ("empty", "")]
        return cases + ([("bad", BAD_TEXT[key])] if key in BAD_TEXT else [])
    return []


def _graph(name: str, cls, inputs: dict) -> dict:
    prompt = {k: {"class_type": v["class_type"], "inputs": dict(v["inputs"])} for k, v in BASE.items()}
    prompt[T] = {"class_type": name, "inputs": inputs}
    if not getattr(cls, "OUTPUT_NODE", False):
        prompt |= (NODE_SINKS.get(name) or SINKS[cls.RETURN_TYPES[0]])([T, 0])
    return prompt


def _block_plan_base(host, monkeypatch) -> None:
    """BLOCK_PLAN_BASE into BASE, its plan (and LoadBlockPlan's cheap text): the base model's blocks, one dropped
    at the middle step, on the base graph's 3-step schedule."""
    import sys

    import comfy.samplers
    core = sys.modules[f"{host.pack.__name__}.core.block_plan"]
    model = host.nodes.NODE_CLASS_MAPPINGS["UNETLoader"]().load_unet(BUNDLED, "default")[0]
    blocks = sys.modules[f"{host.pack.__name__}.nodes.block_plan"].model_blocks(model)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", 3)
    mask = tuple(tuple(not (step == 1 and b == 0) for b in range(len(blocks.blocks))) for step in range(3))
    text = core.BlockPlan(mask, blocks.blocks, blocks.identity, sigmas=sigmas.tolist(), sampler="euler").to_text()
    for key, node in BLOCK_PLAN_BASE.items():
        monkeypatch.setitem(BASE, key, node)
    monkeypatch.setitem(BASE["BP"]["inputs"], "text", text)
    monkeypatch.setitem(CHEAP, "LoadBlockPlan", {"text": text})


def _base_inputs(name: str, cls) -> tuple[dict, dict]:
    """(inputs for the node at cheap values, {widget input: spec})."""
    types = cls.INPUT_TYPES()
    inputs, widgets = {}, {}
    for group in ("required", "optional"):
        for key, spec in types.get(group, {}).items():
            kind = spec[0]
            if isinstance(kind, str) and kind.isupper() and kind not in ("INT", "FLOAT", "BOOLEAN", "STRING"):
                if group == "required" or (name, key) in LINK_OVERRIDES:
                    inputs[key] = LINK_OVERRIDES.get((name, key), LINKS.get(kind))
                continue
            widgets[key] = spec
            values = dict(_values(spec, key))
            if key in CHEAP.get(name, {}):
                inputs[key] = CHEAP[name][key]
            elif "default" in values:
                inputs[key] = values["default"]
            elif "first" in values:
                inputs[key] = values["first"]
            elif group == "required" and "min" in values:
                inputs[key] = values["min"]
    return inputs, widgets


def _names_input(text: str, key: str) -> bool:
    """The message names the input as a word (so `steps` is not named by `warmup_steps`)."""
    return any(re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text) for form in (key, key.replace("_", " ")))


class _Walk:
    def __init__(self, host, tmp: Path):
        import execution

        self.execution = execution
        self.server = _Server()
        params = inspect.signature(execution.PromptExecutor.__init__).parameters
        kwargs = ({"cache_args": {"lru": 0, "ram": 0, "ram_inactive": 0}} if "cache_args" in params  # 0.8 / 0.33
                  else {"cache_size": None})
        self.executor = execution.PromptExecutor(self.server, cache_type=execution.CacheType.CLASSIC, **kwargs)

    def run(self, prompt: dict, key: str, legal: bool, others: list[str]) -> tuple[str, str]:
        """('runs' | 'refused' | 'crash', detail) for the case that sets input `key`; `others` are the node's other
        inputs, `legal` says whether the value lies in the input's declared range."""
        import comfy.model_management as mm

        prompt_id = str(uuid.uuid4())
        valid, error, outputs, node_errors = asyncio.run(self.execution.validate_prompt(prompt_id, prompt, None))
        if not valid:
            errors = [e for n in node_errors.values() for e in n.get("errors", [])] or [error]
            texts = [f"{e.get('message', '')}: {e.get('details', '')}" for e in errors]
            named = all(e.get("extra_info", {}).get("input_name") == key or _names_input(t, key)
                        for e, t in zip(errors, texts))
            return _verdict(named and len(errors) == 1, " | ".join(texts), key, legal, others)
        mm.interrupt_current_processing(False)
        timer = threading.Timer(CAP_SECONDS, mm.interrupt_current_processing, args=(True,))
        timer.start()
        start = time.monotonic()
        try:
            self.executor.execute(prompt, prompt_id, {}, outputs)
        finally:
            timer.cancel()
            mm.interrupt_current_processing(False)
        seconds = time.monotonic() - start
        events = dict(self.executor.status_messages)
        if "execution_interrupted" in events:
            return "runs", f"interrupted at the {CAP_SECONDS:.0f} s cap"
        if self.executor.success:
            return "runs", f"{seconds:.1f} s"
        err = events.get("execution_error", {})
        message = f"{err.get('exception_type', '?')}: {err.get('exception_message', '')}".strip()
        named = err.get("node_id") == T and any(_names_input(message, k) for k in [key, *others])
        return _verdict(named, message, key, legal, others)


def _verdict(named: bool, message: str, key: str, legal: bool, others: list[str]) -> tuple[str, str]:
    if not named:
        return "crash", message
    if not legal:
        return "refused", message
    conflicts = [o for o in others if _names_input(message, o)]
    if conflicts:
        return "refused", f"conflicts with {', '.join(conflicts)}: {message}"
    return "crash", f"a legal value refused: {message}"


class _Server:
    """What PromptExecutor needs of ComfyUI's server when no web UI runs."""

    client_id = None
    last_node_id = None
    last_prompt_id = None

    def send_sync(self, event, data, sid=None):
        pass


@pytest.fixture()
def walk_folders(host, tmp_path, monkeypatch):
    """The pack's writable model folders and ComfyUI's output/temp folders inside tmp_path."""
    import folder_paths
    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path / "models"))
    saved = dict(folder_paths.folder_names_and_paths)
    for key in ("adaptive_skip_schedules", "adaptive_skip_paths", "adaptive_skip_block_plans"):
        if key in folder_paths.folder_names_and_paths:
            paths, exts = folder_paths.folder_names_and_paths[key]
            shipped = [p for p in paths if Path(p).resolve().is_relative_to(PACK_ROOT)]
            folder_paths.folder_names_and_paths[key] = ([str(tmp_path / "models" / key)] + shipped, exts)
    output, temp = folder_paths.get_output_directory(), folder_paths.get_temp_directory()
    folder_paths.set_output_directory(str(tmp_path / "output"))
    folder_paths.set_temp_directory(str(tmp_path / "temp"))
    # the sampler's progress hook is where ComfyUI's server checks for Cancel; headless, install the same check
    import comfy.model_management as mm
    import comfy.utils
    hook = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda *a, **k: mm.throw_exception_if_processing_interrupted())
    yield tmp_path
    comfy.utils.set_progress_bar_global_hook(hook)
    folder_paths.set_output_directory(output)
    folder_paths.set_temp_directory(temp)
    folder_paths.folder_names_and_paths.clear()
    folder_paths.folder_names_and_paths.update(saved)


def test_every_input_edge_runs_or_is_refused_by_name(host, walk_folders, monkeypatch):
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)
    _block_plan_base(host, monkeypatch)
    walk = _Walk(host, walk_folders)
    rows, outcomes, start = [], collections.Counter(), time.monotonic()
    assert set(NOT_WALKED) <= set(host.mappings), "NOT_WALKED names a node the pack no longer has"
    for name, cls in sorted(host.mappings.items()):
        if name in NOT_WALKED:
            continue
        base, widgets = _base_inputs(name, cls)
        all_inputs = [k for group in ("required", "optional") for k in cls.INPUT_TYPES().get(group, {})]
        # a node with links only (e.g. MNIST DiT Encode) runs its base graph once
        cases = [(key, case, value) for key, spec in widgets.items() for case, value in _values(spec, key)]
        for key, case, value in cases or [("(links only)", "base", None)]:
            inputs = dict(base, **{key: value}) if key in widgets else dict(base)
            # every other input, links included: a legal value may need one connected (e.g. fitness
            # 'frechet' needs reference_images), and an error naming it is a refusal, not a crash
            others = [k for k in all_inputs if k != key]
            # "empty" text is a bad value of the right type too (a STRING declares no range)
            outcome, detail = walk.run(_graph(name, cls, inputs), key, case not in ("bad", "empty"), others)
            outcomes[outcome] += 1
            shown = value if not isinstance(value, str) or len(value) < 40 else value[:37] + "..."
            rows.append(f"{outcome:8} {name}.{key} = {shown!r} ({case}): {detail[:300]}")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    classes = sum(1 for name in host.mappings if name not in NOT_WALKED)
    summary = (f"{sum(outcomes.values())} cases over {classes} node classes in {time.monotonic() - start:.0f} s: "
               + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    ARTIFACT.write_text(summary + "\n" + "\n".join(rows) + "\n")
    print(summary)
    crashes = [r for r in rows if r.startswith("crash")]
    assert not crashes, f"{len(crashes)} crashes (full table in {ARTIFACT}):\n" + "\n".join(crashes)
