"""The search-space study's held-out sets: several sets parsed from SEED:K, pooled by their own samples, and each
cell's gain taken against the best pair re-picked on the seeds it is scored on; no ComfyUI needed."""
from __future__ import annotations

import argparse

import pytest
import torch
from bench.schedule_space_study import cell, held_sets, pooled, reference_gap


def _args(*specs: str, seed: int = 10_000, k: int = 32) -> argparse.Namespace:
    return argparse.Namespace(held_sets=list(specs), held_seed=seed, held_seeds=k)


def test_held_sets_default_to_the_single_held_out_set():
    assert held_sets(_args(seed=20_000, k=64)) == [(20_000, 64)]


def test_held_sets_parse_seed_and_count_in_the_given_order():
    assert held_sets(_args("10000:32", "20000:64", "40000:128")) == [(10_000, 32), (20_000, 64), (40_000, 128)]


@pytest.mark.parametrize("spec", ["10000", "10000:", ":32", "10000:0", "a:32", "10000:-4"])
def test_held_sets_refuse_a_spec_that_is_not_seed_colon_count(spec):
    with pytest.raises(SystemExit, match="SEED:K"):
        held_sets(_args(spec))


def test_held_sets_refuse_sets_that_share_seeds():
    with pytest.raises(SystemExit, match="share seeds"):
        held_sets(_args("20000:64", "10000:32", "20050:8"))
    assert held_sets(_args("10000:32", "10032:32")) == [(10_000, 32), (10_032, 32)]  # adjacent: distinct


def test_pooled_concatenates_each_name_over_the_sets():
    a = {"x": torch.zeros(2, 3), "y": torch.ones(2, 3)}
    b = {"x": torch.full((1, 3), 5.0), "y": torch.full((1, 3), 7.0)}
    out = pooled([a, b])
    assert out["x"].tolist() == [[0.0] * 3, [0.0] * 3, [5.0] * 3]
    assert out["y"][:, 0].tolist() == [1.0, 1.0, 7.0]


def _cell_inputs():
    ref = torch.zeros(4, 1)
    # pair A: good on seeds 0-1, bad on 2-3; pair B: the other way round; the find: 0.5 everywhere
    pairs = {"A": torch.tensor([[0.0], [0.0], [2.0], [2.0]]), "B": torch.tensor([[1.0], [1.0], [0.0], [0.0]])}
    return pairs, torch.full((4, 1), 0.5), ref


def test_cell_takes_the_gain_against_the_best_pair_on_the_scored_seeds():
    pairs, find, ref = _cell_inputs()
    c = cell(pairs, find, ref, ref)
    assert c["pair"] == "B" and c["pair_mse"] == pytest.approx(0.5)  # A: 2.0, B: 0.5
    assert c["mse"] == pytest.approx(0.25) and c["gain"] == pytest.approx(2.0)


def test_a_pooled_cell_re_picks_the_pair_instead_of_keeping_each_sets_pick():
    pairs, find, ref = _cell_inputs()
    first = cell({p: o[:2] for p, o in pairs.items()}, find[:2], ref[:2], ref[:2])
    second = cell({p: o[2:] for p, o in pairs.items()}, find[2:], ref[2:], ref[2:])
    assert first["pair"] == "A" and second["pair"] == "B"  # each set's best pair is perfect there: gain 0
    assert first["gain"] == 0.0 and second["gain"] == 0.0
    halves = [{**{p: o[:2] for p, o in pairs.items()}, "find": find[:2]},
              {**{p: o[2:] for p, o in pairs.items()}, "find": find[2:]}]
    both = pooled(halves)
    c = cell({p: both[p] for p in pairs}, both["find"], ref, ref)
    assert c["pair"] == "B" and c["gain"] == pytest.approx(2.0)  # one pair for all four seeds


def test_cell_against_another_reference_keeps_the_median_against_the_high_accuracy_one():
    ref = torch.zeros(4, 1)
    pairs = {"A": torch.tensor([[0.0], [0.0], [0.0], [3.0]]), "B": torch.ones(4, 1)}
    full = pairs["A"].clone()  # the other reference IS pair A: A is best against it, B against `ref`
    find = torch.full((4, 1), 0.5)
    c = cell(pairs, find, full, ref)
    assert c["pair"] == "A" and c["pair_mse"] == 0.0 and c["mse"] == pytest.approx(1.75) and c["gain"] == 0.0
    assert c["median_gain"] == pytest.approx(1.0 / 0.25)  # B's per-seed median against `ref` over the find's


def test_cell_of_a_find_that_is_the_reference_itself_is_an_infinite_gain_not_an_error():
    pairs = {"A": torch.ones(2, 1)}
    c = cell(pairs, torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1))
    assert c["mse"] == 0.0 and c["gain"] == float("inf")


def test_reference_gap_tells_an_error_along_the_50_step_runs_own_from_one_against_it():
    ref = torch.zeros(3, 2)
    full = torch.tensor([[1.0, 0.0]] * 3)  # the 50-step run's own error: MSE 0.5
    outs = {"along": 0.5 * full, "against": -0.5 * full, "across": torch.tensor([[0.0, 0.5]] * 3)}
    gap = reference_gap(outs, ref, full)
    assert gap["full-step run"]["high"] == pytest.approx(0.5) and gap["full-step run"]["full"] == 0.0
    # the same error against the 100-step run (0.125) each, three distances to the 50-step run
    assert [gap[k]["high"] for k in outs] == pytest.approx([0.125] * 3)
    assert gap["along"]["full"] == pytest.approx(0.125) and gap["along"]["cosine"] == pytest.approx(1.0)
    assert gap["against"]["full"] == pytest.approx(1.125) and gap["against"]["cosine"] == pytest.approx(-1.0)
    assert gap["across"]["full"] == pytest.approx(0.625) and gap["across"]["cosine"] == pytest.approx(0.0)
