"""The float reference ``validate`` compares with: loaded, converted to float ``.tflite`` for the per-layer error,
and run on the evaluation data. Wiring: it calls load, convert and a runtime, so it lives in the pipeline."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import EdgeCompressError, LoadError, ToolchainError
from edgecompress.samples import Dataset
from edgecompress.validate.evaluate import reference_outputs


@dataclasses.dataclass
class Reference:
    """A float reference model, ready to compare with.

    Args:
        path: where it came from.
        kind: "keras", "h5", "savedmodel", "onnx" or "tflite".
        outputs: its first-output predictions on the evaluation data.
        float_tflite: a float ``.tflite`` of the same network for the per-layer comparison (None if unavailable).
        notes: what happened (layout transposes, why per-layer comparison is unavailable).
    """

    path: str
    kind: str
    outputs: np.ndarray
    float_tflite: bytes | None
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "per_layer": self.float_tflite is not None,
                "notes": self.notes}


def load_reference(path: str | os.PathLike[str], data: Dataset, *, safe_mode: bool = True) -> Reference:
    """Load a float reference model and run it on ``data`` (NHWC samples, as the int8 model takes them).

    Args:
        path: a float ``.tflite``, a ``.keras``/``.h5`` file, a SavedModel directory or an ``.onnx`` file (run with
            onnxruntime; NHWC samples are transposed to the ONNX model's NCHW input).
        data: evaluation samples in the int8 model's layout.
        safe_mode: Keras safe mode for loading.

    Returns:
        A ``Reference``.

    Example:
        >>> ref = load_reference("model.keras", test)  # doctest: +SKIP
        >>> ref.outputs.shape  # doctest: +SKIP
        (360, 10)
    """
    source = Path(path)
    if not source.exists():
        raise LoadError(f"{source}: reference model not found. Pass the float model the .tflite was made from.")
    if source.suffix.lower() == ".tflite":
        from edgecompress.runtimes.host import HostRunner

        float_bytes = source.read_bytes()
        runner = HostRunner(float_bytes)
        dtypes = {np.dtype(d["dtype"]).name for d in runner.input_details + runner.output_details}
        if dtypes - {"float32"}:
            raise LoadError(f"{source}: expected a float32 .tflite as the reference. Received: a model with "
                            f"{', '.join(sorted(dtypes))} inputs/outputs. Pass the float model instead.")
        return Reference(str(source), "tflite", runner.predict(data.x)[0], float_bytes)
    if source.suffix.lower() == ".onnx":
        return Reference(str(source), "onnx", _onnx_outputs(source, data), *_onnx_float_tflite(source, data))
    from edgecompress.conversion.converter import convert_float
    from edgecompress.pipeline.loading import load_model

    loaded = load_model(source, safe_mode=safe_mode)
    _check_sample_shapes(source, loaded.input_names, loaded.input_shapes, data)
    outputs = reference_outputs(loaded.model, data)
    notes: list[str] = []
    try:
        float_bytes: bytes | None = convert_float(loaded.model)
    except EdgeCompressError as exc:
        float_bytes = None
        notes.append(f"per-layer error unavailable: the reference did not convert to a float .tflite ({exc})")
    return Reference(str(source), loaded.source_format, outputs, float_bytes, notes)


def _onnx_float_tflite(path: Path, data: Dataset) -> tuple[bytes | None, list[str]]:
    """The float ``.tflite`` the per-layer error compares with: the ONNX model through the same offline onnx2tf
    path ``export`` takes, so its tensors carry the names the int8 export's do."""
    from edgecompress.conversion.converter import convert_float
    from edgecompress.pipeline.loading import load_model

    note = ("outputs compared with onnxruntime; per-layer error against the float .tflite of the same onnx2tf "
            "conversion export uses")
    try:
        return convert_float(load_model(path, calibration=data.take(20)).model), [note]
    except EdgeCompressError as exc:
        return None, [f"per-layer error unavailable: the ONNX reference did not convert to a float .tflite ({exc})"]


def _onnx_outputs(path: Path, data: Dataset) -> np.ndarray:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ToolchainError("onnxruntime is not installed; install the 'onnx' extra: "
                             "pip install 'edgecompress[onnx]'.") from exc
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise LoadError(f"{path}: onnxruntime could not load the model ({str(exc).splitlines()[0][:200]}).") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(data.x) != 1:
        raise LoadError(f"{path}: ONNX references with one input are supported. Received: {len(inputs)} inputs.")
    x = next(iter(data.x.values()))
    shape = inputs[0].shape
    if x.ndim == 4 and len(shape) == 4 and isinstance(shape[1], int) and shape[1] == x.shape[3] != x.shape[1]:
        x = x.transpose(0, 3, 1, 2)
    batch_fixed = isinstance(shape[0], int)
    outs = []
    step = 1 if batch_fixed else 64
    for i in range(0, len(x), step):
        outs.append(session.run(None, {inputs[0].name: np.ascontiguousarray(x[i : i + step], np.float32)})[0])
    return np.concatenate(outs).astype(np.float32)


def _check_sample_shapes(source: Path, names: list[str], shapes: list[Any], data: Dataset) -> None:
    """One clear line, not Keras' traceback, when the data's sample shape is not the reference's input shape."""
    from edgecompress.errors import CalibrationError
    from edgecompress.runtimes.host import shape_mismatch_message

    arrays = list(data.x.values())
    for name, expected in zip(names, shapes, strict=True):
        array = data.x.get(name, arrays[0] if len(arrays) == 1 else None)
        if array is None or any(v is None for v in expected):
            continue
        received = tuple(np.asarray(array).shape[1:])
        if received != tuple(expected):
            raise CalibrationError(shape_mismatch_message(str(source), tuple(expected), received))
