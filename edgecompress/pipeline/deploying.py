"""``deploy``: the whole flow in one call: export (calibrated full int8) -> check and bench per target.

Built on ``export`` (exporting.py) and the target wiring (targets.py); nothing here converts, checks or times on
its own. The result is frozen: what was measured cannot be edited before it is reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecompress.errors import ProfileError
from edgecompress.pipeline.exporting import export
from edgecompress.pipeline.targets import bench_model, check_model, list_targets, load_profile

__all__ = ["DeployResult", "TargetResult", "deploy"]


@dataclasses.dataclass(frozen=True)
class TargetResult:
    """One target's answer for the deployed model.

    Args:
        target: the profile name.
        verdict: ``"accelerated"``, ``"fallback"`` or ``"unsupported"`` (as ``edgecompress check``).
        answered_by: ``"rules"`` or the real tool that decided (Vela, TFLite Micro, edgetpu_compiler).
        exit_code: the exit code ``edgecompress check`` gives for this verdict (0, 3, 4).
        latency_ms: the median of the target's best latency evidence, None when there is none.
        latency_evidence: what ``latency_ms`` is (``compiler-estimate``, ``model-estimate``, ...).
        latency_notes: what the reader must know about that figure (estimate status, error range).
        check: the full ``CheckReport.to_dict()``.
    """

    target: str
    verdict: str
    answered_by: str
    exit_code: int
    latency_ms: float | None
    latency_evidence: str | None
    latency_notes: tuple[str, ...]
    check: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "verdict": self.verdict, "answered_by": self.answered_by,
                "exit_code": self.exit_code, "latency_ms": self.latency_ms,
                "latency_evidence": self.latency_evidence, "latency_notes": list(self.latency_notes),
                "check": self.check}


@dataclasses.dataclass(frozen=True)
class DeployResult:
    """What ``deploy`` produced.

    Args:
        output: path of the written full-int8 ``.tflite``.
        source_size_bytes: the source model's size on disk (file, or every file of a SavedModel directory).
        int8_size_bytes: the ``.tflite`` file's size.
        accuracy: int8 top-1 on the evaluation data (None without labelled evaluation data).
        float_accuracy: the float model's top-1 on the same data (None likewise).
        agreement: fraction of evaluation samples whose int8 top-1 matches the float model's (None without
            evaluation data).
        targets: one ``TargetResult`` per requested target, in the order asked.
        export: the underlying ``ExportResult.to_dict()`` (calibration, conversion, timings).
    """

    output: Path
    source_size_bytes: int
    int8_size_bytes: int
    accuracy: float | None
    float_accuracy: float | None
    agreement: float | None
    targets: tuple[TargetResult, ...]
    export: dict[str, Any]

    @property
    def exit_code(self) -> int:
        """The worst ``edgecompress check`` exit code over the targets (0 when every target accelerates)."""
        return max((t.exit_code for t in self.targets), default=0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of everything in the result."""
        return {"output": str(self.output), "source_size_bytes": self.source_size_bytes,
                "int8_size_bytes": self.int8_size_bytes, "accuracy": self.accuracy,
                "float_accuracy": self.float_accuracy, "agreement": self.agreement,
                "targets": [t.to_dict() for t in self.targets],
                "exit_code": self.exit_code, "export": self.export}

    def report(self) -> str:
        """The terminal text: file and sizes, accuracy, one line per target with verdict and latency evidence."""
        from edgecompress.report.terminal import deploy_text

        return deploy_text(self.to_dict())


def _size_on_disk(path: Path) -> int:
    if path.is_dir():  # a SavedModel directory
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _target_result(output: Path, tflite: bytes, name: str) -> TargetResult:
    report = check_model(tflite, load_profile(name))
    rows = bench_model(output, name, runs=20, warmup=3)
    # bench_model puts the target's best evidence first; the host timing is never the device's figure
    best = next((r for r in rows if r.median_ms is not None and r.evidence != "measured-host"), None)
    return TargetResult(target=name, verdict=report.verdict, answered_by=report.answered_by,
                        exit_code=report.exit_code, latency_ms=None if best is None else best.median_ms,
                        latency_evidence=None if best is None else best.evidence,
                        latency_notes=() if best is None else tuple(best.notes), check=report.to_dict())


def deploy(model: str | Path, data: Any, targets: Sequence[str], out: str | Path | None = None, *,
           calibration_method: str = "minmax", eval_data: Any = None, safe_mode: bool = True,
           max_samples: int = 500) -> DeployResult:
    """Export a model to a calibrated full-int8 ``.tflite``, then check and bench it for every target.

    Args:
        model: a ``.keras``/``.h5``/``.onnx`` file or a SavedModel directory.
        data: representative calibration data (anything ``load_data`` accepts: ``.npz``, image folder, ...).
        targets: profile names (``edgecompress targets`` lists them), or ``["all"]``.
        out: output ``.tflite`` path (default: ``<model name>_int8.tflite`` in the current directory).
        calibration_method: "minmax", "percentile", "mse", "kl" or "auto" (see ``export``).
        eval_data: optional labelled evaluation data for int8 and float top-1.
        safe_mode: Keras safe mode for loading (keep it on for untrusted files).
        max_samples: calibrate on at most this many samples.

    Returns:
        A frozen ``DeployResult``; ``.report()`` is the terminal text, ``.to_dict()`` the JSON form.

    Example:
        >>> result = deploy("model.keras", "calib.npz", targets=["raspberry-pi-5", "esp32-s3"])  # doctest: +SKIP
        >>> print(result.report())  # doctest: +SKIP
    """
    names = list(targets)
    if not names:
        raise ProfileError("deploy: expected at least one target name. Received: targets=[]. "
                           "Pass e.g. targets=['raspberry-pi-5'] (`edgecompress targets` lists them).")
    if names == ["all"]:
        names = list_targets()
    profiles = [load_profile(name) for name in names]  # a mistyped target fails before any conversion
    exported = export(model, data, out, safe_mode=safe_mode, evaluation=eval_data, max_samples=max_samples,
                      calibration_method=calibration_method)
    tflite = exported.output.read_bytes()
    results = tuple(_target_result(exported.output, tflite, profile.name) for profile in profiles)
    evaluation = exported.evaluation or {}
    return DeployResult(output=exported.output, source_size_bytes=_size_on_disk(Path(model)),
                        int8_size_bytes=len(tflite), accuracy=evaluation.get("top1"),
                        float_accuracy=evaluation.get("reference_top1"),
                        agreement=evaluation.get("agreement"), targets=results, export=exported.to_dict())
