"""Measure latency on an Android device over adb with the official TFLite ``benchmark_model`` binary.

``AdbRunner("adb://SERIAL", benchmark_binary="benchmark_model")`` makes a temporary directory under
``/data/local/tmp``, pushes the model and the user's ``benchmark_model`` (edgecompress ships no Android binary),
runs it with the target's delegate flags (``--use_nnapi=true`` for NNAPI, ``--use_xnnpack=true`` for the CPU)
and thread count, parses what it prints, and removes the directory. ``benchmark_model`` reports aggregates
(count, min, max, avg, std), not per-run samples, so a measured Android row has ``median_ms``/``p90_ms`` of
``None`` and its ``mean_ms`` set; the per-operator table is parsed when ``op_profiling=True``.

No phone is attached to the CI machine: the parser is tested on real ``benchmark_model`` output quoted in public
issues (``tests/data/benchmark_model/``) and the command construction against a stand-in ``adb`` script.

Example:
    >>> runner = AdbRunner("adb://R58M1234", benchmark_binary="benchmark_model", delegate="nnapi")  # doctest: +SKIP
    >>> runner.measure("model_int8.tflite", runs=50, warmup=5, threads=4).timings.mean_ms  # doctest: +SKIP
    6.9
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgecompress.errors import RemoteError, ToolchainError
from edgecompress.runtimes.device import parse_adb_uri
from edgecompress.runtimes.runner import Measurement, Timings

DELEGATE_FLAGS = {
    "nnapi": ["--use_nnapi=true", "--use_xnnpack=false"],
    "xnnpack": ["--use_xnnpack=true"],
    "cpu": ["--use_xnnpack=false"],
    "gpu": ["--use_gpu=true"],
}
_REMOTE_DIR = re.compile(r"^/data/local/tmp/[A-Za-z0-9._-]+$")
# Optional prefixes: "INFO: " (newer binaries), logcat "05-31 10:31:13.023 21767 21767 I tflite  : ".
_PREFIX = re.compile(r"^(?:\S+ \S+\s+\d+\s+\d+ [VDIWEF] [^:]*:\s?|INFO:\s|I\s+\S+\s+:\s)?")
_STATS = re.compile(r"^count=(\d+)(.*)$")
_KEYVAL = re.compile(r"(\w+)=([-\d.eE+]+)")
_OP_ROW = re.compile(r"^\s*(\S+)\s+(-?[\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\s+(\d+)\s+\[(.*)\]\s*$")


@dataclasses.dataclass
class BenchmarkModelReport:
    """What ``benchmark_model`` printed, in microseconds as it prints them.

    Args:
        count / min_us / max_us / avg_us / std_us / first_us: the regular (timed) runs' statistics line.
        warmup_count / warmup_avg_us: the warm-up runs' statistics line.
        init_us: session initialisation (``Initialized session in ...`` or ``Init:``).
        memory_mb: ``init`` / ``overall`` footprint deltas and ``peak`` when printed.
        operators: ``Run Order`` rows: ``{"op", "name", "first_ms", "avg_ms", "percent", "times_called"}``.
    """

    count: int
    min_us: float | None
    max_us: float | None
    avg_us: float | None
    std_us: float | None
    first_us: float | None = None
    warmup_count: int | None = None
    warmup_avg_us: float | None = None
    init_us: float | None = None
    memory_mb: dict[str, float] = dataclasses.field(default_factory=dict)
    operators: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def timings(self, warmup: int) -> Timings:
        """Aggregates as ``Timings`` (no per-run samples: median and percentiles stay None)."""
        reported = {"count": float(self.count)}
        for key, value in (("min_ms", self.min_us), ("max_ms", self.max_us), ("mean_ms", self.avg_us),
                           ("std_ms", self.std_us)):
            if value is not None:
                reported[key] = value / 1000.0
        return Timings(samples_ms=[], warmup=warmup, reported=reported)


def parse_benchmark_output(text: str) -> BenchmarkModelReport:
    """Parse the text ``benchmark_model`` prints (plain, ``INFO:``-prefixed or logcat lines).

    Args:
        text: stdout + stderr of one ``benchmark_model`` run.

    Returns:
        The ``BenchmarkModelReport``.

    Raises:
        RemoteError: no statistics line for the timed runs was found.

    Example:
        >>> r = parse_benchmark_output("count=50 first=10 curr=9 min=8 max=12 avg=9.5 std=1")
        >>> r.count, r.avg_us
        (50, 9.5)
    """
    lines = [_PREFIX.sub("", line.rstrip("\r\n")) for line in text.splitlines()]
    stats: list[tuple[int, dict[str, float]]] = []
    init_us = warmup_avg = None
    memory: dict[str, float] = {}
    for line in lines:
        stripped = line.strip()
        match = _STATS.match(stripped)
        if match:
            stats.append((int(match.group(1)), {k: float(v) for k, v in _KEYVAL.findall(match.group(2))}))
            continue
        if stripped.startswith("Initialized session in"):
            found = re.search(r"([\d.]+)\s*ms", stripped)
            init_us = float(found.group(1)) * 1000.0 if found else init_us
        elif "inference timings in us" in stripped.lower():
            fields = dict(re.findall(r"([A-Za-z][A-Za-z ()]*?):\s*([\d.]+)", stripped.split(":", 1)[1]))
            init_us = float(fields["Init"]) if "Init" in fields else init_us
            warmup_avg = fields.get("Warmup (avg)") or fields.get("Warmup")
        elif stripped.startswith("Memory footprint delta"):
            memory.update({k: float(v) for k, v in _KEYVAL.findall(stripped)})
        elif stripped.startswith("Overall peak memory footprint"):
            found = re.search(r":\s*([\d.]+)", stripped)
            if found:
                memory["peak"] = float(found.group(1))
    if not stats:
        tail = " | ".join(line for line in lines if line.strip())[-300:]
        raise RemoteError(f"benchmark_model: expected a 'count=... avg=...' statistics line. Received: {tail!r}. "
                          "Check that the binary matches the device's ABI and that the model loaded.")
    count, regular = stats[1] if len(stats) > 1 else stats[0]
    warmup_count, warmup_stats = stats[0] if len(stats) > 1 else (None, {})
    return BenchmarkModelReport(
        count=count, min_us=regular.get("min"), max_us=regular.get("max"), avg_us=regular.get("avg"),
        std_us=regular.get("std"), first_us=regular.get("first"), warmup_count=warmup_count,
        warmup_avg_us=float(warmup_avg) if warmup_avg else warmup_stats.get("avg"), init_us=init_us,
        memory_mb=memory, operators=_run_order(lines))


def _run_order(lines: list[str]) -> list[dict[str, Any]]:
    """Rows of the last ``Run Order`` table after "Regular Benchmark Runs" (or the only one)."""
    sections: list[list[dict[str, Any]]] = []
    regular_from = None
    current: list[dict[str, Any]] | None = None
    for line in lines:
        if "Regular Benchmark Runs" in line:
            regular_from = len(sections)
        if line.strip().startswith("=") and "Run Order" in line:
            current = []
            sections.append(current)
            continue
        if line.strip().startswith("="):
            current = None
            continue
        if current is not None:
            row = _OP_ROW.match(line)
            if row:
                current.append({"op": row.group(1), "name": row.group(9), "start_ms": float(row.group(2)),
                                "first_ms": float(row.group(3)), "avg_ms": float(row.group(4)),
                                "percent": float(row.group(5)), "times_called": int(row.group(8))})
    if not sections:
        return []
    return sections[regular_from] if regular_from is not None and regular_from < len(sections) else sections[-1]


class AdbRunner:
    """Run the user's ``benchmark_model`` on an Android device over adb (the ``Runner`` interface).

    Args:
        uri: ``adb://SERIAL``.
        benchmark_binary: the Android ``benchmark_model`` executable for the device's ABI.
        delegate: a key of ``DELEGATE_FLAGS`` (the target profile's ``delegate``).
        op_profiling: pass ``--enable_op_profiling=true`` and parse the per-operator table.
        timeout: seconds the benchmark may take.
        adb: the adb binary (default: ``adb`` on PATH).
    """

    def __init__(self, uri: str, *, benchmark_binary: str | os.PathLike[str] | None, delegate: str = "nnapi",
                 op_profiling: bool = False, timeout: float = 300.0, adb: str | None = None) -> None:
        self.serial = parse_adb_uri(uri)
        self.device = f"adb://{self.serial}"
        if benchmark_binary is None or not Path(benchmark_binary).is_file():
            raise RemoteError(f"expected --benchmark-binary to be the Android benchmark_model executable. "
                              f"Received: {str(benchmark_binary) if benchmark_binary else 'nothing'}. Download "
                              "the prebuilt binary for the device's ABI from the LiteRT releases and pass its path.")
        if delegate not in DELEGATE_FLAGS:
            raise RemoteError(f"expected a delegate from {', '.join(DELEGATE_FLAGS)}. Received: {delegate!r}. "
                              "Pick a target whose runtime runs on Android.")
        self.benchmark_binary = Path(benchmark_binary)
        self.delegate = delegate
        self.op_profiling = op_profiling
        self.timeout = timeout
        self.adb = adb or shutil.which("adb")
        if not self.adb:
            raise ToolchainError("adb is not installed: expected the Android platform-tools `adb` on PATH. "
                                 "Install platform-tools (Debian: apt-get install adb).")

    def _adb(self, *args: str, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run([self.adb, "-s", self.serial, *args], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"{self.device}: expected {what} to finish within {timeout:g} s. Received: no "
                              "answer. Check the device (adb devices) or raise --timeout.") from exc
        except OSError as exc:
            raise ToolchainError(f"adb could not be started ({exc.strerror}). Install Android platform-tools.") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-300:]
            raise RemoteError(f"{self.device}: expected {what} to succeed. Received: exit {proc.returncode} "
                              f"({tail}). Check `adb devices` and the device's free space.")
        return proc

    def _shell(self, words: list[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
        # adb joins shell arguments into one command line for the device's sh: quote every word.
        return self._adb("shell", " ".join(shlex.quote(w) for w in words), timeout=timeout, what=what)

    def command(self, remote_dir: str, *, runs: int, warmup: int, threads: int | None) -> list[str]:
        """The ``benchmark_model`` words run on the device (before quoting)."""
        words = [f"{remote_dir}/benchmark_model", f"--graph={remote_dir}/model.tflite", f"--num_runs={int(runs)}",
                 f"--warmup_runs={int(warmup)}", *DELEGATE_FLAGS[self.delegate]]
        if threads is not None:
            words.append(f"--num_threads={int(threads)}")
        if self.op_profiling:
            words.append("--enable_op_profiling=true")
        return words

    def measure(self, model: str | os.PathLike[str], *, runs: int = 50, warmup: int = 5,
                threads: int | None = None) -> Measurement:
        """Push ``model`` and ``benchmark_model``, run it, parse it, clean up.

        Args:
            model: a local ``.tflite`` path.
            runs / warmup: ``--num_runs`` / ``--warmup_runs``.
            threads: ``--num_threads`` (None: the binary's default).

        Returns:
            The ``Measurement`` (aggregates only: ``mean_ms``, ``min_ms``, ``max_ms``, ``std_ms``).
        """
        if not Path(model).is_file():
            raise RemoteError(f"{model}: expected a .tflite file. Received: no such file. Check the path.")
        made = self._shell(["mktemp", "-d", "/data/local/tmp/edgecompress.XXXXXXXX"], timeout=60,
                           what="a temporary directory").stdout.strip()
        if not _REMOTE_DIR.match(made):
            raise RemoteError(f"{self.device}: expected `mktemp -d` to print a directory under /data/local/tmp. "
                              f"Received: {made[:100]!r}. Check the device's shell (toybox mktemp).")
        try:
            # adb push uses the sync protocol, not the shell: the remote path is taken literally.
            self._adb("push", str(self.benchmark_binary), f"{made}/benchmark_model", timeout=300,
                      what="pushing benchmark_model")
            self._adb("push", str(model), f"{made}/model.tflite", timeout=300, what="pushing the model")
            self._shell(["chmod", "755", f"{made}/benchmark_model"], timeout=60, what="chmod")
            proc = self._shell(self.command(made, runs=runs, warmup=warmup, threads=threads), timeout=self.timeout,
                               what="benchmark_model")
        finally:
            try:
                self._shell(["rm", "-rf", made], timeout=60, what="the cleanup")
            except RemoteError:
                pass  # the first error is the useful one; the directory name is in /data/local/tmp
        report = parse_benchmark_output(proc.stdout + "\n" + proc.stderr)
        return Measurement(model=Path(model).name, dtype="", timings=report.timings(warmup), device=self.device,
                           runtime=f"benchmark_model ({' '.join(DELEGATE_FLAGS[self.delegate])})", threads=threads,
                           init_ms=report.init_us / 1000.0 if report.init_us is not None else None,
                           operators=report.operators,
                           notes=["benchmark_model prints aggregates: mean/min/max/std, no median or percentiles"])
