"""Fixtures for compression integration tests: int8 conversion and reading constants back from the file."""

from __future__ import annotations

import numpy as np


def convert_int8(model, calibration: np.ndarray) -> bytes:
    """Full-int8 flatbuffer of ``model`` via ``edgecompress.conversion.converter`` (static batch 1, int8 I/O)."""
    from edgecompress.conversion import converter as conversion

    return conversion.convert(model, calibration, max_samples=200).tflite


def operator_names(tflite: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    return [op["op_name"] for op in Interpreter(model_content=tflite)._get_ops_details()]


def layer_weights(tflite: bytes) -> list[tuple[str, np.ndarray]]:
    """``(operator, int8 weights)`` for every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, in execution order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    found = []
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            index = op["inputs"][1 if op["op_name"] != "TRANSPOSE_CONV" else 1]
            found.append((op["op_name"], interpreter.get_tensor(index).copy()))
    return found


def run_int8(tflite: bytes, x: np.ndarray) -> np.ndarray:
    from edgecompress.runtimes.host import HostRunner

    return HostRunner(tflite).predict(x)[0]
