"""Recovery lowers the student-teacher divergence and resumes from its checkpoint; depth cuts keep shapes."""
import copy

import numpy as np
import pytest
import torch

from edgekit.compress.depth import drop_blocks
from edgekit.compress.distill import DistillSettings, distill, divergence
from torch import nn

from tests.compress.compress_fixtures import TinyCnn, tiny_eva_segmenter, tiny_vit


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


class _Skip(nn.Module):
    def forward(self, x, **kwargs):
        return x


def _skipping(model, dropped):
    """``model`` with the named blocks replaced by identities, in place: what a correct cut computes."""
    model = copy.deepcopy(model)
    for name in dropped:
        parent, _, index = name.rpartition(".")
        model.get_submodule(parent)[int(index)] = _Skip()
    return model


@pytest.mark.parametrize("make, size", [
    (lambda: tiny_eva_segmenter(out_indices=(1, -1)), 64),  # Eva: ModuleList, RoPE, a wrapper taking block 1
    (lambda: _vit_segmenter(), 160),                         # ViT: Sequential, wrapper taking the last block
])
def test_depth_cut_remaps_the_feature_wrapper(make, size):
    model = make()
    x = torch.randn(1, 3, size, size)
    getter = model.backbone
    taken = [i % len(getter.model.blocks) for i in getter.out_indices]
    result = drop_blocks(model, x, 0.5)
    assert result.report.dropped and not any(n.endswith(f".{i}") for n in result.report.dropped for i in taken)
    assert len(result.model.backbone.model.blocks) == result.report.blocks_after < result.report.blocks_before
    with torch.no_grad():  # the cut model computes the original with the dropped blocks skipped
        torch.testing.assert_close(result.model(x), _skipping(model, result.report.dropped)(x), rtol=1e-5, atol=1e-5)


def _vit_segmenter():
    from edgekit.nets.segmenter import create_segmenter

    torch.manual_seed(0)
    return create_segmenter("test_vit", "linear", 3, out_indices=(-1,)).eval()


def test_eva_with_per_block_rope_is_not_cut():
    from edgekit.compress.depth import can_drop

    model = tiny_eva_segmenter()
    assert can_drop(model)
    model.backbone.model.rope_mixed = True  # one rotary table per block: cutting would misalign them
    assert not can_drop(model)
