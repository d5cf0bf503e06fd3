"""What a parsed TFLite model holds: tensors, operators and the properties derived from them.

Parameters: ``param_count`` counts the elements of constant tensors that are weights or biases; int32/int64
constants that are not a bias operand (RESHAPE's shape, axes, paddings) are shape data, not parameters.
``param_bytes`` is the size of every constant buffer, shape data included.

Full int8 (``is_full_int8``): every non-constant tensor is int8, except unquantized int32/int64/bool tensors,
which carry indices, shapes and masks, not activations; no float tensor exists anywhere (so float I/O is not
full int8); and no QUANTIZE/DEQUANTIZE converts to or from float inside the graph (``quantize_ops_inside``).
"""

from __future__ import annotations

import dataclasses
import mmap
from collections import Counter
from functools import cached_property
from typing import Any

import numpy as np

FLOAT_DTYPES = ("float32", "float16", "float64", "bfloat16")
_INDEX_DTYPES = ("int32", "int64", "bool")
_NUMPY_DTYPES = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
    "uint64": np.uint64, "bool": np.bool_,
}
_BIAS_OPERAND = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3, "CONV_3D": 2}


@dataclasses.dataclass
class TensorInfo:
    """One tensor of the main subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    scale: list[float]
    zero_point: list[int]
    quantized_dimension: int
    is_constant: bool
    nbytes: int
    is_variable: bool
    buffer: int = 0

    @property
    def elements(self) -> int:
        """Number of elements (1 for a scalar)."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": self.scale, "zero_point": self.zero_point,
                "quantized_dimension": self.quantized_dimension, "is_constant": self.is_constant,
                "nbytes": self.nbytes}


@dataclasses.dataclass
class OperatorInfo:
    """One operator of the main subgraph, in execution order."""

    index: int
    op: str
    custom: bool
    version: int
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any]
    macs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "version": self.version, "inputs": self.inputs,
                "outputs": self.outputs, "macs": self.macs, "options": self.options}


@dataclasses.dataclass
class ModelInfo:
    """A parsed TFLite model (its first subgraph: the one that runs)."""

    path: str | None
    size_bytes: int
    schema_version: int
    description: str
    subgraph_count: int
    tensors: list[TensorInfo]
    operators: list[OperatorInfo]
    inputs: list[int]
    outputs: list[int]
    _data: bytes | mmap.mmap = dataclasses.field(repr=False, default=b"")
    _buffers: list[tuple[int, int]] = dataclasses.field(repr=False, default_factory=list)

    @property
    def name(self) -> str:
        return self.path or "<bytes>"

    @cached_property
    def param_count(self) -> int:
        """Elements of weight and bias constants (shape and axis operands are not parameters)."""
        biases = {op.inputs[_BIAS_OPERAND[op.op]] for op in self.operators
                  if op.op in _BIAS_OPERAND and len(op.inputs) > _BIAS_OPERAND[op.op]}
        return sum(t.elements for t in self.tensors if t.is_constant
                   and (t.dtype not in ("int32", "int64") or t.index in biases))

    @cached_property
    def param_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors if t.is_constant)

    @cached_property
    def total_macs(self) -> int:
        return sum(op.macs for op in self.operators)

    @cached_property
    def float_tensors(self) -> list[str]:
        """Names of the non-constant float tensors (activations, inputs and outputs)."""
        return [t.name for t in self.tensors if t.dtype in FLOAT_DTYPES and not t.is_constant]

    @cached_property
    def non_int8_tensors(self) -> list[str]:
        """Names of the non-constant tensors that keep the model from being full int8.

        That is float, int16, uint8 and other non-int8 activations, and quantized int32 activations;
        unquantized int32/int64/bool tensors are indices, shapes and masks and do not count.
        """
        return [t.name for t in self.tensors if not t.is_constant and t.dtype != "int8"
                and not (t.dtype in _INDEX_DTYPES and not t.scale)]

    @cached_property
    def quantize_ops_inside(self) -> int:
        """QUANTIZE/DEQUANTIZE operators converting to or from float away from the graph's edges.

        A float32-I/O model has one at each edge (not counted); a half-quantized model has them inside.
        An int8-to-int8 QUANTIZE (a requantization) has no float side and is not counted.
        """
        edges = set(self.inputs) | set(self.outputs)
        count = 0
        for op in self.operators:
            if op.op not in ("QUANTIZE", "DEQUANTIZE"):
                continue
            float_side = {t for t in op.inputs + op.outputs if t >= 0 and self.tensors[t].dtype in FLOAT_DTYPES}
            if float_side - edges:
                count += 1
        return count

    @property
    def is_full_int8(self) -> bool:
        """True when every activation is int8, no tensor is float, and no QUANTIZE/DEQUANTIZE touches float."""
        return (bool(self.operators) and not self.non_int8_tensors and self.quantize_ops_inside == 0
                and not any(t.dtype in FLOAT_DTYPES for t in self.tensors))

    def op_histogram(self) -> dict[str, int]:
        """Operator name -> how many times it occurs, most frequent first."""
        return dict(Counter(op.op for op in self.operators).most_common())

    def constant(self, tensor_index: int) -> np.ndarray | None:
        """The constant data of a tensor, shaped, or None when the tensor has no data in the file.

        Args:
            tensor_index: index into ``tensors``.

        Returns:
            A read-only array of the tensor's dtype and shape (int8, uint8, int16, int32, int64, float16,
            float32, ...); raw bytes as uint8 for dtypes numpy lacks (int4, string); flat when the buffer's
            size does not match the shape (sparse tensors). None for a tensor without data.

        Example:
            >>> weights = read_model("model_int8.tflite").constant(1)  # doctest: +SKIP
        """
        tensor = self.tensors[tensor_index]
        if not tensor.is_constant:
            return None
        start, size = self._buffers[tensor.buffer]
        raw = self._data[start : start + size]
        dtype = _NUMPY_DTYPES.get(tensor.dtype)
        if dtype is None:
            return np.frombuffer(raw, np.uint8)
        values = np.frombuffer(raw, dtype, count=len(raw) // np.dtype(dtype).itemsize)
        return values.reshape(tensor.shape) if values.size == tensor.elements else values

    def producers(self) -> dict[int, int]:
        """Tensor index -> index of the operator that writes it (graph inputs and constants have none)."""
        return {t: op.index for op in self.operators for t in op.outputs if t >= 0}

    def consumers(self) -> dict[int, list[int]]:
        """Tensor index -> indices of the operators that read it, in execution order."""
        result: dict[int, list[int]] = {}
        for op in self.operators:
            for t in op.inputs:
                if t >= 0:
                    result.setdefault(t, []).append(op.index)
        return result

    def to_dict(self) -> dict[str, Any]:
        """Everything above as JSON-ready data (what ``edgecompress inspect --json`` prints)."""
        return {
            "path": self.path, "size_bytes": self.size_bytes, "schema_version": self.schema_version,
            "description": self.description, "subgraph_count": self.subgraph_count,
            "inputs": [self.tensors[i].to_dict() for i in self.inputs],
            "outputs": [self.tensors[i].to_dict() for i in self.outputs],
            "operators": [op.to_dict() for op in self.operators],
            "tensors": [t.to_dict() for t in self.tensors],
            "param_count": self.param_count, "param_bytes": self.param_bytes, "total_macs": self.total_macs,
            "op_histogram": self.op_histogram(), "is_full_int8": self.is_full_int8,
            "float_tensors": self.float_tensors, "quantize_ops_inside": self.quantize_ops_inside,
            "non_int8_tensors": self.non_int8_tensors,
        }
