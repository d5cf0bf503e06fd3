"""Store the int64 biases of int16-activation (16x8) operators as int32 when every value fits.

The converter's 16x8 mode writes the bias of CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV with int16 activations
as int64, which sends them to LiteRT's reference kernels; with an int32 bias the optimized kernels run (measured on
a 3-layer 32x32 CNN: 17.3 ms -> 1.1 ms median on the host). A bias is stored as int32 only when each of its int64
values lies in the int32 range (checked on the values), so the bias itself is exact. The outputs are not
bit-identical: the optimized kernels round their requantization differently (a difference of ~1e-5 against an
error to float of ~7e-4 on that CNN). DEPTHWISE_CONV_2D keeps int64: LiteRT's 16x8 depthwise kernel refuses an
int32 bias.

The edit is made in place on a copy of the flatbuffer: the int32 values are written at the start of the bias
buffer's data vector, the vector's length is halved and the tensor's type byte changes from INT64 to INT32. No
offset moves, so the rest of the file is untouched (the freed half of each vector stays as padding).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from edgecompress.errors import InvalidModelError

# DEPTHWISE_CONV_2D is absent: LiteRT's 16x8 depthwise kernel refuses a bias that is not int64 (depthwise_conv.cc).
_BIAS_OPERAND = {"CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
_INT32 = np.iinfo(np.int32)
# The schema field offsets (vtable slots) of ``quantized_bias_type``.
_BIAS_TYPE_OPTION = {"CONV_2D": ("Conv2DOptions", 16), "FULLY_CONNECTED": ("FullyConnectedOptions", 12),
                     "TRANSPOSE_CONV": ("TransposeConvOptions", 12)}


def _op_names(model: Any, tflite: Any) -> list[str]:
    names = {value: name for name, value in vars(tflite.BuiltinOperator).items() if not name.startswith("_")}
    return [names.get(max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode()),
                      "CUSTOM") for i in range(model.OperatorCodesLength())]


def _buffer_users(subgraphs: list[Any]) -> dict[int, int]:
    users: dict[int, int] = {}
    for graph in subgraphs:
        for t in range(graph.TensorsLength()):
            buffer = graph.Tensors(t).Buffer()
            users[buffer] = users.get(buffer, 0) + 1
    return users


def narrow_int16_biases(model_bytes: bytes) -> tuple[bytes, dict[str, Any]]:
    """Rewrite the int64 biases of int16-activation operators as int32 where the values allow it.

    Args:
        model_bytes: a TFLite flatbuffer (typically from the converter's 16x8 mode).

    Returns:
        ``(new_bytes, summary)``; ``summary`` is JSON-ready: ``narrowed`` (``[{"op", "tensor", "values"}]``),
        ``kept_int64`` (``[{"op", "tensor", "reason"}]``: a value outside the int32 range, a shared or external
        buffer). Without candidates the bytes come back unchanged.

    Example:
        >>> fast, summary = narrow_int16_biases(open("m16x8.tflite", "rb").read())  # doctest: +SKIP
        >>> len(summary["narrowed"])  # doctest: +SKIP
        3
    """
    import tflite

    data = bytearray(model_bytes)
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        op_names = _op_names(model, tflite)
        subgraphs = [model.Subgraphs(i) for i in range(model.SubgraphsLength())]
        users = _buffer_users(subgraphs)
        narrowed: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        for graph in subgraphs:
            candidates = _candidates(graph, op_names, tflite)
            for bias_index, ops in candidates.items():
                bias = graph.Tensors(bias_index)
                label = {"op": ", ".join(f"#{o} {name}" for o, name, _ in ops),
                         "tensor": bias.Name().decode("utf-8", "replace")}
                reason = _narrow(data, model, bias, users, tflite)
                if isinstance(reason, str):
                    kept.append({**label, "reason": reason})
                    continue
                for _, name, op in ops:
                    _set_bias_type_option(data, op, name, tflite)
                narrowed.append({**label, "values": reason})
    except (IndexError, struct.error, ValueError, UnicodeError) as exc:
        raise InvalidModelError(f"not a valid TFLite model: {exc}. Re-export it with the converter.") from exc
    return bytes(data), {"narrowed": narrowed, "kept_int64": kept}


def _candidates(graph: Any, op_names: list[str], tflite: Any) -> dict[int, list[tuple[int, str, Any]]]:
    """Int64 bias tensors of int16-activation operators -> the operators using them.

    A bias tensor that any other operator also reads (the converter shares identical constants) is left out.
    """
    readers: dict[int, int] = {}
    found: dict[int, list[tuple[int, str, Any]]] = {}
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        inputs = [op.Inputs(i) for i in range(op.InputsLength())]
        for index in set(inputs):
            readers[index] = readers.get(index, 0) + 1
        name = op_names[op.OpcodeIndex()]
        operand = _BIAS_OPERAND.get(name)
        data_operand = 2 if name == "TRANSPOSE_CONV" else 0
        if operand is None or len(inputs) <= operand or inputs[operand] < 0 or inputs[data_operand] < 0:
            continue
        if graph.Tensors(inputs[data_operand]).Type() != tflite.TensorType.INT16:
            continue
        if graph.Tensors(inputs[operand]).Type() == tflite.TensorType.INT64:
            found.setdefault(inputs[operand], []).append((o, name, op))
    return {index: ops for index, ops in found.items() if readers[index] == len(ops)}


def _set_bias_type_option(data: bytearray, op: Any, name: str, tflite: Any) -> None:
    """Set the operator's ``quantized_bias_type`` option (newer schemas; checked in Prepare) to INT32."""
    options_class, field = _BIAS_TYPE_OPTION.get(name, (None, 0))
    table = op.BuiltinOptions()
    if options_class is None or table is None:
        return
    options = getattr(tflite, options_class)()
    options.Init(table.Bytes, table.Pos)
    offset = options._tab.Offset(field)
    if offset and options.QuantizedBiasType() == tflite.TensorType.INT64:
        struct.pack_into("<b", data, options._tab.Pos + offset, tflite.TensorType.INT32)


def _narrow(data: bytearray, model: Any, bias: Any, users: dict[int, int], tflite: Any) -> int | str:
    """Narrow one bias tensor in ``data``; the number of values, or why it stays int64."""
    buffer_index = bias.Buffer()
    if users.get(buffer_index, 0) > 1:
        return "buffer shared with another tensor"
    buffer = model.Buffers(buffer_index)
    if buffer.Offset() > 1:
        return "external buffer (large-model format)"
    if buffer.DataLength() == 0 or buffer.DataLength() % 8:
        return "not a constant int64 vector"
    start = buffer._tab.Vector(buffer._tab.Offset(4))
    values = np.frombuffer(bytes(data[start : start + buffer.DataLength()]), "<i8")
    if values.min() < _INT32.min or values.max() > _INT32.max:
        worst = int(values[np.argmax(np.abs(values))])
        return f"value {worst} outside the int32 range"
    narrow = values.astype("<i4").tobytes()
    data[start : start + len(narrow)] = narrow
    data[start + len(narrow) : start + len(values) * 8] = bytes(len(values) * 8 - len(narrow))
    struct.pack_into("<I", data, start - 4, len(narrow))
    type_field = bias._tab.Offset(6)
    struct.pack_into("<b", data, bias._tab.Pos + type_field, tflite.TensorType.INT32)
    return len(values)
