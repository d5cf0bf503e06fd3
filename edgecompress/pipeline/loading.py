"""Model loading as the pipeline does it: our compression wrappers are registered with Keras first, so a model
saved mid-compression (pruned, clustered, QAT-wrapped) loads like any other."""

from __future__ import annotations

import os
from typing import Any

from edgecompress.load.model import LoadedModel
from edgecompress.load.model import load_model as _load_model


def load_model(path: str | os.PathLike[str], *, safe_mode: bool = True, calibration: Any = None) -> LoadedModel:
    """``edgecompress.load.model.load_model`` with the compression wrappers registered (same arguments).

    Args:
        path: a ``.keras`` or ``.h5`` file, a SavedModel directory, or an ``.onnx`` file.
        safe_mode: keep Keras safe mode on (refuses Lambda layers and arbitrary code).
        calibration: for ONNX models, sample inputs onnx2tf uses for its own checks.

    Returns:
        A ``LoadedModel``.

    Example:
        >>> loaded = load_model("pruned.keras")  # doctest: +SKIP
    """
    from edgecompress.compress import register_serializables

    register_serializables()
    return _load_model(path, safe_mode=safe_mode, calibration=calibration)


def evaluate(tflite: Any, data: Any, reference: Any = None, **options: Any) -> Any:
    """``edgecompress.validate.evaluate.evaluate`` on data from anything ``load_data`` accepts (files included).

    Example:
        >>> evaluate("model_int8.tflite", "test.npz", reference=keras_model)  # doctest: +SKIP
    """
    from edgecompress.load.dataset import load_data
    from edgecompress.validate.evaluate import evaluate as _evaluate

    return _evaluate(tflite, load_data(data, purpose="evaluation"), reference, **options)
