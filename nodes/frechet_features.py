"""Build the Fréchet fitness from node inputs: how candidates are decoded and which network gives the features.

- decode: the connected VAE, else the exact latent map of the bundled model that goes with the pack classifier
  (digits_classifier: the digits UNet's 2x2 map; mnist_classifier: the MNIST DiT's 4x4 map).
- features: CLIP_VISION's image_embeds (a stock CLIPVisionLoader model, e.g. one installed for IPAdapter/unCLIP),
  or the penultimate features of the pack's digits (64-d) or MNIST (128-d) classifier.
The real reference IMAGEs go through the same feature network (no decode).
"""
from __future__ import annotations

import hashlib
import importlib
import os

import torch
import torch.nn.functional as F

from ..core.fitness import DEFAULT_FITNESS, FITNESSES, Fitness, make_fitness
from ..core.frechet_fitness import FrechetFitness
from ..core.mixed_fitness import (
    MixedFitness,  # registers "mixed" after "frechet" (the dropdown's order)
)

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(PACK_DIR, "models")
FEATURE_CHOICES = ("mnist_classifier", "digits_classifier", "clip_vision")

# Inputs a search node appends after its own (stored in workflows: only ever add after these).
FRECHET_INPUTS = {
    "fitness": (list(FITNESSES.names()), {"default": DEFAULT_FITNESS, "tooltip": (
        "fidelity: closeness to the many-step reference (latent MSE; the default). frechet: Fréchet distance of the "
        "decoded samples' features to real reference_images (AutoDiffusion's FID signal). mixed: half each, the "
        "MSE over the reference's variance and the Fréchet distance over the reference's own.")}),
    "features": (list(FEATURE_CHOICES), {"tooltip": (
        "frechet only: the feature network. mnist_classifier / digits_classifier: the pack's classifiers for its "
        "bundled MNIST DiT / digits model (decoded by their exact latent maps when no VAE is connected); "
        "clip_vision: the connected CLIP_VISION model's image embeddings (needs the VAE).")}),
    "reference_images": ("IMAGE", {"tooltip": (
        "frechet only: real images the samples are compared with; more images than feature dimensions (64 digits, "
        "128 MNIST, 768+ CLIP) give a stable distance.")}),
    "vae": ("VAE", {"tooltip": "frechet only: decodes the samples (not needed for the bundled models)."}),
    "clip_vision": ("CLIP_VISION", {"tooltip": "frechet with clip_vision features: a CLIPVisionLoader model."}),
}


def _weights_digest(module) -> str:
    h = hashlib.sha256()
    for name, tensor in list(module.state_dict().items())[:8]:
        flat = tensor.detach().reshape(-1)
        h.update(name.encode() + flat[:: max(flat.numel() // 64, 1)][:64].float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def _digits_parts():
    from ..core import digits_features as df
    from .demo_model import load_digits_cond
    cond = load_digits_cond()
    classifier = df.load_digits_classifier(os.path.join(MODELS_DIR, "digits_classifier.safetensors"))
    mean, std = float(cond["latent_mean"]), float(cond["latent_std"])

    def decode(samples):
        return df.latent_to_digits(samples.float().cpu(), mean, std)  # (B, 1, 8, 8)

    def feats(images):  # (B, 1, h, w) or IMAGE (B, H, W, C)
        return df.digit_features(classifier, images)
    return decode, feats, "digits_classifier:" + _weights_digest(classifier)


def _mnist_parts():
    try:
        mf = importlib.import_module("..core.mnist_features", __package__)
    except ImportError as err:
        raise ValueError("features 'mnist_classifier' needs the bundled MNIST DiT's files (core/mnist_features.py); "
                         f"this install lacks them ({err})") from err
    from safetensors.torch import load_file
    cond = load_file(os.path.join(MODELS_DIR, "adaptive_skip_mnist_dit_cond.safetensors"))
    classifier = mf.load_mnist_classifier(os.path.join(MODELS_DIR, "mnist_classifier.safetensors"))
    mean, std = float(cond["latent_mean"]), float(cond["latent_std"])

    def decode(samples):
        return mf.latent_to_mnist(samples.float().cpu(), mean, std)  # (B, 1, 28, 28)

    def feats(images):
        x = torch.as_tensor(images).float()
        if x.ndim == 4 and x.shape[1] != 1:  # IMAGE (B, H, W, C) -> grey (B, 1, H, W)
            x = x[..., :3].mean(-1, keepdim=True).movedim(-1, 1)
        if tuple(x.shape[-2:]) != (28, 28):
            x = F.interpolate(x, size=(28, 28), mode="area")
        return mf.mnist_features(classifier, x.clamp(0, 1))
    return decode, feats, "mnist_classifier:" + _weights_digest(classifier)


def _clip_parts(clip_vision):
    if clip_vision is None:
        raise ValueError("features 'clip_vision' needs a CLIP_VISION input: load one with CLIPVisionLoader "
                         "(e.g. the model IPAdapter or unCLIP uses), or pick a pack classifier for the bundled models")

    def feats(images):  # IMAGE (B, H, W, C) in [0, 1]
        x = torch.as_tensor(images).float()
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x.expand(*x.shape[:-1], 3)
        return clip_vision.encode_image(x, crop=False)["image_embeds"].float().cpu()
    return None, feats, f"clip_vision:{type(clip_vision.model).__name__}:{_weights_digest(clip_vision.model)}"


def build_fitness(name: str, features: str, reference_images, vae=None, clip_vision=None) -> Fitness:
    """The Fitness a search node's inputs ask for: the Fréchet (or mixed) one built from its inputs, others by name."""
    if name in (FrechetFitness.name, MixedFitness.name):
        kind = MixedFitness if name == MixedFitness.name else FrechetFitness
        return build_frechet_fitness(features, reference_images, vae=vae, clip_vision=clip_vision, kind=kind)
    return make_fitness(name)


def build_frechet_fitness(features: str, reference_images, vae=None, clip_vision=None,
                          kind: type[FrechetFitness] = FrechetFitness) -> FrechetFitness:
    """The Fréchet fitness (or `kind`, e.g. MixedFitness) for these node inputs; ValueError naming the missing
    input otherwise."""
    if features not in FEATURE_CHOICES:
        raise ValueError(f"features {features!r} is not one of {FEATURE_CHOICES}")
    if reference_images is None:
        raise ValueError(f"fitness '{kind.name}' needs reference_images: a batch of real IMAGEs (LoadImage + "
                         "ImageBatch, or a folder loader) to compare the samples with")
    if features == "clip_vision":
        pack_decode, feats, name = _clip_parts(clip_vision)
    elif features == "digits_classifier":
        pack_decode, feats, name = _digits_parts()
    else:
        pack_decode, feats, name = _mnist_parts()
    if vae is not None:
        def decode(samples):
            return vae.decode(samples).float().cpu()  # IMAGE (B, H, W, C)
        name += f"|vae:{type(vae.first_stage_model).__name__}:{_weights_digest(vae.first_stage_model)}"
    elif pack_decode is not None:
        decode = pack_decode
        name += "|bundled latent map"
    else:
        raise ValueError(f"fitness '{kind.name}' with clip_vision features needs the VAE input to decode the samples")

    real = feats(reference_images)
    return kind(features=lambda samples: feats(decode(samples)), real_features=real, feature_name=name)
