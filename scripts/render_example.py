"""Render the README's skip-path example (the shipped skip_path_visualizer workflow is written by make_workflows.py).

    python scripts/render_example.py                    # docs/skip_path_example.png, euler 50 steps, prints PSNRs
    python scripts/render_example.py --steps 20 --out /tmp/example.png

The picture: the bundled digits model (digit 3, seed 0, cfg 3, euler, karras) sampled at δ = 0.01 and δ = 0.05
(official rule, C_max 4, warm-up 4, hold reuse), each drawn above the oracle path with the same number of model
calls, with PSNR against the full-step run (latent PSNR, peak = the full run's range; the digit images' PSNR is
printed too). ComfyUI is found as the host tests find it (COMFYUI_PATH, ~/comfy/ComfyUI, enclosing custom_nodes).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_env  # noqa: E402
import pack_loader  # noqa: E402

sys.path.remove(str(HERE))

MODEL = "adaptive_skip_digits.safetensors"
SAMPLING = {"seed": 0, "cfg": 3.0, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}
SKIP = {"max_consecutive_skips": 4, "warmup_steps": 4, "criterion": "official", "reuse": "hold"}
THRESHOLDS = (0.01, 0.05)


def render(steps: int, out_path: Path, threads: int) -> dict:
    """Run the example in-process through the pack's nodes; returns the figures printed at the end."""
    _, nodes, pack = comfy_env.boot_comfyui()
    import torch

    if threads:
        torch.set_num_threads(threads)  # a 4x4-latent UNet gains nothing from more; a busy CPU makes them spin

    m = pack.NODE_CLASS_MAPPINGS
    draw, metrics = pack_loader.pack_module("core.draw"), pack_loader.pack_module("core.metrics")
    model = nodes.UNETLoader().load_unet(MODEL, "default")[0]
    positive = m["AdaptiveSkipDigitsConditioning"]().encode("3")[0]
    negative = m["AdaptiveSkipDigitsConditioning"]().encode("none")[0]
    latent = nodes.EmptyLatentImage().generate(32, 32, 1)[0]
    decode = m["AdaptiveSkipDigitsDecode"]()
    ks = m["AdaptiveSkipKSampler"]()
    oracle = m["SkipPathOracle"]()
    base = dict(model=model, positive=positive, negative=negative, latent_image=latent, steps=steps, **SAMPLING)
    full = ks.sample(threshold=0.0, **base, **SKIP)["result"][0]
    full_img = decode.decode(full, 1)[0]
    figures, digits, report = [], [("full", full_img)], {"steps": steps, "runs": []}
    for delta in THRESHOLDS:
        t0 = time.perf_counter()
        sampled, path = ks.sample(threshold=delta, **base, **SKIP)["result"][:2]
        t1 = time.perf_counter()
        found, found_latent, reference = oracle.search(
            model, positive, negative, latent, SAMPLING["seed"], steps, SAMPLING["cfg"], SAMPLING["sampler_name"],
            SAMPLING["scheduler"], steps, SKIP["warmup_steps"], SKIP["reuse"], match_path=path)["result"]
        t2 = time.perf_counter()
        if not torch.equal(reference["samples"], full["samples"]):
            raise RuntimeError("the oracle's full-step run differs from the KSampler's; the comparison is invalid")
        path.psnr = metrics.latent_psnr(sampled["samples"], full["samples"])
        rows = []
        runs = ((f"δ={delta}", path, sampled, t1 - t0), (f"oracle, {path.model_calls} calls", found, found_latent,
                                                         t2 - t1))
        for name, p, lat, secs in runs:
            img = decode.decode(lat, 1)[0]
            img_psnr = float(metrics.psnr(img.permute(0, 3, 1, 2), full_img.permute(0, 3, 1, 2), 1.0).mean())
            rows.append({"run": name, "model_calls": p.model_calls, "sampler_calls": p.sampler_calls,
                         "computed_steps": p.computed_steps, "latent_psnr_db": round(p.psnr, 2),
                         "image_psnr_db": round(img_psnr, 2), "seconds": round(secs, 1)})
            digits.append((name, img))
        report["runs"] += rows
        figures.append(draw.draw_skip_path(path, found, width=1000, labels=[f"δ={delta}", "oracle"]))
    header = digit_strip(digits, draw)
    picture = draw.vstack([header] + figures, gap=6)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out_path, optimize=True)
    report["picture"] = str(out_path)
    return report


def digit_strip(digits, draw):
    """The decoded 8x8 digits, enlarged, with their labels: what each run actually produced."""
    from PIL import Image, ImageDraw

    fonts = draw.load_fonts()
    cell, pad = 72, 12
    strip = Image.new("RGB", (1000, cell + 40), draw.BACKGROUND)
    pen = ImageDraw.Draw(strip)
    pen.text((draw.LEFT, 6), "digit 3, seed 0: full-step run and each path's result", font=fonts.title, fill=draw.INK)
    x = draw.LEFT
    for name, img in digits:
        arr = (img[0].clamp(0, 1).numpy() * 255).astype("uint8")
        tile = Image.fromarray(arr).resize((cell - 16, cell - 16), Image.NEAREST)
        strip.paste(tile, (x, 28))
        pen.text((x + cell - 10, 28 + (cell - 16) // 2 - 7), name, font=fonts.small, fill=draw.INK)
        x += cell + pen.textbbox((0, 0), name, font=fonts.small)[2] + pad
    return strip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="sampler steps (default 50, the paper's setting)")
    parser.add_argument("--out", type=Path, default=comfy_env.PACK_ROOT / "docs" / "skip_path_example.png")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 keeps torch's default)")
    args = parser.parse_args()
    start = time.perf_counter()
    report = render(args.steps, args.out, args.threads)
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
