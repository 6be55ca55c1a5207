"""The per-seed statistics scripts/bench/autodiffusion_schedule.py reports next to the mean held-out MSE (how much of
the error the rare class flips carry); no ComfyUI needed."""
from __future__ import annotations

import pytest
import torch
from bench.autodiffusion_schedule import frechet_wanted, label, parse_args, per_seed, top_share, trimmed


def test_per_seed_is_the_mean_squared_error_of_each_sample():
    a = torch.zeros(3, 2, 2, 2)
    b = torch.zeros(3, 2, 2, 2)
    b[1] = 2.0
    b[2, 0, 0, 0] = 4.0  # one element of 8: 16 / 8
    assert per_seed(a, b).tolist() == [0.0, 4.0, 2.0]


def test_trimmed_mean_drops_the_worst_tenth_of_seeds():
    errors = torch.tensor([1.0] * 18 + [100.0, 200.0])  # 20 seeds: the worst 2 are dropped
    assert trimmed(errors) == pytest.approx(1.0)
    assert trimmed(torch.tensor([5.0, 1.0])) == pytest.approx(3.0)  # too few seeds to drop one: the mean
    assert float(errors.mean()) == pytest.approx(15.9)


def test_top_share_is_the_worst_tenths_share_of_the_summed_error():
    errors = torch.tensor([1.0] * 18 + [41.0, 41.0])
    assert top_share(errors) == pytest.approx(82.0 / 100.0)
    assert top_share(torch.ones(10)) == pytest.approx(0.1)
    assert top_share(torch.zeros(4)) == 0.0  # no error at all: no share, not a division by zero


def test_arguments_every_sampler_every_pair_and_the_frechet_report():
    args = parse_args(["--samplers", "all", "--held-pairs", "0", "--fitnesses", "fidelity", "mixed"])
    assert args.samplers == ["all"] and args.held_pairs == 0 and frechet_wanted(args)
    assert not frechet_wanted(parse_args([]))
    with pytest.raises(SystemExit):
        parse_args(["--fitnesses", "latent"])


def test_stratified_seed_arguments_and_their_table_label():
    args = parse_args(["--screen-seeds", "256", "--hard-seeds", "10", "--hard-validation-seeds", "3"])
    assert (args.screen_seeds, args.hard_seeds, args.hard_validation_seeds, args.screen_pairs) == (256, 10, 3, 4)
    assert parse_args([]).screen_seeds == 0, "off unless asked: the plain search alone, as before"
    assert label(("warp", "fidelity", "plain")) == "warp, fidelity"
    assert label(("warp", "fidelity", "strata")) == "warp, fidelity, strata"


def test_every_search_space_of_the_core_is_a_benchmark_choice():
    from adaptive_skip_core.schedule_search import SPACES
    assert parse_args(["--spaces", *SPACES]).spaces == list(SPACES)
    with pytest.raises(SystemExit):
        parse_args(["--spaces", "bezier"])
