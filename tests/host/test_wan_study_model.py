"""The Wan-detected MNIST study model (scripts/train_mnist_wan.py) and the architecture studies' model parameter:
a file with the training module's keys is detected by ComfyUI as WAN21_T2V with the counted depth, ComfyUI's
denoised output is the training module's, the latent map round-trips through ComfyUI's Wan21 latent format, and
the study scripts' --model-file builds that model (not the bundled DiT). Tiny random weights: plumbing only."""
from __future__ import annotations

import sys

import pytest
import torch

LAYERS = 3  # a depth that no width implies: detection must count the blocks


@pytest.fixture(scope="module")
def wan_files(host, tmp_path_factory):
    """(model path, cond path, the training module) of a tiny random Wan study model with its class tables."""
    import train_mnist_wan as tw
    torch.manual_seed(0)
    module = build_tiny(tw)
    with torch.no_grad():  # the zero-initialised head would make every output zero
        module.head.head.weight.normal_(std=0.05)
    folder = tmp_path_factory.mktemp("wan_study")
    path, cond = folder / tw.WAN_NAME, folder / tw.COND_NAME
    table = torch.randn(tw.NUM_CLASSES + 1, tw.CONTEXT_TOKENS, 4096)
    tw.save_model(module, table, -0.8, 0.55, {"test": "1"}, str(path), str(cond))
    return path, cond, module


def build_tiny(tw):
    return tw.build_wan(num_layers=LAYERS, ffn_dim=64)


def test_detected_as_wan21_with_the_counted_depth_and_denoised_matches_training(wan_files):
    import comfy.sd
    import train_mnist_wan as tw
    from safetensors.torch import load_file
    path, cond, module = wan_files
    base = comfy.sd.load_diffusion_model(str(path)).model
    config = base.model_config.unet_config
    assert type(base.model_config).__name__ == "WAN21_T2V"
    assert (config["num_layers"], config["dim"], config["num_heads"], config["ffn_dim"]) == (LAYERS, 128, 1, 64)
    assert len(base.diffusion_model.blocks) == LAYERS
    assert float(base.model_sampling.shift) == tw.SHIFT
    assert float(base.model_sampling.sigma_min) == pytest.approx(tw.SIGMA_MIN, rel=1e-5)
    mine = build_tiny(tw)
    mine.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})  # the fp16 file's weights
    x = torch.randn(3, 16, 1, 8, 8)
    sigma = torch.tensor([1.0, 0.5, 0.02])
    ctx = load_file(str(cond))["context"][torch.tensor([1, 4, 10])]
    with torch.no_grad():
        theirs = base.apply_model(x, sigma, c_crossattn=ctx).float()
        ours = x - mine(x, sigma * 1000.0, ctx).float() * sigma[:, None, None, None, None]
    assert (ours - x).abs().max() > 1e-3  # the model does something
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)


def test_latent_map_round_trips_through_comfyui_wan21_format(host):
    import comfy.latent_formats
    import pack_loader
    wl = pack_loader.core("mnist_wan_latent")
    mf = pack_loader.core("mnist_features")
    fmt = comfy.latent_formats.Wan21()
    z = torch.randn(4, 16, 8, 8)
    latent = wl.z_to_wan_latent(z)
    assert latent.shape == (4, 16, 1, 8, 8)
    torch.testing.assert_close(fmt.process_in(latent)[:, :, 0], z, rtol=1e-5, atol=1e-5)  # the model sees z
    torch.testing.assert_close(fmt.process_out(z[:, :, None]), latent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wl.wan_latent_to_z(latent), z, rtol=1e-5, atol=1e-5)
    digits = torch.rand(4, 28, 28)
    sd3 = mf.mnist_to_latent(digits, -0.8, 0.55)
    wan = wl.z_to_wan_latent((sd3 - mf.SD3_SHIFT) * mf.SD3_SCALE)
    back = mf.latent_to_mnist(wl.wan_latent_to_sd3_latent(wan, mf.SD3_SCALE, mf.SD3_SHIFT), -0.8, 0.55)
    torch.testing.assert_close(back[:, 0], digits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="Wan latent"):
        wl.wan_latent_to_z(z)


def test_study_model_parameter_builds_the_wan_model(host, wan_files):
    import architecture_report as report
    path, cond, _ = wan_files
    study = report.load_study(report.PACK, "euler", 2.0, str(path), str(cond))
    assert study.info.identity == f"WAN21_T2V/WanModel/double_block x{LAYERS}"
    assert study.latent["samples"].shape == (1, 16, 1, 8, 8) and study.wan_latent is not None
    assert report.conditioning(study.table, [0, 10])[0][1] == {}  # context only: no pooled vector
    sigmas = torch.tensor([1.0, 0.6, 0.0])
    out = study.runner(sigmas, 2, 0).full()
    assert out.shape == (2, 16, 1, 8, 8)
    assert study.digits(out).shape == (2, 1, 28, 28)
    with pytest.raises(SystemExit, match="go together"):
        report.load_study(report.PACK, "euler", 2.0, str(path), "")
    default = sys.modules["architecture_report"].empty_latent(report.load_study(report.PACK, "euler", 2.0).model)
    assert default["samples"].shape == (1, 16, 8, 8)  # the bundled DiT stays the default
