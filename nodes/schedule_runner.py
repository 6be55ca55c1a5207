"""Run many candidate schedules through a ComfyUI sampler at once (the lock-step runner).

Candidates share one sampling run: a KSAMPLER whose function starts the real sampler function once per candidate,
each in its own thread with its own schedule, and merges their model calls (same step of every candidate) into one
batched call with per-sample σ. The samplers' own code does all the arithmetic, so a candidate's result is what
SamplerCustom would give for it; only the model calls are shared. Calls that are identical for every candidate
(the first step, at the common σ_max) are made once.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers

logger = logging.getLogger(__name__)


class _Aborted(Exception):
    """Raised inside candidate threads when the batch they wait for is abandoned (Cancel or an error)."""


class _ModelProxy:
    """What a candidate's sampler function calls as its model: hands the call to the lock-step batcher."""

    def __init__(self, lockstep: _LockStep, index: int, model_k):
        self._lockstep, self._index, self._model_k = lockstep, index, model_k

    def __call__(self, x, sigma, **kwargs):
        return self._lockstep.request(self._index, x, sigma, kwargs)

    def __getattr__(self, name):  # samplers read e.g. model.inner_model.inner_model.model_sampling
        return getattr(self._model_k, name)


class _LockStep:
    """One thread per candidate; each model call waits until every live candidate has asked, then one batch runs."""

    def __init__(self, model_k, on_call: Callable[[int], None]):
        self.model_k, self.on_call = model_k, on_call
        self.cond = threading.Condition()
        self.pending: dict[int, tuple] = {}
        self.results: dict[int, object] = {}
        self.aborted = False

    def request(self, index, x, sigma, kwargs):
        with self.cond:
            if self.aborted:
                raise _Aborted()
            self.pending[index] = (x, sigma, kwargs)
            self.cond.notify_all()
            while index not in self.results:
                self.cond.wait()
            result = self.results.pop(index)
        if isinstance(result, BaseException):
            raise result
        return result

    def run(self, samplers: list, x: torch.Tensor, schedules: list[torch.Tensor],
            extra_args: dict) -> list[torch.Tensor]:
        """samplers[i] (a ComfyUI KSAMPLER) runs schedules[i]; their model calls are batched as they come."""
        n = len(schedules)
        outputs: list = [None] * n
        errors: list = [None] * n
        done = [False] * n
        grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

        def work(i):
            try:
                with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                    outputs[i] = samplers[i].sampler_function(
                        _ModelProxy(self, i, self.model_k), x.clone(), schedules[i], extra_args=dict(extra_args),
                        callback=None, disable=True, **samplers[i].extra_options)
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                errors[i] = err
            finally:
                with self.cond:
                    done[i] = True
                    self.cond.notify_all()

        threads = [threading.Thread(target=work, args=(i,), daemon=True, name=f"evo-candidate-{i}") for i in range(n)]
        for t in threads:
            t.start()
        try:
            while True:
                with self.cond:
                    while not all(done[i] or i in self.pending for i in range(n)):
                        self.cond.wait()
                    if all(done):
                        break
                    batch, self.pending = self.pending, {}
                answers = self._serve(batch)
                with self.cond:
                    self.results.update(answers)
                    self.cond.notify_all()
        except BaseException:
            with self.cond:  # release every candidate still waiting, including those of the batch in flight
                self.aborted = True
                for i in range(n):
                    if not done[i]:
                        self.results[i] = _Aborted()
                self.pending = {}
                self.cond.notify_all()
            for t in threads:
                t.join(timeout=30)
            raise
        for t in threads:
            t.join()
        for err in errors:
            if err is not None and not isinstance(err, _Aborted):
                raise err
        return outputs

    def _serve(self, batch: dict[int, tuple]) -> dict[int, object]:
        """One batched model call per group of compatible requests; identical requests are computed once."""
        groups: dict[tuple, list[int]] = {}
        for i, (_, _, kwargs) in batch.items():
            groups.setdefault(tuple(sorted((k, id(v)) for k, v in kwargs.items())), []).append(i)
        answers: dict[int, object] = {}
        for members in groups.values():
            unique: list[int] = []
            same_as: dict[int, int] = {}
            for i in members:
                x, sigma, _ = batch[i]
                for u in unique:
                    ux, us, _ = batch[u]
                    if ux.shape == x.shape and torch.equal(us, sigma) and torch.equal(ux, x):
                        same_as[i] = u
                        break
                else:
                    unique.append(i)
            self.on_call(sum(batch[u][0].shape[0] for u in unique))
            kwargs = batch[unique[0]][2]
            xs = torch.cat([batch[u][0] for u in unique])
            sigmas = torch.cat([batch[u][1].reshape(-1).expand(batch[u][0].shape[0]) for u in unique])
            out = self.model_k(xs, sigmas, **kwargs)
            parts = torch.split(out, [batch[u][0].shape[0] for u in unique])
            for u, part in zip(unique, parts):
                answers[u] = part
            for i, u in same_as.items():
                answers[i] = answers[u]
        return answers


class CandidateRunner:
    """Samples K seeds of one latent with a fixed model, conditioning, cfg and sampler, for many schedules.

    Seed i's noise is comfy.sample.prepare_noise(latent, seed + i): what KSampler gives for seed + i at batch 1
    (`seeds`, a list of K seeds, picks any seeds instead, e.g. stratified ones: core/seed_strata.py).
    Counts per-sample model calls in `calls` (an identical call shared by candidates counts once).
    """

    def __init__(self, model, positive, negative, cfg: float, sampler_name: str, latent: dict, num_seeds: int,
                 seed: int, candidates_per_call: int = 8, on_call: Callable[[int], None] | None = None,
                 seeds: Sequence[int] | None = None):
        self.model, self.cfg, self.sampler_name, self.seed = model, float(cfg), sampler_name, int(seed)
        self.positive, self.negative = positive, negative
        self.candidates_per_call = max(int(candidates_per_call), 1)
        self.on_call_hook = on_call
        self.calls = 0
        samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])[:1]
        self.latent = samples.repeat(num_seeds, *([1] * (samples.ndim - 1)))
        if seeds is None:
            seeds = [self.seed + i for i in range(num_seeds)]
        elif len(seeds) != num_seeds:
            raise ValueError(f"seeds lists {len(seeds)} seeds but num_seeds is {num_seeds}")
        self.noise = torch.cat([comfy.sample.prepare_noise(samples, int(s)) for s in seeds])

    def _on_call(self, rows: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        self.calls += rows
        if self.on_call_hook is not None:
            self.on_call_hook(rows)

    def _guider(self):
        guider = comfy.samplers.CFGGuider(self.model)
        guider.set_conds(self.positive, self.negative)
        guider.set_cfg(self.cfg)
        return guider

    def sample(self, sigmas, sampler_name: str | None = None) -> torch.Tensor:
        """One ordinary sampling run (e.g. the many-step reference) of all K seeds: (K, C, H, W) float32 on CPU."""
        sampler = comfy.samplers.sampler_object(sampler_name or self.sampler_name)
        inner = sampler.sampler_function

        def counted(model_k, x, sigmas, **kwargs):
            return inner(_Counted(model_k, self._on_call), x, sigmas, **kwargs)

        run = comfy.samplers.KSAMPLER(counted, sampler.extra_options, sampler.inpaint_options)
        sigmas = torch.as_tensor(sigmas, dtype=torch.float32).clone()
        out = self._guider().sample(self.noise, self.latent, run, sigmas, disable_pbar=True, seed=self.seed)
        return out.float().cpu()

    def run(self, schedules: Sequence) -> list[torch.Tensor]:
        """Sample every schedule for the K seeds; one (K, C, H, W) tensor each. A schedule is a σ list (run by the
        runner's sampler) or has `.sampler` and `.sigmas` (the joint search's SamplerSchedule: run by its own
        sampler; candidates of different samplers still share batched model calls)."""
        if not schedules:
            return []
        groups: dict[float, list[int]] = {}
        for i, s in enumerate(schedules):
            groups.setdefault(float(getattr(s, "sigmas", s)[0]), []).append(i)
        results: list = [None] * len(schedules)
        objects: dict[str, object] = {}
        for members in groups.values():
            tensors, samplers = [], []
            for i in members:
                name = getattr(schedules[i], "sampler", None) or self.sampler_name
                if name not in objects:
                    objects[name] = comfy.samplers.sampler_object(name)
                samplers.append(objects[name])
                tensors.append(torch.as_tensor(getattr(schedules[i], "sigmas", schedules[i]), dtype=torch.float32))
            for i, out in zip(members, self._run_group(tensors, samplers)):
                results[i] = out
        return results

    def _run_group(self, tensors: list[torch.Tensor], samplers: list) -> list[torch.Tensor]:
        k = self.noise.shape[0]
        chunk = self.candidates_per_call

        def many(model_k, x, sigmas, extra_args=None, callback=None, disable=None, **_):
            outs = []
            device = x.device
            for start in range(0, len(tensors), chunk):
                part = [t.to(device) for t in tensors[start:start + chunk]]
                outs.extend(_LockStep(model_k, self._on_call).run(samplers[start:start + chunk], x, part,
                                                                  extra_args or {}))
            return torch.cat(outs)

        run = comfy.samplers.KSAMPLER(many, {}, samplers[0].inpaint_options)
        out = self._guider().sample(self.noise, self.latent, run, tensors[0].clone(), disable_pbar=True,
                                    seed=self.seed).float().cpu()
        return list(torch.split(out, k))


class _Counted:
    """A model_k stand-in that counts calls (per sample) and checks for Cancel before each."""

    def __init__(self, model_k, on_call):
        self._model_k, self._on_call = model_k, on_call

    def __call__(self, x, sigma, **kwargs):
        self._on_call(x.shape[0])
        return self._model_k(x, sigma, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model_k, name)
