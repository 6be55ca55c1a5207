"""The skip-path oracle against brute force on an analytic ODE, and the batched replay against row-by-row runs."""
from __future__ import annotations

import itertools

import pytest
import torch

from adaptive_skip_core.oracle import even_starts, fixed_steps, greedy_skip_path
from adaptive_skip_core.replay import BatchedReplay
from adaptive_skip_core.reuse import ORDERS, PredictionCache



@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add spin-waiting, 100x slower on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


MEANS = torch.tensor([-1.5, 0.5, 2.0], dtype=torch.float64)
STD = 0.3


def denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Exact D(x, σ) for data from an equal-weight 1-D Gaussian mixture (means MEANS, std STD), per element."""
    var = STD ** 2 + sigma ** 2
    weights = torch.softmax(-(x[..., None] - MEANS) ** 2 / (2 * var), dim=-1)
    posterior = MEANS + STD ** 2 / var * (x[..., None] - MEANS)
    return (weights * posterior).sum(-1)


def karras(n: int, sigma_min: float = 0.03, sigma_max: float = 14.6, rho: float = 7.0) -> list[float]:
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    s = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return s.tolist() + [0.0]


def euler(mask, noise: torch.Tensor, sigmas: list[float], reuse: str = "hold") -> torch.Tensor:
    """Euler under the pack's reuse algebra: computed steps call the denoiser, skipped ones rebuild D'."""
    cache = PredictionCache(ORDERS[reuse])
    x = noise * sigmas[0]
    for i in range(len(sigmas) - 1):
        s = sigmas[i]
        if mask[i] or len(cache) == 0:
            d_out = denoiser(x, s)
            cache.store(x, d_out, s)
        else:
            d_out = cache.predict(x, s)
        x = x + (x - d_out) / s * (sigmas[i + 1] - s)
    return x


def problem(n: int, seed: int, reuse: str):
    noise = torch.randn(16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    sigmas = karras(n)
    ref = euler([True] * n, noise, sigmas, reuse)
    batches: list[int] = []

    def evaluate(masks):
        batches.append(len(masks))
        return [float(((euler(m, noise, sigmas, reuse) - ref) ** 2).mean()) for m in masks]

    return evaluate, batches


def brute_force(n: int, k: int, evaluate, warmup: int = 1) -> float:
    fixed = fixed_steps(n, warmup)
    free = [i for i in range(n) if not fixed[i]]
    masks = [[fixed[i] or i in chosen for i in range(n)] for chosen in itertools.combinations(free, k - sum(fixed))]
    return min(evaluate(masks))


@pytest.mark.parametrize("reuse,n,k,seed", [("hold", 10, 5, 0), ("hold", 12, 4, 1), ("hold", 12, 6, 2),
                                              ("linear", 10, 5, 0), ("linear", 12, 6, 1), ("quadratic", 10, 5, 1),
                                              ("quadratic", 12, 6, 3)])
def test_oracle_finds_the_brute_force_optimum_on_small_problems(reuse, n, k, seed):
    evaluate, _ = problem(n, seed, reuse)
    result = greedy_skip_path(n, k, evaluate)
    assert result.computed == k and result.mask[0]
    assert result.error == pytest.approx(brute_force(n, k, evaluate), rel=1e-9)
    assert result.error == pytest.approx(evaluate([result.mask])[0], rel=1e-12)


def test_swaps_and_restarts_never_lose_to_plain_greedy_and_fix_a_stuck_case():
    improved = 0
    for seed in range(4):
        evaluate, _ = problem(10, seed, "linear")
        plain = greedy_skip_path(10, 5, evaluate, swap_passes=0, extra_starts=[])
        better = greedy_skip_path(10, 5, evaluate)
        assert better.error <= plain.error
        improved += better.error < 0.5 * plain.error
    assert improved >= 1  # plain greedy gets stuck at 2-13x the optimum under linear reuse here


def test_plain_greedy_drops_one_step_per_round_and_reevaluates_every_remaining_candidate():
    evaluate, batches = problem(8, 0, "hold")
    result = greedy_skip_path(8, 5, evaluate, swap_passes=0, extra_starts=[], batch_size=100)
    assert batches == [7, 6, 5]  # candidates: steps 1..7, then one fewer after each drop
    assert [s.computed for s in result.trace] == [7, 6, 5]
    assert all(a.error <= b.error for a, b in zip(result.trace, result.trace[1:]))  # dropping only adds harm here
    assert result.evaluations == 18


def test_batches_respect_batch_size_and_repeats_are_not_reevaluated():
    evaluate, batches = problem(12, 1, "hold")
    result = greedy_skip_path(12, 6, evaluate, batch_size=4)
    assert max(batches) <= 4
    assert sum(batches) == result.evaluations
    seen = []
    counting = lambda masks: (seen.extend(tuple(m) for m in masks), evaluate(masks))[1]
    greedy_skip_path(12, 6, counting, batch_size=4)
    assert len(seen) == len(set(seen))


def test_warmup_steps_are_never_skipped_and_budget_equal_to_steps_returns_the_full_path():
    evaluate, _ = problem(10, 0, "hold")
    result = greedy_skip_path(10, 6, evaluate, warmup_steps=4)
    assert result.mask[:4] == [True] * 4 and result.computed == 6
    full = greedy_skip_path(10, 10, evaluate)
    assert full.mask == [True] * 10 and full.error == 0.0 and full.evaluations == 0


def test_progress_reports_monotonic_counts():
    evaluate, _ = problem(8, 0, "hold")
    seen = []
    greedy_skip_path(8, 4, evaluate, batch_size=3, progress=lambda done, total: seen.append((done, total)))
    assert seen and all(done <= total for done, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("kwargs,match", [
    (dict(total_steps=10, budget=0), "budget"),
    (dict(total_steps=10, budget=11), "budget"),
    (dict(total_steps=10, budget=3, warmup_steps=4), "warm-up"),
    (dict(total_steps=0, budget=0), "total_steps"),
    (dict(total_steps=10, budget=5, batch_size=0), "batch_size"),
    (dict(total_steps=10, budget=5, extra_starts=[[True] * 3]), "extra_starts"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        greedy_skip_path(evaluate=lambda masks: [0.0] * len(masks), **kwargs)


def test_evaluate_returning_the_wrong_count_is_reported():
    with pytest.raises(ValueError, match="one error per mask"):
        greedy_skip_path(6, 3, lambda masks: [0.0])


def test_even_starts_spend_exactly_the_budget_with_warmup_in():
    for n, k, w in [(12, 6, 1), (50, 25, 4), (20, 7, 3), (9, 9, 2)]:
        for mask in even_starts(n, k, w):
            assert len(mask) == n and sum(mask) == k and all(mask[:max(w, 1)])


@pytest.mark.parametrize("reuse", ["hold", "quadratic"])
def test_batched_replay_equals_row_by_row_runs_bitwise_and_shares_prefixes(reuse):
    n = 10
    sigmas = karras(n)
    noise = torch.randn(2, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    masks = [[True] * n, [i != 5 for i in range(n)], [i % 2 == 0 for i in range(n)], [i < 3 for i in range(n)]]
    rows = len(masks) * noise.shape[0]  # two latents per mask: row r belongs to mask r // 2
    replay = BatchedReplay(masks, noise.shape[0], sigmas, lambda step, s: 1, ORDERS[reuse])
    x = noise.repeat(len(masks), 1) * sigmas[0]
    for i in range(n):
        d_out = replay(x, sigmas[i], lambda idx: denoiser(x[idx], sigmas[i]))
        x = x + (x - d_out) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    for r in range(rows):
        alone = euler(masks[r // 2], noise[r % 2], sigmas, reuse)
        assert torch.equal(x[r], alone), f"row {r} differs from its single run"
    computed_rows = sum(sum(m) for m in masks) * noise.shape[0]
    assert replay.row_calls < computed_rows  # identical prefixes were computed once
    assert replay.row_calls >= sum(masks[0]) * noise.shape[0]


def test_batched_replay_attributes_multi_call_steps():
    n = 4
    sigmas = karras(n)
    replay = BatchedReplay([[True, False, True, False]], 1, sigmas, lambda step, s: 2, 0)
    x = torch.ones(1, 3, dtype=torch.float64)
    calls = []
    for _ in range(8):
        replay(x, 1.0, lambda idx: (calls.append(replay.step), x[idx] * 0.5)[1])
    assert calls == [0, 0, 2, 2]  # both calls of computed steps 0 and 2; steps 1 and 3 reuse
    with pytest.raises(RuntimeError, match="more steps"):
        replay(x, 1.0, lambda idx: x[idx])
