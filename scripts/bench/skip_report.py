"""The skip report (benchmark mode --skip-report): AdaptiveSkip at default settings on the bundled model vs the
unpatched run and vs fewer steps.

    python scripts/benchmark.py --skip-report [--seeds 16] [--repeats 3]

For euler, ddim and dpmpp_2m at 50 steps: model calls, wall-time ratio against the unpatched run (same process,
interleaved), PSNR/SSIM against the full-step output, and the same for plain sampling with as many steps as the
skip run made calls.
"""
from __future__ import annotations

import time

import torch
from pack_loader import pack_module

from .models import UNET_PATH


def skip_report(seeds: int = 16, repeats: int = 3, steps: int = 50) -> None:
    """Print the README's "published rule" table (ComfyUI must be booted)."""
    import comfy.sample
    import comfy.sd
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)
    patch, metrics, config_mod = pack_module("nodes.patch"), pack_module("core.metrics"), pack_module("core.config")
    demo = pack_module("nodes.demo_model")
    model = comfy.sd.load_diffusion_model(str(UNET_PATH))
    emb = demo.load_digits_cond()["class_embeddings"]
    # one batch of seeds with per-sample class conditioning
    pos = demo.digits_conditioning(emb, torch.arange(seeds) % 10)
    neg = demo.digits_conditioning(emb, [demo.NULL_INDEX] * seeds)
    latent = torch.zeros(seeds, 4, 4, 4)
    noise = comfy.sample.prepare_noise(latent, 0)

    def run(m, sampler, n):
        start = time.perf_counter()
        out = comfy.sample.sample(m, noise, n, 3.0, sampler, "karras", pos, neg, latent, seed=0,
                                  disable_pbar=True)
        return out, time.perf_counter() - start

    print(f"bundled model, {seeds} seeds in one batch, cfg 3, karras, {steps} steps, "
          f"default δ=0.01, C_max=4, warm-up 4, official rule, hold; {repeats} interleaved repeats")
    print("| sampler | model calls | wall ratio (skip/full) | PSNR vs full | SSIM vs full "
          "| fewer steps (N=calls): PSNR | SSIM |")
    print("|---|---|---|---|---|---|---|")
    for sampler in ("euler", "ddim", "dpmpp_2m"):
        setup = patch.SkipSetup(config=config_mod.SkipConfig())
        patched = patch.attach(model, setup)
        t_full, t_skip, t_few = [], [], []
        for _ in range(repeats):
            full, t = run(model, sampler, steps)
            t_full.append(t)
            skipped, t = run(patched, sampler, steps)
            t_skip.append(t)
            calls = setup.mailbox.last.model_calls
            few, t = run(model, sampler, calls)
            t_few.append(t)
        p = metrics.mean_db(metrics.psnr(skipped, full))
        s = float(metrics.ssim(skipped, full).mean())
        pf = metrics.mean_db(metrics.psnr(few, full))
        sf = float(metrics.ssim(few, full).mean())
        ratio = min(t_skip) / min(t_full)
        print(f"| {sampler} | {calls}/{steps} ({steps / calls:.2f}x calls) | {ratio:.3f} "
              f"(call ratio {calls / steps:.3f}) | {p:.2f} dB | {s:.4f} | {pf:.2f} dB | {sf:.4f} |")
