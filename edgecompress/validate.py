"""Accuracy of a converted model against labels and against its float reference.

``evaluate`` runs every sample through the TFLite model on the host LiteRT interpreter and compares its
outputs with the labels (top-1) and with a float reference's outputs (top-1 agreement, cosine similarity).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from edgecompress.calibration import Dataset, load_data


@dataclasses.dataclass
class Evaluation:
    """Accuracy figures of one model on one dataset.

    Args:
        n: samples evaluated.
        top1: top-1 accuracy of the evaluated model against labels (None without labels).
        reference_top1: top-1 accuracy of the float reference (None without labels or reference).
        agreement: fraction of samples whose top-1 class matches the reference's (None without reference).
        cosine_mean: mean cosine similarity of output vectors to the reference's.
        cosine_min: worst cosine similarity of any sample.
        max_abs_error: largest absolute difference from the reference's outputs.
        runtime: where the model ran.
    """

    n: int
    top1: float | None
    reference_top1: float | None
    agreement: float | None
    cosine_mean: float | None
    cosine_min: float | None
    max_abs_error: float | None
    runtime: str = "host-litert"

    @property
    def drop_points(self) -> float | None:
        if self.top1 is None or self.reference_top1 is None:
            return None
        return round(100.0 * (self.reference_top1 - self.top1), 4)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "drop_points": self.drop_points}


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float(np.mean(outputs.reshape(len(labels), -1).argmax(axis=1) == labels))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two batches (1.0 where both rows are zero)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(den > 0, num / np.where(den > 0, den, 1), np.where(num == 0, 1.0, 0.0))
    return cos


def reference_outputs(reference: Any, data: Dataset) -> np.ndarray:
    """First-output float predictions of a reference: a Keras model, a float ``.tflite`` or an array."""
    if isinstance(reference, np.ndarray):
        return reference
    if isinstance(reference, bytes | bytearray | str | os.PathLike):
        from edgecompress.runtimes.host import HostRunner

        return HostRunner(reference).predict(data.x)[0]
    model = getattr(reference, "model", reference)
    arrays = list(data.x.values())
    fixed_batch = model.inputs[0].shape[0] if getattr(model, "inputs", None) else None
    out = model.predict(arrays if len(arrays) > 1 else arrays[0], batch_size=fixed_batch or 64, verbose=0)
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if isinstance(out, list | tuple):
        out = out[0]
    return np.asarray(out, np.float32)


def evaluate(tflite: bytes | str | os.PathLike[str], data: Any, reference: Any = None,
             *, threads: int | None = None) -> Evaluation:
    """Evaluate a TFLite model on the host LiteRT interpreter.

    Args:
        tflite: the flatbuffer bytes or a path.
        data: a ``Dataset`` (or anything ``load_data`` accepts) with optional labels.
        reference: the float model to compare with: a Keras model, ``LoadedModel``, float ``.tflite`` or an array
            of its outputs.
        threads: interpreter threads.

    Returns:
        An ``Evaluation``.

    Example:
        >>> ev = evaluate("model_int8.tflite", test, reference=keras_model)  # doctest: +SKIP
        >>> round(ev.agreement, 3)  # doctest: +SKIP
        0.998
    """
    from edgecompress.runtimes.host import HostRunner

    dataset = data if isinstance(data, Dataset) else load_data(data, purpose="evaluation")
    outputs = HostRunner(tflite, threads=threads).predict(dataset.x)[0]
    labels = dataset.y
    top1 = top1_accuracy(outputs, labels) if labels is not None else None
    if reference is None:
        return Evaluation(len(dataset), top1, None, None, None, None, None)
    ref = reference_outputs(reference, dataset).reshape(outputs.shape)
    agreement = float(np.mean(ref.reshape(len(ref), -1).argmax(1) == outputs.reshape(len(outputs), -1).argmax(1)))
    cos = cosine_similarity(outputs, ref)
    return Evaluation(
        n=len(dataset),
        top1=top1,
        reference_top1=top1_accuracy(ref, labels) if labels is not None else None,
        agreement=agreement,
        cosine_mean=float(np.mean(cos)),
        cosine_min=float(np.min(cos)),
        max_abs_error=float(np.max(np.abs(outputs - ref))),
    )
