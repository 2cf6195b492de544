"""2:4 structured sparsity for TensorRT targets, with NVIDIA ModelOpt (``modelopt.torch.sparsity``).

In every group of four consecutive input channels of a convolution or linear weight, two are
zero: Ampere and Orin sparse tensor cores skip them (TensorRT's ``SPARSE_WEIGHTS`` flag, which
the engine build sets when the manifest says so). ModelOpt's ``sparse_magnitude`` mode keeps the
two largest of each group and enforces the mask while the student recovers by distillation;
``export`` folds the mask into plain modules. :func:`check_pattern` then proves the pattern on
the exported weights, layer by layer, as numbers.

Nothing here measures speed: the gain exists only on sparse tensor cores, so the report says it is
measured on the device. On a CPU the zeros cost accuracy and buy nothing, hence TensorRT targets only.
"""
from __future__ import annotations

__all__ = ["PATTERNS", "SparsityCheck", "sparsify", "export", "check_pattern"]

import warnings
from dataclasses import asdict, dataclass

PATTERNS = ("2:4",)


@dataclass(frozen=True)
class SparsityCheck:
    """The 2:4 pattern on a model's weights.

    Attributes:
        layers: convolutions and linear layers whose input channels come in groups of four.
        sparse_layers: those whose every group holds at most two non-zeros.
        sparse_weights: weights in the sparse layers; zero_fraction: the share of them that is zero.
        dense: names of eligible layers left dense (ModelOpt skips some, e.g. too few channels).
    """

    layers: int
    sparse_layers: int
    sparse_weights: int
    zero_fraction: float
    dense: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["dense"] = list(self.dense)
        return data


def sparsify(model):
    """``model`` with ModelOpt's sparse modules, masks from weight magnitude (kept while training)."""
    import modelopt.torch.sparsity as mts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mts.sparsify(model, "sparse_magnitude")


def export(model):
    """Plain modules with the masks folded into the weights."""
    import modelopt.torch.sparsity as mts

    return mts.export(model)


def _groups(weight):
    """(out, groups of four input channels, 4) view of a Conv2d/Linear weight, None when the input
    channels do not come in fours."""
    w = weight.detach()
    if w.dim() == 4:  # (out, in, kh, kw): groups run along the input channels at each position
        w = w.permute(0, 2, 3, 1).reshape(-1, w.shape[1])
    if w.dim() != 2 or w.shape[1] % 4:
        return None
    return w.reshape(w.shape[0], -1, 4)


def check_pattern(model) -> SparsityCheck:
    """Count the layers whose weights hold the 2:4 pattern."""
    from torch import nn

    layers = sparse = weights = zeros = 0
    dense = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)) or getattr(module, "groups", 1) != 1:
            continue
        groups = _groups(module.weight)
        if groups is None:
            continue
        layers += 1
        if int((groups != 0).sum(-1).max()) <= 2:
            sparse += 1
            weights += groups.numel()
            zeros += int((groups == 0).sum())
        else:
            dense.append(name)
    return SparsityCheck(layers, sparse, weights, zeros / weights if weights else 0.0, tuple(dense))
