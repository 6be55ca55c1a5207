"""Study for the budget mode (issue 12): where to spend a fixed number of model calls, and when to resample.

    OMP_NUM_THREADS=1 python scripts/bench/budget_study.py --study gaps --samplers euler,dpmpp_2m

Runs ComfyUI's real samplers (comfy.sample.sample) on a bundled model, 16 seeds in one batch, with an experimental
controller (core/budget.py) hooked through a keyed PREDICT_NOISE wrapper, and prints PSNR against the same
sampler's full-step output and against a high-accuracy reference, next to (a) the same sampler with N = calls steps
and (b) the best of a few strong samplers with N = calls steps.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1]
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import comfy_env  # noqa: E402

KEY = "zz_budget_study"
PEERS = ("ipndm", "ipndm_v", "deis", "lms", "uni_pc", "dpmpp_2m", "res_multistep")


class Env:
    """The loaded model, inputs and helpers to run one configuration."""

    def __init__(self, model_name: str, seeds: int, cfg: float) -> None:
        root, _nodes, pack = comfy_env.boot_comfyui()
        import torch
        torch.set_num_threads(1)
        import comfy.patcher_extension as pe
        import comfy.sample
        import comfy.samplers
        self.torch, self.pe, self.sample, self.samplers = torch, pe, comfy.sample, comfy.samplers
        self.budget = importlib.import_module(f"{pack.__name__}.core.budget")
        self.steps_mod = importlib.import_module(f"{pack.__name__}.core.sampler_steps")
        self.metrics = importlib.import_module(f"{pack.__name__}.core.metrics")
        self.patch = importlib.import_module(f"{pack.__name__}.nodes.patch")
        self.config_mod = importlib.import_module(f"{pack.__name__}.core.config")
        from bench import models as M
        self.M = M
        self.cfg = cfg
        self.model_name = model_name
        if model_name == "digits":
            model, emb, _decode = M.load_digits_model("bundled")
            self.positive, self.negative, self.latent, self.noise, _ = M.digits_inputs(emb, seeds, 32)
        else:
            model, self.positive, self.negative, self.latent, self.noise = load_flow_model(model_name, seeds)
        self.model = model
        self.model_sampling = model.get_model_object("model_sampling")
        self.cache: dict = {}

    def sigmas(self, scheduler: str, steps: int):
        return self.samplers.calculate_sigmas(self.model_sampling, scheduler, steps).cpu()

    def run(self, sampler: str, scheduler: str, steps: int, controller=None, sigmas=None, key=None, pack_setup=None):
        """(samples, model calls). controller(sigmas, function_name, batch) -> object with decide/store/predict."""
        if key is not None and key in self.cache:
            return self.cache[key]
        torch = self.torch
        model = self.model.clone()
        state = {"calls": 0, "ctl": None, "step": -1, "left": 0, "decision": True}

        def outer(executor, *args, **kwargs):
            bound = dict(zip(("noise", "latent_image", "sampler", "sigmas"), args))
            bound.update(kwargs)
            sig = [float(s) for s in bound["sigmas"].flatten().tolist()]
            fn = getattr(getattr(bound["sampler"], "sampler_function", None), "__name__", "")
            state.update(sigmas=sig, fn=fn, per_step=self.steps_mod.calls_per_step(fn))
            return executor(*args, **kwargs)

        def predict(executor, *args, **kwargs):
            x, sigma = args[0], args[1]
            s = float(sigma.flatten()[0])
            if controller is None:
                state["calls"] += 1
                return executor(*args, **kwargs)
            if state["ctl"] is None:
                state["ctl"] = controller(state["sigmas"], state["fn"], x.shape[0])
            ctl = state["ctl"]
            if state["left"] > 0:
                state["left"] -= 1
            else:
                state["step"] += 1
                state["left"] = state["per_step"](state["step"], state["sigmas"]) - 1
                state["decision"] = ctl.decide(state["step"])
            if state["decision"]:
                out = executor(*args, **kwargs)
                state["calls"] += 1
                ctl.store(x, out, s)
                return out
            return ctl.predict(x, s)

        rows = {"n": 0}

        def count_call(executor, *args, **kwargs):
            rows["n"] += 1
            return executor(*args, **kwargs)

        if pack_setup is not None:
            model = self.patch.attach(model, pack_setup)
        else:
            model.add_wrapper_with_key(self.pe.WrappersMP.OUTER_SAMPLE, KEY, outer)
            model.add_wrapper_with_key(self.pe.WrappersMP.PREDICT_NOISE, KEY, predict)
        # counted at the innermost PREDICT_NOISE wrapper: one CFG evaluation that really reaches the model (the
        # DIFFUSION_MODEL wrapper is not reached by every model family on ComfyUI 0.3.64, e.g. SD3)
        model.add_wrapper_with_key(self.pe.WrappersMP.PREDICT_NOISE, KEY + "_count", count_call)
        sig = None if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float32)
        with torch.no_grad():
            out = self.sample.sample(model, self.noise, steps, self.cfg, sampler, scheduler, self.positive,
                                     self.negative, self.latent, sigmas=sig, disable_pbar=True, seed=0)
        calls = rows["n"]
        extra = state.get("ctl") if pack_setup is None else pack_setup.mailbox.last
        res = (out.float().cpu().clone(), calls, extra)
        if key is not None:
            self.cache[key] = res
        return res

    def db(self, x, ref) -> float:
        m = self.metrics
        return m.mean_db(m.psnr(m.frames_as_images(x), m.frames_as_images(ref)))


def load_flow_model(path: str, seeds: int):
    """The second bundled model (an MNIST flow MMDiT loaded as SD3) and its inputs: seed i draws digit i mod 10,
    the negative is the null row (10). `path` is the .safetensors file; its conditioning file sits beside it."""
    import comfy.sd
    import torch
    from safetensors.torch import load_file
    unet = Path(path)
    cond_path = unet.parent.parent / (unet.stem + "_cond.safetensors")
    if not unet.is_file() or not cond_path.is_file():
        raise SystemExit(f"flow model or its conditioning missing: {unet}, {cond_path}")
    model = comfy.sd.load_diffusion_model(str(unet))
    cond = load_file(str(cond_path))
    labels = torch.arange(seeds) % 10
    context, pooled = cond["context"].float(), cond["pooled"].float()
    positive = [[context[labels].clone(), {"pooled_output": pooled[labels].clone()}]]
    negative = [[context[10:11].clone(), {"pooled_output": pooled[10:11].clone()}]]
    latent = torch.zeros(seeds, 16, 8, 8)
    noise = torch.cat([torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(seeds)])
    return model, positive, negative, latent, noise


def costs_for(env: Env, fn: str, sigmas: list[float]) -> list[int]:
    per = env.steps_mod.calls_per_step(fn)
    return [per(i, sigmas) for i in range(len(sigmas) - 1)]


def make_budget_ctl(env: Env, budget: int, adapt: float = 1.0, warmup: int = 1, space: str | None = None,
                    abscissa: str = "log"):
    B = env.budget

    def factory(sigmas, fn, batch):
        costs = costs_for(env, fn, sigmas)
        sp = space or env.steps_mod.reuse_space(fn, "quadratic")
        return B.BudgetController(sigmas, costs, budget, warmup=warmup, space=sp, adapt=adapt, abscissa=abscissa)
    return factory


def make_stride_ctl(env: Env, stride: int, order: int, offset: int = 0, warmup: int = 4, space: str | None = None):
    """Fixed pattern: warm-up, then every stride-th step (shifted by offset); the extrapolation order given."""
    B = env.budget

    class Stride(B.BudgetController):
        def _decide(self, step):
            return not self._nodes or step < warmup or (step - warmup - offset) % stride == 0

    def factory(sigmas, fn, batch):
        costs = costs_for(env, fn, sigmas)
        sp = space or env.steps_mod.reuse_space(fn, "quadratic")
        return Stride(sigmas, costs, len(costs), warmup=warmup, space=sp, order=order)
    return factory


def resampled(env: Env, sampler: str, scheduler: str, steps: int, budget: int):
    """The sampler on its full schedule resampled in log σ to the steps `budget` calls pay for."""
    sig = env.sigmas(scheduler, steps)
    per = 2 if sampler in ("heun", "dpm_2", "dpmpp_sde") else 1
    n = env.budget.resampled_steps(budget, per)
    sigmas_mod = importlib.import_module(f"{env.budget.__name__.rsplit('.', 1)[0]}.sigmas")
    return env.run(sampler, scheduler, n, sigmas=sigmas_mod.resample_log_steps(sig, n))


def high_reference(env: Env, scheduler: str, sde_sampler: str | None, steps: int = 200):
    """ODE: dpmpp_2m at `steps` karras steps over the section's σ range; SDE: the SDE sampler at `steps` steps."""
    if sde_sampler is not None:
        key = ("high", sde_sampler, steps) if scheduler == "karras" else ("high", sde_sampler, scheduler, steps)
        return env.run(sde_sampler, scheduler, steps, key=key)[0]
    first = float(env.sigmas(scheduler, 50)[0])
    from comfy.k_diffusion.sampling import get_sigmas_karras
    sig = get_sigmas_karras(steps, float(env.model_sampling.sigma_min), first, rho=7.0)
    return env.run("dpmpp_2m", "karras", steps, sigmas=sig, key=("high", "ode", round(first, 4), steps))[0]


SDE = {"euler_ancestral", "dpmpp_2m_sde", "dpmpp_sde", "dpmpp_3m_sde", "euler_ancestral_cfg_pp"}


def fewer_steps(env: Env, sampler: str, scheduler: str, calls: int):
    """The same sampler with as many steps as fit in `calls` model calls (heun: 2 per step, 1 on the last)."""
    n = calls
    if sampler in ("heun", "dpm_2", "dpmpp_sde"):
        n = (calls + 1) // 2
    return env.run(sampler, scheduler, n, key=("plain", sampler, scheduler, n))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="digits")
    ap.add_argument("--samplers", default="euler,dpmpp_2m")
    ap.add_argument("--budgets", default="13,17,20,25")
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--study", default="rule")
    ap.add_argument("--scheduler", default="karras")
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--resampled", action="store_true", help="also the sampler on the resampled schedule")
    ap.add_argument("--peers", action="store_true", help="also (b): best of the peer samplers at N = calls")
    args = ap.parse_args(argv)
    env = Env(args.model, args.seeds, args.cfg)
    budgets = [int(b) for b in args.budgets.split(",")]
    t0 = time.perf_counter()
    for sampler in args.samplers.split(","):
        scheduler = "ddim_uniform" if sampler == "ddim" else args.scheduler
        full = env.run(sampler, scheduler, args.steps, key=("plain", sampler, scheduler, args.steps))[0]
        high = high_reference(env, scheduler, sampler if sampler in SDE else None)
        print(f"\n## {sampler}/{scheduler}: full vs high {env.db(full, high):.2f} dB")
        for b in budgets:
            a, a_calls, _ = fewer_steps(env, sampler, scheduler, b)
            line = [f"calls {b:2d}: (a) {env.db(a, full):6.2f}/{env.db(a, high):6.2f} [{a_calls}]"]
            if args.peers and sampler not in SDE:
                best = max((env.db(env.run(p, scheduler, b, key=("plain", p, scheduler, b))[0], high), p)
                           for p in PEERS)
                line.append(f"(b) {best[0]:6.2f} {best[1]}")
            print("  ".join(line))
            if args.study == "stride":
                if b != budgets[0]:
                    break
                for label, factory in variants(env, args.study, b, sampler):
                    out, calls, ctl = env.run(sampler, scheduler, args.steps, controller=factory)
                    a, a_calls, _ = fewer_steps(env, sampler, scheduler, calls)
                    print(f"    {label:34s} {env.db(out, full):6.2f}/{env.db(out, high):6.2f} [{calls}] "
                          f"last={'C' if ctl.computed[-1] else 'S'}  fewer {env.db(a, full):6.2f}", flush=True)
                break
            if args.resampled:
                out, calls, _ = resampled(env, sampler, scheduler, args.steps, b)
                print(f"    {'resampled schedule':34s} {env.db(out, full):6.2f}/{env.db(out, high):6.2f} [{calls}]")
            for label, factory in variants(env, args.study, b, sampler):
                out, calls, ctl = env.run(sampler, scheduler, args.steps, controller=factory)
                extra = ""
                if ctl is not None and getattr(ctl, "orders", None) is not None:
                    extra = f" orders={ctl.orders.float().mean():.2f}"
                print(f"    {label:34s} {env.db(out, full):6.2f}/{env.db(out, high):6.2f} [{calls}]{extra}",
                      flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


def variants(env: Env, study: str, b: int, sampler: str):
    if study == "rule":
        yield "budget (regular log σ, quadratic)", make_budget_ctl(env, b, adapt=1.0)
    elif study == "stride":
        for stride in (2, 3):
            for offset in range(stride):
                for order in (1, 2):
                    for space in ("eps",):
                        yield (f"stride {stride} off {offset} order {order} {space}",
                               make_stride_ctl(env, stride, order, offset, space=space))
    elif study == "warm":
        for w in (1, 2, 3, 4):
            yield f"budget warm-up {w}", make_budget_ctl(env, b, adapt=1.0, warmup=w)
    elif study == "axis":
        yield "budget log σ", make_budget_ctl(env, b)
        yield "budget σ", make_budget_ctl(env, b, abscissa="sigma")
    elif study == "adapt":
        yield "budget adapt 1 (regular log σ)", make_budget_ctl(env, b, adapt=1.0)
        yield "budget adapt 1.5", make_budget_ctl(env, b, adapt=1.5)
    else:
        raise SystemExit(f"unknown study {study}")


if __name__ == "__main__":
    raise SystemExit(main())
