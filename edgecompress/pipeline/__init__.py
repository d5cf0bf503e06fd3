"""The one module that calls the stages in order and writes files: load -> (compress) -> convert -> validate.

Every output is written atomically (``edgecompress.atomic``): an interrupted run leaves nothing at the output
path that looks finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from edgecompress.errors import CalibrationError

DEMO_SEED = 0
DEMO_EPOCHS = 30


@dataclasses.dataclass
class StageTimer:
    """Wall time per pipeline stage, in seconds."""

    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)


@dataclasses.dataclass
class ExportResult:
    """What ``export`` produced.

    Args:
        output: path of the written ``.tflite``.
        source: the loaded model's description.
        conversion: the converter's result summary.
        model: the flatbuffer's summary (operators, tensors, full-int8 verdict).
        evaluation: accuracy on evaluation data, when given.
        timings: seconds per stage.
        extra_files: other files written (e.g. microcontroller sources).
        calibration: how the activation ranges were chosen (``CalibrationReport.to_dict()``).
        check: the target check (``CheckReport.to_dict()``) when a target was given.
    """

    output: Path
    source: dict[str, Any]
    conversion: dict[str, Any]
    model: dict[str, Any]
    evaluation: dict[str, Any] | None
    timings: dict[str, float]
    extra_files: list[str] = dataclasses.field(default_factory=list)
    calibration: dict[str, Any] | None = None
    check: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "source": self.source, "conversion": self.conversion,
                "calibration": self.calibration, "model": self.model, "evaluation": self.evaluation,
                "timings": self.timings, "extra_files": self.extra_files, "check": self.check}


# Top-1 disagreement with the float model on --eval above which export points at validate.
EVAL_LOSS_WORTH_A_LOOK = 0.01


def export(model: str | Path, calibration: Any, out: str | Path | None = None, *, io_dtype: str = "int8",
           allow_float_fallback: bool = False, safe_mode: bool = True, evaluation: Any = None,
           preprocess: Mapping[str, Any] | None = None, max_samples: int = 500,
           target: str | None = None, target_params: Mapping[str, Any] | None = None,
           calibration_method: str = "minmax", percentile: float = 99.99,
           bias_correction: bool = False) -> ExportResult:
    """Load a model, convert it to a calibrated full-int8 ``.tflite`` and write it atomically.

    Args:
        model: a ``.keras``/``.h5``/``.onnx`` file or a SavedModel directory.
        calibration: representative data (anything ``load_data`` accepts).
        out: output path (default: ``<model name>_int8.tflite`` in the current directory).
        io_dtype: "int8", "uint8" or "float32" input/output tensors.
        allow_float_fallback: write a mixed model when some operators cannot be int8.
        safe_mode: Keras safe mode for loading (keep it on for untrusted files).
        evaluation: optional evaluation data (with labels for top-1) to compare int8 against float.
        preprocess: image-folder preprocessing (size, channels, scale, mean, std, channel_order).
        max_samples: calibrate on at most this many samples.
        calibration_method: how activation ranges are chosen: "minmax" (the bare converter), "percentile",
            "mse", "kl" or "auto" (see ``edgecompress.convert.calibrate``).
        percentile: for "percentile" (and the percentile candidate of "auto").
        bias_correction: correct Conv/Dense biases for the mean shift of int8 weight rounding.

    Returns:
        An ``ExportResult``.

    Example:
        >>> export("model.keras", "calibration/digits/digits_calibration.npz", "model_int8.tflite")  # doctest: +SKIP
    """
    from edgecompress.convert.converter import convert
    from edgecompress.load.dataset import load_data
    from edgecompress.pipeline.loading import load_model
    from edgecompress.tflite import read_model

    timer = StageTimer()
    model_path = Path(model)
    out_path = Path(out) if out is not None else Path(f"{model_path.stem or 'model'}_int8.tflite")
    with timer.stage("load"):
        raw = None
        if model_path.suffix.lower() == ".onnx":
            raw = load_data(calibration, preprocess=preprocess)
        loaded = load_model(model_path, safe_mode=safe_mode, calibration=raw)
        calib = _model_data(raw if raw is not None else calibration, loaded, preprocess, "calibration")
    with timer.stage("convert"):
        if calibration_method == "minmax" and not bias_correction:
            result = convert(loaded, calib, io_dtype=io_dtype, allow_float_fallback=allow_float_fallback,
                             max_samples=max_samples)
            calibration_summary = {"method": "minmax", "requested": "minmax", "engine": "converter min/max",
                                   "samples": result.calibration_samples, "warnings": []}
        else:
            from edgecompress.convert.calibrate import calibrate_and_convert

            result, report = calibrate_and_convert(
                loaded, calib, method=calibration_method, percentile=percentile, bias_correction=bias_correction,
                io_dtype=io_dtype, allow_float_fallback=allow_float_fallback, max_samples=max_samples)
            calibration_summary = report.to_dict()
    with timer.stage("write"):
        atomic_write_bytes(out_path, result.tflite)
    info = read_model(result.tflite)
    summary = info.to_dict()
    model_summary = {k: summary[k] for k in ("size_bytes", "param_count", "total_macs", "is_full_int8",
                                             "float_tensors", "op_histogram") if k in summary}
    model_summary["inputs"] = [{"name": t["name"], "shape": t["shape"], "dtype": t["dtype"]}
                               for t in summary.get("inputs", [])]
    model_summary["outputs"] = [{"name": t["name"], "shape": t["shape"], "dtype": t["dtype"]}
                                for t in summary.get("outputs", [])]
    extra_files: list[str] = []
    check_summary = None
    if target is not None:
        with timer.stage("check"):
            check_summary, extra_files = _check_and_write_target_files(result.tflite, out_path, target,
                                                                       dict(target_params or {}), calib)
    evaluation_summary = None
    if evaluation is not None:
        from edgecompress.validate.evaluate import evaluate

        with timer.stage("evaluate"):
            eval_data = _model_data(evaluation, loaded, preprocess, "evaluation")
            calibration_summary["warnings"].extend(calibration_mismatch_warnings(calib, eval_data))
            evaluation_summary = evaluate(result.tflite, eval_data, reference=loaded.model).to_dict()
            agreement = evaluation_summary.get("agreement")
            if agreement is not None and 1.0 - agreement > EVAL_LOSS_WORTH_A_LOOK:
                calibration_summary["warnings"].append(
                    f"the int8 model agrees with the float model on {100 * agreement:.2f}% of the --eval samples: "
                    f"`edgecompress validate {out_path.name} --reference {Path(model).name} --data EVAL` shows where "
                    "it loses them; when the error is spread over every tensor, --recipe qat in `edgecompress "
                    "compress` is the fix")
    return ExportResult(out_path, loaded.to_dict(), result.to_dict(), model_summary, evaluation_summary,
                        timer.seconds, extra_files=extra_files, calibration=calibration_summary,
                        check=check_summary)


def _check_and_write_target_files(tflite: bytes, out_path: Path, target: str, params: dict[str, Any],
                                  calibration: Any) -> tuple[dict[str, Any], list[str]]:
    """Check the exported model against ``target``; for TFLite Micro targets also write the firmware sources."""
    from edgecompress.check.checker import check_model, load_profile
    from edgecompress.tflite import read_model

    profile = load_profile(target, **params)
    report = check_model(tflite, profile, inputs=[arr[:8] for arr in calibration.x.values()])
    files: list[str] = []
    if profile.runtime == "tflm":
        from edgecompress.runtimes.micro import write_micro_artifacts

        memory = report.to_dict().get("memory", {})
        arena = memory.get("arena_bytes") or memory.get("arena_estimate_bytes")
        if arena:
            written = write_micro_artifacts(tflite, out_path.parent / f"{out_path.stem}_micro", read_model(tflite),
                                            int(arena))
            files = [str(path) for path in written.values()]
    return report.to_dict(), files


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


def _model_data(spec: Any, loaded: Any, preprocess: Mapping[str, Any] | None, purpose: str) -> Any:
    """Load data for ``loaded``; ONNX models accept their own NCHW layout too (see ``_to_model_layout``)."""
    from edgecompress.load.dataset import load_data

    if loaded.source_format == "onnx":
        dataset = load_data(spec, preprocess=preprocess, purpose=purpose)
        return _to_model_layout(dataset, loaded)
    return load_data(spec, input_names=loaded.input_names, input_shapes=loaded.input_shapes,
                     preprocess=preprocess, purpose=purpose)


def _to_model_layout(dataset: Any, loaded: Any) -> Any:
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


def compress(model: str | Path, recipe: str | Path, data: Any, out: str | Path, *, val: Any = None,
             safe_mode: bool = True, on_epoch: Any = None, engine: str = "keras") -> dict[str, Any]:
    """Run a compression recipe on a model file and save the result atomically as ``.keras``.

    Args:
        model: a ``.keras``/``.h5`` file or SavedModel directory (a trained float model).
        recipe: the recipe YAML.
        data: labelled training data (anything ``load_data`` accepts).
        out: the output ``.keras`` path.
        val: labelled validation data for per-stage accuracy (default: the training data).
        safe_mode: Keras safe mode for loading.
        on_epoch: progress callback ``(stage, epoch)``.
        engine: "keras" (ours, Keras 3) or "tfmot" (tfmot on a legacy ``tf_keras`` ``.h5``, in a subprocess;
            prune, cluster and qat stages; with qat the output is a full-int8 ``.tflite``, else an ``.h5``).

    Returns:
        ``{"output", "recipe", "stages": [StageResult.to_dict(), ...]}``.

    Example:
        >>> compress("model.keras", "recipe.yaml", "train.npz", "small.keras")  # doctest: +SKIP
    """
    from edgecompress.compress.recipe import load_recipe, run_recipe
    from edgecompress.load.dataset import load_data
    from edgecompress.pipeline.loading import load_model

    stages = load_recipe(recipe)
    if engine == "tfmot":
        from edgecompress.compress.tfmot_engine import run_tfmot
        from edgecompress.load.guard import refuse_code_in_h5

        if safe_mode and Path(model).suffix.lower() in (".h5", ".hdf5") and Path(model).is_file():
            refuse_code_in_h5(Path(model))
        return run_tfmot(Path(model), stages, load_data(data, purpose="evaluation"),
                         None if val is None else load_data(val, purpose="evaluation"), Path(out),
                         safe_mode=safe_mode, recipe=str(recipe))
    loaded = load_model(model, safe_mode=safe_mode)
    train = _model_data(data, loaded, None, "calibration")
    validation = _model_data(val, loaded, None, "evaluation") if val is not None else None
    if train.y is None:
        raise CalibrationError(f"{train.source}: compression fine-tunes on labels; add an integer array 'y'.")
    final, rows = run_recipe(loaded.model, stages, train, validation, on_epoch=on_epoch, export=_int8_bytes)
    with atomic_path(out) as tmp:
        final.save(tmp)
    return {"output": str(out), "recipe": str(recipe), "stages": [row.to_dict() for row in rows]}


def _int8_bytes(model: Any, calibration: Any) -> bytes:
    """The full-int8 export of a compression stage's model, for the per-stage size columns."""
    from edgecompress.convert.converter import convert

    return convert(model, calibration).tflite


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
         recipe: str | Path | None = None) -> dict[str, Any]:
    """Train the digits CNN, export it to full int8 on the shipped calibration set, evaluate and report.

    Args:
        out: output directory for ``model.keras``, ``model_float.tflite``, ``model_int8.tflite`` and
            ``report.json``.
        epochs: training epochs.
        seed: the seed for weights and shuffling.
        recipe: a compression recipe to run on the trained model too; the compressed model is exported,
            evaluated and reported beside the plain int8 one (``compressed.keras``, ``compressed_int8.tflite``).

    Returns:
        The report as a dict (also written to ``report.json``).

    Example:
        >>> report = demo("build/demo")  # doctest: +SKIP
        >>> report["int8_top1"] >= report["float_top1"] - 0.01  # doctest: +SKIP
        True
    """
    from edgecompress.convert.converter import convert, convert_float
    from edgecompress.load.dataset import digits_dataset, load_data, shipped_calibration
    from edgecompress.tflite import read_model
    from edgecompress.validate.evaluate import evaluate

    out_dir = Path(out)
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
    report = {
        "model": "digits_cnn (sklearn digits, 8x8x1, 10 classes)",
        "train_samples": len(train),
        "test_samples": len(test),
        "calibration": {"file": f"calibration/digits/{calib_file.name}", "samples": len(calibration)},
        "epochs": epochs,
        "seed": seed,
        "keras_top1": keras_top1,
        "float_top1": float_eval.top1,
        "int8_top1": int8_eval.top1,
        "drop_points": round(100.0 * (float_eval.top1 - int8_eval.top1), 4),
        "agreement": int8_eval.agreement,
        "cosine_mean": int8_eval.cosine_mean,
        "float_bytes": len(float_bytes),
        "int8_bytes": len(result.tflite),
        "full_int8": info.is_full_int8,
        "int8_io": [t.dtype for t in (info.tensors[i] for i in info.inputs + info.outputs)],
        "operators": info.to_dict().get("op_histogram", {}),
        "total_macs": info.total_macs,
        "timings_s": timer.seconds,
        "files": ["model.keras", "model_float.tflite", "model_int8.tflite", "report.json", "report.html"],
        "worst_layers": [layer.to_dict() for layer in layers.layers[:3]],
        "error_diagnosis": layers.diagnosis,
        "weights_only_snr_db": layers.weights_only_snr_db,
        "targets": [_check_row(c) for c in checks],
    }
    with atomic_path(out_dir / "model.keras") as tmp:
        model.save(tmp)
    atomic_write_bytes(out_dir / "model_float.tflite", float_bytes)
    atomic_write_bytes(out_dir / "model_int8.tflite", result.tflite)
    if recipe is not None:
        with timer.stage("compress"):
            report["compressed"] = _demo_compressed(model, recipe, train, test, calibration, len(float_bytes),
                                                    out_dir)
        report["files"] += ["compressed.keras", "compressed_int8.tflite"]
    with timer.stage("bench"):
        report["latency"] = latency_rows(out_dir / "model_int8.tflite", out_dir / "model_float.tflite")
    report["timings_s"] = timer.seconds
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "report.html", _demo_report(report, float_eval, int8_eval, layers).to_html())
    return report


def _demo_compressed(model: Any, recipe: str | Path, train: Any, test: Any, calibration: Any, float_bytes: int,
                     out_dir: Path) -> dict[str, Any]:
    import gzip

    from edgecompress.compress.recipe import load_recipe, run_recipe
    from edgecompress.convert.converter import convert
    from edgecompress.tflite import read_model
    from edgecompress.validate.evaluate import evaluate

    final, rows = run_recipe(model, load_recipe(recipe), train, test, export=_int8_bytes)
    tflite = convert(final, calibration).tflite
    evaluation = evaluate(tflite, test, reference=model)
    float_gzip = len(gzip.compress((out_dir / "model_float.tflite").read_bytes(), 9))
    with atomic_path(out_dir / "compressed.keras") as tmp:
        final.save(tmp)
    atomic_write_bytes(out_dir / "compressed_int8.tflite", tflite)
    info = read_model(tflite)
    return {"recipe": str(recipe), "stages": [row.to_dict() for row in rows], "int8_top1": evaluation.top1,
            "agreement_with_float": evaluation.agreement, "int8_bytes": len(tflite),
            "gzip_bytes": len(gzip.compress(tflite, 9)), "float_gzip_bytes": float_gzip,
            "gzip_ratio_vs_float": round(float_gzip / len(gzip.compress(tflite, 9)), 2),
            "total_macs": info.total_macs, "full_int8": info.is_full_int8, "float_bytes": float_bytes}


def latency_rows(int8_path: Path, float_path: Path | None = None) -> list[dict[str, Any]]:
    """Host-measured and per-target estimated latency, each row labelled with its evidence."""
    from edgecompress.bench import bench

    rows = bench(int8_path, "all", runs=50, warmup=5, float_model=float_path)
    return [{"target": r.target, "evidence": r.evidence, "dtype": r.dtype, "median_ms": r.median_ms,
             "p90_ms": r.p90_ms, "runs": r.runs, "notes": r.notes} for r in rows]


def check_all_targets(tflite: bytes, samples: np.ndarray | None = None) -> list[Any]:
    """``check`` the model against every shipped target profile (real tools answer where installed)."""
    from edgecompress.check.checker import check_model, list_targets, load_profile

    return [check_model(tflite, load_profile(name), inputs=None if samples is None else [samples])
            for name in list_targets()]


def _check_row(check: Any) -> dict[str, Any]:
    data = check.to_dict()
    memory = data.get("memory", {})
    detail = "; ".join(memory.get("exceeded", [])) or ", ".join(
        f"{op['op']}: {op['reason']}" for op in data.get("operators", []) if op.get("placement") != "accelerator")
    return {"target": data["target"], "verdict": data["verdict"], "answered_by": data["answered_by"],
            "counts": data.get("counts", {}), "memory_verdict": memory.get("verdict"), "detail": detail[:300]}


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


def _runtime_for_target(target: str | None, runtime: str | None) -> tuple[str, list[str]]:
    """The evaluation runtime: TFLite Micro for profiles whose runtime is ``tflm``, host LiteRT otherwise."""
    from edgecompress.check.checker import load_profile
    from edgecompress.errors import ProfileError

    if target is None:
        return runtime or "host", []
    profile = load_profile(target)
    chosen = "micro" if profile.runtime == "tflm" else "host"
    if runtime is not None and runtime != chosen:
        raise ProfileError(f"--target {target} runs on '{profile.runtime}', which validate evaluates with the "
                           f"{chosen} runtime. Received: --runtime {runtime}. Drop --runtime or --target.")
    notes = []
    if chosen == "micro":
        notes.append(f"target {target} runs TFLite Micro; accuracy was measured with the TFLite Micro interpreter "
                     "(reference kernels) on this machine")
    if chosen == "host" and profile.runtime != "litert":
        notes.append(f"target {target} runs on '{profile.runtime}'; accuracy was measured with the host LiteRT "
                     "int8 kernels, which use the same TFLite quantization arithmetic")
    return chosen, notes


def _device_runner(device: str | None, runtime: str | None, ssh_options: dict[str, Any] | None) -> Any:
    """A factory ``tflite -> runner`` for ``--device``, or None to run on this machine."""
    from edgecompress.errors import RemoteError

    if device is None:
        return None
    if runtime is not None:
        raise RemoteError(f"--device {device} runs the model with the device's interpreter. Received: --runtime "
                          f"{runtime} as well. Drop one of them.")
    if device.startswith("adb://"):
        raise RemoteError(f"--device {device}: accuracy over adb needs the model's outputs back from the phone, and "
                          "the Android benchmark_model binary only times the model. Validate on this machine (the "
                          "same TFLite int8 arithmetic) and use `edgecompress bench --device adb://...` for latency.")
    if not device.startswith("ssh://"):
        raise RemoteError(f"expected --device ssh://user@host[:port]. Received: {device!r}.")
    from edgecompress.runtimes.ssh import SshEvalRunner, SshRunner

    ssh = SshRunner(device, **(ssh_options or {}))
    return lambda tflite: SshEvalRunner(tflite, ssh)


def validate_model(model: str | Path, data: Any, reference: str | Path | None = None, *,
                   target: str | None = None, runtime: str | None = None, device: str | None = None,
                   arena_size: int | None = None, fix: str | None = None, fix_layers: int = 3,
                   calibration: Any = None, fix_out: str | Path | None = None, layer_samples: int = 64,
                   ssh_options: dict[str, Any] | None = None,
                   safe_mode: bool = True, html: str | Path | None = None) -> Any:
    """Validate an int8 ``.tflite`` against its float reference, per layer, and optionally fix the worst layers.

    Args:
        model: the int8 ``.tflite``.
        data: evaluation data (anything ``load_data`` accepts), in the ``.tflite``'s NHWC layout.
        reference: the float model (``.keras``/``.h5``/SavedModel/``.onnx``/float ``.tflite``).
        target: a target profile name; microcontroller profiles evaluate on TFLite Micro.
        runtime: "host" or "micro" (default: from the target, else host).
        device: ``ssh://user@host[:port]`` to run the int8 model on that device (adb:// is refused: no way to
            get outputs back from benchmark_model).
        arena_size: TFLite Micro arena bytes.
        fix: "float-fallback" to re-export with the ``fix_layers`` worst layers in float.
        fix_layers: how many of the worst layers to keep float.
        calibration: representative data for the re-export (required with ``fix``).
        fix_out: where the fixed ``.tflite`` goes (default ``<model>_float_fallback.tflite`` beside the model).
        layer_samples: samples traced for the per-layer error.
        safe_mode: Keras safe mode for loading the reference.
        html: write the self-contained HTML report here.
        ssh_options: ``SshRunner`` keyword arguments for ``device`` (identity, known_hosts, remote_python, ...).

    Returns:
        A ``ValidationResult``.

    Example:
        >>> result = validate_model("m_int8.tflite", "test.npz", "m.keras")  # doctest: +SKIP
        >>> result.evaluation.drop_points  # doctest: +SKIP
        0.28
    """
    from edgecompress.errors import CalibrationError
    from edgecompress.load.dataset import load_data
    from edgecompress.pipeline.reference import load_reference
    from edgecompress.validate.evaluate import FixResult, ValidationResult, evaluate, model_summary

    device_runner = _device_runner(device, runtime, ssh_options)
    if fix is not None and fix != "float-fallback":
        raise CalibrationError(f"--fix must be 'float-fallback'. Received: {fix!r}.")
    if fix is not None and (reference is None or calibration is None):
        raise CalibrationError("--fix float-fallback re-exports the model, so it needs the float model "
                               "(--reference) and representative data (--calibration). Received: "
                               f"reference={'given' if reference else 'missing'}, "
                               f"calibration={'given' if calibration is not None else 'missing'}.")
    chosen, notes = _runtime_for_target(target, runtime)
    if device_runner is not None and chosen == "micro":
        from edgecompress.errors import RemoteError

        raise RemoteError(f"--target {target} runs TFLite Micro, but --device {device} runs the board's LiteRT "
                          "interpreter. Drop --device to evaluate with TFLite Micro here, or pick a Linux target.")
    if device_runner is not None:
        chosen = "device"
        notes = [f"accuracy was measured on {device} with the device's own TFLite interpreter; the float reference "
                 "and the per-layer error ran on this machine"]
    model_path = Path(model)
    from edgecompress.errors import LoadError

    if not model_path.is_file():
        raise LoadError(f"{model_path}: model not found. Pass the int8 .tflite to validate.")
    tflite = model_path.read_bytes()
    dataset = load_data(data, purpose="evaluation")
    ref = load_reference(reference, dataset, safe_mode=safe_mode) if reference is not None else None
    evaluation = evaluate(tflite, dataset, reference=ref.outputs if ref else None, runtime=chosen,
                          arena_size=arena_size, runner=device_runner)
    layers = None
    if ref is not None and ref.float_tflite is not None:
        from edgecompress.validate.layers import layer_errors

        layers = layer_errors(tflite, ref.float_tflite, dataset, max_samples=layer_samples)
        if layers.diagnosis:
            notes.append(f"where the int8 error is: {layers.diagnosis}")
    if ref is not None:
        notes.extend(ref.notes)
    fix_result = None
    if fix is not None:
        if layers is None or not layers.layers:
            raise CalibrationError("--fix float-fallback needs the per-layer ranking, which needs a Keras or float "
                                   ".tflite reference. Received: a reference without a float .tflite counterpart.")
        from edgecompress.convert.requantize import calibrate, quantize, weights_per_channel
        from edgecompress.validate.layers import FALLBACK_WORTH_DB

        calib = load_data(calibration, purpose="calibration")
        calibrated = calibrate(ref.float_tflite, calib)
        io_dtype = model_summary(tflite)["inputs"][0]["dtype"]
        io_dtype = io_dtype if io_dtype in ("int8", "uint8") else "float32"
        worst = layers.layers[:fix_layers]
        per_channel = weights_per_channel(tflite)
        if not per_channel:
            notes.append("the model has per-tensor weights; the float-fallback re-export keeps them per-tensor")
        if max(layer.fallback_gain_db for layer in worst) < FALLBACK_WORTH_DB:
            notes.append(f"--fix float-fallback: the {len(worst)} layer(s) kept float were expected to gain under "
                         f"{FALLBACK_WORTH_DB:.0f} dB of output SNR each; see the before/after numbers")
        baseline = quantize(calibrated, [], io_dtype=io_dtype, per_channel=per_channel)
        fixed = quantize(calibrated, [layer.float_tensor for layer in worst], io_dtype=io_dtype,
                         per_channel=per_channel)
        fix_result = FixResult(
            "float-fallback", [layer.tensor for layer in worst], [layer.op for layer in worst], evaluation,
            evaluate(baseline, dataset, reference=ref.outputs, runtime=chosen, arena_size=arena_size,
                     runner=device_runner),
            evaluate(fixed, dataset, reference=ref.outputs, runtime=chosen, arena_size=arena_size,
                     runner=device_runner), fixed)
        out = Path(fix_out) if fix_out else model_path.with_name(f"{model_path.stem}_float_fallback.tflite")
        atomic_write_bytes(out, fixed)
        fix_result.output = str(out)
    result = ValidationResult(str(model_path), evaluation, ref.to_dict() if ref else None, layers,
                              model_summary(tflite), target, fix_result, notes)
    if html is not None:
        from edgecompress.report.html import Report

        atomic_write_text(Path(html), Report.from_validation(result).to_html())
    return result
