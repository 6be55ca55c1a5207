"""AdaptiveSkip composes with ComfyUI's TorchCompileModel, before it and after it in the graph.

TorchCompileModel (comfy_extras/nodes_torch_compile.py) clones the model, torch.compiles its diffusion_model and
routes every call through an APPLY_MODEL wrapper; AdaptiveSkip works one level up (PREDICT_NOISE / OUTER_SAMPLE
wrappers), so a skipped step never reaches the compiled module and a computed step runs it.

The node itself is called here, with a torch.compile backend that runs on a CPU in seconds: "aot_eager" (Dynamo
traces the UNet into a graph and AOTAutograd runs it eagerly), the node's own choice "inductor" only with
ADAPTIVE_SKIP_TEST_INDUCTOR=1 (it compiles C++ kernels with gcc: minutes on 2 CPU cores). The node's dropdown
offers inductor and cudagraphs; the wrapper path is the same for every backend.
"""
from __future__ import annotations

import os

import pytest
import torch

STEPS = 8
BACKENDS = ["aot_eager"] + (["inductor"] if os.environ.get("ADAPTIVE_SKIP_TEST_INDUCTOR") else [])


def _sample(model, conds):
    import comfy.sample
    latent = torch.zeros(1, 4, 4, 4)
    noise = comfy.sample.prepare_noise(latent, 0)
    return comfy.sample.sample(model, noise, STEPS, 5.0, "euler", "karras", conds[0], conds[1], latent, seed=0,
                               disable_pbar=True)


def _compile(host, model, backend):
    node = host.nodes.NODE_CLASS_MAPPINGS["TorchCompileModel"]
    out = node.execute(model, backend)  # ComfyUI's node (its v3 execute): clone + APPLY_MODEL wrapper
    return out.result[0]


def _skip(host, model):
    node = host.mappings["AdaptiveSkipModel"]()
    return node.patch(model, 1.0, max_consecutive_skips=2, warmup_steps=2, criterion="strict")[0]


def _last_path(host, patched):
    return host.mappings["AdaptiveSkipLastPath"]().read(patched, {"samples": None})["result"][0]


def _counting_compiled_calls(model):
    """Count the calls that reach the compiled module: the APPLY_MODEL wrappers run only for computed calls."""
    import comfy.patcher_extension as pe
    calls = []

    def count(executor, *args, **kwargs):
        calls.append(1)
        return executor(*args, **kwargs)

    model.add_wrapper_with_key(pe.WrappersMP.APPLY_MODEL, "adaptive_skip_test_count", count)
    return calls


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ["skip_then_compile", "compile_then_skip"])
def test_skip_composes_with_torch_compile(host, tiny_sd15, tiny_conds, order, backend):
    import comfy.patcher_extension as pe
    torch._dynamo.reset()
    reference_patch = _skip(host, tiny_sd15)
    reference = _sample(reference_patch, tiny_conds)
    reference_path = _last_path(host, reference_patch)
    assert reference_path.model_calls < reference_path.sampler_calls, "the uncompiled patched run must skip"

    if order == "skip_then_compile":
        patched = _compile(host, _skip(host, tiny_sd15), backend)
    else:
        patched = _skip(host, _compile(host, tiny_sd15, backend))
    wrappers = patched.wrappers
    assert wrappers.get(pe.WrappersMP.APPLY_MODEL), "TorchCompileModel's wrapper is missing"
    assert wrappers.get(pe.WrappersMP.PREDICT_NOISE), "AdaptiveSkip's wrapper is missing"
    compiled_calls = _counting_compiled_calls(patched)
    out = _sample(patched, tiny_conds)
    path = _last_path(host, patched)

    assert path.computed == reference_path.computed, "compiling changed which steps skip"
    assert path.model_calls == reference_path.model_calls < path.sampler_calls
    assert len(compiled_calls) == path.model_calls, "every computed call, and only those, ran the compiled module"
    if backend == "inductor":  # fused kernels round differently
        torch.testing.assert_close(out, reference, rtol=1e-3, atol=1e-3)
    else:
        assert torch.equal(out, reference), (out - reference).abs().max()
    # the user's model keeps neither wrapper
    assert not tiny_sd15.wrappers.get(pe.WrappersMP.APPLY_MODEL)
    assert not tiny_sd15.wrappers.get(pe.WrappersMP.PREDICT_NOISE)
