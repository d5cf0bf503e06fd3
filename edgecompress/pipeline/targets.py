"""Target-facing wiring: check against profiles, write the firmware sources of TFLite Micro targets, bench rows,
and the evaluation runtime a target implies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.bench import bench as bench_model
from edgecompress.check.checker import check_model, list_targets, load_profile, parse_params

__all__ = ["bench_model", "check_all_targets", "check_and_write_target_files", "check_model", "check_row",
           "latency_rows", "list_targets", "load_profile", "parse_params", "runtime_for_target"]


def check_and_write_target_files(tflite: bytes, out_path: Path, target: str, params: dict[str, Any],
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


def check_row(check: Any) -> dict[str, Any]:
    data = check.to_dict()
    memory = data.get("memory", {})
    detail = "; ".join(memory.get("exceeded", [])) or ", ".join(
        f"{op['op']}: {op['reason']}" for op in data.get("operators", []) if op.get("placement") != "accelerator")
    return {"target": data["target"], "verdict": data["verdict"], "answered_by": data["answered_by"],
            "counts": data.get("counts", {}), "memory_verdict": memory.get("verdict"), "detail": detail[:300]}


def runtime_for_target(target: str | None, runtime: str | None) -> tuple[str, list[str]]:
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
