"""Run a TFLite model on this machine with the LiteRT interpreter (ai-edge-litert).

``HostRunner`` takes float inputs, quantizes them for int8/uint8 input tensors with the tensor's own scale and
zero point, invokes, and dequantizes the outputs, so callers always compare float values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.errors import InvalidModelError, ToolchainError


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Float -> integer with a tensor's affine parameters (round half away from zero, then saturate)."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer -> float with a tensor's affine parameters."""
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


class HostRunner:
    """The LiteRT interpreter on the host, with int8 I/O handled.

    Args:
        model: the flatbuffer bytes or a path to a ``.tflite`` file.
        threads: interpreter threads (None: LiteRT's default).

    Example:
        >>> runner = HostRunner("model_int8.tflite")  # doctest: +SKIP
        >>> probs = runner.predict(x_test)[0]  # doctest: +SKIP
    """

    def __init__(self, model: bytes | str | os.PathLike[str], *, threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ToolchainError("ai-edge-litert is not installed; reinstall edgecompress.") from exc
        if isinstance(model, bytes | bytearray):
            self.model_bytes = bytes(model)
            self.name = "<bytes>"
        else:
            self.name = str(model)
            self.model_bytes = Path(model).read_bytes()
        try:
            with captured_output():
                self.interpreter = Interpreter(model_content=self.model_bytes, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InvalidModelError(f"{self.name}: LiteRT could not load the model ({exc}).") from exc
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()

    def _set_inputs(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> None:
        arrays = self._match_inputs(inputs)
        for detail, arr in zip(self.input_details, arrays, strict=True):
            shape = tuple(detail["shape"])
            arr = np.asarray(arr)
            if arr.ndim == len(shape) - 1:
                arr = arr[None]
            dtype = detail["dtype"]
            if np.issubdtype(dtype, np.integer) and not np.issubdtype(arr.dtype, np.integer):
                scale, zero_point = detail["quantization"]
                arr = quantize(arr, scale, zero_point, dtype)
            self.interpreter.set_tensor(detail["index"], arr.astype(dtype, copy=False).reshape(shape))

    def _match_inputs(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if not isinstance(inputs, Mapping):
            return [inputs]
        if len(self.input_details) == 1 and len(inputs) == 1:
            return [next(iter(inputs.values()))]
        ordered = []
        for detail in self.input_details:
            name = detail["name"]
            match = next((v for k, v in inputs.items() if k == name or name.startswith(f"serving_default_{k}")
                          or name.split(":")[0] == k or k in name), None)
            if match is None:
                raise ValueError(f"no input data for model input '{name}' (given: {', '.join(inputs)})")
            ordered.append(match)
        return ordered

    def run_raw(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Invoke once on one sample and return the outputs in their stored dtype."""
        self._set_inputs(inputs)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self.output_details]

    def run(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Invoke once on one sample and return float (dequantized) outputs."""
        outputs = self.run_raw(inputs)
        result = []
        for detail, out in zip(self.output_details, outputs, strict=True):
            if np.issubdtype(out.dtype, np.integer) and detail["quantization"][0]:
                scale, zero_point = detail["quantization"]
                out = dequantize(out, scale, zero_point)
            result.append(out.astype(np.float32, copy=False))
        return result

    def predict(self, x: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run every sample of a batch (one invoke each) and stack the float outputs."""
        arrays: dict[str, np.ndarray] = dict(x) if isinstance(x, Mapping) else {"input": np.asarray(x)}
        count = len(next(iter(arrays.values())))
        stacked: list[list[np.ndarray]] = [[] for _ in self.output_details]
        for i in range(count):
            outs = self.run({k: v[i : i + 1] for k, v in arrays.items()})
            for slot, out in zip(stacked, outs, strict=True):
                slot.append(out[0] if out.shape and out.shape[0] == 1 else out)
        return [np.stack(slot) for slot in stacked]

    def describe(self) -> dict[str, Any]:
        return {"inputs": [(d["name"], d["shape"].tolist(), np.dtype(d["dtype"]).name) for d in self.input_details],
                "outputs": [(d["name"], d["shape"].tolist(), np.dtype(d["dtype"]).name) for d in self.output_details]}
