"""The block-plan library: models/adaptive_skip_block_plans, registered with folder_paths; plans are saved there as
the JSON text they are shared as, and EvoArchitectureSearch finds its saved record there by cache key."""
from __future__ import annotations

import logging
import os

import folder_paths

from ..core.block_plan import BlockPlan, BlockPlanError

logger = logging.getLogger(__name__)

FOLDER = "adaptive_skip_block_plans"
EXTENSION = ".json"


def register_plan_folder() -> None:
    user = os.path.join(folder_paths.models_dir, FOLDER)
    if FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[FOLDER] = ([user], {EXTENSION})


def library_files() -> list[str]:
    register_plan_folder()
    return sorted(folder_paths.get_filename_list(FOLDER))


def save_plan(plan: BlockPlan, name: str) -> str:
    """Write the plan's text to the user's plan folder; returns the file path."""
    register_plan_folder()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip()) or "block_plan"
    folder = folder_paths.get_folder_paths(FOLDER)[0]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, safe if safe.endswith(EXTENSION) else safe + EXTENSION)
    with open(path, "w", encoding="utf-8") as f:
        f.write(plan.to_text())
    logger.info("AdaptiveSkip: saved %s to %s", plan.summary(), path)
    return path


def find_cached(key: str) -> tuple[str, BlockPlan] | None:
    """The saved plan whose search had exactly this cache key (EvoArchitectureSearch's record), if any."""
    for filename in library_files():
        path = folder_paths.get_full_path(FOLDER, filename)
        if path is None:  # listed from folder_paths' filename cache, but gone since (or its folder was swapped)
            continue
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if key not in text:
                continue
            plan = BlockPlan.from_text(text)
        except (OSError, BlockPlanError) as err:
            logger.warning("AdaptiveSkip: skipping unreadable block plan %s: %s", path, err)
            continue
        if plan.cache_key == key:
            return filename, plan
    return None


def load_plan_file(name: str) -> BlockPlan:
    register_plan_folder()
    path = folder_paths.get_full_path(FOLDER, name)
    if path is None:
        raise BlockPlanError(f"block plan {name!r} is not in the plan library ({folder_paths.get_folder_paths(FOLDER)}"
                             "); pick one from the list, paste a plan's text, or save one with SaveBlockPlan")
    with open(path, encoding="utf-8") as f:
        return BlockPlan.from_text(f.read())
