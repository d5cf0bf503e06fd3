"""Target-facing wiring: check against profiles (writing the compiled model a tool makes), write the firmware
sources of TFLite Micro targets, bench rows (check's placements feed the estimate), and the evaluation runtime a
target implies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.bench import (
    BEST_EVIDENCE,
    BenchRow,
    compiler_estimate,
    estimate_row,
    measured_rows,
    target_cost_model,
)
from edgecompress.check import checker
from edgecompress.check.checker import CheckReport
from edgecompress.errors import EdgeCompressError, ProfileError
from edgecompress.profile import (
    Profile,
    declared_params,
    list_targets,
    load_profile,
    micro_resolver_names,
    parse_params,
)

__all__ = ["bench_model", "check_all_targets", "check_and_write_target_files", "check_model", "check_row",
           "declared_params", "estimate", "latency_rows", "list_targets", "load_profile", "parse_params", "runtime_for_target",
           "write_micro_artifacts"]

# Role (what callers look a file up by) -> the firmware source's file name.
_MICRO_FILES = {"model_h": "model_data.h", "model_cc": "model_data.cc", "resolver": "op_resolver.h",
                "arena": "arena_size.h"}


def check_model(source: str | os.PathLike[str] | bytes, profile: Profile, *, use_tools: bool = True,
                inputs: Any = None, compiled_out: str | os.PathLike[str] | None = None) -> CheckReport:
    """Check a ``.tflite`` against a profile (``check.checker.check_model``) and write the tool's compiled model.

    Args:
        source: a ``.tflite`` path or the flatbuffer bytes.
        profile: a ``Profile``.
        use_tools: run the profile's ``tool`` (Vela, TFLite Micro, edgetpu_compiler) when installed.
        inputs: samples for TFLite Micro's agreement check (one ``(N, ...)`` array per input).
        compiled_out: where to write the tool's compiled model (Vela-optimised or Edge TPU ``.tflite``), if any.

    Returns:
        The ``CheckReport``; ``answered_by`` says whether the rules or a real tool decided.

    Example:
        >>> check_model("m.tflite", load_profile("ethos-u55"), compiled_out="m_vela.tflite").answered_by  # doctest: +SKIP
        'vela'
    """
    report = checker.check_model(source, profile, use_tools=use_tools, inputs=inputs)
    if compiled_out is not None and report.compiled_tflite is not None:
        from edgecompress.atomic import atomic_write_bytes

        atomic_write_bytes(compiled_out, report.compiled_tflite)
    return report


def write_micro_artifacts(tflite_bytes: bytes, out_dir: str | os.PathLike[str], model_info: Any,
                          arena_bytes: int, *, headroom: float = 0.1, name: str = "g_model") -> dict[str, Path]:
    """Write what a TFLite Micro firmware needs: the model as an aligned C array, an op resolver, the arena size.

    The texts come from ``toolchains.micro_source.micro_source_files`` (resolver names from the shared TFLM
    operator table); the four files replace an older set as one (``atomic_directory``).

    Args:
        tflite_bytes: the model flatbuffer.
        out_dir: output directory.
        model_info: the model's ``ModelInfo`` (operators used).
        arena_bytes: the measured (or estimated) tensor arena size.
        headroom: extra fraction added to the arena (0.1 = 10 %).
        name: C identifier of the model array.

    Returns:
        Mapping of file role (``"model_cc"``, ``"model_h"``, ``"resolver"``, ``"arena"``) to path.

    Example:
        >>> write_micro_artifacts(data, "out/", info, 3016)["resolver"].name  # doctest: +SKIP
        'op_resolver.h'
    """
    from edgecompress.atomic import atomic_directory
    from edgecompress.toolchains.micro_source import micro_source_files

    ops = list(dict.fromkeys(op.op for op in model_info.operators))
    texts = micro_source_files(tflite_bytes, micro_resolver_names(ops), arena_bytes, headroom=headroom, name=name)
    with atomic_directory(out_dir, replaces=set(_MICRO_FILES.values())) as tmp:
        for file in _MICRO_FILES.values():
            (tmp / file).write_text(texts[file], encoding="utf-8")
    return {role: Path(out_dir) / file for role, file in _MICRO_FILES.items()}


def check_and_write_target_files(tflite: bytes, out_path: Path, target: str, params: dict[str, Any],
                                  calibration: Any) -> tuple[dict[str, Any], list[str]]:
    """Check the exported model against ``target``; for TFLite Micro targets also write the firmware sources."""
    from edgecompress.tflite import read_model

    profile = load_profile(target, **params)
    report = check_model(tflite, profile, inputs=[arr[:8] for arr in calibration.x.values()])
    files: list[str] = []
    if profile.runtime == "tflm" and report.verdict != "unsupported":
        memory = report.to_dict().get("memory", {})
        arena = memory.get("arena_bytes") or memory.get("arena_estimate_bytes")
        if arena:
            written = write_micro_artifacts(tflite, out_path.parent / f"{out_path.stem}_micro", read_model(tflite),
                                            int(arena))
            files = [str(path) for path in written.values()]
    return report.to_dict(), files


def estimate(model: str | os.PathLike[str], target: str, *, threads: int | None = None,
             params: dict[str, Any] | None = None) -> BenchRow:
    """The ``model-estimate`` row for one target: operator placement from ``check``, cost from the profile.

    Args:
        model: a ``.tflite`` path.
        target: a profile name.
        threads: CPU threads (None: the profile's ``cost_model.threads``).
        params: profile parameters (``--param``).

    Returns:
        A ``BenchRow`` with ``evidence="model-estimate"`` and per-operator rows.

    Example:
        >>> estimate("m.tflite", "coral-edgetpu").median_ms  # doctest: +SKIP
        2.7
    """
    from edgecompress.tflite import read_model

    profile = load_profile(target, **(params or {}))
    target_cost_model(profile)  # a profile without a cost model fails before the model is read
    info = read_model(model)
    report = checker.check(info, profile)
    placements = [v.placement if v.placement != "unsupported" else "cpu" for v in report.operators]
    return estimate_row(Path(model).name, info, profile, placements, runs_as_is=report.verdict != "unsupported",
                        threads=threads)


def bench_model(model: str | os.PathLike[str], target: str, *, device: str | None = None, runs: int = 50,
                warmup: int = 5, threads: int | None = None, float_model: str | os.PathLike[str] | None = None,
                params: dict[str, Any] | None = None, **runner_options: Any) -> list[BenchRow]:
    """Latency rows for ``model`` on ``target`` (a profile name or ``"all"``), best evidence first.

    With ``device`` the model is measured there (``measured-device``); without, it is measured on this host
    (``measured-host``, with the target's thread count). Estimated rows follow: ``compiler-estimate`` where the
    target's compiler predicts latency, and ``model-estimate`` from the cost model. With ``float_model`` the
    float32 file is measured in the same run, beside the int8 one.

    Args:
        model: the ``.tflite`` to time.
        target: a profile name or ``"all"``.
        device: ``ssh://user@host[:port]``, ``adb://SERIAL`` or None (this machine).
        runs / warmup: timed and untimed runs.
        threads: interpreter threads (None: the target's).
        float_model: a float32 ``.tflite`` of the same network, measured beside ``model``.
        params: profile parameters.
        **runner_options: passed to the runner (identity, known_hosts, remote_python, accept_new_host_key,
            timeout, benchmark_binary, op_profiling).

    Returns:
        A list of ``BenchRow``.

    Example:
        >>> [r.evidence for r in bench_model("m.tflite", "all")]  # doctest: +SKIP
        ['measured-host', 'model-estimate', ...]
    """
    targets = list_targets() if target == "all" else [target]
    rows = measured_rows(model, target, device=device, runs=runs, warmup=warmup, threads=threads,
                         float_model=float_model, params=params, **runner_options)
    for name in targets:
        own = declared_params(name, params or {}) if target == "all" else params
        try:
            compiler = compiler_estimate(model, name, params=own)
        except EdgeCompressError as exc:
            compiler = None
            rows.append(BenchRow(target=name, evidence="compiler-estimate", model=Path(model).name,
                                 notes=[f"no compiler estimate: {exc}"]))
        if compiler is not None:
            rows.append(compiler)
        try:
            rows.append(estimate(model, name, threads=threads, params=own))
        except ProfileError as exc:
            rows.append(BenchRow(target=name, evidence="model-estimate", model=Path(model).name,
                                 notes=[f"no estimate: {exc}"]))
    if target != "all":
        # the target's best evidence first, the host timing (x86, labelled measured-host) last
        rank = {evidence: i for i, evidence in enumerate(BEST_EVIDENCE)}
        rows.sort(key=lambda r: (r.median_ms is None, rank.get(r.evidence, len(rank))))
    return rows


def latency_rows(int8_path: Path, float_path: Path | None = None) -> list[dict[str, Any]]:
    """Host-measured and per-target estimated latency, each row labelled with its evidence."""
    rows = bench_model(int8_path, "all", runs=50, warmup=5, float_model=float_path)
    return [{"target": r.target, "evidence": r.evidence, "dtype": r.dtype, "median_ms": r.median_ms,
             "p90_ms": r.p90_ms, "runs": r.runs, "notes": r.notes} for r in rows]


def check_all_targets(tflite: bytes, samples: np.ndarray | None = None) -> list[Any]:
    """``check`` the model against every shipped target profile (real tools answer where installed)."""
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
