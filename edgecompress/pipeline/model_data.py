"""Data for a loaded model: read with its input names and shapes; ONNX models also take their NCHW layout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgecompress.errors import CalibrationError


def calibration_mismatch_warnings(calibration: Any, evaluation: Any) -> list[str]:
    """Warnings when the calibration data does not look like the evaluation data (input value ranges)."""
    from edgecompress.load.dataset import input_range_warning

    warnings = []
    for name, arr in evaluation.x.items():
        data = calibration.x.get(name) if name in calibration.x else calibration.first
        view = type(calibration)({name: data}, None, calibration.source)
        warning = input_range_warning(view, (float(arr.min()), float(arr.max())))
        if warning:
            warnings.append(warning + f" (compared with the evaluation data {evaluation.source})")
    return warnings


def degenerate_calibration_warnings(calibration: Any) -> list[str]:
    """Warnings for calibration inputs with no spread: constant over the whole set (all zeros, say), or every
    sample constant; ranges chosen from them fit no real input, and the int8 model comes out near chance.

    Example:
        >>> from edgecompress.samples import Dataset
        >>> import numpy as np
        >>> degenerate_calibration_warnings(Dataset({"input": np.zeros((4, 2))}, None, "zeros.npz"))[0][:40]
        'zeros.npz: calibration input "input" is'
    """
    import numpy as np

    warnings = []
    for name, arr in calibration.x.items():
        values = np.asarray(arr, dtype=np.float64).reshape(len(arr), -1)
        if not values.size:
            continue
        if float(values.max()) == float(values.min()):
            warnings.append(f"{calibration.source}: calibration input \"{name}\" is constant ({float(values.max()):g}) "
                            f"in all {len(values)} samples; the activation ranges calibrated on it are degenerate "
                            "and the int8 model will be near chance. Pass real representative samples.")
        elif not np.any(values.std(axis=1) > 0):
            warnings.append(f"{calibration.source}: every sample of calibration input \"{name}\" is constant (zero "
                            "variance); the activation ranges calibrated on it are degenerate. Pass real "
                            "representative samples.")
    return warnings


def model_data(spec: Any, loaded: Any, preprocess: Mapping[str, Any] | None, purpose: str) -> Any:
    """Load data for ``loaded``; ONNX models accept their own NCHW layout too (see ``to_model_layout``)."""
    from edgecompress.load.dataset import load_data

    if loaded.source_format == "onnx":
        dataset = load_data(spec, preprocess=preprocess, purpose=purpose)
        return to_model_layout(dataset, loaded)
    return load_data(spec, input_names=loaded.input_names, input_shapes=loaded.input_shapes,
                     preprocess=preprocess, purpose=purpose)


def to_model_layout(dataset: Any, loaded: Any) -> Any:
    """ONNX models come out of onnx2tf channels-last: transpose NCHW data to NHWC when that makes it fit."""
    if loaded.source_format != "onnx":
        return dataset
    fixed = {}
    for (name, arr), shape in zip(dataset.x.items(), loaded.input_shapes, strict=False):
        expected = tuple(shape)
        if arr.ndim == 4 and tuple(arr.shape[1:]) != expected and (arr.shape[2], arr.shape[3], arr.shape[1]) == expected:
            arr = arr.transpose(0, 2, 3, 1)
            note = f"input '{name}' data transposed from NCHW to NHWC"
            if note not in loaded.notes:
                loaded.notes.append(note)
        if tuple(arr.shape[1:]) != expected:
            raise CalibrationError(f"{dataset.source}: expected samples of shape {expected} (NHWC) or the ONNX "
                                   f"NCHW layout for input '{name}'. Received: shape={tuple(arr.shape[1:])}.")
        fixed[loaded.input_names[len(fixed)]] = arr
    return type(dataset)(fixed, dataset.y, dataset.source)
