"""Trajectory estimators that judge whether the next noise-prediction call can be skipped.

AdaptiveDiffusion (Ye et al., NeurIPS 2024, arXiv 2410.09873) skips when the third-order difference of the
latent sequence is small. x_k is the latent entering step k in the model's input form; x_0, the initial noise,
is not used, so the first step the estimators can judge is step 4.
"""
from __future__ import annotations

import torch

# The estimators need x_1..x_4 (x_0, the initial noise, is not used), so step 4 is the first they can judge.
ESTIMATOR_FIRST_STEP = 4


class OfficialEstimator:
    """The released code's scalar rule: m_k = mean|x_k - x_{k-1}|, skip when
    |(m_t + m_{t-2})/2 - m_{t-1}| <= δ·m_{t-1}. Holds one latent and three floats."""

    def __init__(self) -> None:
        self._prev: torch.Tensor | None = None
        self._m: list[float] = []

    def observe(self, step: int, x: torch.Tensor) -> None:
        if step == 0:
            return  # the initial noise is not part of the measured sequence
        if self._prev is not None:
            self._m.append((x.float() - self._prev).abs().mean().item())
            del self._m[:-3]
        self._prev = x.detach().float().clone()

    def smooth(self, threshold: float) -> tuple[bool, float | None]:
        """(smooth enough to skip?, estimator value relative to m_{t-1}); (False, None) while fewer than three m exist."""
        if len(self._m) < 3:
            return False, None
        m_prev2, m_prev, m_cur = self._m
        gap = abs((m_cur + m_prev2) / 2 - m_prev)
        value = gap / m_prev if m_prev > 0 else (0.0 if gap == 0 else float("inf"))
        return gap <= m_prev * threshold, value


class PaperEstimator:
    """The paper's vector form: skip when ||Δx_t - 2Δx_{t-1} + Δx_{t-2}|| <= δ·||Δx_{t-1}|| on whole latents.
    Differences of vectors do not average out per-element noise the way differences of means do, so its δ is
    typically an order of magnitude larger than the official rule's for the same skip rate."""

    def __init__(self) -> None:
        self._prev: torch.Tensor | None = None
        self._dx: list[torch.Tensor] = []

    def observe(self, step: int, x: torch.Tensor) -> None:
        if step == 0:
            return
        x = x.detach().float()
        if self._prev is not None:
            self._dx.append(x - self._prev)
            del self._dx[:-3]
        self._prev = x.clone()

    def smooth(self, threshold: float) -> tuple[bool, float | None]:
        if len(self._dx) < 3:
            return False, None
        d2, d1, d0 = self._dx
        gap = torch.linalg.vector_norm(d0 - 2 * d1 + d2).item()
        scale = torch.linalg.vector_norm(d1).item()
        value = gap / scale if scale > 0 else (0.0 if gap == 0 else float("inf"))
        return gap <= scale * threshold, value

