"""The Coral ``edgetpu_compiler``, when it is installed (x86-64 Debian-based Linux only), and its log parser.

The compiler prints a summary (on-chip memory used/remaining for parameters, off-chip streaming, number of Edge
TPU subgraphs, operations on the TPU and on the CPU) and, with ``-s``, a table ``Operator  Count  Status``
aggregated by operator type. When the compiler is absent, ``run_edgetpu_compiler`` returns None and the profile's
rules answer instead.

Example:
    >>> result = run_edgetpu_compiler("model_int8.tflite")  # doctest: +SKIP
    >>> result is None or result.mapped_operations >= 0  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgecompress.toolchains.tool import run_tool

MAPPED = "Mapped to Edge TPU"
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
_SIZE = r"([\d.]+)\s*(B|KiB|MiB|GiB)"
_ROW = re.compile(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(\S.*?)\s*$")


@dataclasses.dataclass
class EdgeTpuResult:
    """What ``edgetpu_compiler`` reported.

    Args:
        version: compiler version string.
        on_chip_used_bytes / on_chip_remaining_bytes: parameter cache use.
        off_chip_bytes: parameters streamed from host memory each inference.
        subgraphs: number of Edge TPU subgraphs.
        total_operations / mapped_operations / cpu_operations: operation counts.
        operators: the ``Operator Count Status`` table rows as ``{"op", "count", "status"}``.
        compiled_tflite: the compiled model bytes (None when only a log was parsed).
    """

    version: str = ""
    on_chip_used_bytes: int | None = None
    on_chip_remaining_bytes: int | None = None
    off_chip_bytes: int | None = None
    subgraphs: int | None = None
    total_operations: int | None = None
    mapped_operations: int | None = None
    cpu_operations: int | None = None
    operators: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    compiled_tflite: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        compiled = out.pop("compiled_tflite")
        out["compiled_tflite_bytes"] = len(compiled) if compiled else None
        return out

    def placements(self, ops: list[str]) -> list[tuple[bool, str]]:
        """Spread the aggregated table over operators in execution order: (mapped?, status) per operator.

        The table counts operators per type and status, not per index; the compiler maps one leading segment,
        so the first ``k`` operators of a type are taken as the mapped ones.
        """
        remaining: dict[str, list[list[Any]]] = {}
        for row in self.operators:
            remaining.setdefault(row["op"], []).append([row["status"], row["count"]])
        for rows in remaining.values():
            rows.sort(key=lambda r: r[0] != MAPPED)
        out = []
        for op in ops:
            rows = remaining.get(op, [])
            while rows and rows[0][1] == 0:
                rows.pop(0)
            if not rows:
                out.append((False, "not listed in the compiler log"))
                continue
            rows[0][1] -= 1
            out.append((rows[0][0] == MAPPED, rows[0][0]))
        return out


def _bytes(text: str, label: str) -> int | None:
    match = re.search(re.escape(label) + r":\s*" + _SIZE, text)
    if not match:
        return None
    return int(round(float(match.group(1)) * _UNITS[match.group(2)]))


def _count(text: str, label: str) -> int | None:
    match = re.search(re.escape(label) + r":\s*(\d+)", text)
    return int(match.group(1)) if match else None


def parse_compiler_log(text: str) -> EdgeTpuResult:
    """Parse the text ``edgetpu_compiler -s`` prints.

    Args:
        text: the compiler's stdout (or its ``.log`` file).

    Returns:
        An ``EdgeTpuResult``; fields the text does not mention stay None.

    Example:
        >>> parse_compiler_log("Number of operations that will run on Edge TPU: 3").mapped_operations
        3
    """
    version = re.search(r"Edge TPU Compiler version (\S+)", text)
    result = EdgeTpuResult(
        version=version.group(1) if version else "",
        on_chip_used_bytes=_bytes(text, "On-chip memory used for caching model parameters"),
        on_chip_remaining_bytes=_bytes(text, "On-chip memory remaining for caching model parameters"),
        off_chip_bytes=_bytes(text, "Off-chip memory used for streaming uncached model parameters"),
        subgraphs=_count(text, "Number of Edge TPU subgraphs"),
        total_operations=_count(text, "Total number of operations"),
        mapped_operations=_count(text, "Number of operations that will run on Edge TPU"),
        cpu_operations=_count(text, "Number of operations that will run on CPU"))
    in_table = False
    for line in text.splitlines():
        if re.match(r"^Operator\s+Count\s+Status", line):
            in_table = True
            continue
        row = _ROW.match(line.strip()) if in_table else None
        if row:
            result.operators.append({"op": row.group(1), "count": int(row.group(2)), "status": row.group(3)})
    if result.mapped_operations is None and result.operators:
        result.mapped_operations = sum(r["count"] for r in result.operators if r["status"] == MAPPED)
        result.cpu_operations = sum(r["count"] for r in result.operators if r["status"] != MAPPED)
    return result


def edgetpu_compiler_path() -> str | None:
    """Return the ``edgetpu_compiler`` on PATH, or None."""
    return shutil.which("edgetpu_compiler")


def run_edgetpu_compiler(model: bytes | str | os.PathLike[str], *, timeout: float = 300.0) -> EdgeTpuResult | None:
    """Compile with ``edgetpu_compiler -s`` when it is installed; None when it is not.

    Args:
        model: flatbuffer bytes or a ``.tflite`` path.
        timeout: seconds before the compiler is stopped.

    Returns:
        The parsed ``EdgeTpuResult`` with the compiled model, or None without the compiler.

    Example:
        >>> run_edgetpu_compiler(b"...") is None  # doctest: +SKIP
        True
    """
    exe = edgetpu_compiler_path()
    if exe is None:
        return None
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    with tempfile.TemporaryDirectory(prefix="edgecompress-edgetpu-") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(data)
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        proc = run_tool("edgetpu_compiler", [exe, "-s", "-o", str(out_dir), str(src)], timeout=timeout,
                          on_timeout="Try a smaller model.", on_failure="Check that the model is fully int8.")
        result = parse_compiler_log(proc.stdout)
        compiled = out_dir / "model_edgetpu.tflite"
        result.compiled_tflite = compiled.read_bytes() if compiled.exists() else None
    return result
