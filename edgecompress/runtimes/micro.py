"""Run a model in the real TensorFlow Lite Micro interpreter (``tflite-micro`` on PyPI) on this host.

The interpreter runs in a child process: TFLM aborts the whole process (a segmentation fault) when the arena is
far too small, and its allocation report goes to the C++ stderr. The child loads, allocates and invokes the model
with a generous arena and captures ``print_allocations()`` ("Arena allocation total N bytes"); the exact arena
is then bisected over allocation success (in a child that survives crashes by recording its progress) and the
model is invoked once more at exactly that size. Outputs are
compared with LiteRT (ai-edge-litert) on the same int8 inputs, as a maximum absolute difference in LSB.

The host build is 64-bit: TFLM's bookkeeping structs hold pointers, so the persistent part of the arena is
somewhat smaller on a 32-bit Cortex-M; the activation part (the planned "head") is the same.

Example:
    >>> result = run_micro("model_int8.tflite")  # doctest: +SKIP
    >>> result.arena_bytes, result.max_abs_diff_lsb  # doctest: +SKIP
    (3016, 0)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import ToolchainError
from edgecompress.runtimes.host import quantize

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")


@dataclasses.dataclass
class MicroResult:
    """What the real TFLite Micro interpreter did with a model.

    Args:
        loaded / allocated / invoked: how far the interpreter got.
        arena_bytes: the smallest ``arena_size`` that allocates (bisected), None if it never allocated.
        recorded_bytes: the total of TFLM's own allocation report (head + tail); it leaves out the allocator's
            objects, which also live in the arena, so it is smaller than ``arena_bytes``.
        arena_head_bytes / arena_tail_bytes: planned activations / recorded persistent data.
        arena_verified: an interpreter with exactly ``arena_bytes`` invoked and gave the same outputs.
        estimate_bytes: edgecompress's own greedy-planner estimate (``edgecompress.arena.estimate_arena_bytes``).
        max_abs_diff_lsb: max |TFLM - LiteRT| over all int8 outputs and samples, in quantization steps.
        samples: how many input samples were compared.
        error: the interpreter's message when it failed.
    """

    loaded: bool
    allocated: bool
    invoked: bool
    arena_bytes: int | None = None
    recorded_bytes: int | None = None
    arena_head_bytes: int | None = None
    arena_tail_bytes: int | None = None
    arena_verified: bool = False
    estimate_bytes: int | None = None
    max_abs_diff_lsb: int | None = None
    samples: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.invoked

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _tflm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tflite_micro") is not None


def _raw_inputs(model: bytes, inputs: Any, samples: int, seed: int) -> list[list[np.ndarray]]:
    """Samples as raw tensors (quantized with the input's scale/zero point when given float data)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    details = interp.get_input_details()
    rng = np.random.default_rng(seed)
    if inputs is None:
        out = []
        for _ in range(samples):
            row = []
            for d in details:
                dtype = np.dtype(d["dtype"])
                if np.issubdtype(dtype, np.integer):
                    info = np.iinfo(dtype)
                    row.append(rng.integers(info.min, info.max + 1, size=d["shape"], dtype=dtype))
                else:
                    row.append(rng.random(d["shape"], dtype=np.float32).astype(dtype))
            out.append(row)
        return out
    per_input = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if len(per_input) != len(details):
        raise ToolchainError(f"expected {len(details)} input array(s) for TFLite Micro. Received: {len(per_input)}. "
                             "Pass one (N, ...) array per model input.")
    n = min(len(np.asarray(a)) for a in per_input)
    out = []
    for s in range(min(n, samples)):
        row = []
        for d, arr in zip(details, per_input, strict=True):
            x = np.asarray(arr[s]).reshape(d["shape"])
            dtype = np.dtype(d["dtype"])
            if np.issubdtype(dtype, np.integer) and not np.issubdtype(x.dtype, np.integer):
                scale, zero = d["quantization"]
                x = quantize(x, scale, zero, dtype)
            row.append(x.astype(dtype))
        out.append(row)
    return out


def _litert_outputs(model: bytes, samples: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    ins, outs = interp.get_input_details(), interp.get_output_details()
    results = []
    for row in samples:
        for d, x in zip(ins, row, strict=True):
            interp.set_tensor(d["index"], x)
        interp.invoke()
        results.append([interp.get_tensor(d["index"]).copy() for d in outs])
    return results


def _child(args: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    cmd = [sys.executable, "-m", "edgecompress.runtimes.micro", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None


def _run_child(model_path: Path, samples_path: Path, status_path: Path, arena: int, n_outputs: int,
               timeout: float) -> dict[str, Any]:
    """One interpreter run in a child: load, allocate, invoke every sample, save outputs, report allocations."""
    proc = _child(["run", str(model_path), str(samples_path), str(status_path), str(arena), str(n_outputs)], timeout)
    if proc is None:
        return {"stage": "timeout", "error": f"TFLite Micro did not finish within {timeout:.0f} s"}
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    if status.get("stage") not in ("invoked", "allocate_failed", "invoke_failed"):
        status.update(stage="crashed", error=f"TFLite Micro crashed (exit code {proc.returncode})")
    detail = [line.strip() for line in proc.stderr.splitlines()
              if line.startswith(("Node ", "Didn't find op", "Failed to get registration"))]
    if status.get("error") and detail:
        status["error"] += " (" + "; ".join(dict.fromkeys(detail[:3])) + ")"
    return status


def _bisect_arena(model_path: Path, low: int, high: int, workdir: Path, timeout: float) -> int:
    """Smallest arena in (low, high] that allocates. Probes run in a child that records its progress; a probe
    that crashes the child (TFLM sometimes dereferences a failed allocation) counts as "does not allocate"."""
    progress = workdir / "bisect.json"
    for _ in range(64):
        if high - low <= 1:
            break
        progress.write_text(json.dumps({"low": low, "high": high, "probing": None}))
        _child(["bisect", str(model_path), str(progress)], timeout)
        state = json.loads(progress.read_text())
        low, high = state["low"], state["high"]
        if state.get("probing") is not None:
            low = max(low, int(state["probing"]))
    return high


def run_micro(model: bytes | str | os.PathLike[str], inputs: Any = None, *, samples: int = 4, seed: int = 0,
              model_info: Any = None, timeout: float = 120.0) -> MicroResult:
    """Load, allocate and invoke a model in the real TFLite Micro interpreter; find its exact arena; compare with LiteRT.

    Args:
        model: flatbuffer bytes or a ``.tflite`` path.
        inputs: calibration samples, one ``(N, ...)`` array per model input (float data is quantized with the
            input's scale); None draws seeded random inputs.
        samples: how many samples to run (at most N).
        seed: seed for random inputs.
        model_info: a ``ModelInfo`` for edgecompress's own arena estimate (skipped when None).
        timeout: seconds per interpreter process.

    Returns:
        A ``MicroResult``.

    Example:
        >>> run_micro(Path("m.tflite").read_bytes()).invoked  # doctest: +SKIP
        True
    """
    if not _tflm_available():
        raise ToolchainError("TFLite Micro is not installed: expected the tflite-micro package. "
                             "Install it with `pip install edgecompress[micro]`.")
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    result = MicroResult(loaded=False, allocated=False, invoked=False)
    if model_info is not None:
        from edgecompress.arena import estimate_arena_bytes

        result.estimate_bytes = estimate_arena_bytes(model_info)["total"]
    from edgecompress.capture import captured_output

    try:
        with captured_output():  # LiteRT announces its XNNPACK delegate on stderr
            raw = _raw_inputs(data, inputs, samples, seed)
            reference = _litert_outputs(data, raw)
    except (ValueError, RuntimeError) as exc:
        result.error = f"LiteRT could not run the model: {exc}"
        return result
    result.samples = len(raw)
    n_outputs = len(reference[0]) if reference else 0
    with tempfile.TemporaryDirectory(prefix="edgecompress-tflm-") as tmp:
        work = Path(tmp)
        model_path, samples_path = work / "model.tflite", work / "inputs.npz"
        model_path.write_bytes(data)
        np.savez(samples_path, **{f"s{s}_i{i}": x for s, row in enumerate(raw) for i, x in enumerate(row)})
        generous = max(len(data) * 10, 1 << 20)
        status = _run_child(model_path, samples_path, work / "first.json", generous, n_outputs, timeout)
        _apply(result, status)
        if not result.invoked:
            return result
        report = status.get("allocations", "")
        if _TOTAL.search(report):
            result.recorded_bytes = int(_TOTAL.findall(report)[-1])
            result.arena_head_bytes = int(_HEAD.findall(report)[-1])
            result.arena_tail_bytes = int(_TAIL.findall(report)[-1])
        with np.load(work / "outputs.npz") as saved:
            micro = [[saved[f"s{s}_o{o}"] for o in range(n_outputs)] for s in range(len(raw))]
        # Nothing smaller than the recorded total can allocate (it often leaves out the allocator's own objects,
        # which also live in the arena, so the exact size is usually larger): the bisection starts there.
        result.arena_bytes = _bisect_arena(model_path, (result.recorded_bytes or 512) - 1, generous, work, timeout)
        exact = _run_child(model_path, samples_path, work / "exact.json", result.arena_bytes, n_outputs, timeout)
        if exact.get("stage") == "invoked":
            with np.load(work / "outputs.npz") as again:
                result.arena_verified = all(np.array_equal(again[f"s{s}_o{o}"], micro[s][o])
                                            for s in range(len(raw)) for o in range(n_outputs))
    diffs = [int(np.max(np.abs(m.astype(np.int64) - r.astype(np.int64)))) if m.size else 0
             for mrow, rrow in zip(micro, reference, strict=True) for m, r in zip(mrow, rrow, strict=True)
             if np.issubdtype(r.dtype, np.integer)]
    result.max_abs_diff_lsb = max(diffs) if diffs else None
    return result


def _apply(result: MicroResult, status: dict[str, Any]) -> None:
    stage = status.get("stage")
    result.loaded = stage in ("invoked", "invoke_failed")
    result.allocated = stage in ("invoked", "invoke_failed")
    result.invoked = stage == "invoked"
    result.error = status.get("error")


def _allocation_report(interp: Any) -> str:
    """Capture what ``print_allocations()`` writes to the C++ stderr (file descriptor 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode("utf-8", "replace")


def _worker_run(model_path: str, samples_path: str, status_path: str, arena: str, n_outputs: str) -> int:
    from tflite_micro.python.tflite_micro import runtime

    status: dict[str, Any] = {"stage": "start"}
    try:
        interp = runtime.Interpreter.from_bytes(Path(model_path).read_bytes(), arena_size=int(arena))
    except (RuntimeError, ValueError) as exc:
        status.update(stage="allocate_failed", error=f"TFLite Micro could not load/allocate the model: {exc}")
        Path(status_path).write_text(json.dumps(status))
        return 0
    samples = np.load(samples_path)
    keys = [k.split("_") for k in samples.files]
    n, n_inputs = len({k[0] for k in keys}), len({k[1] for k in keys})
    outputs = {}
    try:
        for s in range(n):
            for i in range(n_inputs):
                interp.set_input(samples[f"s{s}_i{i}"], i)
            interp.invoke()
            for o in range(int(n_outputs)):
                outputs[f"s{s}_o{o}"] = np.array(interp.get_output(o))
            interp.reset()
    except (RuntimeError, ValueError) as exc:
        status.update(stage="invoke_failed", error=f"TFLite Micro failed to invoke the model: {exc}")
        Path(status_path).write_text(json.dumps(status))
        return 0
    np.savez(Path(status_path).parent / "outputs.npz", **outputs)
    status.update(stage="invoked", allocations=_allocation_report(interp))
    Path(status_path).write_text(json.dumps(status))
    return 0


def _worker_bisect(model_path: str, progress_path: str) -> int:
    from tflite_micro.python.tflite_micro import runtime

    model = Path(model_path).read_bytes()
    state = json.loads(Path(progress_path).read_text())
    while state["high"] - state["low"] > 1:
        mid = (state["low"] + state["high"]) // 2
        state["probing"] = mid
        Path(progress_path).write_text(json.dumps(state))
        try:
            runtime.Interpreter.from_bytes(model, arena_size=mid)
            state["high"] = mid
        except (RuntimeError, ValueError):
            state["low"] = mid
        state["probing"] = None
        Path(progress_path).write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    _MODES = {"run": _worker_run, "bisect": _worker_bisect}
    sys.exit(_MODES[sys.argv[1]](*sys.argv[2:]))
