"""Build small TFLite flatbuffers by hand, valid or deliberately hostile, with the schema's own builder functions.

The reader's tests use these to state one property at a time (an out-of-range index, a deprecated opcode
field, vectors that alias each other) without TensorFlow. ``benchmarks/robustness.py`` reuses the hostile ones.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np


def _schema(name: str) -> Any:
    # ``import tflite.Tensor`` yields the class (the package re-exports it); the builder functions live on the module
    return importlib.import_module(f"tflite.{name}")


def _enum(name: str, member: str) -> int:
    return getattr(getattr(_schema(name), name), member)


@dataclass
class Tensor:
    shape: list[int]
    dtype: str = "INT8"
    buffer: int = 0
    name: str = ""
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    quantized_dimension: int = 0
    shape_signature: list[int] | None = None


@dataclass
class Op:
    opcode: int
    inputs: list[int]
    outputs: list[int]
    options: tuple[str, dict[str, Any]] | None = None  # ("Conv2DOptions", {"StrideW": 2, ...})


@dataclass
class Code:
    builtin: str
    version: int = 1
    deprecated: int | None = None  # the int8 field; defaults to min(code, 127) as the converter writes it
    custom: str | None = None


def _int_vector(builder: flatbuffers.Builder, values: list[int], width: int = 4) -> int:
    builder.StartVector(width, len(values), width)
    for value in reversed(values):
        (builder.PrependInt64 if width == 8 else builder.PrependInt32)(int(value))
    return builder.EndVector()


def _float_vector(builder: flatbuffers.Builder, values: list[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return builder.EndVector()


def _options(builder: flatbuffers.Builder, class_name: str, fields: dict[str, Any]) -> int:
    module = _schema(class_name)
    vectors = {k: _int_vector(builder, v) for k, v in fields.items() if isinstance(v, list | tuple)}
    getattr(module, f"{class_name}Start")(builder)
    for key, value in fields.items():
        getattr(module, f"{class_name}Add{key}")(builder, vectors.get(key, value))
    return getattr(module, f"{class_name}End")(builder)


def build_model(tensors: list[Tensor], ops: list[Op], codes: list[Code],
                buffers: list[bytes | tuple[int, int] | None], inputs: list[int], outputs: list[int], *,
                identifier: bytes = b"TFL3") -> bytes:
    """A one-subgraph model; ``buffers[0]`` should be ``None`` (the empty buffer TFLite reserves).

    A buffer given as ``(offset, size)`` points at data outside the flatbuffer, as the large-model format does.
    """
    b = flatbuffers.Builder(1024)
    Model, SubGraph, TensorT, Buffer, Operator, OperatorCode, Quant = (
        _schema(n) for n in ("Model", "SubGraph", "Tensor", "Buffer", "Operator", "OperatorCode",
                             "QuantizationParameters"))

    buffer_offsets = []
    for data in buffers:
        data_vec = b.CreateByteVector(data) if isinstance(data, bytes) and data else None
        Buffer.BufferStart(b)
        if data_vec is not None:
            Buffer.BufferAddData(b, data_vec)
        if isinstance(data, tuple):  # (offset, size) of data stored after the flatbuffer (large-model format)
            Buffer.BufferAddOffset(b, data[0])
            Buffer.BufferAddSize(b, data[1])
        buffer_offsets.append(Buffer.BufferEnd(b))

    tensor_offsets = []
    for t in tensors:
        name = b.CreateString(t.name)
        shape = _int_vector(b, t.shape)
        signature = _int_vector(b, t.shape_signature) if t.shape_signature is not None else None
        quant = None
        if t.scale:
            scale, zp = _float_vector(b, t.scale), _int_vector(b, t.zero_point, 8)
            Quant.QuantizationParametersStart(b)
            Quant.QuantizationParametersAddScale(b, scale)
            Quant.QuantizationParametersAddZeroPoint(b, zp)
            Quant.QuantizationParametersAddQuantizedDimension(b, t.quantized_dimension)
            quant = Quant.QuantizationParametersEnd(b)
        TensorT.TensorStart(b)
        TensorT.TensorAddShape(b, shape)
        if signature is not None:
            TensorT.TensorAddShapeSignature(b, signature)
        TensorT.TensorAddType(b, _enum("TensorType", t.dtype))
        TensorT.TensorAddBuffer(b, t.buffer)
        TensorT.TensorAddName(b, name)
        if quant is not None:
            TensorT.TensorAddQuantization(b, quant)
        tensor_offsets.append(TensorT.TensorEnd(b))

    op_offsets = []
    for op in ops:
        ins, outs = _int_vector(b, op.inputs), _int_vector(b, op.outputs)
        opts = _options(b, op.options[0], op.options[1]) if op.options else None
        Operator.OperatorStart(b)
        Operator.OperatorAddOpcodeIndex(b, op.opcode)
        Operator.OperatorAddInputs(b, ins)
        Operator.OperatorAddOutputs(b, outs)
        if opts is not None:
            Operator.OperatorAddBuiltinOptionsType(b, _enum("BuiltinOptions", op.options[0]))
            Operator.OperatorAddBuiltinOptions(b, opts)
        op_offsets.append(Operator.OperatorEnd(b))

    code_offsets = []
    for code in codes:
        value = _enum("BuiltinOperator", code.builtin)
        custom = b.CreateString(code.custom) if code.custom else None
        OperatorCode.OperatorCodeStart(b)
        OperatorCode.OperatorCodeAddBuiltinCode(b, value)
        OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(b, min(value, 127) if code.deprecated is None
                                                          else code.deprecated)
        OperatorCode.OperatorCodeAddVersion(b, code.version)
        if custom is not None:
            OperatorCode.OperatorCodeAddCustomCode(b, custom)
        code_offsets.append(OperatorCode.OperatorCodeEnd(b))

    def table_vector(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    tensors_vec, ops_vec = table_vector(tensor_offsets), table_vector(op_offsets)
    ins, outs = _int_vector(b, inputs), _int_vector(b, outputs)
    SubGraph.SubGraphStart(b)
    SubGraph.SubGraphAddTensors(b, tensors_vec)
    SubGraph.SubGraphAddOperators(b, ops_vec)
    SubGraph.SubGraphAddInputs(b, ins)
    SubGraph.SubGraphAddOutputs(b, outs)
    graph = SubGraph.SubGraphEnd(b)
    graphs_vec, codes_vec, buffers_vec = table_vector([graph]), table_vector(code_offsets), table_vector(buffer_offsets)
    description = b.CreateString("crafted")
    Model.ModelStart(b)
    Model.ModelAddVersion(b, 3)
    Model.ModelAddOperatorCodes(b, codes_vec)
    Model.ModelAddSubgraphs(b, graphs_vec)
    Model.ModelAddDescription(b, description)
    Model.ModelAddBuffers(b, buffers_vec)
    b.Finish(Model.ModelEnd(b), file_identifier=identifier)
    return bytes(b.Output())


def conv_model(*, in_hw: int = 8, in_ch: int = 3, out_ch: int = 5, kernel: int = 3, stride: int = 1,
               deprecated: int | None = None) -> bytes:
    """A valid int8 CONV_2D (VALID padding) with real weight and bias buffers."""
    out_hw = (in_hw - kernel) // stride + 1
    weights = np.arange(out_ch * kernel * kernel * in_ch, dtype=np.int64).astype(np.int8)
    bias = np.arange(out_ch, dtype=np.int32)
    tensors = [
        Tensor([1, in_hw, in_hw, in_ch], name="input", scale=[0.5], zero_point=[-1]),
        Tensor([out_ch, kernel, kernel, in_ch], buffer=1, name="weights", scale=[0.01] * out_ch,
               zero_point=[0] * out_ch),
        Tensor([out_ch], "INT32", buffer=2, name="bias", scale=[0.005] * out_ch, zero_point=[0] * out_ch),
        Tensor([1, out_hw, out_hw, out_ch], name="output", scale=[0.25], zero_point=[3]),
    ]
    ops = [Op(0, [0, 1, 2], [3], ("Conv2DOptions", {"Padding": 1, "StrideW": stride, "StrideH": stride}))]
    return build_model(tensors, ops, [Code("CONV_2D", 3, deprecated)], [None, weights.tobytes(), bias.tobytes()],
                       [0], [3])


def aliased_shapes_model(tensor_count: int) -> bytes:
    """Hostile: ``tensor_count`` tensor entries all point at one tensor whose shape vector has as many entries.

    The file grows linearly with ``tensor_count`` but a naive reader does ``tensor_count ** 2`` work.
    """
    b = flatbuffers.Builder(1024)
    Model, SubGraph, TensorT = (_schema(n) for n in ("Model", "SubGraph", "Tensor"))
    shape = _int_vector(b, [1] * tensor_count)
    TensorT.TensorStart(b)
    TensorT.TensorAddShape(b, shape)
    tensor = TensorT.TensorEnd(b)
    b.StartVector(4, tensor_count, 4)
    for _ in range(tensor_count):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    SubGraph.SubGraphStart(b)
    SubGraph.SubGraphAddTensors(b, tensors)
    graph = SubGraph.SubGraphEnd(b)
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(graph)
    graphs = b.EndVector()
    Model.ModelStart(b)
    Model.ModelAddVersion(b, 3)
    Model.ModelAddSubgraphs(b, graphs)
    b.Finish(Model.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
