"""Accuracy of a converted model against labels and against its float reference.

``evaluate`` runs every sample through the TFLite model on a runtime (the host LiteRT interpreter, or the real
TFLite Micro interpreter for microcontroller targets) and compares its outputs with the labels (top-1, top-5,
confusion matrix) and with a float reference's outputs (top-1 agreement, cosine similarity, SNR in dB, max abs
error). ``load_reference`` turns a float model file (Keras, SavedModel, ONNX through onnxruntime, float ``.tflite``)
into reference outputs and, where it can, a float ``.tflite`` for the per-layer comparison in ``layer_error``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from edgecompress.errors import CalibrationError, ToolchainError
from edgecompress.metrics import cosine_similarity
from edgecompress.samples import Dataset, as_dataset


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
        runtime: where the model ran ("host-litert" or "tflite-micro").
        top5: top-5 accuracy against labels (None without labels or with fewer than 6 classes).
        reference_top5: the reference's top-5 accuracy.
        snr_db: signal-to-noise ratio of the outputs against the reference's, in dB (capped at 120).
        confusion: confusion matrix (rows: true label, columns: predicted), None without labels.
    """

    n: int
    top1: float | None
    reference_top1: float | None
    agreement: float | None
    cosine_mean: float | None
    cosine_min: float | None
    max_abs_error: float | None
    runtime: str = "host-litert"
    top5: float | None = None
    reference_top5: float | None = None
    snr_db: float | None = None
    confusion: list[list[int]] | None = None

    @property
    def drop_points(self) -> float | None:
        if self.top1 is None or self.reference_top1 is None:
            return None
        return round(100.0 * (self.reference_top1 - self.top1), 4)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "drop_points": self.drop_points}


def refuse_labels_outside(labels: np.ndarray, classes: int, source: str) -> None:
    """Raise ``CalibrationError`` when a label is negative or not below the model's number of output classes.

    A top-1 against labels the model can never predict is 0 for both models, so a ``--max-drop`` would pass.

    Example:
        >>> refuse_labels_outside(np.array([0, 9]), 10, "test.npz")
    """
    labels = np.asarray(labels)
    if not len(labels):
        return
    low, high = int(np.min(labels)), int(np.max(labels))
    if low < 0 or high >= classes:
        bad = int(np.sum((labels < 0) | (labels >= classes)))
        raise CalibrationError(f"{source}: expected labels in 0..{classes - 1} (the model has {classes} outputs). "
                               f"Received: {bad} of {len(labels)} labels outside (min {low}, max {high}). Fix the "
                               "labels or pass the data that belongs to this model.")


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float(np.mean(outputs.reshape(len(labels), -1).argmax(axis=1) == labels))


def topk_accuracy(outputs: np.ndarray, labels: np.ndarray, k: int = 5) -> float | None:
    """Fraction of rows whose ``k`` highest scores include the label (None when there are at most ``k`` classes).

    Example:
        >>> topk_accuracy(np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]]), np.array([2]), k=5)
        1.0
    """
    scores = outputs.reshape(len(labels), -1)
    if scores.shape[1] <= k:
        return None
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(best == np.asarray(labels)[:, None], axis=1)))


def confusion_matrix(outputs: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """Counts of (true label, predicted class) pairs, classes = the output width."""
    scores = outputs.reshape(len(labels), -1)
    classes = max(scores.shape[1], int(np.max(labels)) + 1 if len(labels) else 0)
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), scores.argmax(axis=1)), 1)
    return matrix.tolist()


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


RUNTIMES = ("host", "micro")


def model_runner(tflite: bytes | str | os.PathLike[str], runtime: str = "host", *, threads: int | None = None,
                 arena_size: int | None = None) -> Any:
    """The interpreter that evaluates a model: host LiteRT ("host") or TFLite Micro ("micro")."""
    if runtime == "host":
        from edgecompress.runtimes.host import HostRunner

        runner = HostRunner(tflite, threads=threads)
        runner.runtime_name = "host-litert"
        return runner
    if runtime == "micro":
        from edgecompress.runtimes.micro_eval import MicroEvalRunner

        runner = MicroEvalRunner(tflite, arena_size=arena_size)
        runner.runtime_name = "tflite-micro"
        return runner
    raise ToolchainError(f"runtime must be one of {', '.join(RUNTIMES)}. Received: {runtime!r}.")


def evaluate(tflite: bytes | str | os.PathLike[str], data: Any, reference: Any = None,
             *, threads: int | None = None, runtime: str = "host", arena_size: int | None = None,
             runner: Any = None) -> Evaluation:
    """Evaluate a TFLite model on the host LiteRT interpreter.

    Args:
        tflite: the flatbuffer bytes or a path.
        data: a ``Dataset`` with optional labels, or arrays keyed by input name (``edgecompress.evaluate`` also
            takes anything ``load_data`` accepts).
        reference: the float model to compare with: a Keras model, ``LoadedModel``, float ``.tflite`` or an array
            of its outputs.
        threads: interpreter threads (host runtime).
        runtime: "host" (LiteRT) or "micro" (TFLite Micro).
        arena_size: TFLite Micro tensor arena bytes.
        runner: a factory ``tflite -> runner`` with ``predict`` and ``runtime_name`` (e.g. a device over ssh);
            overrides ``runtime``.

    Returns:
        An ``Evaluation``.

    Example:
        >>> ev = evaluate("model_int8.tflite", test, reference=keras_model)  # doctest: +SKIP
        >>> round(ev.agreement, 3)  # doctest: +SKIP
        0.998
    """
    from edgecompress.metrics import snr_db

    dataset = as_dataset(data)
    runner = runner(tflite) if runner is not None else model_runner(tflite, runtime, threads=threads,
                                                                     arena_size=arena_size)
    outputs = runner.predict(dataset.x)[0]
    labels = dataset.y
    if labels is not None:
        refuse_labels_outside(labels, outputs.reshape(len(labels), -1).shape[1], dataset.source)
    top1 = top1_accuracy(outputs, labels) if labels is not None else None
    top5 = topk_accuracy(outputs, labels) if labels is not None else None
    confusion = confusion_matrix(outputs, labels) if labels is not None else None
    if reference is None:
        return Evaluation(len(dataset), top1, None, None, None, None, None, runner.runtime_name, top5,
                          confusion=confusion)
    ref = reference_outputs(reference, dataset)
    if ref.size != outputs.size:
        raise CalibrationError(f"the reference produced outputs of shape {tuple(ref.shape)} but the model "
                               f"produced {tuple(outputs.shape)}. Pass the float model this .tflite came from.")
    ref = ref.reshape(outputs.shape)
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
        runtime=runner.runtime_name,
        top5=top5,
        reference_top5=topk_accuracy(ref, labels) if labels is not None else None,
        snr_db=round(snr_db(ref, outputs), 3),
        confusion=confusion,
    )


def model_summary(tflite: bytes) -> dict[str, Any]:
    """What a ``.tflite`` is, from the interpreter: size, I/O dtypes, operator histogram, float operators."""
    from edgecompress.runtimes.host import HostRunner

    runner = HostRunner(tflite)
    interpreter = runner.interpreter
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    histogram: dict[str, int] = {}
    float_ops = 0
    for op in interpreter._get_ops_details():
        if op["op_name"] == "DELEGATE":
            continue
        histogram[op["op_name"]] = histogram.get(op["op_name"], 0) + 1
        if any(np.dtype(tensors[o]["dtype"]) == np.float32 for o in op["outputs"] if o in tensors):
            float_ops += 1
    return {"size_bytes": len(tflite),
            "inputs": [{"name": d["name"], "shape": d["shape"].tolist(), "dtype": np.dtype(d["dtype"]).name}
                       for d in runner.input_details],
            "outputs": [{"name": d["name"], "shape": d["shape"].tolist(), "dtype": np.dtype(d["dtype"]).name}
                        for d in runner.output_details],
            "op_histogram": histogram, "float_operators": float_ops}


@dataclasses.dataclass
class FixResult:
    """Before/after numbers of re-exporting with the worst layers kept in float.

    Args:
        method: "float-fallback".
        float_tensors: the tensors whose producing operators stayed float.
        float_ops: their operator types, in the same order.
        before: the evaluated model's figures.
        reexport: the same calibration re-exported without fallback (separates the fix from re-calibration).
        after: the re-export with those operators in float.
        tflite: the fixed flatbuffer (written by the pipeline).
    """

    method: str
    float_tensors: list[str]
    float_ops: list[str]
    before: Evaluation
    reexport: Evaluation
    after: Evaluation
    tflite: bytes = dataclasses.field(repr=False, default=b"")
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "float_tensors": self.float_tensors, "float_ops": self.float_ops,
                "before": self.before.to_dict(), "reexport": self.reexport.to_dict(),
                "after": self.after.to_dict(), "bytes": len(self.tflite), "output": self.output}


@dataclasses.dataclass
class ValidationResult:
    """Everything ``edgecompress validate`` measured.

    Args:
        model: path of the evaluated ``.tflite``.
        evaluation: its accuracy against labels and the reference.
        reference: the reference's description (None without a reference).
        layers: per-layer error (None when no float ``.tflite`` counterpart exists).
        summary: what the model file is (size, I/O dtypes, operators).
        target: the target profile name, if given.
        fix: the float-fallback before/after, if requested.
        notes: what the user should know (runtime choice, unavailable parts).
    """

    model: str
    evaluation: Evaluation
    reference: dict[str, Any] | None
    layers: Any
    summary: dict[str, Any]
    target: str | None = None
    fix: FixResult | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        ev = self.evaluation.to_dict()
        return {
            "model": self.model,
            "runtime": ev["runtime"],
            "target": self.target,
            "n": ev["n"],
            "top1": ev["top1"],
            "reference_top1": ev["reference_top1"],
            "top5": ev["top5"],
            "reference_top5": ev["reference_top5"],
            "drop_points": ev["drop_points"],
            "agreement": ev["agreement"],
            "cosine_mean": ev["cosine_mean"],
            "cosine_min": ev["cosine_min"],
            "snr_db": ev["snr_db"],
            "max_abs_error": ev["max_abs_error"],
            "confusion": ev["confusion"],
            "layers": self.layers.to_dict()["layers"] if self.layers is not None else [],
            "layer_matching": ({k: v for k, v in self.layers.to_dict().items() if k != "layers"}
                               if self.layers is not None else None),
            "reference": self.reference,
            "summary": self.summary,
            "fix": self.fix.to_dict() if self.fix is not None else None,
            "notes": self.notes,
        }


def gated_drop(evaluation: Evaluation) -> float | None:
    """The figure ``--max-drop`` compares with: the top-1 drop in points, or without labels the points of
    top-1 disagreement with the reference (100 * (1 - agreement))."""
    if evaluation.drop_points is not None:
        return evaluation.drop_points
    if evaluation.agreement is not None:
        return round(100.0 * (1.0 - evaluation.agreement), 4)
    return None
