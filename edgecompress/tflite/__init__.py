"""Read a TFLite (LiteRT) flatbuffer without running it: operators, tensors, quantization, sizes, MACs.

Parsing uses the ``tflite`` package's generated schema classes on the ``flatbuffers`` runtime; TensorFlow is
never imported, so ``inspect`` and ``check`` start fast. Files come from users and the internet, so every
read is bounded: a vector may not declare more elements than the file has bytes, every tensor, buffer and
operator-code index is range-checked, and any malformed structure becomes ``InvalidModelError`` ("not a valid
TFLite model: ...") rather than another exception, a hang or an unbounded allocation.

The parts: ``reader`` (bounded parsing, ``read_model``), ``model`` (``ModelInfo`` and what it derives: parameters,
full int8), ``macs`` (the MAC convention and its operator tables).
"""

from edgecompress.tflite.model import FLOAT_DTYPES, ModelInfo, OperatorInfo, TensorInfo
from edgecompress.tflite.reader import (
    MAX_ELEMENTS,
    MAX_FILE_BYTES,
    MAX_TABLES,
    MAX_VECTOR_ELEMENTS,
    inspect,
    read_model,
)

__all__ = [
    "FLOAT_DTYPES",
    "MAX_ELEMENTS",
    "MAX_FILE_BYTES",
    "MAX_TABLES",
    "MAX_VECTOR_ELEMENTS",
    "ModelInfo",
    "OperatorInfo",
    "TensorInfo",
    "inspect",
    "read_model",
]
