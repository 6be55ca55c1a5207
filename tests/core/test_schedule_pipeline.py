"""The schedule pipeline (core/schedule_pipeline.py) and its Fitness seam (core/fitness.py), with no host:
candidates are "sampled" by an analytic runner whose output is the schedule's distance from a target."""
from __future__ import annotations

import math

import pytest
import torch
from adaptive_skip_core import fitness as F
from adaptive_skip_core import schedule_search as evolution
from adaptive_skip_core.schedule_pipeline import (
    MIN_GAIN,
    SchedulePipeline,
    SearchSettings,
    SeedSet,
    search_key,
    validate_finds,
)

SETTINGS = SearchSettings(sampler_name="dpmpp_2m", steps=5, cfg=3.0, num_seeds=8, budget=4000, seed=0, population=16,
                          top_k=4, mutation_prob=0.3, generations=25, reference_steps=200,
                          reference_sampler="dpmpp_2m", validation_seeds=8)
KEY_ARGS = ("m" * 64, "p" * 64, "n" * 64, (4, 4, 4))
# search_key of SETTINGS as 562178d computed it (before the fitness joined the settings): saved records keep hitting
KEY_BEFORE_FITNESS = "a61aab7027d41b0f456a597435f3b5713deba36e1a4bb22e3cd2b354c19a2cee"


class ScaledMSE(F.Fitness):
    """A second fitness with a parameter, for the seam's tests."""

    name = "scaled_mse_test"
    label = "scaled latent MSE"

    def __init__(self, scale: float = 2.0):
        self.scale = scale

    def params(self) -> dict:
        return {"scale": self.scale}

    def score(self, outputs, reference):
        return [self.scale * v for v in F.LatentMSE().score(outputs, reference)]


def test_the_default_fitness_keeps_the_saved_cache_keys():
    from dataclasses import replace
    assert SETTINGS.fitness == F.DEFAULT_FITNESS == F.make_fitness().identity == "fidelity"
    assert search_key(*KEY_ARGS, SETTINGS) == KEY_BEFORE_FITNESS
    # its name before the rename (in settings saved by the last version) is the same search
    assert search_key(*KEY_ARGS, replace(SETTINGS, fitness="latent_mse")) == KEY_BEFORE_FITNESS


def test_another_fitness_is_never_served_the_default_result():
    from dataclasses import replace
    keys = {search_key(*KEY_ARGS, replace(SETTINGS, fitness=f.identity))
            for f in (F.LatentMSE(), ScaledMSE(2.0), ScaledMSE(3.0))}
    assert len(keys) == 3, "name and parameters are both in the key"
    assert ScaledMSE(2.0).identity == ScaledMSE(2.0).identity != ScaledMSE(3.0).identity
    assert ScaledMSE(2.0).identity.startswith("scaled_mse_test:")


def test_registry_builds_by_name_and_names_the_known_ones():
    assert isinstance(F.make_fitness("fidelity"), F.LatentMSE)
    assert F.make_fitness("latent_mse").identity == "fidelity"  # the old name still builds it
    assert "latent_mse" not in F.FITNESSES.names()  # but is not offered
    with pytest.raises(ValueError, match="fitness must be one of fidelity.*'fid'"):
        F.make_fitness("fid")
    F.register(ScaledMSE)
    try:
        assert F.make_fitness("scaled_mse_test", scale=4.0).identity == ScaledMSE(4.0).identity
        with pytest.raises(ValueError, match="already registered"):
            F.register(type("Other", (F.Fitness,), {"name": "scaled_mse_test"}))
    finally:
        del F.FITNESSES._items["scaled_mse_test"]  # the registry has no unregister: tests only


def test_latent_mse_scores_each_candidate_over_all_seeds():
    ref = torch.zeros(2, 1, 2, 2)
    outs = [torch.ones(2, 1, 2, 2), torch.cat([torch.zeros(1, 1, 2, 2), 2 * torch.ones(1, 1, 2, 2)])]
    assert F.LatentMSE().score(outs, ref) == [1.0, 2.0]


class TargetRunner:
    """Samples = the schedule's log-σ vector; reference = the target's, so latent MSE is the log distance."""

    def __init__(self, target, offset=0.0):
        self.target, self.offset, self.calls = target, offset, 0

    def _sample(self, sigmas):
        self.calls += 1
        return torch.tensor([[math.log(s) + self.offset for s in sigmas[:-1]]])

    def run(self, schedules):
        return [self._sample(s) for s in schedules]

    def reference(self):
        return torch.tensor([[math.log(s) for s in self.target]])


def test_pipeline_finds_the_target_and_counts_calls_without_references():
    target = [14.614642, 3.1, 0.9, 0.31, 0.12]
    config = evolution.EvoConfig(steps=5, sigma_min=0.0291672, sigma_max=14.614642, seed=1, generations=4)
    builtin = {"karras": [14.614642, 2.0, 0.5, 0.15, 0.03, 0.0]}
    fit_runner, val_runner = TargetRunner(target), TargetRunner(target)
    fit = SeedSet(fit_runner, fit_runner.reference())
    find = SchedulePipeline(config, F.LatentMSE(), builtin, fit, 1, lambda: SeedSet(val_runner, val_runner.reference()),
                            1).run()
    assert find.validated and find.pick == "search #1"
    assert find.fitness * MIN_GAIN < find.baseline_fitness["karras"]
    assert find.model_calls == fit_runner.calls + val_runner.calls
    plain = SchedulePipeline(config, F.LatentMSE(), builtin, SeedSet(TargetRunner(target), fit.reference), 1).run()
    assert not plain.validated and plain.sigmas == find.result.sigmas and plain.fitness == find.result.fitness
def test_validation_prefers_a_builtin_when_the_finds_do_not_hold_up():
    """A find that wins on the fitness seeds but loses on fresh ones is not returned; the built-in is."""
    target = [14.614642, 3.1, 0.9, 0.31, 0.12]

    def fitness(candidates):
        return [sum((math.log(a) - math.log(b)) ** 2 for a, b in zip(c[:-1], target)) for c in candidates]

    builtin = {"karras": [14.614642, 2.0, 0.5, 0.15, 0.03, 0.0]}
    search = evolution.EvoSearch(evolution.EvoConfig(steps=5, sigma_min=0.0291672, sigma_max=14.614642, seed=1,
                                                     generations=3), fitness, seeds=builtin)
    result = search.run()
    fit = {"karras": result.seed_fitness["karras"]}
    assert result.fitness < fit["karras"]

    def validation_favours(name):
        return lambda cands: [0.0 if (c == builtin["karras"]) == (name == "karras") else 100.0 for c in cands]

    pick, sigmas, combined = validate_finds(search, builtin, fit, validation_favours("karras"), 4, 4)
    assert pick == "karras" and sigmas == builtin["karras"] and combined["karras"] == min(combined.values())
    pick, sigmas, _ = validate_finds(search, builtin, fit, validation_favours("search"), 4, 4)
    assert pick == "search #1" and sigmas == result.sigmas

    def validation_edge(ratio):
        """Every find scores ratio x karras over fitness + validation seeds (4 each)."""
        def scores(cands):
            out = []
            for c in cands:
                if c == builtin["karras"]:
                    out.append(fit["karras"])
                else:
                    find_fit = next(f for s_, f, _ in search.ranked(4, include_seeds=False) if s_ == c)
                    out.append(2 * ratio * fit["karras"] - find_fit)
            return out
        return scores

    assert validate_finds(search, builtin, fit, validation_edge(0.99), 4, 4)[0] == "karras"  # a noise-sized win
    assert validate_finds(search, builtin, fit, validation_edge(0.90), 4, 4)[0] == "search #1"


