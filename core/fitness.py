"""Fitness of candidate schedules: how far each candidate's samples are from the many-step reference (lower wins).

A fitness owns its evaluation (`score`) and its cache identity (`identity`: name plus a digest of its parameters),
so a search run with one fitness is never served another fitness's saved result. To add one: a module with a
`Fitness` subclass decorated with `register` (FITNESSES is a core.registry.Registry of the classes), imported
below with the built-ins.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import torch

from .registry import Registry


class Fitness:
    """Base of every fitness. Subclasses set `name` and `label`, implement `score`, and list their parameters in
    `params` (everything that changes the scores: it goes into the cache key)."""

    name = ""
    help = ""   # one sentence for a tooltip
    label = ""  # how a record names the metric, e.g. "latent MSE"
    # True when `per_seed` gives each seed's error, so a SeedSet with per-seed weights (core/seed_strata.py) can be
    # scored; a distribution distance (Fréchet) scores the set as a whole and cannot weight its seeds.
    supports_seed_weights = False

    def params(self) -> dict:
        return {}

    @property
    def identity(self) -> str:
        """Name, plus a digest of the parameters when there are any: the fitness's part of the search cache key."""
        params = self.params()
        if not params:
            return self.name
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"{self.name}:{digest}"

    def score(self, outputs: Sequence[torch.Tensor], reference: torch.Tensor) -> list[float]:
        """One value per candidate: outputs[i] holds the candidate's K samples (K, C, H, W), reference the
        reference sampler's K samples of the same seeds."""
        raise NotImplementedError

    def per_seed(self, outputs: Sequence[torch.Tensor], reference: torch.Tensor) -> list[torch.Tensor]:
        """Each candidate's error per seed, (K,) float64 each; only where `supports_seed_weights`."""
        raise NotImplementedError(f"fitness {self.name} scores the seed set as a whole, not per seed")


class LatentMSE(Fitness):
    """Fidelity: mean squared difference to the many-step reference over all seeds and latent elements
    (AutoDiffusion's search signal without a feature network)."""

    name = "fidelity"
    help = "closeness to the many-step reference: mean squared latent difference over all seeds and elements"
    label = "latent MSE"
    supports_seed_weights = True

    def score(self, outputs: Sequence[torch.Tensor], reference: torch.Tensor) -> list[float]:
        return [float(((o.detach().float() - reference.detach().float()) ** 2).mean()) for o in outputs]

    def per_seed(self, outputs: Sequence[torch.Tensor], reference: torch.Tensor) -> list[torch.Tensor]:
        ref = reference.detach().float()
        return [((o.detach().float() - ref) ** 2).flatten(1).mean(1).double() for o in outputs]


DEFAULT_FITNESS = LatentMSE.name
# Names a fitness had before (saved search settings and node calls may hold them): read as today's name.
LEGACY_NAMES = {"latent_mse": LatentMSE.name}
FITNESSES: Registry[type[Fitness]] = Registry("fitness")


def register(cls: type[Fitness]) -> type[Fitness]:
    """Add a Fitness subclass to the registry under its name (usable as a class decorator)."""
    return FITNESSES.register(cls)


register(LatentMSE)


def make_fitness(name: str = DEFAULT_FITNESS, **params) -> Fitness:
    """The registered fitness `name` (or its old name) built with `params`; ValueError lists the known names."""
    return FITNESSES.get(LEGACY_NAMES.get(name, name))(**params)
