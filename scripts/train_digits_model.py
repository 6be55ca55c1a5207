"""Train the bundled class-conditional digits diffusion model (an SD1.5-shaped UNet ComfyUI loads as SD1.5).

Data: scikit-learn's ``load_digits`` (real 8x8 digits), the classifier's stratified 75/25 split (train part only).
Latent map (see ``core/digits_features.py``): pixels/16 in [0, 1] -> 2x2 space-to-depth (4 x 4 x 4) ->
z = (v - mean) / std -> LATENT samples = z / 0.18215. EmptyLatentImage 32x32 gives that 4x4 latent.
Objective: eps prediction in ComfyUI's SD1.5 parametrization (x = z + sigma*eps, input x / sqrt(sigma^2 + 1),
t = model_sampling.timestep(sigma), linear betas 0.00085..0.012, 1000 steps), EDM-style weight 1 + sigma^2
(Karras et al. 2022, sigma_data = 1) on the eps error. Context (B, 1, 768) = learned class embedding, index 10 is
the null embedding used with label dropout (classifier-free guidance, Ho & Salimans 2022).

    python scripts/train_digits_model.py              # train, save, then verify inside ComfyUI
    python scripts/train_digits_model.py --verify-only

Writes models/diffusion_models/adaptive_skip_digits.safetensors (fp16 UNet), models/adaptive_skip_digits_cond.safetensors
(class embeddings + latent constants) and, when verifying, models/samples.png.
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

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(PACK_DIR, "models")
UNET_NAME = "adaptive_skip_digits.safetensors"
UNET_DIR = os.path.join(MODELS_DIR, "diffusion_models")  # the only folder UNETLoader is pointed at
COND_NAME = "adaptive_skip_digits_cond.safetensors"
NUM_CLASSES = 10
NULL_INDEX = 10
CONTEXT_DIM = 768

# What comfy.model_detection.detect_unet_config reads back from the state dict (plus SD15.unet_extra_config).
UNET_CONFIG = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1], channel_mult=[1],
    transformer_depth=[1], transformer_depth_output=[0, 0], transformer_depth_middle=-2, context_dim=CONTEXT_DIM,
    use_linear_in_transformer=False, num_heads=8, num_head_channels=-1, use_spatial_transformer=True, legacy=False,
    adm_in_channels=None, use_temporal_attention=False, use_temporal_resblock=False, use_checkpoint=False,
)


def build_unet():
    """The training module: ComfyUI's own UNetModel with the SD1.5-detectable config, explicitly initialised."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**UNET_CONFIG, operations=comfy.ops.disable_weight_init)
    # comfy.ops layers skip torch's init: use torch's default init, norms to (1, 0), and zero the last layer of
    # every residual branch and the output conv (as the original openaimodel's zero_module did).
    for name, module in unet.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            torch.nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))  # torch's default for Linear/Conv
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                torch.nn.init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)
    for name, module in unet.named_modules():
        if name.endswith("out_layers.3") or name.endswith("proj_out") or name == "out.2":
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    return unet


def sample_sigmas(n: int, sigma_min: float, sigma_max: float, gen: torch.Generator) -> torch.Tensor:
    """log sigma ~ 0.7 N(-0.4, 1.4^2) + 0.3 U(log sigma_min, log sigma_max), clamped: covers the whole SD1.5 range."""
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    normal = torch.randn(n, generator=gen) * 1.4 - 0.4
    uniform = torch.rand(n, generator=gen) * (hi - lo) + lo
    pick = torch.rand(n, generator=gen) < 0.7
    return torch.where(pick, normal, uniform).clamp(lo, hi).exp()


def cfg_denoiser(unet, emb, ms, labels: torch.Tensor, cfg: float):
    """k-diffusion style D(x, sigma) with classifier-free guidance, same algebra as ComfyUI's EPS model."""
    cond = emb[labels][:, None]
    uncond = emb[torch.full_like(labels, NULL_INDEX)][:, None]

    def denoise(x, sigma, **_):
        s = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        xin = ms.calculate_input(s, x)
        t = ms.timestep(s).float()
        eps_c = unet(xin, t, context=cond).float()
        eps_u = unet(xin, t, context=uncond).float() if cfg != 1.0 else eps_c
        eps = eps_u + cfg * (eps_c - eps_u)
        return ms.calculate_denoised(s, eps, x)
    return denoise


@torch.no_grad()
def quick_eval(unet, emb, ms, classifier, core, mean, std, cfg=4.0, steps=50, per_class=16, seed=1):
    """Sample per_class digits of each class with euler/normal inside this process; classifier accuracy per class."""
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers

    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", steps)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(labels), 4, 4, 4, generator=gen) * sigmas[0]
    z = ks.sample_euler(cfg_denoiser(unet, emb, ms, labels, cfg), x, sigmas, disable=True)
    images = core.latent_to_digits(z / core.SD15_LATENT_SCALE, mean, std)
    pred = classifier(images).argmax(1)
    return [(pred[labels == k] == k).float().mean().item() for k in range(NUM_CLASSES)], images


def train(args) -> None:
    import comfy.model_base
    import comfy.supported_models
    from safetensors.torch import save_file

    core = pack_loader.core("digits_features")
    import train_digits_classifier as clf_script
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_tr, y_tr, _, _ = clf_script.digits_split()
    mean, std = float(x_tr.mean()), float(x_tr.std())
    z_all = core.digits_to_latent(torch.from_numpy(x_tr), mean, std) * core.SD15_LATENT_SCALE  # model space
    y_all = torch.from_numpy(y_tr)
    print(f"train images {len(z_all)}  pixel mean {mean:.4f} std {std:.4f}  z std {z_all.std():.3f}", flush=True)

    unet = build_unet()
    emb = torch.nn.Parameter(torch.randn(NUM_CLASSES + 1, CONTEXT_DIM, generator=gen))
    ms = comfy.model_base.model_sampling(comfy.supported_models.SD15(dict(UNET_CONFIG)), comfy.model_base.ModelType.EPS)
    sigma_min, sigma_max = float(ms.sigma_min), float(ms.sigma_max)
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"unet params {n_params}  sigma range {sigma_min:.4f}..{sigma_max:.3f}", flush=True)

    params = list(unet.parameters()) + [emb]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    warmup = min(200, args.steps // 10)
    lr_at = lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema = [p.detach().clone() for p in params]

    history, window, window_eps = [], [], []
    start = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, len(z_all), (args.batch,), generator=gen)
        z, labels = z_all[idx], y_all[idx].clone()
        labels[torch.rand(args.batch, generator=gen) < args.label_dropout] = NULL_INDEX
        sigma = sample_sigmas(args.batch, sigma_min, sigma_max, gen)
        noise = torch.randn(z.shape, generator=gen)
        x = z + sigma[:, None, None, None] * noise
        xin = ms.calculate_input(sigma, x)
        t = ms.timestep(sigma).float()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = unet(xin, t, context=emb[labels][:, None])
        err = (out.float() - noise).pow(2).mean(dim=(1, 2, 3))
        weight = 1.0 + sigma ** 2
        loss = (weight * err).mean() / weight.mean()
        optimiser_step(loss, opt, sched, params, ema, args.ema, step)
        window.append(loss.item())
        window_eps.append(err.mean().item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            rec = {"step": step + 1, "loss": float(np.mean(window)), "eps_mse": float(np.mean(window_eps)),
                   "lr": sched.get_last_lr()[0], "elapsed_s": round(time.time() - start, 1)}
            history.append(rec)
            print(json.dumps(rec), flush=True)
            window, window_eps = [], []
    wall = time.time() - start

    # Swap in the EMA weights and save.
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    unet.eval()
    os.makedirs(UNET_DIR, exist_ok=True)
    meta = {"dataset": "sklearn.datasets.load_digits, stratified 75/25 split (random_state=0), train part",
            "steps": str(args.steps), "batch": str(args.batch), "lr": str(args.lr), "ema": str(args.ema),
            "seed": str(args.seed), "threads": str(args.threads), "bf16_autocast": str(args.bf16),
            "wall_time_s": f"{wall:.0f}", "final_loss": f"{history[-1]['loss']:.4f}",
            "prediction": "eps (SD1.5 discrete linear 0.00085..0.012, 1000 steps)"}
    unet_sd = {k: v.detach().to(torch.float16).contiguous() for k, v in unet.state_dict().items()}
    save_file(unet_sd, os.path.join(UNET_DIR, UNET_NAME), metadata=meta)
    cond = {"class_embeddings": emb.detach().float().contiguous(),
            "latent_mean": torch.tensor([mean]), "latent_std": torch.tensor([std]),
            "latent_scale": torch.tensor([core.SD15_LATENT_SCALE])}
    save_file(cond, os.path.join(MODELS_DIR, COND_NAME), metadata={
        "class_embeddings": "rows 0-9: digit classes, row 10: null (negative / unconditional)",
        "latent_map": "pixels/16 -> pixel_unshuffle(2) -> (v - latent_mean) / latent_std / latent_scale"})
    with open(os.path.join("/tmp", "adaptive_skip_digits_history.json"), "w") as f:
        json.dump({"history": history, "wall_time_s": wall, "params": n_params}, f)
    print(f"saved {UNET_NAME} ({os.path.getsize(os.path.join(UNET_DIR, UNET_NAME)) / 2**20:.1f} MiB), "
          f"wall {wall:.0f} s", flush=True)

    classifier = core.load_digits_classifier(os.path.join(MODELS_DIR, "digits_classifier.safetensors"))
    # Evaluate with fp16-rounded weights, i.e. what ships.
    unet.load_state_dict({k: v.float() for k, v in unet_sd.items()})
    accs, _ = quick_eval(unet, emb.detach(), ms, classifier, core, mean, std)
    print("in-process euler/normal 50 steps cfg 4 accuracy per class:", [round(a, 3) for a in accs],
          f"mean {np.mean(accs):.3f}", flush=True)


def import_demo_nodes():
    """nodes/demo_model.py without running the pack's __init__ (which registers every node family)."""
    return pack_loader.bare_module("nodes.demo_model")


@torch.no_grad()
def verify(cfg: float = 4.0, steps: int = 50, batch: int = 16) -> dict:
    """End to end in ComfyUI: stock UNETLoader + KSampler (euler, normal), the pack's conditioning/decode nodes,
    the classifier on the results; checks detection and that ComfyUI's model equals the training module."""
    import utils.extra_config  # noqa: F401  (main.py imports it before nodes)
    import nodes
    import folder_paths
    import comfy.latent_formats
    import comfy.model_base
    import comfy.supported_models

    core = pack_loader.core("digits_features")
    import train_digits_classifier as clf_script
    demo = import_demo_nodes()
    demo.register_model_folder()
    listed = folder_paths.get_filename_list("diffusion_models")
    assert UNET_NAME in listed, f"{UNET_NAME} not listed by folder_paths: {listed}"

    start = time.time()
    model = nodes.UNETLoader().load_unet(UNET_NAME, "default")[0]
    base = model.model
    report = {"load_s": round(time.time() - start, 2), "model_config": type(base.model_config).__name__,
              "model_type": base.model_type.name, "latent_format": type(base.latent_format).__name__,
              "scale_factor": base.latent_format.scale_factor, "dtype": str(base.get_dtype()),
              "manual_cast": str(base.manual_cast_dtype), "sigma_min": float(base.model_sampling.sigma_min),
              "sigma_max": float(base.model_sampling.sigma_max)}
    assert isinstance(base.model_config, comfy.supported_models.SD15), report
    assert base.model_type == comfy.model_base.ModelType.EPS, report
    assert isinstance(base.latent_format, comfy.latent_formats.SD15), report

    # Same numbers as the training module (fed the shipped fp16 weights in fp32)?
    from safetensors.torch import load_file
    ref = build_unet().eval()
    ref.load_state_dict({k: v.float() for k, v in load_file(os.path.join(UNET_DIR, UNET_NAME)).items()})
    table = load_file(os.path.join(MODELS_DIR, COND_NAME))["class_embeddings"]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, 4, 4, generator=gen) * 2
    sigma = torch.tensor([14.0, 3.0, 0.5, 0.05])
    ctx = table[[3, 7, 10, 0]][:, None]
    ms = base.model_sampling
    d_ref = x - sigma[:, None, None, None] * ref(ms.calculate_input(sigma, x), ms.timestep(sigma).float(), context=ctx)
    d_comfy = base.apply_model(x, sigma, c_crossattn=ctx)
    report["max_abs_diff_vs_training_module"] = float((d_ref - d_comfy).abs().max())

    cond_node, decode_node = demo.AdaptiveSkipDigitsConditioning(), demo.AdaptiveSkipDigitsDecode()
    negative = cond_node.encode(demo.NULL_CHOICE)[0]
    classifier = core.load_digits_classifier(os.path.join(MODELS_DIR, "digits_classifier.safetensors"))
    per_class, grids, feats = [], [], []
    start = time.time()
    for k in range(NUM_CLASSES):
        latent = nodes.EmptyLatentImage().generate(32, 32, batch)[0]
        out = nodes.KSampler().sample(model, 1000 + k, steps, cfg, "euler", "normal", cond_node.encode(str(k))[0],
                                      negative, latent, denoise=1.0)[0]
        small = decode_node.decode(out, 1)[0]
        assert small.shape == (batch, 8, 8, 3), small.shape
        pred = classifier(core.to_digit_batch(small)).argmax(1)
        per_class.append(float((pred == k).float().mean()))
        feats.append(core.digit_features(classifier, small))
        grids.append(decode_node.decode(out, 4)[0])
    report["sampling_s"] = round(time.time() - start, 1)
    report["accuracy_per_class"] = [round(a, 3) for a in per_class]
    report["accuracy_mean"] = round(float(np.mean(per_class)), 4)
    _, _, x_te, _ = clf_script.digits_split()
    x_tr = clf_script.digits_split()[0]
    test_feats = core.digit_features(classifier, torch.from_numpy(x_te))
    report["feature_distance_samples_vs_test"] = round(core.feature_distance(torch.cat(feats), test_feats), 3)
    report["feature_distance_train_vs_test"] = round(
        core.feature_distance(core.digit_features(classifier, torch.from_numpy(x_tr)), test_feats), 3)
    save_grid(torch.cat(grids), NUM_CLASSES, os.path.join(MODELS_DIR, "samples.png"))
    report["settings"] = f"KSampler euler/normal, {steps} steps, cfg {cfg}, EmptyLatentImage 32x32 batch {batch}"
    print(json.dumps(report, indent=1), flush=True)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1400)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--label-dropout", type=float, default=0.12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 measured ~2x faster than 2 on a shared 2-core machine")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32 (slower)")
    parser.add_argument("--verify-only", action="store_true", help="skip training; verify the saved model in ComfyUI")
    parser.add_argument("--no-verify", action="store_true", help="skip the ComfyUI end-to-end check")
    parser.add_argument("--verify-cfg", type=float, default=4.0, help="CFG scale of the ComfyUI check")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    import_comfy()
    torch.set_num_threads(args.threads)
    if not args.verify_only:
        train(args)
    if not args.no_verify:
        verify(cfg=args.verify_cfg)
