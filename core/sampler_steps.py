"""How many model calls each step of a k-diffusion sampler makes, so a skipped step reuses for all of them.

A call's σ cannot place it in a step: heun's corrector lands exactly on the next grid σ, the same σ as the next
step's first call. The sampler function seen when sampling starts (ComfyUI's KSAMPLER.sampler_function) tells.
Counts were measured on ComfyUI 0.3.64 and 0.8.0 by counting PREDICT_NOISE calls; a host test re-measures them, and
at run time the sampler's own per-step callback checks the attribution, so a drift falls back to plain sampling.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from . import reuse_modes

# Function names (as ComfyUI names them) that call the model exactly once per step.
SINGLE_CALL = frozenset({
    "sample_euler", "sample_euler_ancestral", "sample_euler_ancestral_RF", "sample_lms", "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_2m_sde_gpu", "sample_dpmpp_2m_sde_heun", "sample_dpmpp_2m_sde_heun_gpu", "sample_dpmpp_3m_sde",
    "sample_dpmpp_3m_sde_gpu", "sample_ddpm", "sample_lcm", "sample_ipndm", "sample_ipndm_v", "sample_deis",
    "sample_res_multistep", "sample_res_multistep_ancestral", "sample_gradient_estimation",
    "sample_er_sde", "sample_sa_solver", "sample_unipc", "sample_unipc_bh2",
})

# Multi-call samplers: k calls per step, one on a final step that lands on σ = 0.
MULTI_CALL = {
    "sample_heun": 2, "sample_dpm_2": 2, "sample_dpm_2_ancestral": 2, "sample_dpm_2_ancestral_RF": 2,
    "sample_dpmpp_2s_ancestral": 2, "sample_dpmpp_2s_ancestral_RF": 2,
    "sample_dpmpp_sde": 2, "sample_dpmpp_sde_gpu": 2, "sample_seeds_2": 2, "sample_seeds_3": 3,
    # ComfyUI 0.8.0: seeds_2 with r = 1 (the second call lands on the next grid σ, as heun's does)
    "sample_exp_heun_2_x0": 2, "sample_exp_heun_2_x0_sde": 2,
}

# Not supported, with the reason given in the log line: their calls do not follow the step grid.
UNSUPPORTED = {
    "dpm_fast_function": "DPM-Solver-fast picks its own orders and substeps",
    "dpm_adaptive_function": "DPM-Solver-adaptive chooses its own step sizes",
    "sample_sa_solver_pece": "its corrector call is evaluated after the step's callback",
}
# CFG++ samplers read the unconditional prediction through a post-CFG hook that runs inside the model call;
# a skipped call cannot feed it, so they run unaccelerated.
CFG_PP = ("sample_euler_cfg_pp", "sample_euler_ancestral_cfg_pp", "sample_dpmpp_2s_ancestral_cfg_pp",
          "sample_dpmpp_2m_cfg_pp", "sample_res_multistep_cfg_pp", "sample_res_multistep_ancestral_cfg_pp",
          "sample_gradient_estimation_cfg_pp")
UNSUPPORTED.update({name: "CFG++ samplers read the unconditional prediction inside the model call, "
                          "which a skipped call cannot provide" for name in CFG_PP})


def sampler_function_name(sampler) -> str:
    """The k-diffusion function a ComfyUI sampler object runs, by name ("sample_euler"): what the tables here are
    keyed by. Duck-typed (KSAMPLER.sampler_function); an object without one is named by its type."""
    name = getattr(getattr(sampler, "sampler_function", None), "__name__", None)
    return name if isinstance(name, str) and name else type(sampler).__name__


class StepOverrun(RuntimeError):
    """The sampler made more calls than its schedule's steps account for."""


class StepCounter:
    """Attributes each model call of a run to its sampler step: the first call of a step opens it, and the step
    takes calls_in_step(step, sigmas) calls in all (heun's corrector belongs to its step, not to the next)."""

    def __init__(self, sigmas: Sequence[float], calls_in_step: Callable[[int, Sequence[float]], int]) -> None:
        self.sigmas, self.calls_in_step = sigmas, calls_in_step
        self.step = -1
        self.calls_left = 0

    def next_call(self) -> bool:
        """Count one model call; True when it opens a new step. StepOverrun past the schedule's last step."""
        if self.calls_left > 0:
            self.calls_left -= 1
            return False
        self.step += 1
        if self.step >= len(self.sigmas) - 1:
            raise StepOverrun("the sampler made more steps than its sigmas hold")
        self.calls_left = self.calls_in_step(self.step, self.sigmas) - 1
        return True


def calls_per_step(function_name: str) -> Callable[[int, Sequence[float]], int] | None:
    """A function (step, sigmas) -> model calls in that step, or None when the sampler is not supported."""
    if function_name in SINGLE_CALL:
        return lambda step, sigmas: 1
    if function_name in MULTI_CALL:
        k = MULTI_CALL[function_name]
        return lambda step, sigmas: 1 if sigmas[step + 1] == 0 else k
    if function_name == "sample_heunpp2":
        # heun++ looks two grid points ahead and compares with the schedule's last σ, not with 0
        def heunpp2(step: int, sigmas: Sequence[float]) -> int:
            end = sigmas[-1]
            if sigmas[step + 1] == end:
                return 1
            return 2 if sigmas[step + 2] == end else 3
        return heunpp2
    return None


def unsupported_reason(function_name: str) -> str:
    """Why a sampler runs without skipping, for the one log line."""
    return UNSUPPORTED.get(function_name, "it is not known to call the model a fixed number of times per step")


# Samplers that inject fresh noise every step: their d = (x - D)/σ carries that noise, so skipped calls reuse D.
NOISE_INJECTING = frozenset({
    "sample_euler_ancestral", "sample_euler_ancestral_RF", "sample_dpm_2_ancestral", "sample_dpm_2_ancestral_RF",
    "sample_dpmpp_2s_ancestral", "sample_dpmpp_2s_ancestral_RF", "sample_dpmpp_sde", "sample_dpmpp_sde_gpu",
    "sample_dpmpp_2m_sde", "sample_dpmpp_2m_sde_gpu", "sample_dpmpp_2m_sde_heun", "sample_dpmpp_2m_sde_heun_gpu",
    "sample_dpmpp_3m_sde", "sample_dpmpp_3m_sde_gpu", "sample_ddpm", "sample_lcm", "sample_res_multistep_ancestral",
    "sample_er_sde", "sample_seeds_2", "sample_seeds_3", "sample_sa_solver", "sample_exp_heun_2_x0_sde",
})


def reuse_space(function_name: str, reuse: str) -> str:
    """What skipped calls extrapolate: D for noise-injecting samplers (measured on the bundled model, dpmpp_2m_sde
    at 13-21 calls: linear reuse +1 to +5 dB over extrapolating d), d (the paper's noise prediction) otherwise and
    for holding (holding d was 1-3 dB better than holding D on the same runs)."""
    return "denoised" if function_name in NOISE_INJECTING and reuse_modes.get(reuse).extrapolates else "eps"
