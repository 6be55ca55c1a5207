"""What an SD3-detected MMDiT with more joint blocks would cost: the model card's "why 4 blocks, not 8", measured.

ComfyUI's SD3 detection (comfy/model_detection.py) reads only `depth = x_embedder.proj.weight.shape[0] // 64`, and
its MMDiT (comfy/ldm/modules/diffusionmodules/mmdit.py) builds `depth` joint blocks of hidden size 64·depth with
`depth` heads. This script builds the bundled model's config (scripts/train_mnist_dit.py DIT_CONFIG) at several
depths with ComfyUI's own class, loads each state dict through ComfyUI's detection (the stock UNETLoader's path),
and prints what ComfyUI built: joint blocks, hidden size, heads, parameters, fp16 megabytes, and the time of one
training step (forward + backward, batch 8, one thread). Last, an 8-block model at the shipped width 256: what
ComfyUI makes of it (it detects depth 4 from the width).

    python scripts/mnist_dit_depth_check.py
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_mnist_dit as T  # the shipped model's config (scripts/ is on sys.path above)
from train_common import import_comfy


def random_weights(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded N(0, 0.02²) values for the float entries of `module`'s state dict (norm scales 1)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in module.state_dict().items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif value.ndim == 1 and key.endswith("weight"):
            out[key] = torch.ones(value.shape)
        else:
            out[key] = torch.randn(value.shape, generator=gen) * 0.02
    return out


def built_by_comfyui(depth: int, num_blocks: int | None = None) -> tuple[dict, dict]:
    """(the state dict written, what ComfyUI's detection built from it: blocks, hidden, heads, params, ...)."""
    import comfy.ops
    import comfy.sd
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper
    hidden = 64 * depth
    config = dict(T.DIT_CONFIG, depth=depth,
                  context_embedder_config={"target": "torch.nn.Linear",
                                           "params": {"in_features": T.CONTEXT_DIM, "out_features": hidden}})
    if num_blocks is not None:
        config["num_blocks"] = num_blocks
    sd = random_weights(OpenAISignatureMMDITWrapper(**config, operations=comfy.ops.disable_weight_init))
    patcher = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": torch.float32})
    dit = patcher.model.diffusion_model
    loaded = dit.state_dict()
    return sd, {"family": type(patcher.model.model_config).__name__, "blocks": len(dit.joint_blocks),
                "hidden": dit.hidden_size, "heads": dit.num_heads,
                "params": sum(p.numel() for p in dit.parameters()),
                "unused_keys": sorted(set(sd) - set(loaded)), "dit": dit}


def step_seconds(dit, batch: int = 8, repeats: int = 2) -> float:
    """Seconds of one forward + backward pass on a (batch, 16, 8, 8) latent with 2 context tokens."""
    dit = dit.float().train()
    x = torch.randn(batch, 16, 8, 8)
    t = torch.rand(batch) * 1000
    ctx = torch.randn(batch, T.CONTEXT_TOKENS, T.CONTEXT_DIM)
    y = torch.randn(batch, T.POOLED_DIM)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dit(x, t, context=ctx, y=y).square().mean().backward()
        best = min(best, time.perf_counter() - start)
        dit.zero_grad(set_to_none=True)
    return best


def main() -> None:
    import_comfy()
    torch.set_num_threads(1)
    print("| joint blocks asked | x_embedder width | ComfyUI detects | blocks built | hidden | heads | parameters "
          "| fp16 MB (10^6 B) | train step s (batch 8) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for depth in (4, 5, 6, 8):
        _, got = built_by_comfyui(depth)
        seconds = step_seconds(got["dit"])
        print(f"| {depth} | {64 * depth} | {got['family']} | {got['blocks']} | {got['hidden']} | {got['heads']} | "
              f"{got['params']:,} | {2 * got['params'] / 1e6:.1f} | {seconds:.2f} |", flush=True)
    try:
        sd, got = built_by_comfyui(4, num_blocks=8)
    except RuntimeError as err:  # what the stock UNETLoader would raise on such a file
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err)[:200])
        print("\n8 joint blocks at width 256: ComfyUI detects depth 4, builds 4 blocks (block 3 the pre-only last "
              f"one) and refuses the file: {first}")
        return
    blocks_written = len({k.split(".")[1] for k in sd if k.startswith("joint_blocks.")})
    print(f"\n8 joint blocks at width 256: the file holds {blocks_written} blocks; ComfyUI detects "
          f"{got['family']} with {got['blocks']} blocks (hidden {got['hidden']}); {len(got['unused_keys'])} keys "
          "are not used.")

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    sys.argv = sys.argv[:1]
    main()
