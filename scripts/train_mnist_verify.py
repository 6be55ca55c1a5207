"""Check the bundled MNIST flow DiT end to end inside ComfyUI and write its figures (run by train_mnist_dit.py).

Stock UNETLoader + KSampler (euler, simple, 30 steps, cfg 3 by default), the pack's MNIST DiT conditioning and
decode nodes, EmptySD3LatentImage 64x64; the classifier trained on the held-out split labels the samples, and the
Fréchet distance of their classifier features to the 1,000 held-out digits is set next to the same distance for
as many real training digits (the floor a perfect sampler would reach at that sample count).

    python scripts/train_mnist_verify.py [--per-class 50] [--cfg 3] [--steps 30]

Writes docs/mnist_dit_samples.png (every class x 4 seeds), docs/mnist_dit_loss.png and
models/adaptive_skip_mnist_dit_verify.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pack_loader  # scripts/, next to this file
import torch
import train_mnist_classifier as clf_script
import train_mnist_dit as train
from train_common import import_comfy, save_grid

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(PACK_DIR, "models")
DOCS_DIR = os.path.join(PACK_DIR, "docs")


def save_loss_plot(history_path: str, out_path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(history_path) as f:
        hist = json.load(f)["history"]
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot([h["step"] for h in hist], [h["loss"] for h in hist])
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("flow-matching MSE (window mean)")
    ax.set_title("MNIST DiT training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)


def empty_latent(batch: int) -> dict:
    """What EmptySD3LatentImage 64x64 gives (comfy_extras/nodes_sd3.py): zeros (batch, 16, 8, 8)."""
    return {"samples": torch.zeros(batch, 16, 8, 8)}


@torch.no_grad()
def verify(cfg: float = 3.0, steps: int = 30, per_class: int = 50, sampler: str = "euler",
           scheduler: str = "simple") -> dict:
    import_comfy()
    import utils.extra_config  # noqa: F401  (main.py imports it before nodes)
    import nodes
    import folder_paths
    import comfy.latent_formats
    import comfy.model_base
    import comfy.model_sampling
    import comfy.supported_models
    import comfy.utils
    from safetensors.torch import load_file

    comfy.utils.set_progress_bar_enabled(False)

    core = pack_loader.core("mnist_features")
    frechet_distance = pack_loader.core("frechet").frechet_distance  # the pack's FID formula
    demo = pack_loader.bare_module("nodes.demo_model")
    flow = pack_loader.bare_module("nodes.flow_demo_model")
    demo.register_model_folder()
    listed = folder_paths.get_filename_list("diffusion_models")
    assert train.DIT_NAME in listed, f"{train.DIT_NAME} not listed by folder_paths: {listed}"

    start = time.time()
    model = nodes.UNETLoader().load_unet(train.DIT_NAME, "default")[0]
    base = model.model
    ms = base.model_sampling
    report = {"load_s": round(time.time() - start, 2), "model_config": type(base.model_config).__name__,
              "model_class": type(base).__name__, "model_type": base.model_type.name,
              "model_sampling": [c.__name__ for c in type(ms).__bases__],
              "shift": float(ms.shift), "multiplier": float(ms.multiplier),
              "latent_format": type(base.latent_format).__name__, "dtype": str(base.get_dtype()),
              "joint_blocks": len(base.diffusion_model.joint_blocks), "hidden": base.diffusion_model.hidden_size,
              "params": sum(p.numel() for p in base.diffusion_model.parameters()),
              "file_mib": round(os.path.getsize(os.path.join(train.DIT_DIR, train.DIT_NAME)) / 2**20, 2)}
    assert isinstance(base.model_config, comfy.supported_models.SD3), report
    assert base.model_type == comfy.model_base.ModelType.FLOW, report
    assert isinstance(ms, comfy.model_sampling.ModelSamplingDiscreteFlow), report
    assert isinstance(ms, comfy.model_sampling.CONST), report
    assert isinstance(base.latent_format, comfy.latent_formats.SD3), report

    # ComfyUI's denoised output equals the training module's (fed the shipped fp16 weights in fp32)?
    ref = train.build_dit().eval()
    ref.load_state_dict({k: v.float() for k, v in load_file(os.path.join(train.DIT_DIR, train.DIT_NAME)).items()})
    tables = load_file(os.path.join(MODELS_DIR, train.COND_NAME))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, 8, 8, generator=gen)
    sigma = torch.tensor([1.0, 0.7, 0.3, 0.02])
    rows = [3, 7, 10, 0]
    ctx, pooled = tables["context"][rows], tables["pooled"][rows]
    d_ref = x - sigma[:, None, None, None] * ref(x, sigma * 1000.0, context=ctx, y=pooled)
    d_comfy = base.apply_model(x, sigma, c_crossattn=ctx, y=pooled)
    report["max_abs_diff_vs_training_module"] = float((d_ref - d_comfy).abs().max())

    cond_node, decode_node = flow.AdaptiveSkipMnistDiTConditioning(), flow.AdaptiveSkipMnistDiTDecode()
    negative = cond_node.encode(flow.NULL_CHOICE)[0]
    classifier = core.load_mnist_classifier(os.path.join(MODELS_DIR, "mnist_classifier.safetensors"))
    per_class_acc, feats, grid = [], [], []
    start = time.time()
    for k in range(10):
        positive = cond_node.encode(str(k))[0]
        latent = empty_latent(per_class)
        out = nodes.KSampler().sample(model, 1000 + k, steps, cfg, sampler, scheduler, positive, negative, latent,
                                      denoise=1.0)[0]
        small = decode_node.decode(out, 1)[0]
        assert small.shape == (per_class, 28, 28, 3), small.shape
        digits = small[..., 0][:, None]
        per_class_acc.append(float((classifier(digits).argmax(1) == k).float().mean()))
        feats.append(core.mnist_features(classifier, digits))
    report["sampling_s"] = round(time.time() - start, 1)
    for k in range(10):  # the grid: every class x seeds 0-3, one sample per seed
        positive = cond_node.encode(str(k))[0]
        for seed in range(4):
            latent = empty_latent(1)
            out = nodes.KSampler().sample(model, seed, steps, cfg, sampler, scheduler, positive, negative, latent,
                                          denoise=1.0)[0]
            grid.append(decode_node.decode(out, 2)[0])
    report["accuracy_per_class"] = [round(a, 3) for a in per_class_acc]
    report["accuracy_mean"] = round(float(np.mean(per_class_acc)), 4)
    x_tr, _, x_ho, _ = clf_script.mnist_split()
    held_feats = core.mnist_features(classifier, torch.from_numpy(x_ho))
    n = 10 * per_class
    report["frechet_samples_vs_held_out"] = round(frechet_distance(torch.cat(feats), held_feats), 3)
    real = torch.from_numpy(x_tr[np.random.default_rng(0).permutation(len(x_tr))[:n]])
    report[f"frechet_{n}_real_train_vs_held_out"] = round(frechet_distance(core.mnist_features(classifier, real),
                                                                           held_feats), 3)
    os.makedirs(DOCS_DIR, exist_ok=True)
    save_grid(torch.cat(grid), 10, os.path.join(DOCS_DIR, "mnist_dit_samples.png"))
    history = os.path.join(MODELS_DIR, train.HISTORY_NAME)
    if os.path.isfile(history):
        save_loss_plot(history, os.path.join(DOCS_DIR, "mnist_dit_loss.png"))
    report["settings"] = (f"KSampler {sampler}/{scheduler}, {steps} steps, cfg {cfg}, EmptySD3LatentImage 64x64, "
                          f"{per_class} per class (seeds 1000+k); grid seeds 0-3")
    with open(os.path.join(MODELS_DIR, "adaptive_skip_mnist_dit_verify.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1), flush=True)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="simple")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    torch.set_num_threads(1)
    verify(cfg=args.cfg, steps=args.steps, per_class=args.per_class, sampler=args.sampler, scheduler=args.scheduler)
