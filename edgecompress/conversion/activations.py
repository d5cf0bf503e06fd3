"""Collecting activations: histograms of every quantization point over the calibration data.

The histograms over growing prefixes of the samples feed ``edgecompress.conversion.ptq.range_stability``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.conversion.points import QuantizationPoint, _functional, quantization_points
from edgecompress.conversion.ranges import DEFAULT_PERCENTILE, HISTOGRAM_BINS, Histogram, choose_range
from edgecompress.samples import arrays_by_input_name

CHECKPOINTS = (25, 50, 100, 200, 400, 800, 1600, 3200)
BATCH = 32


@dataclasses.dataclass
class ActivationStats:
    """Histograms of every quantization point, over all samples and over growing prefixes of them.

    Args:
        points: the quantization points, in order.
        histograms: per point name, the histogram over all samples.
        prefixes: per point name, ``(samples, histogram)`` over the first ``samples`` samples (same bins).
        samples: how many samples were seen.
    """

    points: list[QuantizationPoint]
    histograms: dict[str, Histogram]
    prefixes: dict[str, list[tuple[int, Histogram]]]
    samples: int

    def ranges(self, method: str, percentile: float = DEFAULT_PERCENTILE) -> dict[str, tuple[float, float]]:
        """The range ``method`` picks for every point (model inputs always keep min/max)."""
        chosen = {}
        for point in self.points:
            hist = self.histograms[point.name]
            lo, hi = choose_range(hist, "minmax" if point.kind == "input" else method, percentile)
            if hi - lo > 1e-8:
                chosen[point.name] = (lo, hi)
        return chosen


def _input_arrays(fn: Any, calibration: Any) -> tuple[list[str], dict[str, np.ndarray]]:
    names = [t.name.split(":")[0] for t in fn.inputs]
    return names, arrays_by_input_name(calibration, names)


def _batches(count: int, checkpoints: Sequence[int]) -> list[tuple[int, int]]:
    bounds = sorted({*range(0, count, BATCH), *(c for c in checkpoints if 0 < c < count), count})
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _checkpoints(count: int) -> list[int]:
    return [c for c in CHECKPOINTS if c < count] + [count]


def collect_activations(model: Any, calibration: Any, *, points: list[QuantizationPoint] | None = None,
                        max_samples: int | None = None, bins: int = HISTOGRAM_BINS) -> ActivationStats:
    """Run the float model on the calibration data and histogram every quantization point's values.

    Two passes: the first finds each tensor's extent, the second fills ``bins`` equal bins over it. A
    multi-output Keras model over the layer outputs of interest does the work, ``BATCH`` samples at a time.

    Args:
        model: a Keras 3 model or ``LoadedModel``.
        calibration: a ``Dataset``, an array or a dict of arrays keyed by input name.
        points: the tensors to watch (default: ``quantization_points(model)``).
        max_samples: use at most this many samples (the first ones, as the converter does).
        bins: histogram bins per tensor.

    Returns:
        ``ActivationStats``.

    Example:
        >>> stats = collect_activations(model, calibration)  # doctest: +SKIP
        >>> stats.ranges("mse")["conv1"]  # doctest: +SKIP
        (0.0, 3.2)
    """
    import keras

    fn = _functional(model)
    points = quantization_points(fn) if points is None else points
    names, arrays = _input_arrays(fn, calibration)
    count = len(next(iter(arrays.values())))
    if max_samples is not None:
        count = min(count, max_samples)
    layer_points = [p for p in points if p.kind == "layer"]
    outputs = {node.operation.name: node.outputs[0] for depth in fn._nodes_by_depth.values() for node in depth}
    watcher = keras.Model(fn.inputs, [outputs[p.name] for p in layer_points]) if layer_points else None

    def values(start: int, stop: int) -> dict[str, np.ndarray]:
        batch = [arrays[name][start:stop] for name in names]
        result = {p.name: arrays[p.name][start:stop] for p in points if p.kind == "input"}
        if watcher is not None:
            outs = watcher.predict_on_batch(batch if len(batch) > 1 else batch[0])
            outs = outs if isinstance(outs, list | tuple) else [outs]
            result.update({p.name: np.asarray(o) for p, o in zip(layer_points, outs, strict=True)})
        return result

    checkpoints = _checkpoints(count)
    spans = {p.name: [0.0, 0.0] for p in points}
    running: dict[str, Histogram] = {}
    prefixes: dict[str, list[tuple[int, Histogram]]] = {p.name: [] for p in points}
    with captured_output():  # TensorFlow logs a retracing notice for every new watcher model
        for start, stop in _batches(count, []):
            for name, arr in values(start, stop).items():
                spans[name][0] = min(spans[name][0], float(arr.min()))
                spans[name][1] = max(spans[name][1], float(arr.max()))
        for start, stop in _batches(count, checkpoints):
            for name, arr in values(start, stop).items():
                part = Histogram.from_values(arr, bins, tuple(spans[name]))
                running[name] = part if name not in running else running[name].merged(part)
            if stop in checkpoints:
                for name, hist in running.items():
                    prefixes[name].append((stop, hist))
    return ActivationStats(points, running, prefixes, count)
