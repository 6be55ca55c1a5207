"""Train the tiny digits classifier used for feature distances (writes models/digits_classifier.safetensors).

Data: scikit-learn's ``load_digits`` (1797 real 8x8 digits, values 0..16, scaled to [0, 1]); stratified 75/25
train/test split with ``random_state=0`` (the same split ``train_digits_model.py`` uses). Runs in seconds on CPU.

    python scripts/train_digits_classifier.py [--out models/digits_classifier.safetensors]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pack_loader  # scripts/, next to this file
import torch
from train_common import train_classifier

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digits_split(seed: int = 0):
    """(x_train, y_train, x_test, y_test); x are float32 (N, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, data.target, test_size=0.25, random_state=seed, stratify=data.target)
    return x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(PACK_DIR, "models", "digits_classifier.safetensors"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from safetensors.torch import save_file

    core = pack_loader.core("digits_features")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_tr, y_tr, x_te, y_te = digits_split()
    x_tr, y_tr = torch.from_numpy(x_tr)[:, None], torch.from_numpy(y_tr)
    x_te, y_te = torch.from_numpy(x_te)[:, None], torch.from_numpy(y_te)

    model = core.DigitsClassifier()
    start = time.time()
    train_classifier(model, x_tr, y_tr, x_te, y_te, args.epochs, gen, shift_pixels=1,
                     report=lambda epoch, loss, acc: print(f"epoch {epoch:3d}  train loss {loss:.4f}  "
                                                           f"test acc {acc:.4f}"))
    with torch.no_grad():
        train_acc = (model(x_tr).argmax(1) == y_tr).float().mean().item()
        test_acc = (model(x_te).argmax(1) == y_te).float().mean().item()
        fd_tr_te = core.feature_distance(model.features(x_tr), model.features(x_te))
    elapsed = time.time() - start
    print(f"train acc {train_acc:.4f}  test acc {test_acc:.4f}  feature distance train-vs-test {fd_tr_te:.3f}  "
          f"({elapsed:.1f} s, {sum(p.numel() for p in model.parameters())} params)")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    meta = {"width": str(model.conv1.out_channels), "feature_dim": str(model.fc1.out_features),
            "dataset": "sklearn.datasets.load_digits, stratified 75/25 split, random_state=0",
            "input": "(B,1,8,8) float in [0,1] (pixel/16)", "test_accuracy": f"{test_acc:.4f}",
            "epochs": str(args.epochs), "seed": str(args.seed)}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out, metadata=meta)
    print(f"saved {args.out} ({os.path.getsize(args.out) / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
