"""The one small interface every latency runtime answers: push a model, run it, return outputs and timings.

A runner (``HostRunner`` on this machine, ``SshRunner`` on a Linux board, ``AdbRunner`` on an Android phone)
turns one ``.tflite`` file into a ``Measurement``: the per-run wall times of ``runs`` timed invocations after
``warmup`` untimed ones, plus what the runtime reported about itself (initialisation time, peak RSS, the
interpreter it used). Statistics are computed here, once, from the raw samples, so every runner reports
min/median/p90/p99 the same way.

Example:
    >>> t = Timings.from_samples([2.0, 1.0, 3.0], warmup=1)
    >>> t.median_ms, t.min_ms
    (2.0, 1.0)
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Protocol, runtime_checkable


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples`` by linear interpolation between closest ranks.

    Args:
        samples: a non-empty list of numbers.
        q: the percentile, 0 to 100.

    Returns:
        The interpolated value (numpy's default "linear" method, without importing numpy).

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.5
    """
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("percentile of no samples")
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclasses.dataclass
class Timings:
    """Per-run wall times of timed invocations, and their statistics in milliseconds.

    Args:
        samples_ms: one wall time per timed run, in run order.
        warmup: untimed runs done before the timed ones.
        reported: aggregates a tool printed instead of samples (``benchmark_model``: ``count``, ``min_ms``,
            ``max_ms``, ``mean_ms``, ``std_ms``); used only when ``samples_ms`` is empty.
    """

    samples_ms: list[float]
    warmup: int = 0
    reported: dict[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_samples(cls, samples_ms: list[float], *, warmup: int = 0) -> Timings:
        """Build from raw per-run times in milliseconds."""
        return cls(samples_ms=[float(s) for s in samples_ms], warmup=int(warmup))

    @property
    def runs(self) -> int:
        return len(self.samples_ms) if self.samples_ms else int(self.reported.get("count", 0))

    def _stat(self, q: float, key: str) -> float | None:
        if self.samples_ms:
            return percentile(self.samples_ms, q)
        return self.reported.get(key)

    @property
    def min_ms(self) -> float | None:
        return self._stat(0, "min_ms")

    @property
    def max_ms(self) -> float | None:
        return self._stat(100, "max_ms")

    @property
    def median_ms(self) -> float | None:
        return self._stat(50, "median_ms")

    @property
    def p90_ms(self) -> float | None:
        return self._stat(90, "p90_ms")

    @property
    def p99_ms(self) -> float | None:
        return self._stat(99, "p99_ms")

    @property
    def mean_ms(self) -> float | None:
        if self.samples_ms:
            return sum(self.samples_ms) / len(self.samples_ms)
        return self.reported.get("mean_ms")

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "warmup": self.warmup, "min_ms": self.min_ms, "median_ms": self.median_ms,
                "p90_ms": self.p90_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms, "mean_ms": self.mean_ms,
                "samples_ms": list(self.samples_ms), **{k: v for k, v in self.reported.items()
                                                        if k in ("std_ms", "count")}}


@dataclasses.dataclass
class Measurement:
    """What a runner measured for one model file.

    Args:
        model: the model file name (or ``<bytes>``).
        dtype: ``"int8"``, ``"float32"`` ... (the input tensor type; how the model is labelled in tables).
        timings: the ``Timings``.
        device: where it ran (``"host"``, ``"ssh://pi@board"``, ``"adb://SERIAL"``).
        runtime: the interpreter and version the runner used (``"ai_edge_litert 2.3.0"``).
        threads: interpreter threads (None: the runtime's default).
        init_ms: model load + tensor allocation time, when known.
        peak_rss_bytes: peak resident memory of the process that ran the model, when known.
        operators: per-operator profile rows (``{"op", "name", "avg_ms", "percent"}``), when asked and available.
        notes: what the reader should know about the figures.
    """

    model: str
    dtype: str
    timings: Timings
    device: str
    runtime: str = ""
    threads: int | None = None
    init_ms: float | None = None
    peak_rss_bytes: int | None = None
    operators: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dtype": self.dtype, "device": self.device, "runtime": self.runtime,
                "threads": self.threads, "init_ms": self.init_ms, "peak_rss_bytes": self.peak_rss_bytes,
                **self.timings.to_dict(), "operators": self.operators, "notes": self.notes}


@runtime_checkable
class Interpreter(Protocol):
    """A loaded model that answers inputs with outputs: ``HostRunner`` (LiteRT), ``MicroEvalRunner`` (TFLite Micro),
    ``SshEvalRunner`` (a board over ssh). ``validate`` evaluates on any of them."""

    def predict(self, x: Any) -> list[Any]:
        """Run every sample of ``x`` (an array, or arrays keyed by input name) and return the float outputs."""
        ...


@runtime_checkable
class Runner(Protocol):
    """A place a model can be timed: push it, run random inputs, return a ``Measurement`` (``HostDevice``,
    ``SshRunner``, ``AdbRunner``)."""

    device: str

    def measure(self, model: str | os.PathLike[str], *, runs: int, warmup: int,
                threads: int | None) -> Measurement:
        """Run ``model`` ``warmup`` times untimed and ``runs`` times timed; return the measurement."""
        ...
