"""Multiply-accumulates per operator, counted from tensor shapes.

MAC convention (multiply-accumulates, batch included): CONV_2D ``out_elems * kh * kw * in_ch_per_group``;
DEPTHWISE_CONV_2D ``out_elems * kh * kw``; FULLY_CONNECTED ``out_elems * in_features``; TRANSPOSE_CONV
``in_elems * kh * kw * out_ch``; CONV_3D ``out_elems * kd * kh * kw * in_ch``; BATCH_MATMUL ``out_elems * K``;
element-wise arithmetic ``out_elems``; pooling ``out_elems * fh * fw``; reductions ``in_elems``; others 0.
"""

from __future__ import annotations

from edgecompress.tflite.model import OperatorInfo, TensorInfo

_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV",
                "FLOOR_MOD", "ADD_N", "PRELU", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH"}
_REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"}


def _elements(tensors: list[TensorInfo], index: int) -> int:
    return tensors[index].elements if 0 <= index < len(tensors) else 0


def _macs(op: OperatorInfo, tensors: list[TensorInfo]) -> int:
    ins = op.inputs
    out = op.outputs[0] if op.outputs else -1
    out_elems = _elements(tensors, out)

    def shape(position: int) -> tuple[int, ...]:
        return tensors[ins[position]].shape if len(ins) > position and ins[position] >= 0 else ()

    kind = op.op
    if kind == "CONV_2D" and len(shape(1)) == 4:
        _, kh, kw, cin = shape(1)
        return out_elems * kh * kw * cin
    if kind == "DEPTHWISE_CONV_2D" and len(shape(1)) == 4:
        return out_elems * shape(1)[1] * shape(1)[2]
    if kind == "CONV_3D" and len(shape(1)) == 5:
        kd, kh, kw, cin, _ = shape(1)
        return out_elems * kd * kh * kw * cin
    if kind == "FULLY_CONNECTED" and len(shape(1)) == 2:
        return out_elems * shape(1)[1]
    if kind == "TRANSPOSE_CONV" and len(shape(1)) == 4 and len(ins) > 2:
        cout, kh, kw, _ = shape(1)
        return _elements(tensors, ins[2]) * kh * kw * cout
    if kind == "BATCH_MATMUL" and len(shape(0)) >= 2:
        k = shape(0)[-2] if op.options.get("adj_x") else shape(0)[-1]
        return out_elems * k
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"):
        return out_elems * int(op.options.get("filter_width", 1)) * int(op.options.get("filter_height", 1))
    if kind in _ELEMENTWISE:
        return out_elems
    if kind in _REDUCTIONS and ins:
        return _elements(tensors, ins[0])
    return 0
