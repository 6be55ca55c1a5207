"""SaveSkipPath / LoadSkipPath: keep skip paths found once (oracle, evolutionary search) and replay them later."""
from __future__ import annotations

import hashlib
import os
import re

import folder_paths

from ..core.skip_path import SkipPath

FOLDER = "adaptive_skip_paths"
CATEGORY = "sampling/adaptive_skip"


def register_path_folder() -> None:
    """models/adaptive_skip_paths (created on first save) as a folder_paths folder of .json files."""
    user = os.path.join(folder_paths.models_dir, FOLDER)
    paths = folder_paths.folder_names_and_paths.get(FOLDER, ([], set()))[0]
    if user not in paths:
        paths = [user, *paths]
    folder_paths.folder_names_and_paths[FOLDER] = (paths, {".json"})


def saved_paths() -> list[str]:
    return folder_paths.get_filename_list(FOLDER) if FOLDER in folder_paths.folder_names_and_paths else []


def file_fingerprint(path: str | None) -> str:
    """sha256 of a file's bytes ("missing" when it cannot be read): what ComfyUI's cache compares for loaders."""
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except (OSError, TypeError):
        return "missing"


class SaveSkipPath:
    """Write a SKIP_PATH as JSON into models/adaptive_skip_paths."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "skip_path": ("SKIP_PATH", {"tooltip": "The path to keep (e.g. from SkipPathOracle)."}),
            "name": ("STRING", {"default": "my_skip_path",
                                "tooltip": "File name (letters, digits, - and _); an existing file is replaced."}),
        }}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("file",)
    OUTPUT_TOOLTIPS = ("The file written.",)
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["skip path", "save path"]
    DESCRIPTION = ("Save a SKIP_PATH as JSON in models/adaptive_skip_paths, to replay later through LoadSkipPath "
                   "and AdaptiveSkip's forced_path.")

    def save(self, skip_path, name):
        if not isinstance(skip_path, SkipPath) or not skip_path.steps:
            raise ValueError("skip_path must be the SKIP_PATH of a finished run")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name or ""):
            raise ValueError(f"name must be 1-80 letters, digits, '-' or '_'; got {name!r}")
        folder = folder_paths.get_folder_paths(FOLDER)[0]  # the user's folder, first in the registered list
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, name + ".json")
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(skip_path.to_json())
        return {"ui": {"text": [f"saved {target}"]}, "result": (target,)}


class LoadSkipPath:
    """A saved SKIP_PATH, for AdaptiveSkip's forced_path input or the visualizer."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": (saved_paths(), {"tooltip": "A path saved by SaveSkipPath."})}}

    RETURN_TYPES = ("SKIP_PATH", "STRING")
    RETURN_NAMES = ("skip_path", "summary")
    OUTPUT_TOOLTIPS = ("The saved path; replay it on a run with the same steps.", "Its one-line summary.")
    FUNCTION = "load"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["skip path", "load path", "replay"]
    DESCRIPTION = ("Load a SKIP_PATH saved by SaveSkipPath, for AdaptiveSkip's forced_path input (replay on a run "
                   "with the same steps) or the visualizer.")

    @classmethod
    def IS_CHANGED(cls, name):
        """The file's content hash: a path overwritten by SaveSkipPath is read again, not served from the cache."""
        return file_fingerprint(folder_paths.get_full_path(FOLDER, name))

    def load(self, name):
        full = folder_paths.get_full_path(FOLDER, name)
        if full is None or not os.path.isfile(full):
            raise ValueError(f"skip path {name!r} was not found in {', '.join(folder_paths.get_folder_paths(FOLDER))}")
        try:
            with open(full, encoding="utf-8") as handle:
                path = SkipPath.from_json(handle.read())
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"skip path file {full} cannot be read ({err}); save it again with SaveSkipPath") from None
        return (path, path.summary())


NODE_CLASS_MAPPINGS = {"SaveSkipPath": SaveSkipPath, "LoadSkipPath": LoadSkipPath}
NODE_DISPLAY_NAME_MAPPINGS = {"SaveSkipPath": "Save Skip Path (AdaptiveSkip)",
                              "LoadSkipPath": "Load Skip Path (AdaptiveSkip)"}
