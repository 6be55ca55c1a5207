"""A registry of named strategies (criteria, reuse modes): the name is the dropdown value users' workflows store.

Built-ins register first, in the order the dropdown shows them; `discover` then imports every other module of the
strategy's folder, so a new strategy is one file that calls `register`.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects with a `name` and a one-sentence `help`, looked up by name; `input_name` words the errors."""

    def __init__(self, input_name: str) -> None:
        self.input_name = input_name
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        name = getattr(item, "name", "")
        if not name or name in self._items:
            raise ValueError(f"{self.input_name} name {name!r} is empty or already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The object registered as `name`; ValueError lists the known ones."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise ValueError(f"{self.input_name} must be one of {', '.join(self._items)}; got {name!r}") from None

    def names(self) -> tuple[str, ...]:
        """Registered names in dropdown order (built-ins first)."""
        return tuple(self._items)

    def values(self) -> Iterable[T]:
        return self._items.values()

    def tooltip(self) -> str:
        """One sentence per registered object: "name: help"."""
        return " ".join(f"{item.name}: {item.help}" for item in self._items.values())

    def discover(self, package: str, path: Iterable[str], builtin: Iterable[str]) -> None:
        """Import the package's modules that are not built-ins (already imported) or private, by name order."""
        skip = set(builtin)
        for module in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            if module.name not in skip and not module.name.startswith("_"):
                importlib.import_module(f"{package}.{module.name}")
