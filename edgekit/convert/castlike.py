"""Graph rewrite: a ``CastLike`` whose target type is known becomes a ``Cast`` to that type.

The dynamo exporter with its own optimizer off (:data:`edgekit.convert.export.DYNAMO_OPTIMIZE`)
leaves scaled-dot-product attention's scale as ``1 / Sqrt(CastLike(head_dim, q))``: CastLike takes
its type from a run-time tensor, so the simplify stage's constant folding stops there (ViT-S/16:
48 CastLike, 24 Sqrt, 12 Div kept per graph). ``CastLike(x, like)`` is ``Cast(x, to=type of like)``
by definition; with ``like``'s element type read from ONNX shape inference, the Cast of a constant
then folds. A CastLike whose target type inference cannot tell is left as it is.
"""
from __future__ import annotations

__all__ = ["castlike_to_cast"]


def castlike_to_cast(model) -> int:
    """Rewrite every CastLike of ``model`` whose second input's element type is known (in place);
    returns how many."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    done = 0
    for node in model.graph.node:
        if node.op_type != "CastLike" or len(node.input) != 2:
            continue
        to = types.get(node.input[1], 0)
        if not to:  # UNDEFINED: not known statically
            continue
        replacement = onnx.helper.make_node("Cast", [node.input[0]], list(node.output), name=node.name, to=to)
        node.CopyFrom(replacement)
        done += 1
    return done
