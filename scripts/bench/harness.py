"""The instrumented ComfyUI side of the benchmark: load the model, patch it per run, sample, count and time.

Every run goes through ComfyUI's real sampler entry point (comfy.sample.sample) on a clone of one instrumented
model. Instrumentation is keyed wrappers only:
- an outer PREDICT_NOISE wrapper (added first, so it is outside AdaptiveSkip's and LazyCache's) times each
  sampler call and, on AdaptiveSkip runs, measures the bytes the run's controller holds;
- an inner PREDICT_NOISE wrapper (added last) times the call that really reaches the model;
- an inner DIFFUSION_MODEL wrapper (added last, so inside EasyCache's) counts rows that really run the UNet.
Model calls = UNet rows / rows per CFG evaluation, so a call is one CFG evaluation of the whole seed batch, the
unit AdaptiveSkip's SKIP_PATH and the samplers' step counts use.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pack_loader import pack_module

from . import plan as P

BENCH_OUTER, BENCH_INNER, BENCH_COUNT = "zz_bench_outer", "zz_bench_inner", "zz_bench_count"


def _status_kb(field_name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"{field_name}:\s+(\d+)", text)
    return int(m.group(1)) if m else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux clear_refs 5); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def tensor_bytes(obj: Any, seen: set[int] | None = None, depth: int = 0) -> int:
    """Bytes of the tensors reachable from `obj` through attributes, lists, tuples and dicts (each counted once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, seen, depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(tensor_bytes(v, seen, depth + 1) for v in vars(obj).values())
    return 0


@dataclass
class RunStats:
    """What the wrappers record during one run."""

    rows: int = 0
    forwards: int = 0
    inner_calls: int = 0  # PREDICT_NOISE calls that reached the model (one CFG evaluation of the batch each)
    sampler_calls: int = 0
    inner_time: float = 0.0
    inner_called: bool = False
    calls: list[tuple[float, float | None]] = field(default_factory=list)  # (outer time, inner time or None)
    controller_bytes: int = 0

    @property
    def bookkeeping(self) -> list[float]:
        """Per sampler call: time outside the model call (all of it when the call was skipped)."""
        return [total - (inner or 0.0) for total, inner in self.calls]


@dataclass
class RunResult:
    """One finished run: the samples and its cost."""

    spec: P.RunSpec
    samples: torch.Tensor
    model_calls: float
    forwards: int
    sampler_calls: int
    wall: float
    peak_rss_mb: float | None
    bookkeeping_us: float | None
    model_call_ms: float | None
    controller_bytes: int | None
    skip_path: dict[str, Any] | None = None  # SkipPath.to_dict() of AdaptiveSkip runs
    walls: list[float] = field(default_factory=list)
    calls: list[tuple[float, float | None]] = field(default_factory=list)


class Harness:
    """Holds the loaded model, conditioning, noise and decode constants; runs RunSpecs through ComfyUI."""

    def __init__(self, pack, model, positive, negative, latent: torch.Tensor, noise: torch.Tensor, cfg: float,
                 seed: int, decode: dict[str, float]) -> None:
        self.pack = pack
        self.patch = pack_module("nodes.patch")
        self.config_mod = pack_module("core.config")
        import comfy.patcher_extension as pe
        import comfy.sample
        import comfy.samplers
        self._pe, self._sample, self._samplers = pe, comfy.sample, comfy.samplers
        self.positive, self.negative, self.latent, self.noise = positive, negative, latent, noise
        self.cfg, self.seed, self.decode = cfg, seed, decode
        self.rows_per_call = latent.shape[0] * (2 if cfg != 1.0 else 1)
        self.current = RunStats()
        self.model = model.clone()
        self.model.add_wrapper_with_key(pe.WrappersMP.PREDICT_NOISE, BENCH_OUTER, self._outer)
        self.model_sampling = model.get_model_object("model_sampling")

    # --- wrappers (host signatures: PREDICT_NOISE (x, timestep, model_options, seed); DIFFUSION_MODEL
    # (x, timesteps, context, y, control, transformer_options, ...), comfy 0.3.64 and 0.8.0) ---
    def _outer(self, executor, *args, **kwargs):
        st = self.current
        st.inner_called, st.inner_time = False, 0.0
        start = time.perf_counter()
        out = executor(*args, **kwargs)
        total = time.perf_counter() - start
        st.sampler_calls += 1
        st.calls.append((total, st.inner_time if st.inner_called else None))
        options = args[2] if len(args) > 2 else kwargs.get("model_options", {})
        run = options.get("transformer_options", {}).get(self.patch.RUN_KEY)
        if run is not None:
            controllers = getattr(run, "controllers", None) or [getattr(run, "controller", None)]
            st.controller_bytes = max(st.controller_bytes, tensor_bytes([c for c in controllers if c is not None]))
        return out

    def _inner(self, executor, *args, **kwargs):
        st = self.current
        start = time.perf_counter()
        out = executor(*args, **kwargs)
        st.inner_time = time.perf_counter() - start
        st.inner_called = True
        st.inner_calls += 1
        return out

    def _count(self, executor, *args, **kwargs):
        self.current.rows += int(args[0].shape[0])
        self.current.forwards += 1
        return executor(*args, **kwargs)

    # --- patching ---
    def patched_model(self, spec: P.RunSpec):
        """A fresh clone patched as the spec says, with the inner counters added last (innermost)."""
        setup = None
        if spec.method in (P.ADAPTIVE, P.ORACLE):
            config = self.config_mod.SkipConfig(**spec.skip_kwargs)
            setup = self.patch.SkipSetup(config=config, scheduler=spec.scheduler)
            model = self.patch.attach(self.model, setup)
        elif spec.method in (P.EASYCACHE, P.LAZYCACHE):
            import nodes as comfy_nodes
            node = comfy_nodes.NODE_CLASS_MAPPINGS["EasyCache" if spec.method == P.EASYCACHE else "LazyCache"]
            out = node.execute(model=self.model, reuse_threshold=float(spec.threshold), start_percent=0.15,
                               end_percent=0.95, verbose=False)
            model = out.result[0]  # V3 node output (0.3.64 and 0.8.0)
            if spec.method == P.EASYCACHE:
                _fix_easycache_batching(model)
        else:
            model = self.model.clone()
        model.add_wrapper_with_key(self._pe.WrappersMP.PREDICT_NOISE, BENCH_INNER, self._inner)
        model.add_wrapper_with_key(self._pe.WrappersMP.DIFFUSION_MODEL, BENCH_COUNT, self._count)
        return model, setup

    def sigmas_for(self, sampler: str, scheduler: str, steps: int) -> torch.Tensor:
        """The sigma schedule ComfyUI's KSampler would use (before any sampler-specific trimming)."""
        return self._samplers.calculate_sigmas(self.model_sampling, scheduler, steps).cpu()

    def run(self, spec: P.RunSpec) -> RunResult:
        """Sample the whole seed batch once as `spec` says."""
        model, setup = self.patched_model(spec)
        self.current = RunStats()
        sigmas = torch.tensor(spec.sigmas, dtype=torch.float32) if spec.sigmas is not None else None
        rss_before = _status_kb("VmRSS")
        peak_ok = reset_peak_rss()
        start = time.perf_counter()
        with torch.no_grad():
            samples = self._sample.sample(model, self.noise, spec.steps, self.cfg, spec.sampler, spec.scheduler,
                                          self.positive, self.negative, self.latent, sigmas=sigmas,
                                          disable_pbar=True, seed=self.seed)
        wall = time.perf_counter() - start
        peak = _status_kb("VmHWM") if peak_ok else None
        st = self.current
        inner = [t for _, t in st.calls if t is not None]
        calls_ms = 1000 * sum(inner) / len(inner) if inner else None
        adaptive = setup is not None
        return RunResult(
            # counted at the diffusion model where it runs the DIFFUSION_MODEL wrappers (UNet, Flux, Wan, ...); SD3's
            # MMDiT does not in ComfyUI 0.3.64, so there the innermost PREDICT_NOISE calls are counted
            spec=spec, samples=samples.float().cpu().clone(),
            model_calls=st.rows / self.rows_per_call if st.forwards else float(st.inner_calls),
            forwards=st.forwards, sampler_calls=st.sampler_calls, wall=wall, walls=[wall],
            peak_rss_mb=(peak - rss_before) / 1024 if peak is not None and rss_before is not None else None,
            bookkeeping_us=1e6 * sum(st.bookkeeping) / len(st.bookkeeping) if st.bookkeeping else None,
            model_call_ms=calls_ms, controller_bytes=st.controller_bytes if adaptive else None,
            skip_path=setup.mailbox.last.to_dict() if adaptive and setup.mailbox.last is not None else None,
            calls=list(st.calls))


EASYCACHE_FIX_NOTE = ("EasyCache: ComfyUI 0.3.64's EasyCacheHolder.apply_cache_diff adds every cond's cached "
                      "difference to the whole batch (a shape error for batch > 1 under CFG, wrong values for batch 1); "
                      "upstream later slices the batch per cond. The benchmark runs the real node with that one method "
                      "replaced by the per-cond slicing, and says so here.")


def easycache_needs_fix() -> bool:
    """True when the host's EasyCacheHolder adds cached differences without slicing the batch per cond."""
    import inspect
    from comfy_extras import nodes_easycache
    return "batch_slice" not in inspect.getsource(nodes_easycache.EasyCacheHolder.apply_cache_diff)


def _fix_easycache_batching(model) -> None:
    """Swap the EasyCache holder on `model` (a clone the node returned) for one whose apply_cache_diff adds each
    cond's cached difference to that cond's rows only; everything else is the host's code."""
    holder = model.model_options["transformer_options"].get("easycache")
    if holder is None or not easycache_needs_fix():
        return
    base = type(holder)

    class BatchSlicedEasyCacheHolder(base):
        def apply_cache_diff(self, x, uuids):
            if self.first_cond_uuid in uuids:
                self.total_steps_skipped += 1
            rows = x.shape[0] // len(uuids)
            for i, uuid in enumerate(uuids):
                diff = self.uuid_cache_diffs[uuid].to(x.device)
                if diff.shape[1:] != x.shape[1:]:
                    raise ValueError(f"EasyCache cached shape {tuple(diff.shape)} does not match {tuple(x.shape)}")
                x[i * rows:(i + 1) * rows] += diff
            return x

        def clone(self):
            fresh = base.clone(self)
            fresh.__class__ = BatchSlicedEasyCacheHolder
            return fresh

    holder.__class__ = BatchSlicedEasyCacheHolder


def save_results(path: Path, results: dict[str, RunResult], oracle: dict[str, Any],
                 machine: dict[str, str] | None = None) -> None:
    """Cache finished runs, the oracle's found paths and the sampling session's machine description, so --resume
    can re-score without sampling again."""
    torch.save({"results": results, "oracle": oracle, "machine": machine or {}}, path)


def load_results(path: Path) -> tuple[dict[str, RunResult], dict[str, Any], dict[str, str]]:
    if not path.is_file():
        return {}, {}, {}
    data = torch.load(path, weights_only=False)
    return data.get("results", {}), data.get("oracle", {}), data.get("machine", {})


def karras_from(sigma_start: float, sigma_min: float, steps: int) -> tuple[float, ...]:
    """A Karras (ρ = 7) schedule of `steps` steps from sigma_start down to sigma_min, then 0."""
    from comfy.k_diffusion.sampling import get_sigmas_karras
    return tuple(float(s) for s in get_sigmas_karras(steps, sigma_min, sigma_start, rho=7.0))


def high_accuracy_spec(harness: Harness, section: P.Section, mode: P.Mode, steps: int | None = None,
                       sampler: str | None = None) -> P.RunSpec:
    """The high-accuracy reference of a section's problem.

    ODE samplers: dpmpp_2m with `steps` Karras steps from the section's own first σ (so ddim_uniform's lower start
    is respected) to the model's σ_min. SDE samplers: the same SDE sampler at `steps` Karras steps with the same
    seed; ComfyUI's Brownian-tree noise makes runs with the same σ range follow the same Brownian path.
    """
    if section.kind == "sde":
        steps = steps or mode.sde_high_steps
        return P.RunSpec(P.HIGH, sampler or section.sampler, "karras", steps,
                         label=f"{sampler or section.sampler} {steps} steps")
    steps = steps or mode.high_steps
    first = float(harness.sigmas_for(section.sampler, section.scheduler, mode.steps)[0])
    sigma_min = float(harness.model_sampling.sigma_min)
    solver = sampler or "dpmpp_2m"
    return P.RunSpec(P.HIGH, solver, "karras", steps, label=f"{solver} {steps} steps (karras from σ={first:.3g})",
                     sigmas=karras_from(first, sigma_min, steps))

