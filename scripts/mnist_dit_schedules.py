"""Search sampling schedules on the bundled MNIST flow DiT with the pack's own EvoTimestepSchedule node, unchanged,
and ship the results in schedules/mnist_dit/ (mnist_dit_<sampler>_<N>steps.json) for the benchmark and for users.

    python scripts/mnist_dit_schedules.py [--runs euler:5 dpmpp_2m:5]

Same search settings as the shipped digits workflow searches (8 fitness seeds, budget 2500, population 16, 25
generations, 200-step reference, 8 validation seeds), at the DiT's cfg 3 with digit 3 as the prompt. The node saves
into a temporary library folder (never ComfyUI's models folder); the file is then copied into schedules/mnist_dit/.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_env  # noqa: E402

sys.path.remove(str(HERE))

MODEL = "adaptive_skip_mnist_dit.safetensors"
SEARCH = {"cfg": 3.0, "num_seeds": 8, "budget": 2500, "seed": 0, "population": 16, "top_k": 4, "mutation_prob": 0.3,
          "generations": 25, "reference_steps": 200, "reference_sampler": "auto", "validation_seeds": 8,
          "candidates_per_call": 8}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=["euler:5", "dpmpp_2m:5"], help="sampler:N pairs to search")
    parser.add_argument("--digit", default="3")
    args = parser.parse_args(argv)
    _, nodes, pack = comfy_env.boot_comfyui()
    import folder_paths
    import torch

    torch.set_num_threads(1)
    mappings = pack.NODE_CLASS_MAPPINGS
    folder = Path(tempfile.mkdtemp(prefix="adaptive_skip_dit_schedules_"))
    shipped = comfy_env.PACK_ROOT / "schedules" / "mnist_dit"  # not schedules/ itself: those load on the digits model
    folder_paths.folder_names_and_paths["adaptive_skip_schedules"] = ([str(folder), str(shipped)], {".json"})
    model = nodes.UNETLoader().load_unet(MODEL, "default")[0]
    cond = mappings["AdaptiveSkipMnistDiTConditioning"]()
    positive, negative = cond.encode(args.digit)[0], cond.encode("none")[0]
    latent = {"samples": torch.zeros(8, 16, 8, 8)}  # EmptySD3LatentImage 64x64, batch 8
    for run in args.runs:
        sampler, steps = run.split(":")
        name = f"mnist_dit_{sampler}_{steps}steps"
        start = time.perf_counter()
        out = mappings["EvoTimestepSchedule"]().search(model, positive, negative, latent, sampler, int(steps),
                                                       save_as=name, **SEARCH)
        print(f"== {name} ({time.perf_counter() - start:.0f} s)\n{out['result'][1]}", flush=True)
        saved = folder / f"{name}.json"
        if saved.is_file():
            shutil.copyfile(saved, shipped / saved.name)
            print(f"shipped schedules/mnist_dit/{saved.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
