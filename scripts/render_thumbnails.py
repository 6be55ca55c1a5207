"""Render the Templates-menu thumbnail of every shipped workflow: workflows/<name>.jpg beside workflows/<name>.json.

    python scripts/render_thumbnails.py                 # every workflows/*.json
    python scripts/render_thumbnails.py workflows/adaptive_skip_basic.json

Each workflow is run headless on the bundled model through ComfyUI's executor (scripts/run_workflow.py); the picture
is what it produces: the images it saves, in a grid, above the skip path of its first AdaptiveSkip run (drawn by the
pack's own core/draw.py) when it has one; a workflow that only previews shows a rule's skip path against the
oracle's. ComfyUI is found as the tests find it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
PACK_ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import pack_loader  # noqa: E402
import run_workflow  # noqa: E402

sys.path.remove(str(HERE))

SIZE = (512, 384)  # the Templates menu crops to a 4:3 card
BACKGROUND = (24, 26, 30)


def _tile(images: list[Image.Image], width: int, height: int) -> Image.Image:
    """The images in the grid that makes them largest, each scaled with nearest-neighbour (the digits are 8x8)."""
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    if not images:
        return canvas
    gap, n = 6, len(images)
    side, cols = max((min((width - gap * (c + 1)) // c, (height - gap * (-(-n // c) + 1)) // -(-n // c)), c)
                     for c in range(1, n + 1))
    rows = -(-n // cols)
    x0 = (width - cols * side - (cols - 1) * gap) // 2
    y0 = (height - rows * side - (rows - 1) * gap) // 2
    for k, image in enumerate(images):
        r, c = divmod(k, cols)
        canvas.paste(image.convert("RGB").resize((side, side), Image.NEAREST),
                     (x0 + c * (side + gap), y0 + r * (side + gap)))
    return canvas


def thumbnail(workflow: Path) -> Image.Image:
    with tempfile.TemporaryDirectory() as out:
        result = run_workflow.run(workflow, Path(out))
        images = [Image.open(p).copy() for p in result["images"]]
    draw = pack_loader.core("draw")
    skip_path = pack_loader.core("skip_path")
    width, height = SIZE
    if not result["paths"]:
        return _tile(images, width, height)
    paths = [skip_path.SkipPath.from_dict(p) for p in result["paths"]]
    if not images:  # only previews (the visualizer workflow): a rule's path against the oracle's, as the node draws
        rule = next((p for p in paths if p.criterion != "oracle"), paths[0])
        oracle = next((p for p in paths if p.criterion == "oracle" and p.steps == rule.steps), None)
        figure = draw.draw_skip_path(rule, oracle, width=1000).convert("RGB")
        figure.thumbnail(SIZE, Image.LANCZOS)
        card = Image.new("RGB", SIZE, (255, 255, 255))
        card.paste(figure, ((width - figure.width) // 2, (height - figure.height) // 2))
        return card
    figure = draw.draw_skip_path(paths[0], width=1000).convert("RGB")
    strip_h = round(figure.height * width / figure.width)
    strip = figure.resize((width, strip_h), Image.LANCZOS)
    top = _tile(images, width, max(height - strip_h - 8, 96))
    picture = Image.new("RGB", (width, top.height + 8 + strip_h), BACKGROUND)
    picture.paste(top, (0, 0))
    picture.paste(strip, (0, top.height + 8))
    return picture.resize(SIZE, Image.LANCZOS) if picture.height != height else picture


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workflows", nargs="*", type=Path,
                        default=sorted((PACK_ROOT / "workflows").glob("*.json")))
    args = parser.parse_args(argv)
    for workflow in args.workflows:
        target = workflow.with_suffix(".jpg")
        picture = thumbnail(workflow)
        picture.save(target, quality=88, optimize=True)
        print(f"{target}: {picture.size[0]}x{picture.size[1]}, {target.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
