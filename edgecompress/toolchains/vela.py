"""Compile a model for the Arm Ethos-U NPU with the real Vela compiler (``ethos-u-vela`` on PyPI).

Vela rewrites the ``.tflite``: every NPU-placed subgraph becomes one custom ``ethos-u`` operator and everything
it refuses stays a normal TFLite operator for TFLite Micro on the Cortex-M. The per-operator placement is read
from that output: an original operator is on the CPU exactly when its output tensor is still produced by a
non-``ethos-u`` operator there. Vela's stdout gives the refusal reasons ("Warning (supported operators) ...
Reason: ...") and the CPU/NPU counts; the summary CSV gives cycles, inference time, SRAM and flash use.

Example:
    >>> result = run_vela("model_int8.tflite")  # doctest: +SKIP
    >>> result.npu_operators, result.cpu_operators  # doctest: +SKIP
    (34, 0)
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgecompress.errors import ToolchainError
from edgecompress.toolchains.tool import run_tool

DEFAULT_ACCELERATOR = "ethos-u55-256"
DEFAULT_SYSTEM_CONFIG = "Ethos_U55_High_End_Embedded"
DEFAULT_MEMORY_MODE = "Shared_Sram"
_WARNING = re.compile(r"Warning \(supported operators\) operator: (\S+?), ofm: '(.*)'\s*\nReason: (.*)")
_COUNT = re.compile(r"(CPU|NPU) operators = (\d+)")


@dataclasses.dataclass(frozen=True)
class VelaResult:
    """What Vela did with a model.

    Args:
        placements: per original operator index, ``"npu"`` or ``"cpu"``.
        reasons: per original operator index on the CPU, Vela's reason text (when it printed one).
        npu_operators / cpu_operators: Vela's own counts (after its graph rewrites, so not the original count).
        sram_bytes / flash_bytes: "Total SRAM used" / "Total Off-chip Flash used" from the summary CSV.
        cycles_total / inference_time_s / macs: Vela's performance estimate (labelled experimental by Vela).
        optimised_tflite: the Vela-optimised model bytes.
        accelerator_config / system_config / memory_mode: what Vela was asked for.
        version: ``vela --version``.
    """

    placements: dict[int, str]
    reasons: dict[int, str]
    npu_operators: int
    cpu_operators: int
    sram_bytes: int | None
    flash_bytes: int | None
    cycles_total: int | None
    inference_time_s: float | None
    macs: int | None
    optimised_tflite: bytes
    accelerator_config: str
    system_config: str
    memory_mode: str
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["optimised_tflite_bytes"] = len(out.pop("optimised_tflite"))
        out["placements"] = {str(k): v for k, v in self.placements.items()}
        out["reasons"] = {str(k): v for k, v in self.reasons.items()}
        return out


def vela_executable() -> str | None:
    """Return the ``vela`` command on PATH (or next to this Python), or None."""
    found = shutil.which("vela")
    if found:
        return found
    import sys

    candidate = Path(sys.executable).parent / "vela"
    return str(candidate) if candidate.exists() else None


def run_vela(model: bytes | str | os.PathLike[str], *, accelerator_config: str = DEFAULT_ACCELERATOR,
             system_config: str = DEFAULT_SYSTEM_CONFIG, memory_mode: str = DEFAULT_MEMORY_MODE,
             output_path: str | os.PathLike[str] | None = None, timeout: float = 300.0) -> VelaResult:
    """Run the Vela compiler on a model and parse its placement, memory and cycle estimate.

    Args:
        model: flatbuffer bytes or a ``.tflite`` path.
        accelerator_config: Vela ``--accelerator-config`` (e.g. ``ethos-u55-128``).
        system_config / memory_mode: sections of Vela's bundled ``Arm/vela.ini`` (offline defaults).
        output_path: where to write the Vela-optimised ``.tflite`` (atomically); None keeps it in the result only.
        timeout: seconds before Vela is stopped.

    Returns:
        A ``VelaResult``.

    Example:
        >>> run_vela("m.tflite", output_path="m_vela.tflite").cpu_operators  # doctest: +SKIP
        0
    """
    exe = vela_executable()
    if exe is None:
        raise ToolchainError("Vela is not installed: expected the `vela` command from ethos-u-vela. "
                             "Install it with `pip install edgecompress[vela]`.")
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    key = (hashlib.sha256(data).hexdigest(), accelerator_config, system_config, memory_mode, exe)
    cached = _RESULTS.get(key)
    if cached is None:
        cached = _compile(exe, data, accelerator_config, system_config, memory_mode, timeout)
        _RESULTS[key] = cached
        while len(_RESULTS) > _CACHE_ENTRIES:
            _RESULTS.pop(next(iter(_RESULTS)))
    if output_path is not None:
        from edgecompress.atomic import atomic_write_bytes

        atomic_write_bytes(output_path, cached.optimised_tflite)
    return cached


# One process often asks Vela about the same model twice (bench: check's placement, then the cycle estimate).
_CACHE_ENTRIES = 8
_RESULTS: dict[tuple[str, ...], VelaResult] = {}


def _compile(exe: str, data: bytes, accelerator_config: str, system_config: str, memory_mode: str,
             timeout: float) -> VelaResult:
    with tempfile.TemporaryDirectory(prefix="edgecompress-vela-") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(data)
        out_dir = Path(tmp) / "out"
        config = Path(_vela_config_dir()) / "Arm" / "vela.ini"
        cmd = [exe, str(src), "--output-dir", str(out_dir), "--accelerator-config", accelerator_config,
               "--config", str(config), "--system-config", system_config, "--memory-mode", memory_mode]
        proc = run_tool("vela", cmd, timeout=timeout, on_timeout="Try a smaller model or a longer timeout.",
                          on_failure="Check that the model is a valid int8 TFLite file.")
        optimised = out_dir / "model_vela.tflite"
        if not optimised.exists():
            raise ToolchainError("vela: expected model_vela.tflite in its output directory. Received: none. "
                                 "Check the Vela version (ethos-u-vela 5.2 is supported).")
        vela_bytes = optimised.read_bytes()
        summary = next(out_dir.glob("*_summary_*.csv"), None)
        figures = _summary(summary) if summary else {}
    placements = _placements(data, vela_bytes)
    reasons = _reasons(proc.stdout + proc.stderr, data)
    counts = dict(_COUNT.findall(proc.stdout))
    return VelaResult(
        placements=placements, reasons={i: r for i, r in reasons.items() if placements.get(i) == "cpu"},
        npu_operators=int(counts.get("NPU", 0)), cpu_operators=int(counts.get("CPU", 0)),
        sram_bytes=_kib(figures.get("sram_memory_used")), flash_bytes=_kib(figures.get("off_chip_flash_memory_used")),
        cycles_total=_int(figures.get("cycles_total")), inference_time_s=_float(figures.get("inference_time")),
        macs=_int(figures.get("nn_macs")), optimised_tflite=vela_bytes, accelerator_config=accelerator_config,
        system_config=system_config, memory_mode=memory_mode, version=_version(exe))


def _vela_config_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("ethosu")
    if spec is None or not spec.submodule_search_locations:
        raise ToolchainError("Vela's configuration files were not found: expected the ethosu package. "
                             "Install it with `pip install edgecompress[vela]`.")
    return str(Path(list(spec.submodule_search_locations)[0]) / "config_files")


def _version(exe: str) -> str:
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, check=True)
    except (subprocess.SubprocessError, OSError):
        return ""
    return proc.stdout.strip()


def _summary(path: Path) -> dict[str, str]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[0] if rows else {}


def _kib(value: str | None) -> int | None:
    return None if value in (None, "") else int(round(float(value) * 1024))


def _int(value: str | None) -> int | None:
    return None if value in (None, "") else int(float(value))


def _float(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def _graph(data: bytes) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(op name, output tensor names) per operator of subgraph 0, and tensor names, with the tflite schema."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    sg = model.Subgraphs(0)
    tensors = [sg.Tensors(i).Name().decode("utf-8", "replace") for i in range(sg.TensorsLength())]
    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = (code.CustomCode() or b"").decode()
        outs = [tensors[o] for o in (op.OutputsAsNumpy() if op.OutputsLength() else []) if o >= 0]
        ops.append((name, outs))
    return ops, tensors


def _placements(original: bytes, optimised: bytes) -> dict[int, str]:
    before, _ = _graph(original)
    after, _ = _graph(optimised)
    cpu_outputs = {name for op, outs in after if op != "ethos-u" for name in outs}
    return {i: ("cpu" if any(o in cpu_outputs for o in outs) else "npu") for i, (_, outs) in enumerate(before)}


def _reasons(text: str, original: bytes) -> dict[int, str]:
    before, _ = _graph(original)
    by_output = {name: i for i, (_, outs) in enumerate(before) for name in outs}
    found: dict[int, str] = {}
    for _, ofm, reason in _WARNING.findall(text):
        index = by_output.get(ofm)
        if index is not None:
            found[index] = (found[index] + "; " if index in found else "") + reason.strip()
    return found
