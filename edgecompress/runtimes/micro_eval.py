"""Run a TFLite model through the real TFLite Micro interpreter (the ``tflite-micro`` Python package) for accuracy.

This is the small evaluation runner ``validate`` uses for microcontroller targets: same kernels and arithmetic as
the firmware build, on the host. Memory checks (arena sizing) live with ``check`` in ``runtimes/micro.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import InvalidModelError, ToolchainError

DEFAULT_ARENA_BYTES = 2 * 1024 * 1024


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
        self.arena_size = arena_size or DEFAULT_ARENA_BYTES
        try:
            self.interpreter = runtime.Interpreter.from_bytes(data, arena_size=self.arena_size)
        except (RuntimeError, ValueError) as exc:
            raise InvalidModelError(f"TFLite Micro could not load the model with a {self.arena_size}-byte arena "
                                    f"({exc}). Check the operators with `edgecompress check` or pass a larger "
                                    "--arena-size.") from exc
        self.input_details = [self.interpreter.get_input_details(0)]
        self.output_details = [self.interpreter.get_output_details(0)]

    def run(self, sample: np.ndarray) -> list[np.ndarray]:
        """Invoke once on one sample (with or without its batch axis); return float outputs."""
        detail = self.input_details[0]
        shape = tuple(int(d) for d in detail["shape"])
        arr = np.asarray(sample, np.float32).reshape(shape)
        dtype = np.dtype(detail["dtype"])
        affine = _affine(detail)
        if np.issubdtype(dtype, np.integer) and affine:
            info = np.iinfo(dtype)
            arr = np.clip(np.round(arr / affine[0]) + affine[1], info.min, info.max)
        try:
            self.interpreter.set_input(arr.astype(dtype), 0)
            self.interpreter.invoke()
        except RuntimeError as exc:
            raise InvalidModelError(f"TFLite Micro failed to run the model with a {self.arena_size}-byte arena "
                                    f"({exc}). Pass a larger --arena-size.") from exc
        out = np.asarray(self.interpreter.get_output(0))
        affine = _affine(self.output_details[0])
        if np.issubdtype(out.dtype, np.integer) and affine:
            out = (out.astype(np.float32) - affine[1]) * affine[0]
        return [out.astype(np.float32)]

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run every sample (single-input models) and stack the first output."""
        arrays = list(x.values()) if isinstance(x, Mapping) else [np.asarray(x)]
        if len(arrays) != 1:
            raise InvalidModelError(f"the TFLite Micro evaluation runner takes single-input models. Received: "
                                    f"{len(arrays)} inputs. Evaluate on the host runtime instead.")
        outs = [self.run(arrays[0][i : i + 1])[0] for i in range(len(arrays[0]))]
        return [np.stack([o[0] if o.shape and o.shape[0] == 1 else o for o in outs])]
