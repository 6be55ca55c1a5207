"""Rules that do not look at the run: "stride" computes every k-th step, "calls" spends a call budget evenly."""
from __future__ import annotations

from . import BlindJudge, Criterion, register


def even_plan(total_steps: int, warmup: int, calls: int) -> list[bool]:
    """Compute mask spending `calls` model calls over `total_steps`: the warm-up steps, then regular gaps."""
    warmup = min(max(warmup, 1), total_steps)
    calls = min(max(calls, warmup), total_steps)
    plan = [i < warmup for i in range(total_steps)]
    remaining, budget = total_steps - warmup, calls - warmup
    for j in range(budget):
        plan[warmup + (j * remaining) // budget] = True
    return plan


class StrideJudge(BlindJudge):
    def __init__(self, stride: int, first: int) -> None:
        self.stride, self.first = stride, first

    def wants_call(self, step, sigma, cache) -> tuple[bool, None]:
        return (step - self.first) % self.stride == 0, None


class Stride(Criterion):
    name = "stride"
    help = "call every `stride`-th step."
    uses_threshold = False

    def start(self, config):
        return StrideJudge(config.stride, self.first_judged_step(config))

    def disabled_reason(self, config) -> str:
        return "stride 1: skipping is off" if config.stride == 1 else ""

    def describe(self, config, delta="δ") -> str:
        return f"stride={config.stride}"


class ComputeAll(BlindJudge):
    def wants_call(self, step, sigma, cache) -> tuple[bool, None]:
        return True, None


class Calls(Criterion):
    name = "calls"
    help = "spend `target_calls` calls evenly."
    uses_threshold = False
    judges_steps = False

    def start(self, config):
        return ComputeAll()  # without a target every step computes

    def plan(self, config, total_steps):
        return even_plan(total_steps, config.warmup_steps, config.target_calls) if config.target_calls > 0 else None

    def disabled_reason(self, config) -> str:
        return ""

    def describe(self, config, delta="δ") -> str:
        return f"target_calls={config.target_calls}"


register(Stride())
register(Calls())
