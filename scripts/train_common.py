"""What the training scripts of both bundled models share: booting the ComfyUI host for a training run, the sample
grid PNG, the optimiser + EMA step of the diffusion trainers, and the small classifier trainer (shift augmentation,
AdamW + one-cycle lr, label smoothing).

The pack itself is imported through scripts/pack_loader.py (`core`, `bare_module`), never by path here.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F


def import_comfy() -> str:
    """Make the ComfyUI host importable (COMFYUI_PATH or ~/comfy/ComfyUI) in CPU mode; returns its path."""
    comfy_path = os.environ.get("COMFYUI_PATH", os.path.expanduser("~/comfy/ComfyUI"))
    if not os.path.isfile(os.path.join(comfy_path, "comfy", "model_detection.py")):
        raise SystemExit(f"ComfyUI not found at {comfy_path}; set COMFYUI_PATH")
    if comfy_path not in sys.path:
        sys.path.insert(0, comfy_path)
    if "--cpu" not in sys.argv:
        sys.argv.append("--cpu")
    import comfy.options
    comfy.options.enable_args_parsing()
    return comfy_path


def optimiser_step(loss: torch.Tensor, opt, sched, params: list[torch.Tensor], ema: list[torch.Tensor],
                   ema_decay: float, step: int) -> None:
    """One step of the diffusion trainers: backward, grad-norm clip 1, optimiser and lr step, then the EMA of the
    weights with warm-up (decay min(ema_decay, (1 + step) / (10 + step)))."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    decay = min(ema_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - decay)


def save_grid(images: torch.Tensor, rows: int, path: str, pad: int = 2) -> None:
    """images (rows*cols, H, W, 3) in [0, 1] -> one PNG grid, row-major, grey padding."""
    from PIL import Image

    n, h, w, _ = images.shape
    cols = n // rows
    grid = torch.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 0.35)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = images[i]
    Image.fromarray((grid.numpy() * 255).round().astype(np.uint8)).save(path)


def random_shift(x: torch.Tensor, gen: torch.Generator, pixels: int) -> torch.Tensor:
    """Shift each (B, 1, H, W) image by up to `pixels` in each axis (zero fill), a mild augmentation."""
    p, (h, w) = pixels, x.shape[-2:]
    padded = F.pad(x, (p, p, p, p))
    dy, dx = torch.randint(0, 2 * p + 1, (2, x.shape[0]), generator=gen)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(x.shape[0])])


def train_classifier(model: torch.nn.Module, x_fit: torch.Tensor, y_fit: torch.Tensor, x_eval: torch.Tensor,
                     y_eval: torch.Tensor, epochs: int, gen: torch.Generator, shift_pixels: int,
                     report: Callable[[int, float, float], None], batch: int = 64, lr: float = 3e-3) -> None:
    """Fit `model` in place: AdamW (weight decay 1e-4) with a one-cycle lr peaking at `lr`, ±`shift_pixels` random
    shifts, label smoothing 0.05. Every 10th and the last epoch, `report(epoch, mean train loss, eval accuracy)`."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = (len(x_fit) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_fit), generator=gen)
        total = 0.0
        for i in range(0, len(x_fit), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(random_shift(x_fit[idx], gen, shift_pixels)), y_fit[idx],
                                   label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch % 10 == 9 or epoch == epochs - 1:
            model.eval()
            with torch.no_grad():
                acc = (model(x_eval).argmax(1) == y_eval).float().mean().item()
            report(epoch + 1, total / len(x_fit), acc)
    model.eval()
