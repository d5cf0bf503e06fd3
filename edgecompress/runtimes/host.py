"""Run a TFLite model on this machine with the LiteRT interpreter (ai-edge-litert).

``HostRunner`` takes float inputs, quantizes them for int8/uint8 input tensors with the tensor's own scale and
zero point, invokes, and dequantizes the outputs, so callers always compare float values.

``HostDevice`` is the latency runner for this machine (the ``Runner`` interface of ``runtimes.runner``): LiteRT
with its default XNNPACK delegate and the requested thread count, ``warmup`` untimed invocations, then ``runs``
timed ones on seeded random inputs. Host figures are host figures: an x86 CPU says little about an Arm board.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.errors import CalibrationError, InvalidModelError, ToolchainError
from edgecompress.runtimes.runner import Measurement, Timings
from edgecompress.samples import match_inputs


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Float -> integer with a tensor's affine parameters (round half away from zero, then saturate)."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer -> float with a tensor's affine parameters."""
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def shape_mismatch_message(model: str, expected: tuple[int, ...], received: tuple[int, ...]) -> str:
    """One line for data whose sample shape differs from the model's, naming a channels-first layout.

    Args:
        model: the model's name, for the message.
        expected: the model's per-sample input shape (no batch axis).
        received: the data's per-sample shape.

    Returns:
        The message, with the ``np.moveaxis`` fix when the data is the channels-first form of the input.

    Example:
        >>> "channels-first" in shape_mismatch_message("m.tflite", (8, 8, 1), (1, 8, 8))
        True
    """
    expected, received = tuple(int(v) for v in expected), tuple(int(v) for v in received)
    message = f"{model}: expected samples of shape {expected}. Received: shape={received}."
    if len(expected) == 3 and received == (expected[2], expected[0], expected[1]):
        return (f"{message} The data is channels-first (NCHW) and the model channels-last (NHWC): save it as "
                "np.moveaxis(x, 1, -1).")
    return f"{message} Reshape the data to the model's input shape."


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
            if arr.shape != shape and sorted(arr.shape) == sorted(shape):
                # a reshape would scramble the pixels silently: (1, 3, 96, 96) into (1, 96, 96, 3)
                raise CalibrationError(shape_mismatch_message(self.name, shape[1:], arr.shape[1:]))
            dtype = detail["dtype"]
            if np.issubdtype(dtype, np.integer) and not np.issubdtype(arr.dtype, np.integer):
                scale, zero_point = detail["quantization"]
                arr = quantize(arr, scale, zero_point, dtype)
            self.interpreter.set_tensor(detail["index"], arr.astype(dtype, copy=False).reshape(shape))

    def _match_inputs(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return match_inputs(self.input_details, inputs)

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

    def random_inputs(self, seed: int = 0) -> list[np.ndarray]:
        """One seeded random input per model input, already in the tensor's dtype and shape."""
        rng = np.random.default_rng(seed)
        arrays = []
        for detail in self.input_details:
            shape = [int(d) if d > 0 else 1 for d in detail["shape"]]
            dtype = np.dtype(detail["dtype"])
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                arrays.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype))
            else:
                arrays.append(rng.standard_normal(size=shape).astype(dtype))
        return arrays

    def time_invocations(self, *, runs: int = 50, warmup: int = 5, seed: int = 0) -> Timings:
        """Invoke ``warmup`` times untimed, then ``runs`` times timed, on seeded random inputs.

        Args:
            runs: timed invocations (at least 1).
            warmup: untimed invocations first (caches, XNNPACK weight packing).
            seed: seed of the random inputs.

        Returns:
            ``Timings`` with one wall time per timed invocation (``time.perf_counter_ns``).

        Example:
            >>> HostRunner("m.tflite", threads=1).time_invocations(runs=20).median_ms  # doctest: +SKIP
            0.41
        """
        import time

        for detail, arr in zip(self.input_details, self.random_inputs(seed), strict=True):
            self.interpreter.set_tensor(detail["index"], arr)
        for _ in range(max(0, warmup)):
            self.interpreter.invoke()
        samples = []
        for _ in range(max(1, runs)):
            start = time.perf_counter_ns()
            self.interpreter.invoke()
            samples.append((time.perf_counter_ns() - start) / 1e6)
        return Timings.from_samples(samples, warmup=warmup)

    def describe(self) -> dict[str, Any]:
        return {"inputs": [(d["name"], d["shape"].tolist(), np.dtype(d["dtype"]).name) for d in self.input_details],
                "outputs": [(d["name"], d["shape"].tolist(), np.dtype(d["dtype"]).name) for d in self.output_details]}


def _litert_version() -> str:
    try:
        from importlib.metadata import version

        return f"ai_edge_litert {version('ai-edge-litert')}"
    except Exception:  # metadata missing in a vendored install: the name alone still says which runtime
        return "ai_edge_litert"


class HostDevice:
    """The latency runner for this machine: LiteRT + XNNPACK in this process.

    Example:
        >>> HostDevice().measure("m.tflite", runs=20, warmup=2, threads=1).timings.median_ms  # doctest: +SKIP
        0.41
    """

    device = "host"

    def measure(self, model: str | os.PathLike[str], *, runs: int = 50, warmup: int = 5,
                threads: int | None = None) -> Measurement:
        """Load ``model``, time it and return a ``Measurement`` (peak RSS is this process's peak so far).

        Args:
            model: a ``.tflite`` path.
            runs / warmup: timed and untimed invocations.
            threads: interpreter threads (None: LiteRT's default).

        Returns:
            The ``Measurement`` with ``device="host"``.
        """
        import platform
        import resource
        import time

        start = time.perf_counter()
        runner = HostRunner(model, threads=threads)
        init_ms = (time.perf_counter() - start) * 1000.0
        timings = runner.time_invocations(runs=runs, warmup=warmup)
        dtype = np.dtype(runner.input_details[0]["dtype"]).name if runner.input_details else ""
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return Measurement(model=Path(model).name, dtype=dtype, timings=timings,
                           device=f"host ({platform.machine()})", runtime=_litert_version(), threads=threads,
                           init_ms=init_ms, peak_rss_bytes=rss,
                           notes=["peak RSS is the whole edgecompress process, not the model alone"])
