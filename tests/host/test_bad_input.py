"""Bad input gets a clear error naming the input and the fix, before any model call."""
from __future__ import annotations

import math

import pytest
import torch

CALLS = {"n": 0}


def ksampler(host, model, conds, **over):
    args = dict(seed=0, steps=10, cfg=4.0, sampler_name="euler", scheduler="karras", positive=conds[0],
                negative=conds[1], latent_image={"samples": torch.zeros(1, 4, 4, 4)}, denoise=1.0, threshold=0.01,
                max_consecutive_skips=4, warmup_steps=4, criterion="official")
    args.update(over)
    return host.mappings["AdaptiveSkipKSampler"]().sample(model=model, **args)


@pytest.fixture
def counted(tiny_sd15):
    """A clone that counts real model calls, to prove errors come before sampling."""
    import comfy.patcher_extension as pe
    model = tiny_sd15.clone()
    CALLS["n"] = 0

    def count(executor, *args, **kwargs):
        CALLS["n"] += 1
        return executor(*args, **kwargs)

    model.add_wrapper_with_key(pe.WrappersMP.APPLY_MODEL, "test_count", count)
    return model


BAD = [
    ({"sigmas": torch.tensor([])}, "sigmas must hold at least 2 values"),
    ({"sigmas": torch.tensor([5.0, 6.0, 0.0])}, "sigmas must be strictly decreasing"),
    ({"sigmas": torch.tensor([5.0, math.nan, 0.0])}, "non-finite"),
    ({"sigmas": torch.tensor([5.0, 1.0, 0.5])}, "must end in 0"),
    ({"sigmas": torch.tensor([500.0, 1.0, 0.0])}, "above this model's sigma_max"),
    ({"threshold": -0.5}, "threshold must be a number >= 0"),
    ({"threshold": math.nan}, "threshold must be a number >= 0"),
    ({"max_consecutive_skips": 0}, "max_consecutive_skips must be an integer >= 1"),
    ({"warmup_steps": 12}, r"warmup_steps \(12\) is larger than steps \(10\)"),
    ({"criterion": "fastest"}, "criterion must be one of"),
]


@pytest.mark.parametrize("over,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_named_before_sampling(host, counted, tiny_conds, over, message):
    with pytest.raises(ValueError, match=message):
        ksampler(host, counted, tiny_conds, **over)
    assert CALLS["n"] == 0, "the error must come before any model call"


def test_replayed_path_with_other_step_count(host, counted, tiny_conds):
    path = ksampler(host, counted, tiny_conds, steps=12)["result"][1]
    CALLS["n"] = 0
    with pytest.raises(ValueError, match="forced_path has 12 steps but this run has 10"):
        ksampler(host, counted, tiny_conds, steps=10, forced_path=path)
    assert CALLS["n"] == 0


def test_too_few_steps_run_unskipped_and_say_so(host, counted, tiny_conds, caplog):
    out = ksampler(host, counted, tiny_conds, steps=4, warmup_steps=2)
    path = out["result"][1]
    assert path.model_calls == 4 and "too few" in path.note
