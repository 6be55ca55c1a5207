"""Host tests run inside a real ComfyUI found by the pack's host rules; without one they are skipped loudly."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]


def _load_comfy_env():
    spec = importlib.util.spec_from_file_location("adaptive_skip_comfy_env", PACK_ROOT / "scripts" / "comfy_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


comfy_env = _load_comfy_env()
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


@pytest.fixture(scope="session")
def tiny_sd15(host):
    """A random-weight SD1.5-shaped UNet (detected as SD1.5 by ComfyUI), 4x4 latents: plumbing only."""
    import torch
    import comfy.ldm.modules.diffusionmodules.openaimodel as openaimodel
    import comfy.ops
    import comfy.sd

    torch.manual_seed(0)
    unet = openaimodel.UNetModel(
        image_size=None, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1], channel_mult=[1],
        num_heads=8, transformer_depth=[1], transformer_depth_output=[0, 0], transformer_depth_middle=-2,
        context_dim=768, use_spatial_transformer=True, use_linear_in_transformer=False, legacy=False,
        operations=comfy.ops.disable_weight_init)  # comfy.ops layers start uninitialised: set every weight
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.normal_(0, 0.02)
    return comfy.sd.load_diffusion_model_state_dict(unet.state_dict())


@pytest.fixture(scope="session")
def tiny_conds():
    import torch
    g = torch.Generator().manual_seed(1)
    return [[torch.randn(1, 1, 768, generator=g), {}]], [[torch.zeros(1, 1, 768), {}]]
