"""Run a TFLite model through the real TFLite Micro interpreter (the ``tflite-micro`` Python package) for accuracy.

This is the small evaluation runner ``validate`` uses for microcontroller targets: same kernels and arithmetic as
the firmware build, on the host. Arena sizing against the real interpreter is ``runtimes/micro.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import CalibrationError, InvalidModelError, ToolchainError
from edgecompress.runtimes.host import dequantize, quantize, shape_mismatch_message

DEFAULT_ARENA_BYTES = 2 * 1024 * 1024
# TFLite Micro allocates the whole arena up front: bounds keep a typo from asking the host for a petabyte
MIN_ARENA_BYTES = 1024
MAX_ARENA_BYTES = 1 << 30


def _affine(details: dict[str, Any]) -> tuple[float, int] | None:
    params = details.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []), np.float64).ravel()
    zeros = np.asarray(params.get("zero_points", []), np.int64).ravel()
    if scales.size == 0 or not scales[0]:
        return None
    return float(scales[0]), int(zeros[0]) if zeros.size else 0


class MicroEvalRunner:
    """The TFLite Micro reference interpreter, with int8/uint8 I/O quantized and dequantized.

    Args:
        model: flatbuffer bytes or a path.
        arena_size: tensor arena bytes (default 2 MiB: enough for evaluation; ``check`` sizes the real arena).

    Example:
        >>> probs = MicroEvalRunner("model_int8.tflite").predict({"input": x})[0]  # doctest: +SKIP
    """

    name = "tflite-micro"

    def __init__(self, model: bytes | str | os.PathLike[str], *, arena_size: int | None = None) -> None:
        try:
            from tflite_micro.python.tflite_micro import runtime
        except ImportError as exc:
            raise ToolchainError("TFLite Micro is not installed; install the 'micro' extra: "
                                 "pip install 'edgecompress[micro]'.") from exc
        data = bytes(model) if isinstance(model, bytes | bytearray) else Path(model).read_bytes()
        if arena_size is not None and (isinstance(arena_size, bool) or not isinstance(arena_size, int)
                                       or not MIN_ARENA_BYTES <= arena_size <= MAX_ARENA_BYTES):
            raise InvalidModelError(f"expected --arena-size from {MIN_ARENA_BYTES} to {MAX_ARENA_BYTES} bytes. "
                                    f"Received: {arena_size!r}. The largest microcontroller RAM is far below that.")
        self.arena_size = arena_size or DEFAULT_ARENA_BYTES
        try:
            self.interpreter = runtime.Interpreter.from_bytes(data, arena_size=self.arena_size)
        except (RuntimeError, ValueError) as exc:
            raise InvalidModelError(f"TFLite Micro could not load the model with a {self.arena_size}-byte arena "
                                    f"({exc}). Check the operators with `edgecompress check` or pass a larger "
                                    "--arena-size.") from exc
        from edgecompress.tflite import read_model

        # TFLite Micro's details carry no names: take them from the flatbuffer (same input order).
        info = read_model(data)
        self.input_details = [{**self.interpreter.get_input_details(i), "name": info.tensors[t].name}
                              for i, t in enumerate(info.inputs)]
        self.output_details = [self.interpreter.get_output_details(0)]

    def run(self, sample: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Invoke once on one sample (an array, or arrays keyed by input name; batch axis optional)."""
        from edgecompress.samples import match_inputs

        try:
            values = match_inputs(self.input_details, sample)
        except ValueError as exc:
            raise InvalidModelError(f"TFLite Micro evaluation: {exc}. Name the data arrays after the model "
                                    "inputs.") from exc
        for index, (detail, value) in enumerate(zip(self.input_details, values, strict=True)):
            shape = tuple(int(d) for d in detail["shape"])
            arr = np.asarray(value, np.float32)
            sample_shape = arr.shape[1:] if arr.ndim == len(shape) else arr.shape
            if sample_shape != shape[1:] and sorted(sample_shape) == sorted(shape[1:]):
                raise CalibrationError(shape_mismatch_message("the model", shape[1:], sample_shape))
            arr = arr.reshape(shape)
            dtype = np.dtype(detail["dtype"])
            affine = _affine(detail)
            if np.issubdtype(dtype, np.integer) and affine:
                arr = quantize(arr, affine[0], affine[1], dtype)
            self.interpreter.set_input(arr.astype(dtype), index)
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:
            raise InvalidModelError(f"TFLite Micro failed to run the model with a {self.arena_size}-byte arena "
                                    f"({exc}). Pass a larger --arena-size.") from exc
        out = np.asarray(self.interpreter.get_output(0))
        affine = _affine(self.output_details[0])
        if np.issubdtype(out.dtype, np.integer) and affine:
            out = dequantize(out, affine[0], affine[1])
        return [out.astype(np.float32)]

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run every sample and stack the first output (inputs matched by name for multi-input models)."""
        arrays = dict(x) if isinstance(x, Mapping) else {"input": np.asarray(x)}
        if len(arrays) != len(self.input_details):
            raise InvalidModelError(f"the model has {len(self.input_details)} input(s). Received: {len(arrays)} "
                                    "data array(s). Pass one array per input, named after it.")
        count = len(next(iter(arrays.values())))
        outs = [self.run({k: v[i : i + 1] for k, v in arrays.items()})[0] for i in range(count)]
        return [np.stack([o[0] if o.shape and o.shape[0] == 1 else o for o in outs])]
