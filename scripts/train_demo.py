"""Train the demo model (a recipe, by default FastViT-SA12 + FPN) on Blue Marble, resumably.

Trains on random crops west of the split meridian, evaluates mIoU east of it against the real
land-sea mask, and writes the weights as float16 safetensors next to the recipe.

    python scripts/train_demo.py --steps 1800 --run runs/demo       # resumes from runs/demo/last.pt
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from edgekit.data import bluemarble
from edgekit.nets.factory import model_from_recipe
from edgekit.nets.training import Run
from edgekit.recipes import load_recipe


def sample_batch(rng, image, mask, lake_rc, width, batch, crop):
    """Random crops from the training region; a quarter of them centred on lake pixels."""
    xs, ys = [], []
    h = image.shape[0]
    for i in range(batch):
        if i % 4 == 0 and len(lake_rc[0]):
            k = rng.integers(len(lake_rc[0]))
            r = int(np.clip(lake_rc[0][k] - crop // 2 + rng.integers(-crop // 4, crop // 4), 0, h - crop))
            c = int(np.clip(lake_rc[1][k] - crop // 2 + rng.integers(-crop // 4, crop // 4), 0, width - crop))
        else:
            r, c = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, width - crop + 1))
        img, m = image[r : r + crop, c : c + crop], mask[r : r + crop, c : c + crop]
        if rng.random() < 0.5:
            img, m = img[:, ::-1], m[:, ::-1]
        gain = rng.uniform(0.85, 1.15)
        xs.append(np.clip(img.astype(np.float32) * gain, 0, 255))
        ys.append(m)
    return np.stack(xs), np.stack(ys)


@torch.no_grad()
def evaluate(model, preprocess, image, mask, col, tile=512, classes=3):
    """mIoU east of the split, tile by tile (crop-merged, shifted-in edge tiles)."""
    model.eval()
    region, truth = image[:, col:], mask[:, col:]
    h, w = truth.shape
    pred = np.zeros_like(truth)
    for r in list(range(0, h - tile, tile)) + [h - tile]:
        for c in list(range(0, w - tile, tile)) + [w - tile]:
            x = torch.from_numpy(preprocess.apply(region[r : r + tile, c : c + tile]))
            pred[r : r + tile, c : c + tile] = model(x).argmax(1)[0].numpy()
    ious = []
    for k in range(classes):
        inter = np.logical_and(pred == k, truth == k).sum()
        union = np.logical_or(pred == k, truth == k).sum()
        ious.append(inter / union if union else float("nan"))
    model.train()
    return float(np.nanmean(ious)), [round(float(v), 4) for v in ious]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe", default="fastvit_sa12_fpn")
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--run", type=Path, default=Path("runs/demo"))
    ap.add_argument("--out", type=Path, default=None, help="safetensors path (default: the recipe's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = load_recipe(args.recipe)
    model = model_from_recipe(recipe, weights=False).train()
    image = bluemarble.load_image()
    mask = bluemarble.load_mask(image.shape[:2])
    col = bluemarble.split_column(image.shape[1])
    train_img, train_mask = image[:, :col], mask[:, :col]
    lakes = np.nonzero(train_mask == 2)
    run = Run(args.run, model, args.lr, args.steps)
    opt, sched, step = run.opt, run.sched, run.step
    rng = np.random.default_rng(step)
    weight = torch.tensor([1.0, 1.0, 3.0])
    t0 = time.time()
    while step < args.steps:
        x, y = sample_batch(rng, train_img, train_mask, lakes, col, args.batch, args.crop)
        logits = model(torch.from_numpy(recipe.preprocess.apply(x)))
        loss = F.cross_entropy(logits, torch.from_numpy(y.astype(np.int64)), weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if step % 20 == 0:
            print(f"step {step}/{args.steps} loss {loss.item():.4f} {(time.time() - t0) / 20:.2f}s/step", flush=True)
            t0 = time.time()
        if step % 100 == 0 or step == args.steps:
            run.step = step
            run.save()
        if step % 600 == 0 or step == args.steps:
            miou, ious = evaluate(model, recipe.preprocess, image, mask, col)
            print(f"step {step} held-out mIoU {miou:.4f} per class {ious}", flush=True)
    from safetensors.torch import save_file

    out = args.out or recipe.checkpoint
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if v.is_floating_point()}
              | {k: v for k, v in model.state_dict().items() if not v.is_floating_point()}, str(out))
    model.load_state_dict({k: v.to(torch.float16).float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    miou, ious = evaluate(model, recipe.preprocess, image, mask, col)
    print(f"saved {out} ({out.stat().st_size / 1e6:.1f} MB); float16 weights held-out mIoU {miou:.4f} {ious}", flush=True)


if __name__ == "__main__":
    main()
