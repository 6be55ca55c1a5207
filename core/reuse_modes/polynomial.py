"""The built-in reuse modes: hold the last prediction (the paper), or extrapolate it in log σ."""
from __future__ import annotations

from . import ReuseMode, register


class Hold(ReuseMode):
    name = "hold"
    help = "the last prediction (the paper)."
    order = 0
    extrapolates = False


class Linear(ReuseMode):
    name = "linear"
    help = "the noise prediction extrapolated in log σ from the last 2 computed calls."
    order = 1


class Quadratic(ReuseMode):
    name = "quadratic"
    help = ("from the last 3 computed calls (linear and quadratic are much closer to the full run for multistep "
            "samplers such as dpmpp_2m).")
    order = 2


register(Hold())
register(Linear())
register(Quadratic())
