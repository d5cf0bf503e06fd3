"""``demo``: train the digits CNN, export, evaluate, check every target, bench, and write the report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.atomic import atomic_directory, check_output_set
from edgecompress.pipeline.compressing import int8_bytes
from edgecompress.pipeline.targets import (
    check_all_targets,
    check_row,
    latency_rows,
)
from edgecompress.pipeline.timing import StageTimer

DEMO_SEED = 0


DEMO_EPOCHS = 30
# everything a demo run writes: a previous run's directory holding only these is replaced as one set
DEMO_FILES = frozenset({"model.keras", "model_float.tflite", "model_int8.tflite", "report.json", "report.html",
                        "compressed.keras", "compressed_int8.tflite"})


@dataclasses.dataclass
class DemoResult:
    """What ``demo`` measured; ``to_dict()`` is the content of ``report.json``.

    Args:
        model: what was trained, in words.
        train_samples: size of the digits training split.
        test_samples: size of the held-out split everything is evaluated on.
        calibration: ``{"file", "samples"}`` of the shipped calibration set.
        epochs: training epochs.
        seed: the seed for weights and shuffling.
        keras_top1: top-1 of the Keras model on the held-out split.
        float_top1: top-1 of the float32 ``.tflite``.
        int8_top1: top-1 of the int8 ``.tflite``.
        drop_points: ``float_top1 - int8_top1`` in points.
        agreement: top-1 agreement of int8 with the Keras model.
        cosine_mean: mean cosine similarity of the int8 outputs with the Keras model's.
        float_bytes: size of the float32 ``.tflite``.
        int8_bytes: size of the int8 ``.tflite``.
        full_int8: whether the int8 flatbuffer is full int8.
        int8_io: dtypes of the int8 model's inputs and outputs.
        operators: operator histogram of the int8 model.
        total_macs: multiply-accumulates of one inference.
        timings_s: seconds per stage.
        files: the files written under the output directory.
        worst_layers: the three layers with the largest quantization error (``LayerError.to_dict()``).
        error_diagnosis: where the int8 error is, in words.
        weights_only_snr_db: output SNR with int8 weights and float activations.
        targets: one ``check_row`` per shipped target.
        compressed: the recipe's compressed model, when a recipe was given.
        latency: ``latency_rows`` of the float and int8 models.

    Example:
        >>> demo("build/demo").to_dict()["files"][0]  # doctest: +SKIP
        'model.keras'
    """

    model: str
    train_samples: int
    test_samples: int
    calibration: dict[str, Any]
    epochs: int
    seed: int
    keras_top1: float
    float_top1: float | None
    int8_top1: float | None
    drop_points: float
    agreement: float | None
    cosine_mean: float | None
    float_bytes: int
    int8_bytes: int
    full_int8: bool
    int8_io: list[str]
    operators: dict[str, int]
    total_macs: int
    timings_s: dict[str, float]
    files: list[str]
    worst_layers: list[dict[str, Any]]
    error_diagnosis: str | None
    weights_only_snr_db: float | None
    targets: list[dict[str, Any]]
    compressed: dict[str, Any] | None = None
    latency: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as ``report.json`` holds it (``compressed`` only when a recipe ran)."""
        data = dataclasses.asdict(self)
        if self.compressed is None:
            del data["compressed"]
        return data


def build_demo_model(input_shape: tuple[int, ...] = (8, 8, 1), classes: int = 10) -> Any:
    """The demo's small CNN for 8x8 digits: two convolutions, pooling and a dense classifier."""
    import keras

    return keras.Sequential([
        keras.Input(shape=input_shape, name="input"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(64, activation="relu", name="dense"),
        keras.layers.Dense(classes, activation="softmax", name="probs"),
    ], name="digits_cnn")


def train_demo_model(train: Any, *, epochs: int = DEMO_EPOCHS, seed: int = DEMO_SEED) -> Any:
    """Train the demo CNN on the digits training split with fixed seeds."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_demo_model(tuple(train.first.shape[1:]))
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    return model


def demo(out: str | Path = "build/demo", *, epochs: int = DEMO_EPOCHS, seed: int = DEMO_SEED,
         recipe: str | Path | None = None) -> DemoResult:
    """Train the digits CNN, export it to full int8 on the shipped calibration set, evaluate and report.

    Args:
        out: output directory for ``model.keras``, ``model_float.tflite``, ``model_int8.tflite`` and
            ``report.json``.
        epochs: training epochs.
        seed: the seed for weights and shuffling.
        recipe: a compression recipe to run on the trained model too; the compressed model is exported,
            evaluated and reported beside the plain int8 one (``compressed.keras``, ``compressed_int8.tflite``).

    Returns:
        A ``DemoResult`` (its ``to_dict()`` is also written to ``report.json``).

    Example:
        >>> report = demo("build/demo")  # doctest: +SKIP
        >>> report.int8_top1 >= report.float_top1 - 0.01  # doctest: +SKIP
        True
    """
    from edgecompress.conversion.converter import convert, convert_float
    from edgecompress.load.dataset import digits_dataset, load_data, shipped_calibration
    from edgecompress.tflite import read_model
    from edgecompress.validate.evaluate import evaluate

    out_dir = check_output_set(out, replaces=DEMO_FILES)
    timer = StageTimer()
    train, test = digits_dataset()
    calib_file = shipped_calibration("digits") / "digits_calibration.npz"
    with timer.stage("train"):
        model = train_demo_model(train, epochs=epochs, seed=seed)
    calibration = load_data(calib_file, input_names=["input"], input_shapes=[(8, 8, 1)])
    with timer.stage("convert"):
        float_bytes = convert_float(model)
        result = convert(model, calibration)
    with timer.stage("evaluate"):
        float_eval = evaluate(float_bytes, test)
        int8_eval = evaluate(result.tflite, test, reference=model)
        keras_top1 = float(np.mean(model.predict(test.first, verbose=0).argmax(1) == test.y))
    with timer.stage("layers"):
        from edgecompress.validate.layers import layer_errors

        layers = layer_errors(result.tflite, float_bytes, test)
    with timer.stage("check"):
        checks = check_all_targets(result.tflite, test.first[:20])
    info = read_model(result.tflite)
    report = DemoResult(
        model="digits_cnn (sklearn digits, 8x8x1, 10 classes)",
        train_samples=len(train),
        test_samples=len(test),
        calibration={"file": f"calibration/digits/{calib_file.name}", "samples": len(calibration)},
        epochs=epochs,
        seed=seed,
        keras_top1=keras_top1,
        float_top1=float_eval.top1,
        int8_top1=int8_eval.top1,
        drop_points=round(100.0 * (float_eval.top1 - int8_eval.top1), 4),
        agreement=int8_eval.agreement,
        cosine_mean=int8_eval.cosine_mean,
        float_bytes=len(float_bytes),
        int8_bytes=len(result.tflite),
        full_int8=info.is_full_int8,
        int8_io=[t.dtype for t in (info.tensors[i] for i in info.inputs + info.outputs)],
        operators=info.to_dict().get("op_histogram", {}),
        total_macs=info.total_macs,
        timings_s=timer.seconds,
        files=["model.keras", "model_float.tflite", "model_int8.tflite", "report.json", "report.html"],
        worst_layers=[layer.to_dict() for layer in layers.layers[:3]],
        error_diagnosis=layers.diagnosis,
        weights_only_snr_db=layers.weights_only_snr_db,
        targets=[check_row(c) for c in checks],
    )
    with atomic_directory(out_dir, replaces=DEMO_FILES) as set_dir:
        model.save(set_dir / "model.keras")
        (set_dir / "model_float.tflite").write_bytes(float_bytes)
        (set_dir / "model_int8.tflite").write_bytes(result.tflite)
        if recipe is not None:
            with timer.stage("compress"):
                report.compressed = _demo_compressed(model, recipe, train, test, calibration, len(float_bytes),
                                                     set_dir)
            report.files += ["compressed.keras", "compressed_int8.tflite"]
        with timer.stage("bench"):
            report.latency = latency_rows(set_dir / "model_int8.tflite", set_dir / "model_float.tflite")
        report.timings_s = timer.seconds
        data = report.to_dict()
        (set_dir / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        (set_dir / "report.html").write_text(_demo_report(data, float_eval, int8_eval, layers).to_html(),
                                             encoding="utf-8")
    return report


def _demo_compressed(model: Any, recipe: str | Path, train: Any, test: Any, calibration: Any, float_bytes: int,
                     out_dir: Path) -> dict[str, Any]:
    import gzip

    from edgecompress.compress.recipe import load_recipe, run_recipe
    from edgecompress.conversion.converter import convert
    from edgecompress.tflite import read_model
    from edgecompress.validate.evaluate import evaluate

    final, rows = run_recipe(model, load_recipe(recipe), train, test, export=int8_bytes)
    tflite = convert(final, calibration).tflite
    evaluation = evaluate(tflite, test, reference=model)
    float_gzip = len(gzip.compress((out_dir / "model_float.tflite").read_bytes(), 9))
    final.save(out_dir / "compressed.keras")
    (out_dir / "compressed_int8.tflite").write_bytes(tflite)
    info = read_model(tflite)
    return {"recipe": str(recipe), "stages": [row.to_dict() for row in rows], "int8_top1": evaluation.top1,
            "agreement_with_float": evaluation.agreement, "int8_bytes": len(tflite),
            "gzip_bytes": len(gzip.compress(tflite, 9)), "float_gzip_bytes": float_gzip,
            "gzip_ratio_vs_float": round(float_gzip / len(gzip.compress(tflite, 9)), 2),
            "total_macs": info.total_macs, "full_int8": info.is_full_int8, "float_bytes": float_bytes}


def _demo_report(report: dict[str, Any], float_eval: Any, int8_eval: Any, layers: Any) -> Any:
    from edgecompress.report.html import Report

    model = {"model": report["model"], "int8_bytes": report["int8_bytes"], "float_bytes": report["float_bytes"],
             "full_int8": report["full_int8"], "int8_io": report["int8_io"], "operators": report["operators"],
             "total_macs": report["total_macs"], "calibration": report["calibration"]["file"]}
    accuracy = [{"name": "float32 .tflite", **float_eval.to_dict()}, {"name": "int8 .tflite", **int8_eval.to_dict()}]
    notes = [f"per-layer: {layers.matched} of {layers.int8_tensors} int8 tensors matched a float tensor, over "
             f"{layers.samples} held-out samples"]
    if layers.diagnosis:
        notes.append(f"where the int8 error is: {layers.diagnosis}")
    return Report(f"edgecompress demo: {report['model']}", model, accuracy, [lay.to_dict() for lay in layers.layers],
                  int8_eval.confusion, checks=report.get("targets"),
                  latency=[{"target": f"{r['target']} ({r['dtype'] or 'int8'})", "ms": r["median_ms"], "kind": r["evidence"]}
                           for r in report.get("latency", [])], notes=notes)
