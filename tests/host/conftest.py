"""Host tests run inside a real ComfyUI found by the pack's host rules; without one they are skipped loudly."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from types import SimpleNamespace

import comfy_env  # scripts/, on sys.path by tests/conftest.py
import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]
COMFY_ROOT = comfy_env.find_comfyui()
SKIP_REASON = ("HOST TESTS SKIPPED: " + comfy_env.HOW_TO_POINT) if COMFY_ROOT is None else ""


def pytest_collection_modifyitems(config, items):
    if COMFY_ROOT is not None:
        return
    marker = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(Path(__file__).parent):
            item.add_marker(marker)


def pytest_report_header(config):
    return SKIP_REASON or f"ComfyUI host: {COMFY_ROOT}"


def pytest_terminal_summary(terminalreporter):
    if SKIP_REASON:
        terminalreporter.write_sep("!", SKIP_REASON, red=True, bold=True)
        warnings.warn(SKIP_REASON)


@pytest.fixture(scope="session")
def host():
    """(root, nodes, pack, mappings): ComfyUI booted on the CPU with this pack loaded from custom_nodes."""
    root, nodes, pack = comfy_env.boot_comfyui()
    return SimpleNamespace(root=root, nodes=nodes, pack=pack, mappings=pack.NODE_CLASS_MAPPINGS)


@pytest.fixture(scope="session", autouse=True)
def private_libraries(host, tmp_path_factory):
    """The pack's user libraries (block plans, skip paths, schedules) point at temporary folders for the whole run,
    so no test writes into, or reads from, the host's models/ folder; the shipped schedules/ folder stays behind
    the temporary one. Tests that need a folder of their own still set one."""
    import folder_paths
    import pack_loader
    plans = pack_loader.pack_module("nodes.block_plan_files")
    paths = pack_loader.pack_module("nodes.skip_library")
    sched = pack_loader.pack_module("nodes.schedule_files")
    plans.register_plan_folder()
    paths.register_path_folder()
    sched.register_schedule_folder()
    private = {plans.FOLDER: [], paths.FOLDER: [], sched.FOLDER: [sched.SHIPPED_DIR]}
    saved = {name: folder_paths.folder_names_and_paths[name] for name in private}
    for name, behind in private.items():
        folder = str(tmp_path_factory.mktemp(name))
        folder_paths.folder_names_and_paths[name] = ([folder, *behind], saved[name][1])
    yield
    folder_paths.folder_names_and_paths.update(saved)


@pytest.fixture(scope="session")
def tiny_models(host):
    """The ``tiny_models`` module (random-weight ComfyUI models for plumbing), imported once ComfyUI is booted."""
    import sys

    path = Path(__file__).with_name("tiny_models.py")
    spec = importlib.util.spec_from_file_location("adaptive_skip_tiny_models", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_sd15(tiny_models):
    """A random-weight SD1.5-shaped UNet (detected as SD1.5 by ComfyUI), 4x4 latents: plumbing only."""
    return tiny_models.tiny_sd15(seed=0).model


@pytest.fixture(scope="session")
def tiny_conds():
    import torch
    g = torch.Generator().manual_seed(1)
    return [[torch.randn(1, 1, 768, generator=g), {}]], [[torch.zeros(1, 1, 768), {}]]


def pytest_configure(config):
    config.addinivalue_line("markers", "library(shipped): the module's schedule `library` fixture keeps the pack's "
                                       "shipped schedules/ folder behind its temporary one")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread while a module's tests run (`pytestmark = pytest.mark.usefixtures("one_thread")`): small
    batches on a shared 2-core machine are many times faster without OpenMP contention. Restored afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def library(host, request, tmp_path_factory):
    """The schedule library pointed at a temporary folder for a module's tests (yields the folder), and back
    afterwards. With `pytest.mark.library(shipped=True)` on the module the pack's shipped schedules/ folder stays
    behind it, so shipped records are found too."""
    import folder_paths
    import pack_loader
    sched = pack_loader.pack_module("nodes.schedule")
    sched.register_schedule_folder()
    saved = folder_paths.folder_names_and_paths[sched.FOLDER]
    folder = tmp_path_factory.mktemp("schedules")
    marker = request.node.get_closest_marker("library")
    shipped = [sched.SHIPPED_DIR] if marker is not None and marker.kwargs.get("shipped") else []
    folder_paths.folder_names_and_paths[sched.FOLDER] = ([str(folder), *shipped], {".json"})
    yield folder
    folder_paths.folder_names_and_paths[sched.FOLDER] = saved
