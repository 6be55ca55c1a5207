"""What the schedule search knows about a MODEL: its sigma range and type (ModelInfo), and fingerprints of the model
and the conditioning for the schedule cache key."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import comfy.supported_models
import torch


@dataclass(frozen=True)
class ModelInfo:
    """What the schedule search needs to know about a MODEL."""

    sigma_min: float
    sigma_max: float
    model_type: str          # e.g. "SD15/EPS": the model config and prediction type, stored with schedules
    ays_family: str | None   # model_type of ComfyUI's AlignYourStepsScheduler (SD1, SDXL, SVD), or None


def model_info(model) -> ModelInfo:
    ms = model.get_model_object("model_sampling")
    config = model.model.model_config
    ays_family = None
    if isinstance(config, comfy.supported_models.SD15):
        ays_family = "SD1"
    elif isinstance(config, comfy.supported_models.SDXL):
        ays_family = "SDXL"
    elif isinstance(config, comfy.supported_models.SVD_img2vid):
        ays_family = "SVD"
    model_type = f"{type(config).__name__}/{getattr(model.model.model_type, 'name', model.model.model_type)}"
    return ModelInfo(float(ms.sigma_min), float(ms.sigma_max), model_type, ays_family)


def _digest(obj, h, depth: int = 0, sample: int = 0) -> None:
    """Feed a stable description of obj into hash h: tensors by shape, dtype and values (all of them, or `sample`
    evenly spaced ones when sample > 0), containers recursively, other objects by type name."""
    if depth > 6:
        h.update(b"<deep>")
    elif isinstance(obj, torch.Tensor):
        h.update(f"T{tuple(obj.shape)}{obj.dtype}".encode())
        try:
            flat = obj.detach().reshape(-1)
            if sample and flat.numel() > sample:
                flat = flat[::max(flat.numel() // sample, 1)][:sample]
            h.update(flat.float().cpu().numpy().tobytes())
        except (RuntimeError, TypeError, NotImplementedError):  # quantised or exotic tensor types: shape only
            h.update(b"<opaque>")
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            h.update(f"K{key}".encode())
            _digest(obj[key], h, depth + 1, sample)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for item in obj:
            _digest(item, h, depth + 1, sample)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(repr(obj).encode())
    elif callable(obj):
        h.update(getattr(obj, "__qualname__", type(obj).__qualname__).encode())
    else:
        h.update(type(obj).__qualname__.encode())
        state = getattr(obj, "__dict__", None)
        if isinstance(state, dict) and depth < 3:
            _digest({k: v for k, v in state.items() if not k.startswith("_")}, h, depth + 1, sample)


def model_identity(model) -> str:
    """A fingerprint of the model as it samples: architecture, a sample of every weight, weight patches (LoRA),
    the noise schedule, and the names of any model patches. Cheap: reads 64 values per tensor."""
    h = hashlib.sha256()
    inner = model.model
    h.update(model_info(model).model_type.encode())
    for name, tensor in list(inner.diffusion_model.state_dict(keep_vars=True).items()):
        h.update(name.encode())
        _digest(tensor, h, sample=64)
    for key in sorted(model.patches):
        h.update(key.encode())
        _digest(model.patches[key], h, sample=64)
    ms = model.get_model_object("model_sampling")
    _digest(getattr(ms, "sigmas", None), h, sample=256)
    h.update(f"{float(ms.sigma_min)}/{float(ms.sigma_max)}/{sorted(model.object_patches)}".encode())
    _digest(model.model_options, h, sample=64)
    _digest(getattr(model, "wrappers", None), h)  # e.g. a skip or cache patch changes what sampling returns
    return h.hexdigest()


def conditioning_digest(conditioning) -> str:
    h = hashlib.sha256()
    _digest(conditioning, h)
    return h.hexdigest()
