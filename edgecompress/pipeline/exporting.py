"""``export``: load -> convert (calibrated full int8) -> write -> optional target check and evaluation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgecompress.atomic import atomic_write_bytes, check_output
from edgecompress.errors import CalibrationError, OutputError
from edgecompress.pipeline.model_data import (
    calibration_mismatch_warnings,
    degenerate_calibration_warnings,
    model_data,
)
from edgecompress.pipeline.targets import (
    check_and_write_target_files,
)
from edgecompress.pipeline.timing import StageTimer


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


def export(model: str | Path, calibration: Any, out: str | Path | None = None, *, io_dtype: str | None = None,
           allow_float_fallback: bool = False, safe_mode: bool = True, evaluation: Any = None,
           preprocess: Mapping[str, Any] | None = None, max_samples: int = 500,
           target: str | None = None, target_params: Mapping[str, Any] | None = None,
           calibration_method: str = "minmax", percentile: float = 99.99,
           bias_correction: bool = False, precision: str = "int8") -> ExportResult:
    """Load a model, convert it to a calibrated full-int8 ``.tflite`` and write it atomically.

    Args:
        model: a ``.keras``/``.h5``/``.onnx`` file or a SavedModel directory.
        calibration: representative data (anything ``load_data`` accepts).
        out: output path (default: ``<model name>_int8.tflite`` in the current directory).
        io_dtype: "int8", "uint8" or "float32" input/output tensors ("int16" or "float32" for 16x8); default
            int8 for int8 and int16 for 16x8.
        allow_float_fallback: write a mixed model when some operators cannot be int8.
        safe_mode: Keras safe mode for loading (keep it on for untrusted files).
        evaluation: optional evaluation data (with labels for top-1) to compare int8 against float.
        preprocess: image-folder preprocessing (size, channels, scale, mean, std, channel_order).
        max_samples: calibrate on at most this many samples.
        calibration_method: how activation ranges are chosen: "minmax" (the bare converter), "percentile",
            "mse", "kl" or "auto" (see ``edgecompress.conversion.ptq``).
        percentile: for "percentile" (and the percentile candidate of "auto").
        bias_correction: correct Conv/Dense biases for the mean shift of int8 weight rounding.
        precision: "int8" or "16x8" (int16 activations, int8 weights; min/max ranges only).

    Returns:
        An ``ExportResult``.

    Example:
        >>> export("model.keras", "calibration/digits/digits_calibration.npz", "model_int8.tflite")  # doctest: +SKIP
    """
    from edgecompress.conversion.converter import convert
    from edgecompress.errors import ConversionError
    from edgecompress.load.dataset import load_data
    from edgecompress.pipeline.loading import load_model
    from edgecompress.tflite import read_model

    if precision == "16x8" and (calibration_method != "minmax" or bias_correction):
        # The range methods freeze 8-bit fake-quant ranges into the graph; with 65536 levels per int16 tensor the
        # min/max range wastes little, and the 16x8 converter mode does not take those 8-bit nodes.
        raise ConversionError("--precision 16x8 uses the converter's own min/max int16 ranges; "
                              f"--calibration-method {calibration_method}"
                              f"{' and --bias-correction' if bias_correction else ''} are for int8 only. "
                              "Drop them or use --precision int8.")
    if io_dtype is None:
        io_dtype = "int16" if precision == "16x8" else "int8"
    timer = StageTimer()
    model_path = Path(model)
    out_path = check_output(out if out is not None else f"{model_path.stem or 'model'}_int8.tflite", model_path,
                            calibration, evaluation)
    requested, opaque_note = calibration_method, None
    if calibration_method != "minmax" or bias_correction:
        from edgecompress.conversion.ptq import OPAQUE_SOURCES, opaque_graph_message
        from edgecompress.load.model import detect_format

        if detect_format(model_path) in OPAQUE_SOURCES:  # before any work: the method cannot see inside
            if calibration_method != "auto" or bias_correction:
                raise CalibrationError(opaque_graph_message(str(model_path), calibration_method, bias_correction))
            requested, calibration_method = "auto", "minmax"  # the one method that applies: auto's only choice
            opaque_note = (f"auto chose minmax: {model_path.name} is a SavedModel/ONNX graph, which loads as one "
                           "opaque layer, so the per-layer methods (percentile, mse, kl) cannot run on it")
    with timer.stage("load"):
        raw = None
        if model_path.suffix.lower() == ".onnx":
            raw = load_data(calibration, preprocess=preprocess)
        loaded = load_model(model_path, safe_mode=safe_mode, calibration=raw)
        calib = model_data(raw if raw is not None else calibration, loaded, preprocess, "calibration")
        eval_data = None
        if evaluation is not None:
            from edgecompress.validate.evaluate import refuse_labels_outside

            eval_data = model_data(evaluation, loaded, preprocess, "evaluation")
            if eval_data.y is not None:  # before anything is written: a wrong label file is a wrong command
                classes = math.prod(int(d or 1) for d in loaded.model.outputs[0].shape[1:])
                refuse_labels_outside(eval_data.y, classes, eval_data.source)
    with timer.stage("convert"):
        if calibration_method == "minmax" and not bias_correction:
            result = convert(loaded, calib, io_dtype=io_dtype, allow_float_fallback=allow_float_fallback,
                             max_samples=max_samples, precision=precision)
            calibration_summary = {"method": "minmax", "requested": requested, "engine": "converter min/max",
                                   "samples": result.calibration_samples,
                                   "warnings": [opaque_note] if opaque_note else []}
        else:
            from edgecompress.conversion.ptq import calibrate_and_convert

            result, report = calibrate_and_convert(
                loaded, calib, method=calibration_method, percentile=percentile, bias_correction=bias_correction,
                io_dtype=io_dtype, allow_float_fallback=allow_float_fallback, max_samples=max_samples)
            calibration_summary = report.to_dict()
    calibration_summary.setdefault("warnings", [])[:0] = degenerate_calibration_warnings(calib)
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
            try:
                check_summary, extra_files = check_and_write_target_files(result.tflite, out_path, target,
                                                                           dict(target_params or {}), calib)
            except OutputError as exc:
                raise OutputError(f"{exc} (The model was not written either.)") from exc
    # written after the target check, so a check that fails (a tool error) leaves no .tflite behind; a model the
    # target cannot run is still a correct int8 model and is kept (the CLI says so and exits 4)
    with timer.stage("write"):
        atomic_write_bytes(out_path, result.tflite)
    evaluation_summary = None
    if evaluation is not None:
        from edgecompress.validate.evaluate import evaluate

        with timer.stage("evaluate"):
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
