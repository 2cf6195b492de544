"""Recovery lowers the student-teacher divergence and resumes from its checkpoint; depth cuts keep shapes."""
import numpy as np
import pytest
import torch

from edgekit.compress.depth import drop_blocks
from edgekit.compress.distill import DistillSettings, distill, divergence
from tests.compress.compress_fixtures import TinyCnn, tiny_vit


def _batches(n, seed, size=16):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((2, 3, size, size)).astype(np.float32) for _ in range(n)]


def _kl(student, teacher, batches):
    with torch.no_grad():
        return float(np.mean([divergence(student(torch.from_numpy(b)), teacher(torch.from_numpy(b)), 2.0).item()
                              for b in batches]))


def test_distillation_lowers_divergence_and_resumes(tmp_path):
    teacher, student = TinyCnn(seed=0).eval(), TinyCnn(seed=1).eval()
    train, val = _batches(4, 0), _batches(2, 1)
    before = _kl(student, teacher, val)
    settings = DistillSettings(steps=40, lr=3e-3, eval_every=10, patience=10)
    ckpt = tmp_path / "recover.pt"
    result = distill(teacher, student, train, val, "segmentation", settings, checkpoint=ckpt)
    assert _kl(result.model, teacher, val) < 0.7 * before
    assert result.steps == 40 and ckpt.is_file() and [c["step"] for c in result.curve] == [0, 10, 20, 30, 40]
    assert result.curve[-1]["loss"] < result.curve[1]["loss"]
    again = distill(teacher, student, train, val, "segmentation", settings, checkpoint=ckpt)
    assert again.resumed_from == 40 and again.curve == result.curve  # nothing trained twice


def test_early_stop_when_the_metric_stalls():
    teacher = TinyCnn(seed=0).eval()
    train, val = _batches(2, 0), _batches(1, 1)
    result = distill(teacher, teacher, train, val, "segmentation",
                     DistillSettings(steps=100, lr=1e-6, eval_every=5, patience=2))
    assert result.stopped_early and result.steps == 10  # already perfect agreement: no evaluation improves it


def test_depth_drops_the_least_changing_block():
    model = tiny_vit()
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        for p in model.blocks[0].parameters():
            p.zero_()  # block 0 now adds nothing to the stream
    result = drop_blocks(model, x, 1 / len(model.blocks))
    assert result.report.dropped == ("blocks.0",)
    assert len(result.model.blocks) == len(model.blocks) - 1
    assert result.model(x).shape == model(x).shape
