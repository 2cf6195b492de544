"""Train a small classifier on real images, to test INT8 on real weights: Blue Marble tiles.

Tiles of 64x64 px (about 475 km) of NASA's Blue Marble are labelled from the real land-sea mask:
``ocean`` (>= 90 % water), ``land`` (>= 90 % land) or ``coast`` (the rest). Training tiles lie west
of 45 E, test tiles east of it (the same split as the demo segmenter). The network is timm's
``resnet10t`` with 3 classes, random init (no hub weights), built through the factory source
edgekit users would name: ``timm.models:create_model`` with ``model_name`` and ``num_classes`` arguments.

    python scripts/train_classifier.py --run runs/classifier --steps 120
    # writes runs/classifier/weights.safetensors, runs/classifier/calib/ (64 training tiles) and
    # runs/classifier/test/ (every test tile, with labels.csv: the held-out set `edgekit build --val` scores)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from torch.nn import functional as F

from edgekit.data import bluemarble

CLASSES = ("ocean", "land", "coast")
TILE = 64
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def tiles(image: np.ndarray, mask: np.ndarray, col0: int, col1: int, step: int):
    """(pixels, label) of every tile whose columns lie in [col0, col1), on a grid of ``step``."""
    for r in range(0, image.shape[0] - TILE + 1, step):
        for c in range(col0, col1 - TILE + 1, step):
            water = float(np.mean(mask[r:r + TILE, c:c + TILE] != 1))
            label = 0 if water >= 0.9 else 1 if water <= 0.1 else 2
            yield image[r:r + TILE, c:c + TILE], label, (r, c)


def write_split(folder: Path | None, items) -> list[tuple[np.ndarray, int]]:
    """Save tiles as <folder>/r<row>_c<col>.png with <folder>/labels.csv (file,class), and return them."""
    kept, rows = [], ["file,class"]
    for pixels, label, (r, c) in items:
        if folder is not None:
            name = f"r{r:04d}_c{c:04d}.png"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / name)
            rows.append(f"{name},{label}")  # class index: 0 ocean, 1 land, 2 coast
        kept.append((pixels, label))
    if folder is not None:
        (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return kept


def to_tensor(batch: list[np.ndarray]) -> torch.Tensor:
    x = (np.stack(batch).astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def accuracy(model, items) -> float:
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(items), 256):
            chunk = items[i:i + 256]
            pred = model(to_tensor([p for p, _ in chunk])).argmax(1).numpy()
            right += int((pred == np.array([y for _, y in chunk])).sum())
    model.train()
    return right / max(len(items), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/classifier"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    image = bluemarble.load_image()
    mask = bluemarble.load_mask(image.shape[:2])
    split = bluemarble.split_column(image.shape[1])
    train = write_split(None, tiles(image, mask, 0, split, TILE // 2))
    test = write_split(args.run / "test", tiles(image, mask, split, image.shape[1], TILE))
    picks = rng.choice(len(train), 64, replace=False)
    for i in picks:  # calibration images: training tiles, never test ones
        (args.run / "calib").mkdir(parents=True, exist_ok=True)
        Image.fromarray(train[i][0]).save(args.run / "calib" / f"train_{i:05d}.png")
    counts = np.bincount([y for _, y in test], minlength=3)
    print(f"train {len(train)} tiles, test {len(test)} tiles ({dict(zip(CLASSES, counts.tolist()))})")
    model = timm.create_model("resnet10t", pretrained=False, num_classes=len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps)
    weights = torch.tensor(1.0 / np.maximum(np.bincount([y for _, y in train], minlength=3), 1), dtype=torch.float32)
    start = time.time()
    for step in range(1, args.steps + 1):
        idx = rng.integers(len(train), size=args.batch)
        batch = [train[i][0] for i in idx]
        batch = [np.rot90(p, int(rng.integers(4))) if rng.random() < 0.5 else p[:, ::-1] for p in batch]
        x, y = to_tensor(batch), torch.tensor([train[i][1] for i in idx])
        loss = F.cross_entropy(model(x), y, weight=weights / weights.sum() * 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step} loss {loss.item():.3f} test top-1 {accuracy(model, test):.4f} ({time.time() - start:.0f} s)",
                  flush=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.run / "weights.safetensors"))
    print(f"weights: {args.run / 'weights.safetensors'}; test top-1 {accuracy(model, test):.4f} on {len(test)} tiles east of 45E")


if __name__ == "__main__":
    main()
