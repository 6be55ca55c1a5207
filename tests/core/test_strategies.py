"""The strategy seams: criterion and reuse registries, the typed SKIP_PATH record, the step counter."""
from __future__ import annotations

import json
import math

import pytest
import torch

from adaptive_skip_core import criteria, reuse_modes
from adaptive_skip_core.config import CRITERIA, REUSE_MODES, SkipConfig
from adaptive_skip_core.controller import SkipController
from adaptive_skip_core.metrics import latent_psnr
from adaptive_skip_core.reuse import PredictionCache
from adaptive_skip_core.sampler_steps import StepCounter, StepOverrun, sampler_function_name
from adaptive_skip_core.skip_path import SkipPath

SIGMAS = [14.6 * (0.03 / 14.6) ** (i / 11) for i in range(12)] + [0.0]


def test_dropdown_values_come_from_the_registries_in_their_shipped_order():
    # issue 12's "budget" is discovered after the built-ins, so saved dropdown values keep their place
    assert CRITERIA == ("official", "strict", "paper", "error", "stride", "calls", "budget") == criteria.names()
    assert REUSE_MODES == ("hold", "linear", "quadratic") == reuse_modes.names()
    assert criteria.tooltip().startswith("official: AdaptiveDiffusion's released rule. strict: ")
    assert all(f"{name}: " in reuse_modes.tooltip() for name in REUSE_MODES)


def test_unknown_names_are_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="criterion must be one of official, strict"):
        criteria.get("nope")
    with pytest.raises(ValueError, match="reuse must be one of hold, linear, quadratic"):
        reuse_modes.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        criteria.register(criteria.get("official"))


@pytest.mark.parametrize("name, first", [("official", 4), ("strict", 4), ("paper", 4), ("error", 2),
                                         ("stride", 1), ("calls", 1)])
def test_each_criterion_owns_its_first_judged_step(name, first):
    rule = criteria.get(name)
    assert rule.first_judged_step(SkipConfig(criterion=name, warmup_steps=0)) == first
    assert rule.first_judged_step(SkipConfig(criterion=name, warmup_steps=6)) == 6
    assert SkipController(SkipConfig(criterion=name, warmup_steps=0), SIGMAS).first_judged_step == first


def test_criteria_say_whether_they_read_delta_and_when_they_are_off():
    assert [c for c in CRITERIA if criteria.get(c).uses_threshold] == ["official", "strict", "paper", "error"]
    assert criteria.get("error").disabled_reason(SkipConfig(criterion="error", threshold=0)) != ""
    assert criteria.get("stride").disabled_reason(SkipConfig(criterion="stride", threshold=0)) == ""
    assert criteria.get("calls").caption(SkipConfig(criterion="calls")) == "criterion calls"
    assert criteria.get("paper").caption(SkipConfig(criterion="paper", threshold=0.2), "delta") == "paper delta=0.2"


def test_a_reuse_mode_owns_its_cache_policy_and_extrapolation():
    class Mean(reuse_modes.ReuseMode):
        name, order = "mean-test", 1

        def extrapolate(self, sigmas, values, at):
            return sum(values) / len(values)

    cache = PredictionCache(Mean())
    x = torch.zeros(3)
    for sigma, d in ((4.0, 1.0), (2.0, 3.0), (1.0, 5.0)):
        cache.store(x, x - sigma * d, sigma)
    assert len(cache) == Mean().keep == 2  # keeps two, drops the oldest
    assert torch.allclose(cache.extrapolate(0.5), torch.full((3,), 4.0))  # its own rule, not a polynomial
    assert cache.disagreement(0.5) is not None  # the error criterion still compares with a linear fit
    assert PredictionCache(2).mode is reuse_modes.get("quadratic")  # orders still name the built-ins


def test_skip_path_holds_its_config_and_kind_and_round_trips():
    config = SkipConfig(threshold=0.05, criterion="strict", reuse="linear", warmup_steps=3)
    path = SkipPath(sigmas=[2.0, 1.0, 0.0], computed=[True, False], forced=[False, False],
                    warmup=[True, False], estimator=[None, 0.01], config=config, psnr=math.inf)
    data = json.loads(path.to_json())  # allow_nan=False: an identical run's inf PSNR must not reach the page
    assert data["psnr"] is None and data["identical"] is True
    assert data["criterion"] == "strict" and data["kind"] == "rule" and data["rule"] == "strict δ=0.05"
    back = SkipPath.from_dict(data)
    assert back.config == config and back.kind == "rule" and back.psnr == math.inf


def test_format_one_files_saved_before_kind_existed_still_load():
    saved = {"sigmas": [2.0, 1.0, 0.0], "computed": [True, False], "forced": [False, False],
             "warmup": [True, False], "estimator": [None, None], "threshold": 0.0, "criterion": "searched",
             "reuse": "hold", "space": "eps", "max_consecutive_skips": 4, "warmup_steps": 2, "sampler": "euler",
             "scheduler": "normal", "model_calls": 1, "sampler_calls": 2, "wall_time": 0.1, "psnr": 30.0,
             "note": "", "per_sample": [], "version": 1}
    path = SkipPath.from_dict(saved)
    assert path.kind == "searched" and path.criterion == "searched" and path.warmup_steps == 2
    # the caption bug: a searched path read "searched δ=0, C_max=4"
    assert path.setting() == "searched path (evolutionary search), warm-up 2, reuse hold"
    assert {k: v for k, v in path.to_dict().items() if k in saved} == saved


def test_latent_psnr_is_the_one_average_and_caps_identical_samples():
    ref = torch.arange(32.0).reshape(2, 1, 4, 4)
    out = ref.clone()
    out[1] += 0.5
    assert latent_psnr(ref, ref) == math.inf
    one_identical = latent_psnr(out, ref)
    assert math.isfinite(one_identical) and one_identical > latent_psnr(out[1:], ref[1:])
    with pytest.raises(ValueError, match="differs from the reference"):
        latent_psnr(out[:1], ref)


def test_step_counter_attributes_calls_to_steps():
    counter = StepCounter([3.0, 2.0, 1.0, 0.0], lambda step, sigmas: 1 if sigmas[step + 1] == 0 else 2)
    opened = [counter.next_call() for _ in range(5)]
    assert opened == [True, False, True, False, True] and counter.step == 2
    with pytest.raises(StepOverrun):
        counter.next_call()


def test_sampler_function_name_duck_types_the_host_sampler():
    def sample_euler():
        pass

    class KSampler:
        sampler_function = staticmethod(sample_euler)

    class Custom:
        pass

    assert sampler_function_name(KSampler()) == "sample_euler"
    assert sampler_function_name(Custom()) == "Custom"
