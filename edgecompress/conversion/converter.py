"""Keras model -> full-int8 TFLite (LiteRT) flatbuffer, calibrated on a representative dataset.

The converter returns bytes; only the pipeline writes files. The model is re-wrapped with a fixed batch of 1
first: a ``None`` batch leaves SHAPE / STRIDED_SLICE / PACK operators around reshapes, which accelerators refuse.
When a model cannot be made full-int8 the error names every operator that would stay float and why;
``allow_float_fallback=True`` returns the mixed model instead, and says so in ``ConversionResult.float_ops``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.errors import ConversionError
from edgecompress.samples import arrays_by_input_name

IO_DTYPES = ("int8", "uint8", "float32")
# "16x8": int16 activations, int8 weights (the converter's EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8).
PRECISIONS = ("int8", "16x8")
# The converter's 16x8 mode takes int16 or float32 model inputs/outputs only (it refuses int8/uint8 there).
IO_DTYPES_16X8 = ("int16", "float32")
DEFAULT_MAX_SAMPLES = 500


@dataclasses.dataclass
class ConversionResult:
    """The product of a conversion.

    Args:
        tflite: the flatbuffer bytes.
        io_dtype: dtype of the model's input and output tensors.
        float_ops: operators that stayed float (only with ``allow_float_fallback``): ``{"index", "op", "reason"}``.
        calibration_samples: how many samples calibrated the activation ranges.
        warnings: things the user should know (fallbacks, few samples).
        precision: "int8" or "16x8" (int16 activations, int8 weights).
        int16_bias: for 16x8, the ``narrow_int16_biases`` summary (biases stored as int32 / kept int64).
    """

    tflite: bytes
    io_dtype: str
    float_ops: list[dict[str, Any]]
    calibration_samples: int
    warnings: list[str] = dataclasses.field(default_factory=list)
    precision: str = "int8"
    int16_bias: dict[str, Any] | None = None

    @property
    def full_int8(self) -> bool:
        return not self.float_ops

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": len(self.tflite), "io_dtype": self.io_dtype, "full_int8": self.full_int8,
                "float_ops": self.float_ops, "calibration_samples": self.calibration_samples,
                "warnings": self.warnings, "precision": self.precision, "int16_bias": self.int16_bias}


def _keras_model(model: Any) -> Any:
    return getattr(model, "model", model) if not hasattr(model, "inputs") else model


def static_batch(model: Any) -> Any:
    """Return ``model`` re-wrapped with batch size 1 on every input.

    Args:
        model: a Keras 3 model (Sequential, functional or subclassed with built inputs).

    Returns:
        A functional Keras model sharing the same layers and weights, with static batch 1.

    Example:
        >>> fixed = static_batch(model)  # doctest: +SKIP
        >>> fixed.inputs[0].shape[0]  # doctest: +SKIP
        1
    """
    import keras

    model = _keras_model(model)
    try:
        inputs = model.inputs
    except (AttributeError, ValueError) as exc:
        raise ConversionError(f"model '{model.name}': the model has no defined inputs. Build it on sample data "
                              "(model(x)) or give it an Input layer before exporting.") from exc
    fixed = []
    for tensor in inputs:
        shape = tuple(tensor.shape[1:])
        if any(dim is None for dim in shape):
            raise ConversionError(f"model '{model.name}': input '{tensor.name}' has a dynamic shape {shape}; "
                                  "full-int8 export needs static shapes. Rebuild the model with a fixed "
                                  "input shape (e.g. keras.Input(shape=(96, 96, 3))).")
        fixed.append(keras.Input(batch_shape=(1, *shape), name=tensor.name.split(":")[0],
                                 dtype=tensor.dtype))
    outputs = model(fixed if len(fixed) > 1 else fixed[0])
    return keras.Model(fixed if len(fixed) > 1 else fixed[0], outputs, name=f"{model.name}_batch1")


def _input_order(model: Any) -> list[str]:
    return [t.name.split(":")[0] for t in model.inputs]


def representative_dataset(arrays: dict[str, np.ndarray], names: list[str],
                           max_samples: int = DEFAULT_MAX_SAMPLES) -> Iterator[list[np.ndarray]]:
    """Yield one calibration sample at a time, each input with a batch axis of 1, in the model's input order.

    Args:
        arrays: one array per input name, samples first.
        names: the model's input names in order.
        max_samples: at most this many samples are used.

    Returns:
        A generator suitable for ``TFLiteConverter.representative_dataset``.
    """
    count = min(len(next(iter(arrays.values()))), max_samples)
    for i in range(count):
        yield [arrays[name][i : i + 1] for name in names]


def convert(model: Any, calibration: Any, *, io_dtype: str = "int8", allow_float_fallback: bool = False,
            max_samples: int = DEFAULT_MAX_SAMPLES, precision: str = "int8") -> ConversionResult:
    """Convert a Keras model to a full-int8 TFLite flatbuffer.

    Args:
        model: a Keras 3 model or a ``LoadedModel``.
        calibration: a ``Dataset``, an array (single input) or a dict of arrays keyed by input name.
        io_dtype: "int8" (default), "uint8" or "float32" for the model's input and output tensors.
        allow_float_fallback: keep operators that have no int8 kernel in float instead of failing.
        max_samples: calibrate on at most this many samples.
        precision: "int8" (default) or "16x8": int16 activations and int8 weights, I/O "int16" or "float32",
            followed by the post-pass that stores the int64 biases as int32 where every value fits
            (``edgecompress.conversion.int16_bias``).

    Returns:
        A ``ConversionResult`` with the flatbuffer bytes.

    Example:
        >>> result = convert(model, calibration_array)  # doctest: +SKIP
        >>> result.full_int8  # doctest: +SKIP
        True
    """
    if precision not in PRECISIONS:
        raise ConversionError(f"precision must be one of {', '.join(PRECISIONS)}. Received: {precision!r}.")
    allowed = IO_DTYPES_16X8 if precision == "16x8" else IO_DTYPES
    if io_dtype not in allowed:
        raise ConversionError(f"with precision {precision} the I/O dtype must be one of {', '.join(allowed)}. "
                              f"Received: {io_dtype!r}. Pass --io-dtype {allowed[0]}.")
    if precision == "16x8":
        return _convert_16x8(model, calibration, io_dtype, allow_float_fallback, max_samples)
    fixed = static_batch(model)
    names = _input_order(fixed)
    arrays = arrays_by_input_name(calibration, names)
    samples = min(len(next(iter(arrays.values()))), max_samples)
    try:
        data = _convert(fixed, arrays, names, io_dtype, strict=True, max_samples=max_samples)
    except ConversionError as strict_error:
        try:
            mixed = _convert(fixed, arrays, names, io_dtype, strict=False, max_samples=max_samples)
        except ConversionError:
            raise strict_error from None
        float_ops = float_operators(mixed, str(strict_error))
        if not allow_float_fallback:
            listing = "; ".join(f"#{op['index']} {op['op']} ({op['reason']})" for op in float_ops) or str(strict_error)
            raise ConversionError(f"model '{_keras_model(model).name}' cannot be made full-int8: {listing}. "
                                  "Replace those layers with int8-capable ones, or pass --allow-float-fallback "
                                  "to write a mixed int8/float model.") from None
        warning = (f"{len(float_ops)} operator(s) stayed float32 (--allow-float-fallback): "
                   + ", ".join(op["op"] for op in float_ops))
        return ConversionResult(mixed, io_dtype, float_ops, samples, [warning])
    float_ops = float_operators(data, "")
    if float_ops and not allow_float_fallback:
        listing = "; ".join(f"#{op['index']} {op['op']} ({op['reason']})" for op in float_ops)
        raise ConversionError(f"model '{_keras_model(model).name}' cannot be made full-int8: {listing}. "
                              "Replace those layers with int8-capable ones, or pass --allow-float-fallback "
                              "to write a mixed int8/float model.")
    warnings = []
    if float_ops:
        warnings.append(f"{len(float_ops)} operator(s) stayed float32 (--allow-float-fallback): "
                        + ", ".join(op["op"] for op in float_ops))
    return ConversionResult(data, io_dtype, float_ops, samples, warnings)


def _convert_16x8(model: Any, calibration: Any, io_dtype: str, allow_float_fallback: bool,
                  max_samples: int) -> ConversionResult:
    from edgecompress.conversion.int16_bias import narrow_int16_biases

    fixed = static_batch(model)
    names = _input_order(fixed)
    arrays = arrays_by_input_name(calibration, names)
    samples = min(len(next(iter(arrays.values()))), max_samples)
    data = _convert(fixed, arrays, names, io_dtype, strict=not allow_float_fallback, max_samples=max_samples,
                    precision="16x8")
    float_ops = float_operators(data, "")
    if float_ops and not allow_float_fallback:
        listing = "; ".join(f"#{op['index']} {op['op']} ({op['reason']})" for op in float_ops)
        raise ConversionError(f"model '{_keras_model(model).name}' cannot be made full-integer 16x8: {listing}. "
                              "Replace those layers, or pass --allow-float-fallback.")
    data, bias_summary = narrow_int16_biases(data)
    warnings = []
    if float_ops:
        warnings.append(f"{len(float_ops)} operator(s) stayed float32 (--allow-float-fallback): "
                        + ", ".join(op["op"] for op in float_ops))
    return ConversionResult(data, io_dtype, float_ops, samples, warnings, precision="16x8", int16_bias=bias_summary)


def _convert(fixed: Any, arrays: dict[str, np.ndarray], names: list[str], io_dtype: str, *, strict: bool,
             max_samples: int, precision: str = "int8") -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(arrays, names, max_samples)
    if precision == "16x8":
        int16 = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [int16] if strict else [int16, tf.lite.OpsSet.TFLITE_BUILTINS]
    elif strict:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    tf_dtype = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}[io_dtype]
    converter.inference_input_type = tf_dtype
    converter.inference_output_type = tf_dtype
    try:
        with captured_output():
            return bytes(converter.convert())
    except Exception as exc:  # ConverterError and friends: the message is what the user needs
        raise ConversionError(_converter_message(exc)) from exc


def convert_float(model: Any) -> bytes:
    """Convert a Keras model to a float32 TFLite flatbuffer with static batch 1 (the size/accuracy baseline)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(static_batch(model))
    try:
        with captured_output():
            return bytes(converter.convert())
    except Exception as exc:
        raise ConversionError(_converter_message(exc)) from exc


def _converter_message(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    interesting = [ln for ln in lines if "error:" in ln.lower() or "not supported" in ln.lower()
                   or "neither" in ln.lower() or "quantiz" in ln.lower()]
    chosen = (interesting or lines or [type(exc).__name__])[0]
    return chosen.split("error:", 1)[-1].strip()[:400]


def float_operators(tflite: bytes, converter_message: str) -> list[dict[str, Any]]:
    """The operators of a converted model that compute in float, each with the reason it stayed float.

    An operator counts as float when any of its non-constant inputs or outputs is a float tensor, excluding the
    QUANTIZE/DEQUANTIZE pair at the model's edges that float32 I/O adds.
    """
    from edgecompress.tflite import read_model

    info = read_model(tflite)
    result = []
    for op in info.operators:
        tensors = [t for t in op.inputs + op.outputs if t >= 0 and not info.tensors[t].is_constant]
        if not any(info.tensors[t].dtype in ("float32", "float16") for t in tensors):
            continue
        if op.op in ("QUANTIZE", "DEQUANTIZE"):
            # the converter's bridges to and from float: the culprit is the operator they surround
            continue
        reason = "no int8 kernel for this operator in the TFLite builtins, so the converter kept it float"
        if op.op.lower() in converter_message.lower():
            reason = converter_message
        result.append({"index": op.index, "op": op.op, "reason": reason})
    return result
