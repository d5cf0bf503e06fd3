"""Read a TFLite (LiteRT) flatbuffer without running it, every read bounded.

Parsing uses the ``tflite`` package's generated schema classes on the ``flatbuffers`` runtime; TensorFlow is
never imported, so ``inspect`` and ``check`` start fast. Files come from users and the internet, so every
read is bounded: a vector may not declare more elements than the file has bytes, every tensor, buffer and
operator-code index is range-checked, and any malformed structure becomes ``InvalidModelError`` ("not a valid
TFLite model: ...") rather than another exception, a hang or an unbounded allocation.

Large models: files over 2 GiB (the large-model format, whose buffers sit after the flatbuffer and are
addressed by offset and size) are memory-mapped rather than read, so only the pages the parse touches and the
constants asked for are loaded. Truncating such a file while its ModelInfo is alive is not supported.

Limits: the vector elements read in total are bounded by the file size (and 16M), the tables by the file size
(and 1M), so crafted files whose vectors and tables alias each other cannot make the parse quadratic or
allocate without bound.
"""

from __future__ import annotations

import functools
import mmap
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import InvalidModelError
from edgecompress.tflite.macs import _macs
from edgecompress.tflite.model import _NUMPY_DTYPES, ModelInfo, OperatorInfo, TensorInfo

# Files up to this size are read into memory. Larger ones are the large-model format (the flatbuffer, itself
# under 2 GiB, followed by buffers it addresses by offset): they are memory-mapped, never read whole.
MAX_FILE_BYTES = 2 << 30
MAX_ELEMENTS = 2**31
# Far above any real model (the largest LLM flatbuffers have a few thousand tensors per subgraph); a crafted
# file can otherwise declare one table per 4 bytes and make the parse run for hours.
MAX_TABLES = 1 << 20
# Vector elements read across the whole parse: a real file stores each vector once, so the sum of their
# elements is below size/4; aliased vectors in a crafted file would otherwise make the work quadratic.
MAX_VECTOR_ELEMENTS = 1 << 24
_ITEMSIZE = {"int4": 0.5, "bfloat16": 2, "string": 1, "resource": 0, "variant": 0, "complex64": 8, "complex128": 16}


def _schema():
    import tflite

    return tflite


def inspect(source: str | os.PathLike[str] | bytes) -> ModelInfo:
    """Alias of ``read_model`` for the public API: operators, tensors, I/O scale and zero point of a ``.tflite``.

    Args:
        source: a ``.tflite`` path or the flatbuffer bytes.

    Returns:
        A ``ModelInfo`` describing the main subgraph.

    Example:
        >>> inspect("model_int8.tflite").is_full_int8  # doctest: +SKIP
        True
    """
    return read_model(source)


def read_model(source: str | os.PathLike[str] | bytes) -> ModelInfo:
    """Parse a TFLite flatbuffer from a path or bytes.

    Args:
        source: a ``.tflite`` path or the flatbuffer bytes.

    Returns:
        A ``ModelInfo`` describing the main subgraph.

    Raises:
        InvalidModelError: the input is not a well-formed TFLite model.

    Example:
        >>> info = read_model("model_int8.tflite")  # doctest: +SKIP
        >>> info.operators[0].op  # doctest: +SKIP
        'CONV_2D'
    """
    name, data = _read_source(source)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InvalidModelError(f"{name}: not a valid TFLite model: the file identifier 'TFL3' is missing at "
                                "bytes 4-8. Pass a .tflite flatbuffer.")
    try:
        return _parse(name, data)
    except InvalidModelError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError, OverflowError, AttributeError,
            KeyError, RecursionError, MemoryError) as exc:
        raise InvalidModelError(f"{name}: not a valid TFLite model: the flatbuffer is malformed "
                                f"({type(exc).__name__} while reading it).") from None


def _read_source(source: str | os.PathLike[str] | bytes) -> tuple[str, bytes | mmap.mmap]:
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>", bytes(source)
    path = Path(source)
    if "\x00" in str(path):
        raise InvalidModelError(f"{str(path)!r}: a file path cannot contain a NUL character. Pass a .tflite path.")
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise InvalidModelError(f"{path}: is a directory, not a .tflite file. Pass the model file itself.")
        if not stat.S_ISREG(info.st_mode):
            # a FIFO would block and /dev/zero would never end: only regular files are read
            raise InvalidModelError(f"{path}: not a valid TFLite model: not a regular file. Pass a .tflite file.")
        with open(path, "rb") as handle:
            if info.st_size > MAX_FILE_BYTES:
                # the mapping outlives the file handle; pages are read only where the parse looks
                return str(path), mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise InvalidModelError(f"{path}: not a valid TFLite model: the file grew past 2 GiB while being read.")
        return str(path), data
    except FileNotFoundError as exc:
        raise InvalidModelError(f"{path}: no such file. Check the path to the .tflite model.") from exc
    except PermissionError as exc:
        raise InvalidModelError(f"{path}: permission denied reading the model. Check the file's permissions.") from exc
    except IsADirectoryError as exc:
        raise InvalidModelError(f"{path}: is a directory, not a .tflite file. Pass the model file itself.") from exc
    except OSError as exc:
        raise InvalidModelError(f"{path}: cannot be read ({exc.strerror or exc}). Pass a readable .tflite file.") from exc


class _Bounds:
    """Checks that declared vector lengths and indices fit the file, and bounds the total work of a parse."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.elements_left = min(MAX_VECTOR_ELEMENTS, size // 2 + 65536)
        self.tables_left = min(MAX_TABLES, size // 4 + 1)

    def fail(self, reason: str) -> InvalidModelError:
        return InvalidModelError(f"{self.name}: not a valid TFLite model: {reason}")

    def length(self, value: int, what: str, element_bytes: int = 4) -> int:
        if value < 0 or value * element_bytes > self.size:
            raise self.fail(f"{what} declares {value} entries, more than a {self.size}-byte file can hold.")
        return value

    def tables(self, value: int, what: str) -> int:
        """A count of tables to read: fits the file, and all tables together stay under ``MAX_TABLES``."""
        self.length(value, what)
        self.tables_left -= value
        if self.tables_left < 0:
            raise self.fail(f"{what} declares {value} entries; together with the rest of the file that is more "
                            f"tables than the file size or the reader's limit ({MAX_TABLES}) allows.")
        return value

    def charge(self, elements: int, what: str) -> None:
        self.elements_left -= elements
        if self.elements_left < 0:
            raise self.fail(f"{what} makes the file's vectors add up to more entries than its size allows "
                            "(vectors overlap each other).")

    def index(self, value: int, limit: int, what: str) -> int:
        if not 0 <= value < limit:
            raise self.fail(f"{what} index {value} is out of range (0..{limit - 1}).")
        return value


def _vector(obj: Any, accessor: str, bounds: _Bounds, what: str, element_bytes: int = 4) -> list[int]:
    if getattr(obj, f"{accessor}IsNone")():
        return []
    bounds.charge(bounds.length(getattr(obj, f"{accessor}Length")(), what, element_bytes), what)
    values = getattr(obj, f"{accessor}AsNumpy")()
    return [] if isinstance(values, int) else [int(v) for v in values]


def _parse(name: str, data: bytes | mmap.mmap) -> ModelInfo:
    schema = _schema()
    bounds = _Bounds(name, len(data))
    model = schema.Model.GetRootAsModel(data, 0)
    opcode_names = _enum_table("BuiltinOperator")
    type_names = {v: k.lower() for v, k in _enum_table("TensorType").items()}

    buffers = []
    for i in range(bounds.tables(model.BuffersLength(), "the buffer list")):
        buf = model.Buffers(i)
        offset, size = int(buf.Offset()), int(buf.Size())
        if offset > 1:
            if offset + size > len(data):
                raise InvalidModelError(f"{name}: not a valid TFLite model: buffer {i} points past the end of "
                                        "the file.")
            buffers.append((offset, size))
        elif buf.DataIsNone():
            buffers.append((0, 0))
        else:
            length = bounds.length(buf.DataLength(), f"buffer {i}", 1)
            start = _vector_start(buf)
            if start + length > len(data):
                raise InvalidModelError(f"{name}: not a valid TFLite model: buffer {i} runs past the end.")
            buffers.append((start, length))

    opcodes = []
    for i in range(bounds.tables(model.OperatorCodesLength(), "the operator-code list")):
        code = model.OperatorCodes(i)
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        custom_code = code.CustomCode()
        if builtin == getattr(schema.BuiltinOperator, "CUSTOM", 32) and custom_code is not None:
            opcodes.append((custom_code.decode("utf-8", "replace"), True, int(code.Version())))
        else:
            opcodes.append((opcode_names.get(builtin, f"UNKNOWN_{builtin}"), False, int(code.Version())))

    subgraph_count = bounds.length(model.SubgraphsLength(), "the subgraph list")
    if subgraph_count == 0:
        raise InvalidModelError(f"{name}: not a valid TFLite model: it has no subgraph.")
    graph = model.Subgraphs(0)

    tensors = []
    tensor_count = bounds.tables(graph.TensorsLength(), "the tensor list")
    for i in range(tensor_count):
        t = graph.Tensors(i)
        shape = tuple(_vector(t, "Shape", bounds, f"tensor {i}'s shape"))
        signature = tuple(_vector(t, "ShapeSignature", bounds, f"tensor {i}'s shape signature")) or shape
        if any(d < 0 for d in shape) or any(d < -1 for d in signature):
            raise InvalidModelError(f"{name}: not a valid TFLite model: tensor {i} has a negative dimension "
                                    f"{shape}.")
        elements = int(np.prod(shape, dtype=np.float64)) if shape else 1
        if elements > MAX_ELEMENTS:
            raise InvalidModelError(f"{name}: not a valid TFLite model: tensor {i} declares {elements} elements.")
        dtype = type_names.get(int(t.Type()), f"unknown_{t.Type()}")
        buffer_index = int(t.Buffer())
        if buffers:
            bounds.index(buffer_index, len(buffers), f"tensor {i}'s buffer")
        is_constant = bool(buffers) and buffers[buffer_index][1] > 0
        scale, zero_point, qdim = [], [], 0
        quant = t.Quantization()
        if quant is not None:
            scale = _float_vector(quant, bounds, i)
            zero_point = _vector(quant, "ZeroPoint", bounds, f"tensor {i}'s zero points", 8)
            qdim = int(quant.QuantizedDimension())
        itemsize = np.dtype(_NUMPY_DTYPES[dtype]).itemsize if dtype in _NUMPY_DTYPES else _ITEMSIZE.get(dtype, 1)
        nbytes = buffers[buffer_index][1] if is_constant else int(elements * itemsize)
        raw_name = t.Name()
        tensors.append(TensorInfo(i, raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{i}", shape,
                                  signature, dtype, scale, zero_point, qdim, is_constant, nbytes,
                                  bool(t.IsVariable()), buffer_index))

    def tensor_refs(values: list[int], what: str) -> list[int]:
        for v in values:
            if v != -1:
                bounds.index(v, tensor_count, what)
        return values

    inputs = [bounds.index(v, tensor_count, "graph input")
              for v in _vector(graph, "Inputs", bounds, "the graph inputs")]
    outputs = [bounds.index(v, tensor_count, "graph output")
               for v in _vector(graph, "Outputs", bounds, "the graph outputs")]
    operators = []
    for i in range(bounds.tables(graph.OperatorsLength(), "the operator list")):
        op = graph.Operators(i)
        op_name, custom, version = opcodes[bounds.index(int(op.OpcodeIndex()), len(opcodes), f"operator {i}'s opcode")]
        op_inputs = tensor_refs(_vector(op, "Inputs", bounds, f"operator {i}'s inputs"), f"operator {i} input")
        op_outputs = tensor_refs(_vector(op, "Outputs", bounds, f"operator {i}'s outputs"), f"operator {i} output")
        options = {} if custom else _options(op, schema, bounds)
        info = OperatorInfo(i, op_name, custom, version, op_inputs, op_outputs, options)
        info.macs = _macs(info, tensors)
        operators.append(info)

    description = model.Description()
    return ModelInfo(
        path=None if name == "<bytes>" else name, size_bytes=len(data), schema_version=int(model.Version()),
        description=description.decode("utf-8", "replace") if description else "",
        subgraph_count=subgraph_count, tensors=tensors, operators=operators, inputs=inputs, outputs=outputs,
        _data=data, _buffers=buffers)


def _float_vector(quant: Any, bounds: _Bounds, i: int) -> list[float]:
    if quant.ScaleIsNone():
        return []
    bounds.charge(bounds.length(quant.ScaleLength(), f"tensor {i}'s scales"), f"tensor {i}'s scales")
    values = quant.ScaleAsNumpy()
    if isinstance(values, int):
        return []
    if len(values) > 1024:  # per-channel scales of a large layer: exact float64 values, 50x faster
        return values.astype(np.float64).tolist()
    # str() of a float32 is its shortest round-trip form: 0.005, not 0.004999999888241291
    return [float(str(v)) for v in values]


def _vector_start(buf: Any) -> int:
    import flatbuffers

    tab = buf._tab
    offset = flatbuffers.number_types.UOffsetTFlags.py_type(tab.Offset(4))
    return tab.Vector(offset) if offset else 0


def _enum_names(enum_class: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# option accessors whose integer value names a member of a schema enum
_OPTION_ENUMS = {
    "Padding": "Padding", "FusedActivationFunction": "ActivationFunctionType",
    "WeightsFormat": "FullyConnectedOptionsWeightsFormat", "QuantizedBiasType": "TensorType",
    "OutType": "TensorType", "OutputType": "TensorType", "IdxOutType": "TensorType", "InDataType": "TensorType",
    "OutDataType": "TensorType", "Mode": "MirrorPadMode", "Combiner": "CombinerType",
    "KernelType": "LSTMKernelType", "ReduceFunction": "ReduceWindowFunction",
    "CompareType": "StablehloComparisonType", "ComparisonDirection": "StablehloComparisonDirection",
}
# fields whose zero value means "not set" in the schema (QuantizedBiasType 0 is FLOAT32, i.e. the default bias)
_UNSET_WHEN_ZERO = {"QuantizedBiasType"}
# options vectors longer than this are summarised by their length (real ones hold a few axes or a shape)
_MAX_OPTION_VECTOR = 64


@functools.cache
def _option_accessors(cls: type) -> tuple[tuple[str, str, str], ...]:
    """(method, snake_case key, kind) for each field accessor of a generated options class."""
    accessors = []
    for attr in sorted(vars(cls)):
        method = vars(cls)[attr]
        if attr.startswith(("_", "GetRootAs")) or attr == "Init" or not callable(method) or attr.endswith(
                ("Length", "IsNone", "BufferHasIdentifier")):
            continue
        if attr.endswith("AsNumpy"):
            accessors.append((attr, _CAMEL.sub("_", attr.removesuffix("AsNumpy")).lower(), "vector"))
        elif getattr(method, "__code__", None) is not None and method.__code__.co_argcount == 1:
            accessors.append((attr, _CAMEL.sub("_", attr).lower(), "scalar"))
    return tuple(accessors)


@functools.cache
def _enum_table(enum_name: str) -> dict[int, str]:
    enum_class = getattr(_schema(), enum_name, None)
    return _enum_names(enum_class) if enum_class is not None else {}


def _options(op: Any, schema: Any, bounds: _Bounds) -> dict[str, Any]:
    """The operator's builtin options as a snake_case dict, read by reflection over the generated class."""
    for type_accessor, table_accessor, union in (("BuiltinOptionsType", "BuiltinOptions", "BuiltinOptions"),
                                                 ("BuiltinOptions2Type", "BuiltinOptions2", "BuiltinOptions2")):
        if not hasattr(op, type_accessor):
            continue
        kind = int(getattr(op, type_accessor)())
        if kind == 0:
            continue
        class_name = _enum_table(union).get(kind)
        cls = getattr(schema, class_name, None) if class_name else None
        table = getattr(op, table_accessor)()
        if cls is None or table is None:
            return {}
        options = cls()
        options.Init(table.Bytes, table.Pos)
        return _read_options(options, cls, bounds)
    return {}


def _read_options(options: Any, cls: type, bounds: _Bounds) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for attr, key, kind in _option_accessors(cls):
        if kind == "vector":
            length = int(getattr(options, attr.replace("AsNumpy", "Length"))())
            bounds.charge(bounds.length(length, f"option {key}"), f"option {key}")
            values = getattr(options, attr)()
            if isinstance(values, int):
                result[key] = []
            elif length > _MAX_OPTION_VECTOR:
                result[key] = f"<{length} values>"
            else:
                result[key] = [v.item() for v in values]
            continue
        value = getattr(options, attr)()
        if attr in _UNSET_WHEN_ZERO and value == 0:
            continue
        if attr in _OPTION_ENUMS:
            value = _enum_table(_OPTION_ENUMS[attr]).get(int(value), str(value))
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, bool | int | float | str):
            result.setdefault(key, value)
    return result
