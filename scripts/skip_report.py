"""Issue-3 report: AdaptiveSkip at default settings on the bundled model vs the unpatched run and vs fewer steps.

    python scripts/skip_report.py [--seeds 16] [--repeats 3]

For euler, ddim and dpmpp_2m at 50 steps: model calls, wall-time ratio against the unpatched run (same process,
interleaved), PSNR/SSIM against the full-step output, and the same for plain sampling with as many steps as the
skip run made calls. Also the controller's bookkeeping time per step as a fraction of one model call.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_env  # noqa: E402

sys.path.remove(str(HERE))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args(argv)
    _, nodes, pack = comfy_env.boot_comfyui()
    import comfy.sample
    import comfy.sd
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)
    patch = pack.nodes.patch
    metrics = pack.core.metrics if hasattr(pack.core, "metrics") else __import__(pack.__name__ + ".core.metrics", fromlist=["x"])
    config_mod = __import__(pack.__name__ + ".core.config", fromlist=["x"])
    demo = pack.nodes.demo_model
    model = comfy.sd.load_diffusion_model(str(comfy_env.PACK_ROOT / "models" / "diffusion_models" / "adaptive_skip_digits.safetensors"))
    cond = demo.load_digits_cond()
    emb = cond[next(k for k in cond if cond[k].ndim == 2 and cond[k].shape[-1] == 768)]
    labels = torch.arange(args.seeds) % 10
    # one batch of seeds with per-sample class conditioning
    pos = [[emb[labels].unsqueeze(1), {}]]
    neg = [[emb[demo.NULL_INDEX].expand(args.seeds, 768).unsqueeze(1).contiguous(), {}]]
    latent = torch.zeros(args.seeds, 4, 4, 4)
    noise = comfy.sample.prepare_noise(latent, 0)

    def run(m, sampler, steps):
        start = time.perf_counter()
        out = comfy.sample.sample(m, noise, steps, 3.0, sampler, "karras", pos, neg, latent, seed=0, disable_pbar=True)
        return out, time.perf_counter() - start

    print(f"bundled model, {args.seeds} seeds in one batch, cfg 3, karras, {args.steps} steps, "
          f"default δ=0.01, C_max=4, warm-up 4, official rule, hold; {args.repeats} interleaved repeats")
    print("| sampler | model calls | wall ratio (skip/full) | PSNR vs full | SSIM vs full | fewer steps (N=calls): PSNR | SSIM |")
    print("|---|---|---|---|---|---|---|")
    for sampler in ("euler", "ddim", "dpmpp_2m"):
        setup = patch.SkipSetup(config=config_mod.SkipConfig())
        patched = patch.attach(model, setup)
        t_full, t_skip, t_few = [], [], []
        for _ in range(args.repeats):
            full, t = run(model, sampler, args.steps)
            t_full.append(t)
            skipped, t = run(patched, sampler, args.steps)
            t_skip.append(t)
            calls = setup.mailbox.last.model_calls
            few, t = run(model, sampler, calls)
            t_few.append(t)
        p = metrics.mean_db(metrics.psnr(skipped, full))
        s = float(metrics.ssim(skipped, full).mean())
        pf = metrics.mean_db(metrics.psnr(few, full))
        sf = float(metrics.ssim(few, full).mean())
        ratio = min(t_skip) / min(t_full)
        print(f"| {sampler} | {calls}/{args.steps} ({args.steps / calls:.2f}x calls) | {ratio:.3f} "
              f"(call ratio {calls / args.steps:.3f}) | {p:.2f} dB | {s:.4f} | {pf:.2f} dB | {sf:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
