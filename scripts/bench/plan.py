"""What the benchmark runs: sections (one per sampler under test), the runs each needs, and the quick/full sizes.

Pure Python (no ComfyUI), so the plan can be inspected and tested without a host. A run is a frozen RunSpec;
identical specs needed by several sections (e.g. fewer steps of ipndm for both euler and dpmpp_2m) run once.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# Method names used in the CSV's `method` column.
FULL, HIGH, FEWER, OTHER = "full_steps", "high_accuracy", "fewer_steps", "other_sampler"
ADAPTIVE, EASYCACHE, LAZYCACHE, ORACLE, SCHEDULE = "adaptive_skip", "easycache", "lazycache", "oracle", "schedule"
PLAIN = (FULL, HIGH, FEWER, OTHER, SCHEDULE)


@dataclass(frozen=True)
class RunSpec:
    """One sampling run on the whole seed batch.

    method: one of the names above; sampler/scheduler/steps as ComfyUI names them; `sigmas` overrides the
    scheduler (custom schedules, references); `skip` holds SkipConfig keyword arguments for AdaptiveSkip runs;
    `threshold` is EasyCache/LazyCache's reuse_threshold; `label` is what tables show.
    """

    method: str
    sampler: str
    scheduler: str
    steps: int
    label: str = ""
    sigmas: tuple[float, ...] | None = None
    skip: tuple[tuple[str, Any], ...] = ()
    threshold: float | None = None

    @property
    def key(self) -> str:
        """Identity of the computation: plain runs needed under several roles (a peer in one section, the same
        sampler in another) share one key and run once."""
        kind = "plain" if self.method in PLAIN else self.method
        parts = [kind, self.sampler, self.scheduler, str(self.steps)]
        if self.skip:
            parts.append(",".join(f"{k}={v}" for k, v in self.skip))
        if self.threshold is not None:
            parts.append(f"t={self.threshold:g}")
        if self.sigmas is not None:
            parts.append(f"sigmas[{len(self.sigmas)}]={self.sigmas[0]:.4f}..{self.sigmas[-2]:.4f}")
        return "|".join(parts)

    @property
    def skip_kwargs(self) -> dict[str, Any]:
        return dict(self.skip)


@dataclass(frozen=True)
class Section:
    """One sampler under test: its full-step reference, its references' problem ("ode" or "sde") and its peers."""

    sampler: str
    scheduler: str
    kind: str = "ode"
    peers: tuple[str, ...] | None = None  # fewer-steps peers; None: the mode's ODE or SDE list
    lite: bool = False  # only the rule sweep (largest C_max), call targets and caches: saves time on a side sampler
    extrapolated_only: bool = False  # only call targets and the error rule with extrapolated reuse (no caches)

    @property
    def name(self) -> str:
        return self.sampler if self.scheduler == "karras" else f"{self.sampler}/{self.scheduler}"


@dataclass(frozen=True)
class Mode:
    """Sizes of one benchmark mode."""

    name: str
    model: str  # "bundled" (the digits UNet), "mnist_dit" (the flow DiT) or "tiny" (random weights, smoke test)
    seeds: int
    steps: int
    cfg: float
    budgets: tuple[int, ...]
    sections: tuple[Section, ...]
    ode_peers: tuple[str, ...]
    sde_peers: tuple[str, ...]
    high_steps: int  # ODE high-accuracy reference: dpmpp_2m steps
    sde_high_steps: int  # SDE high-accuracy reference: the SDE sampler's steps
    check_steps: int  # a second high-accuracy solver run to show the reference has converged (0: skip)
    official_deltas: tuple[float, ...]
    paper_deltas: tuple[float, ...]
    cmax: tuple[int, ...]
    criteria: tuple[str, ...]
    reuse_deltas: tuple[float, ...]  # official rule with extrapolated reuse
    error_deltas: tuple[float, ...]
    strides: tuple[int, ...]
    cache_thresholds: tuple[float, ...]
    oracle: tuple[tuple[str, str], ...] = ()  # (section sampler, reuse) pairs the oracle searches
    oracle_budgets: tuple[int, ...] = ()
    oracle_seeds: int = 1
    sd15_steps: int = 6
    extra_same_steps: tuple[int, ...] = ()  # fewer-steps runs of the sampler under test above the budgets, so
    # threshold rules landing at 27-40 calls are compared with the same sampler at about their own call count
    repeats: int = 1
    latent_side: int = 32  # EmptyLatentImage pixels: 32 gives the bundled model's 4x4 latent


SECTIONS = {
    "euler": Section("euler", "karras"),
    "ddim": Section("ddim", "ddim_uniform", peers=("ipndm", "dpmpp_2m"), lite=True),
    "dpmpp_2m": Section("dpmpp_2m", "karras"),
    "dpmpp_2m_sde": Section("dpmpp_2m_sde", "karras", "sde"),
    "ipndm": Section("ipndm", "karras", extrapolated_only=True),
}
ODE_PEERS = ("ipndm", "ipndm_v", "deis", "lms", "uni_pc", "dpmpp_2m", "res_multistep")
SDE_PEERS = ("dpmpp_2m_sde_heun", "dpmpp_3m_sde")

# Sizes: a model call of the bundled model costs ~85 ms for 16 seeds (CFG batch 32) on one 2020s CPU thread,
# ~50 ms for 8 seeds. Full: ~10k calls plus the oracle search; quick: ~2.5k calls.
MODES = {
    "full": Mode(
        name="full", model="bundled", seeds=16, steps=50, cfg=4.0, budgets=tuple(range(13, 26, 2)),
        sections=(SECTIONS["euler"], SECTIONS["ddim"], SECTIONS["dpmpp_2m"], SECTIONS["dpmpp_2m_sde"],
                  SECTIONS["ipndm"]),
        ode_peers=ODE_PEERS, sde_peers=SDE_PEERS, high_steps=300, sde_high_steps=500, check_steps=150,
        official_deltas=(0.005, 0.01, 0.02, 0.05), paper_deltas=(0.1, 0.2, 0.4, 0.8),
        cmax=(2, 4), criteria=("official", "strict", "paper"), reuse_deltas=(0.005, 0.01, 0.05),
        error_deltas=(0.03, 0.07, 0.12, 0.2, 0.35), strides=(3, 4), cache_thresholds=(0.05, 0.1, 0.2, 0.4),
        oracle=(("euler", "hold"), ("euler", "quadratic"), ("dpmpp_2m", "quadratic")), oracle_budgets=(13, 19, 25),
        oracle_seeds=1, sd15_steps=5, extra_same_steps=(28, 32, 36, 40)),
    "quick": Mode(
        name="quick", model="bundled", seeds=8, steps=50, cfg=4.0, budgets=(13, 19, 25),
        sections=(SECTIONS["euler"], SECTIONS["dpmpp_2m"], SECTIONS["dpmpp_2m_sde"]),
        ode_peers=ODE_PEERS, sde_peers=SDE_PEERS, high_steps=200, sde_high_steps=200, check_steps=0,
        official_deltas=(0.01, 0.05), paper_deltas=(0.2,), cmax=(4,), criteria=("official", "strict", "paper"),
        reuse_deltas=(0.01,), error_deltas=(0.05, 0.2), strides=(3,), cache_thresholds=(0.2,), sd15_steps=3),
    "smoke": Mode(
        name="smoke", model="tiny", seeds=2, steps=8, cfg=4.0, budgets=(5,),
        sections=(SECTIONS["euler"],), ode_peers=("dpmpp_2m",), sde_peers=(), high_steps=16, sde_high_steps=16,
        check_steps=0, official_deltas=(0.0,), paper_deltas=(), cmax=(2,), criteria=("official",),
        reuse_deltas=(), error_deltas=(), strides=(2,), cache_thresholds=(0.3,), sd15_steps=0),
}


def with_overrides(mode: Mode, **changes: Any) -> Mode:
    """A copy of `mode` with some sizes changed (command-line overrides)."""
    return replace(mode, **{k: v for k, v in changes.items() if v is not None})


def _skip(label: str, section: Section, steps: int, **config: Any) -> RunSpec:
    return RunSpec(ADAPTIVE, section.sampler, section.scheduler, steps, label=label,
                   skip=tuple(sorted(config.items())))


@dataclass
class SectionPlan:
    """The runs one section compares, by role. References are separate so every row can be scored against both."""

    section: Section
    full: RunSpec
    high: RunSpec | None = None  # filled by the harness once the schedule's first σ is known
    runs: list[RunSpec] = field(default_factory=list)


def fewer_steps_runs(mode: Mode, section: Section) -> list[RunSpec]:
    """Fewer steps of the section's own sampler and of its peers, one run per budget (one call per step)."""
    out = [RunSpec(FEWER, section.sampler, section.scheduler, n, label=f"{section.sampler} {n} steps")
           for n in mode.budgets + mode.extra_same_steps]
    peers = section.peers if section.peers is not None else (mode.sde_peers if section.kind == "sde" else mode.ode_peers)
    for peer in peers:
        if peer == section.sampler:
            continue
        out += [RunSpec(OTHER, peer, section.scheduler, n, label=f"{peer} {n} steps") for n in mode.budgets]
    return out


def adaptive_runs(mode: Mode, section: Section) -> list[RunSpec]:
    """AdaptiveSkip settings for one section: the rule sweeps, reuse modes, error rule, strides and call targets."""
    n, out = mode.steps, []
    if section.extrapolated_only:
        return [_skip(f"calls {t} {reuse}", section, n, criterion="calls", target_calls=t, reuse=reuse)
                for t in mode.budgets for reuse in ("linear", "quadratic")] + \
               [_skip(f"error δ={d:g} quadratic", section, n, criterion="error", threshold=d, max_consecutive_skips=4,
                      reuse="quadratic") for d in mode.error_deltas]
    for criterion in mode.criteria:
        deltas = mode.paper_deltas if criterion == "paper" else mode.official_deltas
        for delta in deltas:
            for cmax in (mode.cmax[-1:] if section.lite else mode.cmax):
                out.append(_skip(f"{criterion} δ={delta:g} C={cmax}", section, n, criterion=criterion,
                                 threshold=delta, max_consecutive_skips=cmax, reuse="hold"))
    if section.lite:
        return out + [_skip(f"calls {t} {reuse}", section, n, criterion="calls", target_calls=t, reuse=reuse)
                      for t in mode.budgets for reuse in ("hold", "linear", "quadratic")]
    for reuse in ("linear", "quadratic"):
        for delta in mode.reuse_deltas:
            out.append(_skip(f"official δ={delta:g} C=4 {reuse}", section, n, criterion="official", threshold=delta,
                             max_consecutive_skips=4, reuse=reuse))
    for delta in mode.error_deltas:
        out.append(_skip(f"error δ={delta:g} quadratic", section, n, criterion="error", threshold=delta,
                         max_consecutive_skips=4, reuse="quadratic"))
    for stride in mode.strides:
        for reuse in ("hold", "quadratic"):
            out.append(_skip(f"stride {stride} {reuse}", section, n, criterion="stride", stride=stride,
                             max_consecutive_skips=max(stride - 1, 1), reuse=reuse))
    for target in mode.budgets:
        for reuse in ("hold", "linear", "quadratic"):
            out.append(_skip(f"calls {target} {reuse}", section, n, criterion="calls", target_calls=target,
                             reuse=reuse))
    return out


def cache_runs(mode: Mode, section: Section) -> list[RunSpec]:
    """ComfyUI's own EasyCache and LazyCache nodes over their reuse thresholds."""
    if section.extrapolated_only:
        return []
    return [RunSpec(method, section.sampler, section.scheduler, mode.steps, label=f"{method} t={t:g}", threshold=t)
            for method in (EASYCACHE, LAZYCACHE) for t in mode.cache_thresholds]


def build_plan(mode: Mode) -> list[SectionPlan]:
    """Every section's runs (references excluded: the harness adds the high-accuracy run per problem)."""
    plans = []
    for section in mode.sections:
        full = RunSpec(FULL, section.sampler, section.scheduler, mode.steps, label=f"{section.sampler} {mode.steps} steps")
        plans.append(SectionPlan(section, full, runs=fewer_steps_runs(mode, section) + adaptive_runs(mode, section)
                                 + cache_runs(mode, section)))
    return plans
