"""Re-export a model in int8 with chosen operators kept in float: the measured fix for the worst layers.

The float ``.tflite`` is calibrated once (TFLite's calibrator records every tensor's range) and then quantized by
the converter's MLIR quantizer with ``denylisted_nodes``: the operators producing those tensors stay float32 with
QUANTIZE/DEQUANTIZE around them. This is what ``tf.lite.experimental.QuantizationDebugger``'s
``get_nondebug_quantized_model`` does with ``QuantizationDebugOptions(denylisted_nodes=...)``, without needing the
Keras model: any float ``.tflite`` of the network works.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.errors import CalibrationError, ConversionError

IO_DTYPES = ("int8", "uint8", "float32")


def _ordered_inputs(float_tflite: bytes, calibration: Any) -> list[np.ndarray]:
    """The calibration arrays in the float model's input order (matched by name for multi-input models)."""
    from edgecompress.runtimes.host import HostRunner
    from edgecompress.samples import match_inputs

    x = getattr(calibration, "x", calibration)
    details = HostRunner(float_tflite).input_details
    try:
        arrays = match_inputs(details, x)
    except ValueError as exc:
        raise CalibrationError(f"float fallback re-export: {exc}. Name the calibration arrays after the model "
                               "inputs.") from exc
    return [np.asarray(arr, np.float32) for arr in arrays]


def calibrate(float_tflite: bytes, calibration: Any, *, max_samples: int = 500) -> bytes:
    """Record activation ranges of a float ``.tflite`` on representative data.

    Args:
        float_tflite: a float32 flatbuffer (static batch 1).
        calibration: representative samples (a ``Dataset``, an array, or arrays keyed by input name).
        max_samples: use at most this many.

    Returns:
        The calibrated float flatbuffer (input to ``quantize``).
    """
    from tensorflow.lite.python.optimize import calibrator

    arrays = _ordered_inputs(float_tflite, calibration)
    count = min(len(arr) for arr in arrays)
    if count == 0:
        raise CalibrationError("float fallback re-export needs calibration samples. Received: 0 samples.")

    def samples() -> Iterator[list[np.ndarray]]:
        for i in range(min(count, max_samples)):
            yield [arr[i : i + 1] for arr in arrays]

    try:
        with captured_output():
            model = calibrator.add_intermediate_tensors(float_tflite)
            return bytes(calibrator.Calibrator(model).calibrate(samples))
    except Exception as exc:  # the calibrator raises plain RuntimeError/ValueError with the reason
        raise ConversionError(f"calibrating the float model failed ({str(exc).splitlines()[0][:300]}). "
                              "Check that the calibration samples match the model input.") from exc


def weights_per_channel(tflite: bytes) -> bool:
    """False when every Conv/Dense weight tensor of ``tflite`` has one scale (per-tensor), True otherwise.

    A re-export should keep what the shipped model had: per-tensor weights are usually there because a target
    needs them (e.g. NNAPI before API level 29 rejects per-channel CONV_2D filters).
    """
    from edgecompress.tflite import read_model

    info = read_model(tflite)
    counts = [len(info.tensors[op.inputs[1]].scale) for op in info.operators
              if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
              and len(op.inputs) > 1 and op.inputs[1] >= 0 and info.tensors[op.inputs[1]].dtype == "int8"]
    return not counts or any(count > 1 for count in counts)


def quantize(calibrated: bytes, float_nodes: Sequence[str] = (), *, io_dtype: str = "int8",
             per_channel: bool = True) -> bytes:
    """Quantize a calibrated model to int8, keeping the operators that produce ``float_nodes`` in float.

    Args:
        calibrated: the output of ``calibrate``.
        float_nodes: names of tensors whose producing operators stay float32.
        io_dtype: dtype of the model's input and output tensors.
        per_channel: per-channel weights (the converter's default); False for one scale per weight tensor.

    Returns:
        The flatbuffer bytes.

    Example:
        >>> fixed = quantize(calibrate(float_bytes, calib), ["model/conv2/Relu"])  # doctest: +SKIP
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert

    if io_dtype not in IO_DTYPES:
        raise ConversionError(f"io_dtype must be one of {', '.join(IO_DTYPES)}. Received: {io_dtype!r}.")
    dtype = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io_dtype]
    try:
        with captured_output():
            return bytes(tflite_convert.mlir_quantize(
                calibrated, fully_quantize=True, input_data_type=dtype, output_data_type=dtype,
                disable_per_channel=not per_channel, denylisted_nodes=list(float_nodes) or None))
    except Exception as exc:
        raise ConversionError(f"re-quantizing with {len(float_nodes)} float operator(s) failed "
                              f"({str(exc).splitlines()[0][:300]}).") from exc


def float_fallback(float_tflite: bytes, calibration: Any, float_nodes: Sequence[str], *, io_dtype: str = "int8",
                   max_samples: int = 500) -> bytes:
    """Calibrate and quantize ``float_tflite`` with the operators producing ``float_nodes`` kept float."""
    return quantize(calibrate(float_tflite, calibration, max_samples=max_samples), float_nodes, io_dtype=io_dtype)
