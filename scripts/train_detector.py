"""Train the demo detector (mobileone_s0_trees) on NEON tree crowns, resumably, on the CPU.

Random crops from the left 70% of the deepforest image (columns the evaluation never uses);
FCOS-style assignment (grid points inside a box's centre region, level by box size), GIoU loss
on boxes and a quality focal loss (target = IoU) on scores. The backbone trains in its
multi-branch form with BatchNorm (the single-branch form without normalisation diverged) and is
saved reparameterized (single-branch, a quarter of the parameters: the recipe says
``reparameterized: true``), as float16 safetensors next to the recipe. Evaluation (COCO mAP on
the right 30%) is ``bench/detect_trees.py``.

    nice -n 10 python scripts/train_detector.py --steps 120 --run runs/trees   # resumes
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.ops import box_iou, generalized_box_iou_loss

from edgekit.data import neon_trees
from edgekit.nets.factory import model_from_recipe
from edgekit.nets.training import Run
from edgekit.recipes import load_recipe

LEVEL_RANGES = {8: (0.0, 64.0), 16: (64.0, 128.0), 32: (128.0, 1e9)}


def sample_batch(rng, image, boxes, batch, crop):
    """Random crops (with flips and 90-degree turns) and the boxes inside them, clipped."""
    h, w = image.shape[:2]
    xs, ys = [], []
    for _ in range(batch):
        r, c = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        img = image[r : r + crop, c : c + crop].astype(np.float32)
        b = boxes - np.array([c, r, c, r], np.float32)
        b = np.clip(b, 0, crop)
        b = b[((b[:, 2] - b[:, 0]) >= 4) & ((b[:, 3] - b[:, 1]) >= 4)]
        if rng.random() < 0.5:
            img, b = img[:, ::-1], np.stack([crop - b[:, 2], b[:, 1], crop - b[:, 0], b[:, 3]], 1)
        if rng.random() < 0.5:
            img, b = img[::-1], np.stack([b[:, 0], crop - b[:, 3], b[:, 2], crop - b[:, 1]], 1)
        if rng.random() < 0.5:  # transpose: rows <-> columns
            img, b = img.transpose(1, 0, 2), b[:, [1, 0, 3, 2]]
        xs.append(np.clip(img * rng.uniform(0.85, 1.15), 0, 255))
        ys.append(b.astype(np.float32).reshape(-1, 4))
    return np.stack(xs), ys


def assign(gt, points, strides):
    """Index of the box each grid point learns (-1: background), FCOS with centre sampling."""
    n = points.shape[0]
    if len(gt) == 0:
        return torch.full((n,), -1, dtype=torch.long)
    px, py = points[:, 0:1], points[:, 1:2]
    inside = (px > gt[:, 0]) & (px < gt[:, 2]) & (py > gt[:, 1]) & (py < gt[:, 3])
    cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
    radius = 2.5 * strides[:, None]
    central = ((px - cx).abs() < radius) & ((py - cy).abs() < radius)
    side = torch.maximum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1])
    lo = torch.tensor([LEVEL_RANGES[int(s)][0] for s in strides.tolist()])[:, None]
    hi = torch.tensor([LEVEL_RANGES[int(s)][1] for s in strides.tolist()])[:, None]
    ok = inside & central & (side >= lo) & (side < hi)
    area = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])).expand(n, -1).clone()
    area[~ok] = float("inf")
    best, idx = area.min(1)
    idx[torch.isinf(best)] = -1
    return idx


def detection_loss(model, x, targets):
    """GIoU on positives + quality focal loss on every grid point, normalised by the positives."""
    boxes, logits, points, strides = model.dense(x)
    total_box, total_cls, npos = 0.0, 0.0, 0
    for b in range(x.shape[0]):
        gt = torch.from_numpy(targets[b])
        idx = assign(gt, points, strides)
        pos = idx >= 0
        target = torch.zeros_like(logits[b])
        if pos.any():
            pb, tb = boxes[b][pos], gt[idx[pos]]
            total_box = total_box + generalized_box_iou_loss(pb, tb, reduction="sum")
            iou = box_iou(pb.detach(), tb).diagonal().clamp(min=0.01)
            target[pos, 0] = iou
            npos += int(pos.sum())
        prob = logits[b].sigmoid()
        bce = F.binary_cross_entropy_with_logits(logits[b], target, reduction="none")
        total_cls = total_cls + (bce * (prob - target).abs().pow(2)).sum()
    norm = max(npos, 1)
    return (2.0 * total_box + total_cls) / norm


def half_state(state: dict) -> dict:
    """float16 weights; tensors float16 cannot hold (BatchNorm statistics past 65504) stay float32."""
    out = {}
    for k, v in state.items():
        v = v.detach().contiguous()
        if v.is_floating_point():
            fits = bool(torch.isfinite(v.to(torch.float16)).all())
            v = v.to(torch.float16) if fits else v.to(torch.float32)
        out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe", default="mobileone_s0_trees")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--run", type=Path, default=Path("runs/trees"))
    ap.add_argument("--out", type=Path, default=None, help="safetensors path (default: the recipe's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--every", type=int, default=20, help="checkpoint every this many steps")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = load_recipe(args.recipe)
    trainable = replace(recipe, model={**recipe.model, "reparameterized": False})
    model = model_from_recipe(trainable, weights=False).train()
    image = neon_trees.load_image()
    col = neon_trees.split_column(image.shape[1])
    train_img = image[:, :col]
    train_boxes = neon_trees.boxes_in_columns(neon_trees.load_boxes(), 0, col)
    run = Run(args.run, model, args.lr, args.steps)
    opt, sched, step = run.opt, run.sched, run.step
    rng = np.random.default_rng(step)
    t0 = time.time()
    while step < args.steps:
        x, y = sample_batch(rng, train_img, train_boxes, args.batch, args.crop)
        loss = detection_loss(model, torch.from_numpy(recipe.preprocess.apply(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        step += 1
        if step % 5 == 0:
            print(f"step {step}/{args.steps} loss {loss.item():.4f} {(time.time() - t0) / 5:.2f}s/step", flush=True)
            t0 = time.time()
        if step % args.every == 0 or step == args.steps:
            run.step = step
            run.save()
    from safetensors.torch import save_file
    from timm.utils.model import reparameterize_model

    model.eval()
    model.backbone = reparameterize_model(model.backbone)  # the form the recipe builds
    deploy = model_from_recipe(recipe, weights=False)
    deploy.load_state_dict(model.state_dict())  # the saved weights fit the recipe's network exactly
    out = args.out or recipe.checkpoint
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(half_state(model.state_dict()), str(out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)", flush=True)


if __name__ == "__main__":
    main()
