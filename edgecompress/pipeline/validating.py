"""``validate``: evaluate an int8 ``.tflite`` against its float reference, per layer, optionally re-export with
the worst layers in float, and write the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecompress.atomic import atomic_write_bytes, atomic_write_text, check_output
from edgecompress.errors import CalibrationError
from edgecompress.pipeline.targets import (
    runtime_for_target,
)


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
    chosen, notes = runtime_for_target(target, runtime)
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
    if html is not None:
        check_output(html, model_path, data, reference, calibration)
    fix_path = Path(fix_out) if fix_out else model_path.with_name(f"{model_path.stem}_float_fallback.tflite")
    if fix is not None:
        check_output(fix_path, model_path, data, reference, calibration)
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
        from edgecompress.conversion.requantize import calibrate, quantize, weights_per_channel
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
        atomic_write_bytes(fix_path, fixed)
        fix_result.output = str(fix_path)
    result = ValidationResult(str(model_path), evaluation, ref.to_dict() if ref else None, layers,
                              model_summary(tflite), target, fix_result, notes)
    if html is not None:
        from edgecompress.report.html import Report

        atomic_write_text(Path(html), Report.from_validation(result).to_html())
    return result
