"""The "error" rule: skip when the held prediction and the extrapolated one barely disagree."""
from __future__ import annotations

from . import BlindJudge, Criterion, register


class ErrorJudge(BlindJudge):
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def wants_call(self, step, sigma, cache) -> tuple[bool, float | None]:
        value = cache.disagreement(sigma)
        return not (value is not None and value <= self.threshold), value


class Error(Criterion):
    name = "error"
    help = "skip when held and extrapolated predictions agree within δ."
    first_step = 2  # two computed calls are needed to extrapolate

    def start(self, config):
        return ErrorJudge(config.threshold)


register(Error())
