"""Post-training int8 calibration that loses less than min/max: percentile, MSE and KL activation ranges.

The bare TFLite converter sets every activation range to the min and max it saw on the representative data, so
one outlier stretches a range and wastes most of the 256 levels. Here the float activations of every tensor the
converter quantizes on its own are histogrammed on the calibration data, a range is chosen per tensor
(``percentile``, ``mse`` or ``kl``), and the ranges are frozen into the graph as fake-quant nodes after the layer
outputs: the converter then emits exactly those scales (checked in the flatbuffer afterwards).

Where the fake-quant nodes go (measured with TensorFlow 2.21, see ``quantization_points``):

* not between a Conv/Dense/DepthwiseConv and the BatchNormalization or ReLU that the converter fuses into it
  (the node would block the fusion);
* not after layers whose int8 kernel must keep its input's scale (pooling, reshape, padding, dropout): a second
  range there makes the converter insert a requantizing QUANTIZE operator;
* not on a tensor that feeds a Concatenate: the converter gives every concatenation input the output's scale,
  and the concatenation's own range covers its inputs;
* not after softmax/sigmoid/tanh, whose output scales the int8 kernels fix;
* the model inputs keep their min/max range: clipping an input only throws away what the user fed in.

``minmax`` is the bare converter itself. ``auto`` calibrates every method on most of the calibration data,
scores each converted model on the held-out rest (top-1 agreement with the float model, then output cosine)
and keeps the winner. Optional bias correction removes the mean output shift that int8 per-channel weight
rounding causes in each Conv/Dense layer.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.errors import CalibrationError

METHODS = ("minmax", "percentile", "mse", "kl")
AUTO = "auto"
CHOICES = (*METHODS, AUTO)
DEFAULT_PERCENTILE = 99.99
HISTOGRAM_BINS = 8192
KL_BINS = 2048
CHECKPOINTS = (25, 50, 100, 200, 400, 800, 1600, 3200)
STABILITY_TOLERANCE = 0.05
STABLE_FRACTION = 0.9
AUTO_HOLDOUT_FRACTION = 0.25
AUTO_MIN_SAMPLES = 40
HEAVY_CLIP_FRACTION = 0.5
# Agreement lost by min/max ranges above which ``auto`` says whether range choice can win it back.
LOSS_WORTH_FIXING = 0.01
BATCH = 32

_FUSED_PRODUCERS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "Dense",
                    "BatchNormalization", "Add")
_WEIGHT_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense", "Conv1D")
# Layers whose int8 kernels require the output scale to equal the input scale (TFLite quantization spec)
# or that vanish at inference: a fake-quant node after them conflicts with their input's range.
_SAME_SCALE = ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
               "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Reshape",
               "Flatten", "Permute", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
               "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "RepeatVector",
               "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
               "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "InputLayer")
_FIXED_SCALE_ACTIVATIONS = ("softmax", "sigmoid", "tanh", "log_softmax", "hard_sigmoid")
_FUSABLE_ACTIVATIONS = ("relu", "relu6", "linear")


# ----------------------------------------------------------------------------------------------------------
# Histograms and range choosers (pure numpy)


@dataclasses.dataclass
class Histogram:
    """The float values one tensor took on the calibration data.

    Args:
        counts: value counts in ``len(counts)`` equal bins spanning ``[lo, hi]`` (exact zeros included).
        lo: left edge of the first bin (at most 0).
        hi: right edge of the last bin (at least 0).
        zeros: how many values were exactly 0 (quantized without error, since 0 is always representable).
        observed_min: the smallest value seen.
        observed_max: the largest value seen.

    Example:
        >>> h = Histogram.from_values(np.array([0.0, 0.5, 1.0]), bins=4)
        >>> h.observed_max
        1.0
    """

    counts: np.ndarray
    lo: float
    hi: float
    zeros: float
    observed_min: float
    observed_max: float

    @classmethod
    def from_values(cls, values: np.ndarray, bins: int = HISTOGRAM_BINS,
                    span: tuple[float, float] | None = None) -> Histogram:
        """Histogram ``values`` over ``span`` (default: their own extent, widened to include 0)."""
        values = np.asarray(values, np.float64).ravel()
        vmin, vmax = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        lo, hi = span if span is not None else (min(vmin, 0.0), max(vmax, 0.0))
        counts = _histogram(values, bins, lo, hi)
        return cls(counts, lo, hi, float(np.count_nonzero(values == 0)), vmin, vmax)

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, len(self.counts) + 1)

    @property
    def centers(self) -> np.ndarray:
        edges = self.edges
        return 0.5 * (edges[:-1] + edges[1:])

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    def merged(self, other: Histogram) -> Histogram:
        """The histogram of both sets of values (same bins)."""
        return Histogram(self.counts + other.counts, self.lo, self.hi, self.zeros + other.zeros,
                         min(self.observed_min, other.observed_min), max(self.observed_max, other.observed_max))


def _histogram(values: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        counts = np.zeros(bins)
        counts[0] = values.size
        return counts
    index = np.floor((values - lo) * (bins / (hi - lo))).astype(np.int64)
    np.clip(index, 0, bins - 1, out=index)
    return np.bincount(index, minlength=bins).astype(np.float64)


def _with_zero(lo: float, hi: float) -> tuple[float, float]:
    return min(float(lo), 0.0), max(float(hi), 0.0)


def minmax_range(hist: Histogram) -> tuple[float, float]:
    """The smallest and largest value seen (widened to include 0): what the bare converter uses."""
    return _with_zero(hist.observed_min, hist.observed_max)


def percentile_range(hist: Histogram, percentile: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    """Clip both tails: the range holding ``percentile`` % of the values on each side.

    Args:
        hist: the tensor's histogram.
        percentile: e.g. 99.99 keeps everything up to the 99.99th percentile (and down to the 0.01st).

    Returns:
        ``(min, max)`` of the range (it always contains 0).

    Example:
        >>> values = np.concatenate([np.random.default_rng(0).uniform(0, 1, 10000), [100.0]])
        >>> percentile_range(Histogram.from_values(values), 99.9)[1] < 2
        True
    """
    if not 50.0 < percentile <= 100.0:
        raise CalibrationError(f"--percentile must be in (50, 100]. Received: {percentile}.")
    if hist.total == 0 or percentile == 100.0:
        return minmax_range(hist)
    cdf = np.cumsum(hist.counts) / hist.total
    edges = hist.edges
    upper = edges[min(int(np.searchsorted(cdf, percentile / 100.0)) + 1, len(edges) - 1)]
    lower = edges[int(np.searchsorted(cdf, 1.0 - percentile / 100.0))] if hist.observed_min < 0 else 0.0
    return _with_zero(max(lower, hist.observed_min), min(upper, hist.observed_max))


def _candidates(extent: float, count: int) -> np.ndarray:
    """Candidate clipping magnitudes from ``extent/1000`` to ``extent``, log-spaced (tails need fine steps low)."""
    if extent <= 0:
        return np.zeros(1)
    return np.unique(np.concatenate([np.geomspace(extent * 1e-3, extent, count), [extent]]))


def quantization_mse(hist: Histogram, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """Expected squared int8 quantization error of the histogrammed values for each ``(low, high)`` pair.

    Values inside a range are assumed to round uniformly (error step**2 / 12, exact zeros excepted); values
    outside are clipped to the nearest end.

    Args:
        hist: the tensor's histogram.
        lows: candidate lower ends (<= 0), any shape.
        highs: candidate upper ends (>= 0), broadcastable with ``lows``.

    Returns:
        The mean squared error per candidate, shaped like ``lows + highs``.
    """
    centers, counts = hist.centers, hist.counts.copy()
    zero_bin = int(np.clip(np.searchsorted(hist.edges, 0.0, side="right") - 1, 0, len(counts) - 1))
    counts[zero_bin] = max(counts[zero_bin] - hist.zeros, 0.0)
    total = max(hist.total, 1.0)
    n_cum = np.concatenate([[0.0], np.cumsum(counts)])
    s1_cum = np.concatenate([[0.0], np.cumsum(counts * centers)])
    s2_cum = np.concatenate([[0.0], np.cumsum(counts * centers**2)])
    lows, highs = np.broadcast_arrays(np.asarray(lows, np.float64), np.asarray(highs, np.float64))
    # index of the first bin whose centre is above `high` / the number of bins whose centre is below `low`
    above = np.searchsorted(centers, highs, side="right")
    below = np.searchsorted(centers, lows, side="left")
    n_above = n_cum[-1] - n_cum[above]
    err_above = (s2_cum[-1] - s2_cum[above]) - 2 * highs * (s1_cum[-1] - s1_cum[above]) + highs**2 * n_above
    n_below = n_cum[below]
    err_below = s2_cum[below] - 2 * lows * s1_cum[below] + lows**2 * n_below
    inside = n_cum[-1] - n_above - n_below
    step = (highs - lows) / 255.0
    return (np.maximum(err_above, 0) + np.maximum(err_below, 0) + inside * step**2 / 12.0) / total


def mse_range(hist: Histogram, grid: int = 96) -> tuple[float, float]:
    """The range whose int8 quantization of the histogrammed values has the least mean squared error.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> heavy = rng.standard_t(2, 100000)
        >>> lo, hi = mse_range(Histogram.from_values(heavy))
        >>> bool(hi - lo < heavy.max() - heavy.min())
        True
    """
    if hist.total == 0 or hist.observed_max == hist.observed_min:
        return minmax_range(hist)
    highs = _candidates(max(hist.observed_max, 0.0), grid)
    lows = -_candidates(max(-hist.observed_min, 0.0), grid)
    errors = quantization_mse(hist, lows[:, None], highs[None, :])
    i, j = np.unravel_index(int(np.argmin(errors)), errors.shape)
    return _with_zero(lows[i], highs[j])


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    p = p / p.sum()
    q = q / q.sum()
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _smooth(dist: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """Move a little mass onto empty bins so KL(p||q) is finite (as in TensorRT's calibrator)."""
    zero = dist == 0
    n_zero, n_nonzero = int(zero.sum()), int((~zero).sum())
    if n_nonzero == 0:
        return None
    eps1 = eps * n_zero / n_nonzero
    if eps1 >= 1.0:
        return None
    out = dist.astype(np.float64)
    out[zero] = eps
    out[~zero] -= eps1
    return out if np.all(out > 0) else None


def kl_threshold(abs_counts: np.ndarray, levels: int, max_candidates: int = 256) -> int:
    """TensorRT-style entropy calibration on a histogram of magnitudes.

    For each candidate threshold (a bin index ``i``), the reference distribution P is the histogram up to ``i``
    with everything beyond folded into the last bin; Q is that histogram quantized to ``levels`` levels and
    expanded back. The threshold with the least KL(P || Q) wins.

    Args:
        abs_counts: counts of |x| in equal bins starting at 0.
        levels: quantization levels available over [0, threshold] (128 for a symmetric range, 256 one-sided).
        max_candidates: at most this many thresholds are tried (evenly spaced).

    Returns:
        The number of bins below the chosen threshold.
    """
    bins = len(abs_counts)
    if bins <= levels:
        return bins
    stride = max(1, (bins - levels) // max_candidates)
    best, best_i = np.inf, bins
    total_tail = np.concatenate([np.cumsum(abs_counts[::-1])[::-1], [0.0]])
    for i in range(levels, bins + 1, stride):
        sliced = abs_counts[:i]
        p = sliced.copy()
        p[-1] += total_tail[i]
        nonzero = sliced != 0
        # merge the i bins into `levels` groups, then spread each group's mass over its non-empty bins
        group = (np.arange(i) * levels) // i
        sums = np.bincount(group, weights=sliced, minlength=levels)
        nz = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
        q = np.where(nonzero, sums[group] / np.maximum(nz[group], 1), 0.0)
        ps, qs = _smooth(p), _smooth(q)
        if ps is None or qs is None:
            continue
        kl = _kl_divergence(ps, qs)
        if kl < best:
            best, best_i = kl, i
    return best_i


def kl_range(hist: Histogram) -> tuple[float, float]:
    """The range from entropy (KL) calibration: one-sided tensors use 256 levels, two-sided ones 128 per side.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> lo, hi = kl_range(Histogram.from_values(np.abs(rng.normal(size=50000))))
        >>> 2.0 < hi <= 5.0
        True
    """
    if hist.total == 0 or hist.observed_max == hist.observed_min:
        return minmax_range(hist)
    extent = max(abs(hist.lo), abs(hist.hi))
    one_sided = hist.observed_min >= 0
    bins = KL_BINS
    # fold the signed histogram into TensorRT's 2048 bins of magnitudes (by bin centre: off by under one bin)
    index = np.clip(np.floor(np.abs(hist.centers) * (bins / extent)).astype(np.int64), 0, bins - 1)
    abs_counts = np.bincount(index, weights=hist.counts, minlength=bins)
    # exact zeros (half of a ReLU output) quantize without error; left in, their spike drags the threshold down
    abs_counts[0] = max(abs_counts[0] - hist.zeros, 0.0)
    i = kl_threshold(abs_counts, 256 if one_sided else 128)
    threshold = extent * i / bins
    return _with_zero(max(hist.observed_min, -threshold), min(hist.observed_max, threshold))


def choose_range(hist: Histogram, method: str, percentile: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    """The activation range ``method`` picks for one tensor's histogram.

    Args:
        hist: the tensor's histogram.
        method: "minmax", "percentile", "mse" or "kl".
        percentile: for "percentile".

    Returns:
        ``(min, max)``, always containing 0.
    """
    if method == "minmax":
        return minmax_range(hist)
    if method == "percentile":
        return percentile_range(hist, percentile)
    if method == "mse":
        return mse_range(hist)
    if method == "kl":
        return kl_range(hist)
    raise CalibrationError(f"calibration method must be one of {', '.join(CHOICES)}. Received: {method!r}.")


def int8_scale(lo: float, hi: float) -> float:
    """The scale an asymmetric int8 range [lo, hi] gets (what fake-quant and the converter emit)."""
    return (hi - lo) / 255.0


# ----------------------------------------------------------------------------------------------------------
# Where the converter quantizes a tensor on its own: the quantization points of a Keras graph


@dataclasses.dataclass
class QuantizationPoint:
    """A tensor whose int8 range calibration chooses: a model input or a layer's output.

    Args:
        name: the layer name (or the input's name).
        kind: "input" or "layer".
        layer_class: the Keras class of the producing layer.
    """

    name: str
    kind: str
    layer_class: str


def _functional(model: Any) -> Any:
    """The Keras model behind ``model`` as a flat functional graph (Sequential models re-wrapped and nested
    models inlined, sharing layers)."""
    import keras

    model = model if hasattr(model, "inputs") else getattr(model, "model", model)
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as exc:
        raise CalibrationError(f"model '{getattr(model, 'name', model)}': calibration needs a built model with "
                               "defined inputs. Give it an Input layer (or call it on data) first.") from exc
    if isinstance(model, keras.Sequential) or not hasattr(model, "_nodes_by_depth"):
        model = keras.Model(inputs, outputs, name=model.name)
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        from edgecompress.graph import inline_nested

        model = inline_nested(model)  # a backbone inside a head: calibrate its layers, not one opaque output
    return model


def _activation_name(layer: Any) -> str | None:
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", None) if fn is not None else None


def _fuses_into(producer: Any, consumer: Any) -> bool:
    """Whether the converter folds ``consumer`` into ``producer`` (so the tensor between them is never int8)."""
    p_cls, c_cls = type(producer).__name__, type(consumer).__name__
    if p_cls not in _FUSED_PRODUCERS or _activation_name(producer) not in (None, "linear"):
        return False
    if c_cls == "BatchNormalization":
        return p_cls in _WEIGHT_LAYERS or p_cls.startswith(("Conv", "DepthwiseConv"))
    if c_cls == "ReLU":
        config = consumer.get_config()
        return (not config.get("negative_slope") and not config.get("threshold")
                and config.get("max_value") in (None, 6, 6.0))
    if c_cls == "Activation":
        return _activation_name(consumer) in _FUSABLE_ACTIVATIONS
    return False


def _graph(model: Any) -> tuple[list[Any], dict[str, list[Any]], dict[str, int]]:
    """Nodes in execution order, each layer's consumers and how often each layer is called."""
    nodes = [node for depth in sorted(model._nodes_by_depth, reverse=True) for node in model._nodes_by_depth[depth]]
    consumers: dict[str, list[Any]] = {}
    calls: dict[str, int] = {}
    for node in nodes:
        calls[node.operation.name] = calls.get(node.operation.name, 0) + 1
        for parent in node.parent_nodes:
            consumers.setdefault(parent.operation.name, []).append(node.operation)
    return nodes, consumers, calls


def quantization_points(model: Any) -> list[QuantizationPoint]:
    """The tensors of ``model`` whose int8 range calibration should choose (see the module docstring).

    Args:
        model: a built Keras 3 model (functional or Sequential) or a ``LoadedModel``.

    Returns:
        The model inputs first, then the layer outputs in execution order.

    Example:
        >>> [p.name for p in quantization_points(model)]  # doctest: +SKIP
        ['input', 'conv1', 'conv2', 'dense', 'logits']
    """
    fn = _functional(model)
    nodes, consumers, calls = _graph(fn)
    points = [QuantizationPoint(t.name.split(":")[0], "input", "InputLayer") for t in fn.inputs
              if "float" in str(t.dtype)]
    for node in nodes:
        layer = node.operation
        cls = type(layer).__name__
        if cls in _SAME_SCALE or calls[layer.name] > 1 or len(node.outputs) != 1:
            continue
        if "float" not in str(node.outputs[0].dtype) or not node.parent_nodes:
            continue
        if cls == "Softmax" or _activation_name(layer) in _FIXED_SCALE_ACTIVATIONS:
            continue
        users = consumers.get(layer.name, [])
        if any(type(user).__name__ == "Concatenate" for user in users):
            continue
        if len(users) == 1 and _fuses_into(layer, users[0]):
            continue
        points.append(QuantizationPoint(layer.name, "layer", cls))
    return points


# ----------------------------------------------------------------------------------------------------------
# Collecting activations


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
    from edgecompress.convert.converter import _as_arrays

    names = [t.name.split(":")[0] for t in fn.inputs]
    return names, _as_arrays(calibration, names)


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


# ----------------------------------------------------------------------------------------------------------
# Freezing ranges into the graph


def _frozen_fake_quant_class() -> type:
    """The Keras layer (defined lazily: Keras is a heavy import) that fake-quantizes with a fixed range."""
    global _FROZEN_FAKE_QUANT
    if _FROZEN_FAKE_QUANT is not None:
        return _FROZEN_FAKE_QUANT
    import keras

    @keras.saving.register_keras_serializable(package="edgecompress")
    class FrozenFakeQuant(keras.layers.Layer):
        """Fake-quantize to int8 over a fixed ``[min_value, max_value]``: the converter emits exactly that range."""

        def __init__(self, min_value: float, max_value: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.min_value = float(min_value)
            self.max_value = float(max_value)

        def call(self, inputs: Any) -> Any:
            return keras.quantizers.fake_quant_with_min_max_vars(inputs, self.min_value, self.max_value,
                                                                 num_bits=8)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "min_value": self.min_value, "max_value": self.max_value}

    _FROZEN_FAKE_QUANT = FrozenFakeQuant
    return FrozenFakeQuant


_FROZEN_FAKE_QUANT: type | None = None


def fake_quantized_model(model: Any, ranges: dict[str, tuple[float, float]],
                         weight_updates: dict[str, list[np.ndarray]] | None = None) -> Any:
    """A copy of ``model`` with a frozen fake-quant node after every input/layer output named in ``ranges``.

    Layers are shared with ``model`` (no weights are copied) except those in ``weight_updates``, which are
    fresh copies carrying the given weights (the original model is never modified).

    Args:
        model: a Keras 3 model or ``LoadedModel``.
        ranges: ``{input or layer name: (min, max)}``.
        weight_updates: ``{layer name: full weight list}`` (e.g. bias-corrected biases).

    Returns:
        A functional Keras model.

    Example:
        >>> fq = fake_quantized_model(model, {"input": (0.0, 1.0), "conv1": (0.0, 4.0)})  # doctest: +SKIP
    """
    import keras

    fn = _functional(model)
    fake_quant = _frozen_fake_quant_class()
    updates = weight_updates or {}
    copies: dict[str, Any] = {}
    quantized_inputs: dict[int, Any] = {}

    def clone(layer: Any) -> Any:
        if layer.name not in updates:
            return layer
        copies[layer.name] = layer.__class__.from_config(layer.get_config())
        return copies[layer.name]

    def quantize_input(tensor: Any) -> Any:
        if not isinstance(tensor, keras.KerasTensor):
            return tensor
        history = getattr(tensor, "_keras_history", None)
        layer = history.operation if history is not None else None
        if type(layer).__name__ != "InputLayer" or layer.name not in ranges:
            return tensor
        if id(tensor) not in quantized_inputs:
            lo, hi = ranges[layer.name]
            quantized_inputs[id(tensor)] = fake_quant(lo, hi, name=f"{layer.name}_fake_quant")(tensor)
        return quantized_inputs[id(tensor)]

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        args = keras.tree.map_structure(quantize_input, args)
        kwargs = keras.tree.map_structure(quantize_input, kwargs)
        out = layer(*args, **kwargs)
        if layer.name in ranges:
            lo, hi = ranges[layer.name]
            out = fake_quant(lo, hi, name=f"{layer.name}_fake_quant")(out)
        return out

    result = keras.models.clone_model(fn, clone_function=clone, call_function=call)
    for name, layer in copies.items():
        layer.set_weights(updates[name])
    return result


# ----------------------------------------------------------------------------------------------------------
# Bias correction


def quantize_weights_per_channel(kernel: np.ndarray, reduce_axes: tuple[int, ...]) -> np.ndarray:
    """Simulate TFLite's int8 weight quantization in float: symmetric, per channel, levels -127..127.

    Args:
        kernel: the float weights.
        reduce_axes: the axes one channel's scale is computed over (all but the channel axes).

    Returns:
        The de-quantized weights (same shape).

    Example:
        >>> w = np.array([[0.5, -1.0], [0.25, 0.1]])
        >>> bool(np.allclose(quantize_weights_per_channel(w, (0,)), w, atol=0.01))
        True
    """
    scale = np.max(np.abs(kernel), axis=reduce_axes, keepdims=True) / 127.0
    safe = np.where(scale > 0, scale, 1.0)
    return np.where(scale > 0, np.clip(np.round(kernel / safe), -127, 127) * safe, 0.0)


def _weighted_layers(fn: Any) -> list[tuple[Any, Any, Any | None]]:
    """``(node, layer, batch_norm)`` for every Conv/Dense layer whose output shift can be corrected."""
    nodes, consumers, calls = _graph(fn)
    found = []
    for node in nodes:
        layer = node.operation
        cls = type(layer).__name__
        if cls not in _WEIGHT_LAYERS or calls[layer.name] > 1 or getattr(layer, "groups", 1) != 1:
            continue
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            continue
        users = consumers.get(layer.name, [])
        bn = users[0] if len(users) == 1 and type(users[0]).__name__ == "BatchNormalization" else None
        if bn is not None and (calls[bn.name] > 1 or bn.axis not in (-1, len(node.outputs[0].shape) - 1)):
            bn = None
        found.append((node, layer, bn))
    return found


def _output_shift(layer: Any, mean_input: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Mean change of the layer's output per channel when its kernel changes by ``delta`` (it is linear)."""
    from keras import ops

    cls = type(layer).__name__
    x = mean_input[None].astype(np.float32)
    if cls == "Dense":
        out = x @ delta
    elif cls == "DepthwiseConv2D":
        out = ops.convert_to_numpy(ops.depthwise_conv(x, delta.astype(np.float32), strides=layer.strides,
                                                      padding=layer.padding, dilation_rate=layer.dilation_rate))
    else:
        out = ops.convert_to_numpy(ops.conv(x, delta.astype(np.float32), strides=layer.strides,
                                            padding=layer.padding, dilation_rate=layer.dilation_rate))
    return np.asarray(out, np.float64).reshape(-1, out.shape[-1]).mean(axis=0)


def bias_corrections(model: Any, calibration: Any, *, max_samples: int | None = None
                     ) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
    """Correct each Conv/Dense layer's bias for the mean output shift its int8 weights introduce.

    The shift ``E[W_q x] - E[W x]`` per output channel is measured on the calibration data with float
    activations and the weights quantized as the converter will (per-channel symmetric). It is subtracted
    from the layer's bias, or, for a bias-free convolution followed by BatchNormalization, added to the
    normalization's moving mean (per-channel quantization commutes with the folding, so the shift is the same).

    Args:
        model: a Keras 3 model or ``LoadedModel``.
        calibration: a ``Dataset``, an array or a dict of arrays keyed by input name.
        max_samples: use at most this many samples.

    Returns:
        ``(weight_updates, summary)``: full weight lists for ``fake_quantized_model(..., weight_updates=...)``
        and a JSON-ready summary (layers corrected, skipped, largest shift).

    Example:
        >>> updates, summary = bias_corrections(model, calibration)  # doctest: +SKIP
        >>> summary["layers"]  # doctest: +SKIP
        4
    """
    import keras

    fn = _functional(model)
    names, arrays = _input_arrays(fn, calibration)
    count = len(next(iter(arrays.values())))
    count = min(count, max_samples) if max_samples is not None else count
    targets = _weighted_layers(fn)
    skipped = [layer.name for _, layer, bn in targets if not layer.use_bias and bn is None]
    targets = [(node, layer, bn) for node, layer, bn in targets if layer.use_bias or bn is not None]
    if not targets:
        return {}, {"layers": 0, "skipped": skipped, "max_abs_shift": 0.0}
    watched = [node.arguments.keras_tensors[0] for node, _, _ in targets]
    watcher = keras.Model(fn.inputs, watched)
    sums = [np.zeros(t.shape[1:], np.float64) for t in watched]
    with captured_output():
        for start, stop in _batches(count, []):
            batch = [arrays[name][start:stop] for name in names]
            outs = watcher.predict_on_batch(batch if len(batch) > 1 else batch[0])
            outs = outs if isinstance(outs, list | tuple) else [outs]
            for total, out in zip(sums, outs, strict=True):
                total += np.asarray(out, np.float64).sum(axis=0)
    updates: dict[str, list[np.ndarray]] = {}
    largest = 0.0
    for (_, layer, bn), total in zip(targets, sums, strict=True):
        kernel = np.asarray(layer.kernel.numpy(), np.float64)
        reduce_axes = (0, 1) if type(layer).__name__ == "DepthwiseConv2D" else tuple(range(kernel.ndim - 1))
        delta = quantize_weights_per_channel(kernel, reduce_axes) - kernel
        shift = _output_shift(layer, total / count, delta)
        largest = max(largest, float(np.max(np.abs(shift))))
        if layer.use_bias:
            weights = layer.get_weights()
            index = next(i for i, w in enumerate(layer.weights) if w is layer.bias)
            weights[index] = (weights[index] - shift).astype(weights[index].dtype)
            updates[layer.name] = weights
        else:
            weights = bn.get_weights()
            index = next(i for i, w in enumerate(bn.weights) if w is bn.moving_mean)
            weights[index] = (weights[index] + shift).astype(weights[index].dtype)
            updates[bn.name] = weights
    return updates, {"layers": len(updates), "skipped": skipped, "max_abs_shift": largest}


def bias_corrected_model(model: Any, weight_updates: dict[str, list[np.ndarray]]) -> Any:
    """A copy of ``model`` with ``weight_updates`` applied (other layers shared, the original untouched)."""
    return fake_quantized_model(model, {}, weight_updates)


# ----------------------------------------------------------------------------------------------------------
# Converting, checking the flatbuffer, scoring


def scale_check(tflite: bytes, ranges: dict[str, tuple[float, float]], *, rtol: float = 1e-6) -> dict[str, Any]:
    """Check a converted model carries the chosen ranges and no requantizing operators inside the graph.

    Args:
        tflite: the flatbuffer.
        ranges: the ranges that were frozen into the graph.
        rtol: relative tolerance on a scale.

    Returns:
        ``{"verified": n, "expected": m, "missing": [names], "internal_requantize": [op names]}``: a range
        counts as verified when some int8 activation tensor of the model has its scale.
    """
    from edgecompress.tflite import read_model

    info = read_model(tflite)
    scales = np.array([t.scale[0] for t in info.tensors
                       if not t.is_constant and t.dtype in ("int8", "uint8") and len(t.scale) == 1])
    missing = []
    for name, (lo, hi) in ranges.items():
        expected = int8_scale(lo, hi)
        if not scales.size or np.min(np.abs(scales - expected)) > rtol * expected:
            missing.append(name)
    edges = set(info.inputs) | set(info.outputs)
    requantize = [f"#{op.index} {op.op}" for op in info.operators if op.op in ("QUANTIZE", "DEQUANTIZE")
                  and not (set(op.inputs) & edges or set(op.outputs) & edges)]
    return {"verified": len(ranges) - len(missing), "expected": len(ranges), "missing": missing,
            "internal_requantize": requantize}


def heavily_clipped(stats: ActivationStats, ranges: dict[str, tuple[float, float]]) -> list[str]:
    """Tensors whose chosen range is under ``HEAVY_CLIP_FRACTION`` of the width holding 99.99% of their values.

    Entropy calibration can do this on spiky histograms (e.g. the first ReLU of a network fed upsampled
    images): worth a warning, because such a clip usually costs accuracy.
    """
    flagged = []
    for point in stats.points:
        if point.name not in ranges:
            continue
        lo, hi = percentile_range(stats.histograms[point.name], DEFAULT_PERCENTILE)
        chosen_lo, chosen_hi = ranges[point.name]
        if chosen_hi - chosen_lo < HEAVY_CLIP_FRACTION * (hi - lo):
            flagged.append(point.name)
    return flagged


def _score(tflite: bytes, holdout: dict[str, np.ndarray], reference: np.ndarray) -> dict[str, float]:
    from edgecompress.metrics import cosine_similarity
    from edgecompress.runtimes.host import HostRunner

    outputs = HostRunner(tflite).predict(holdout)[0].reshape(reference.shape)
    flat_out, flat_ref = outputs.reshape(len(outputs), -1), reference.reshape(len(reference), -1)
    return {"agreement": float(np.mean(flat_out.argmax(1) == flat_ref.argmax(1))),
            "cosine": float(np.mean(cosine_similarity(outputs, reference)))}


def _float_outputs(fn: Any, arrays: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    batch = [arrays[name] for name in names]
    with captured_output():
        out = fn.predict(batch if len(batch) > 1 else batch[0], batch_size=BATCH, verbose=0)
    return np.asarray(out[0] if isinstance(out, list | tuple) else out, np.float32)


# ----------------------------------------------------------------------------------------------------------
# Stability and the report


def range_stability(stats: ActivationStats, method: str, percentile: float = DEFAULT_PERCENTILE,
                    tolerance: float = STABILITY_TOLERANCE) -> dict[str, Any]:
    """How the chosen ranges move as the number of calibration samples grows.

    At each checkpoint (25, 50, 100, 200, ... samples) the ranges are chosen again from the samples seen so far
    and compared with the ranges from all samples: relative change = (|dmin| + |dmax|) / final width.

    Args:
        stats: activation statistics with prefix histograms.
        method: the range chooser.
        percentile: for "percentile".
        tolerance: a tensor counts as settled when its relative change is at most this.

    Returns:
        ``{"tolerance", "checkpoints": [{"samples", "median_rel_change", "max_rel_change", "fraction_settled"}],
        "stable_after"}``: ``stable_after`` is the first checkpoint from which at least 90% of the tensors stay
        settled (``None`` when only the full set qualifies).
    """
    final = stats.ranges(method, percentile)
    rows = []
    count = len(next(iter(stats.prefixes.values()), []))
    for k in range(count):
        samples = None
        changes = []
        for point in stats.points:
            if point.name not in final:
                continue
            samples, hist = stats.prefixes[point.name][k]
            lo, hi = choose_range(hist, "minmax" if point.kind == "input" else method, percentile)
            f_lo, f_hi = final[point.name]
            changes.append((abs(lo - f_lo) + abs(hi - f_hi)) / (f_hi - f_lo))
        if samples is None:
            continue
        changes_arr = np.asarray(changes)
        rows.append({"samples": samples, "median_rel_change": round(float(np.median(changes_arr)), 4),
                     "max_rel_change": round(float(np.max(changes_arr)), 4),
                     "fraction_settled": round(float(np.mean(changes_arr <= tolerance)), 4)})
    stable_after = None
    for row in reversed(rows[:-1]):
        if row["fraction_settled"] < STABLE_FRACTION:
            break
        stable_after = row["samples"]
    return {"tolerance": tolerance, "checkpoints": rows, "stable_after": stable_after}


@dataclasses.dataclass
class CalibrationReport:
    """What calibration chose and why; the ``calibration`` section of an export's JSON.

    Args:
        method: the method used ("minmax" = the bare converter's own ranges).
        requested: what the user asked for ("auto" or a method).
        percentile: the percentile, for "percentile".
        samples: calibration samples used.
        ranges: the chosen range per quantization point (``[min, max]``).
        observed: the min/max seen per quantization point.
        scales: the flatbuffer check (``scale_check``), None for the bare converter.
        bias_correction: the ``bias_corrections`` summary, None when off.
        auto: for "auto": held-out samples, per-method scores, winner and margins.
        stability: ``range_stability`` of the chosen method.
        warnings: things the user should know.
    """

    method: str
    requested: str
    percentile: float | None
    samples: int
    ranges: dict[str, list[float]]
    observed: dict[str, list[float]]
    scales: dict[str, Any] | None = None
    bias_correction: dict[str, Any] | None = None
    auto: dict[str, Any] | None = None
    stability: dict[str, Any] | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _stability_warnings(stability: dict[str, Any], samples: int) -> list[str]:
    from edgecompress.samples import RECOMMENDED_CALIBRATION_SAMPLES

    messages = []
    if samples < RECOMMENDED_CALIBRATION_SAMPLES:
        messages.append(f"only {samples} calibration samples: activation ranges are chosen from few values; "
                        f"{RECOMMENDED_CALIBRATION_SAMPLES}+ give more stable int8 ranges.")
    if len(stability["checkpoints"]) > 1 and stability["stable_after"] is None:
        last = stability["checkpoints"][-2]
        messages.append(f"activation ranges were still moving at {last['samples']} of {samples} samples "
                        f"({100 * (1 - last['fraction_settled']):.0f}% of tensors off their final range by more "
                        f"than {100 * stability['tolerance']:.0f}%): add calibration samples.")
    return messages


# ----------------------------------------------------------------------------------------------------------
# The entry point


def _convert_with(fn: Any, method: str, stats: ActivationStats, arrays: dict[str, np.ndarray],
                  updates: dict[str, list[np.ndarray]], percentile: float, convert_kwargs: dict[str, Any]
                  ) -> tuple[Any, dict[str, tuple[float, float]], dict[str, Any] | None]:
    from edgecompress.convert.converter import convert

    if method == "minmax":
        target = bias_corrected_model(fn, updates) if updates else fn
        return convert(target, arrays, **convert_kwargs), {}, None
    ranges = stats.ranges(method, percentile)
    clipped = heavily_clipped(stats, ranges)
    with warnings.catch_warnings():
        # the converter notes that fake-quantized inputs carry no statistics: the frozen ranges are those statistics
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        result = convert(fake_quantized_model(fn, ranges, updates), arrays, **convert_kwargs)
    check = scale_check(result.tflite, ranges)
    if check["internal_requantize"]:
        result.warnings.append(f"{len(check['internal_requantize'])} requantizing operator(s) inside the graph "
                               f"({', '.join(check['internal_requantize'])}): two chosen ranges met at an "
                               "operator that needs one scale.")
    if clipped:
        result.warnings.append(f"{method} clipped {len(clipped)} tensor(s) to under {100 * HEAVY_CLIP_FRACTION:.0f}% "
                               f"of the range holding 99.99% of their values ({', '.join(clipped[:5])}); if "
                               "accuracy drops, try --calibration-method auto or percentile.")
    if check["missing"]:
        result.warnings.append(f"{len(check['missing'])} chosen range(s) did not reach the flatbuffer "
                               f"({', '.join(check['missing'][:5])}): the converter overrode them.")
    return result, ranges, check


def calibrate_and_convert(model: Any, calibration: Any, *, method: str = "mse",
                          percentile: float = DEFAULT_PERCENTILE, bias_correction: bool = False,
                          io_dtype: str = "int8", allow_float_fallback: bool = False, max_samples: int = 500,
                          holdout_fraction: float = AUTO_HOLDOUT_FRACTION, seed: int = 0) -> tuple[Any, CalibrationReport]:
    """Choose activation ranges with ``method``, freeze them into the graph and convert to full int8.

    Args:
        model: a Keras 3 model or ``LoadedModel``.
        calibration: a ``Dataset``, an array or a dict of arrays keyed by input name.
        method: "minmax" (the bare converter), "percentile", "mse", "kl" or "auto".
        percentile: for "percentile" (default 99.99).
        bias_correction: correct Conv/Dense biases for the mean shift of int8 weight rounding.
        io_dtype: "int8", "uint8" or "float32" model inputs/outputs.
        allow_float_fallback: keep operators without an int8 kernel in float.
        max_samples: calibrate on at most this many samples (the first ones).
        holdout_fraction: for "auto": the share of the calibration samples held out to score the methods.
        seed: for "auto": the seed of the held-out split.

    Returns:
        ``(ConversionResult, CalibrationReport)``.

    Example:
        >>> result, report = calibrate_and_convert(model, calibration, method="auto")  # doctest: +SKIP
        >>> report.method, report.auto["scores"]["mse"]["agreement"]  # doctest: +SKIP
        ('mse', 0.99)
    """
    from edgecompress.samples import MIN_CALIBRATION_SAMPLES

    if method not in CHOICES:
        raise CalibrationError(f"calibration method must be one of {', '.join(CHOICES)}. Received: {method!r}.")
    if method == "percentile" or method == AUTO:
        choose_range(Histogram.from_values(np.zeros(1)), "percentile", percentile)  # validates the value
    fn = _functional(model)
    names, arrays = _input_arrays(fn, calibration)
    count = min(len(next(iter(arrays.values()))), max_samples)
    if count < MIN_CALIBRATION_SAMPLES:
        raise CalibrationError(f"{count} calibration samples is too few to choose activation ranges; expected at "
                               f"least {MIN_CALIBRATION_SAMPLES}. Add samples.")
    arrays = {k: v[:count] for k, v in arrays.items()}
    convert_kwargs = {"io_dtype": io_dtype, "allow_float_fallback": allow_float_fallback, "max_samples": count}
    if method == AUTO:
        return _auto(fn, names, arrays, percentile, bias_correction, convert_kwargs, holdout_fraction, seed)
    updates, bias_summary = bias_corrections(fn, arrays) if bias_correction else ({}, None)
    stats = collect_activations(fn, arrays)
    result, ranges, check = _convert_with(fn, method, stats, arrays, updates, percentile, convert_kwargs)
    report = _report(method, method, percentile, stats, ranges, check, bias_summary, None, result)
    return result, report


def _report(method: str, requested: str, percentile: float, stats: ActivationStats,
            ranges: dict[str, tuple[float, float]], check: dict[str, Any] | None, bias_summary: dict[str, Any] | None,
            auto: dict[str, Any] | None, result: Any) -> CalibrationReport:
    stability = range_stability(stats, method, percentile)
    observed = stats.ranges("minmax")
    return CalibrationReport(
        method=method, requested=requested, percentile=percentile if method == "percentile" else None,
        samples=stats.samples,
        ranges={k: [round(v[0], 6), round(v[1], 6)] for k, v in (ranges or observed).items()},
        observed={k: [round(v[0], 6), round(v[1], 6)] for k, v in observed.items()},
        scales=check, bias_correction=bias_summary, auto=auto, stability=stability,
        warnings=_stability_warnings(stability, stats.samples) + list(result.warnings))


def _auto(fn: Any, names: list[str], arrays: dict[str, np.ndarray], percentile: float, bias_correction: bool,
          convert_kwargs: dict[str, Any], holdout_fraction: float, seed: int) -> tuple[Any, CalibrationReport]:
    """Calibrate every method on the fit slice, score each on the held-out slice, ship the winner as scored.

    The winner is not re-calibrated on all samples: a rare outlier that happens to sit in the held-out slice
    would then stretch the shipped ranges in a way no score ever saw.
    """
    count = len(next(iter(arrays.values())))
    if count < AUTO_MIN_SAMPLES:
        raise CalibrationError(f"--calibration-method auto needs at least {AUTO_MIN_SAMPLES} calibration samples "
                               f"(some are held out to score the methods). Received: {count}. Add samples or "
                               "pick a method.")
    order = np.random.default_rng(seed).permutation(count)
    held = max(10, int(round(count * holdout_fraction)))
    fit = {k: v[np.sort(order[held:])] for k, v in arrays.items()}
    holdout = {k: v[np.sort(order[:held])] for k, v in arrays.items()}
    reference = _float_outputs(fn, holdout, names)
    updates, bias_summary = bias_corrections(fn, fit) if bias_correction else ({}, None)
    stats = collect_activations(fn, fit)
    kwargs = {**convert_kwargs, "max_samples": count - held}
    scores, candidates = {}, {}
    for candidate in METHODS:
        candidates[candidate] = _convert_with(fn, candidate, stats, fit, updates, percentile, kwargs)
        scores[candidate] = _score(candidates[candidate][0].tflite, holdout, reference)
    ranked = sorted(METHODS, key=lambda m: (scores[m]["agreement"], scores[m]["cosine"]), reverse=True)
    winner, runner_up = ranked[0], ranked[1]
    auto = {"holdout_samples": held, "fit_samples": count - held, "scores": scores, "winner": winner,
            "runner_up": runner_up,
            "agreement_gain_vs_minmax_points": round(100 * (scores[winner]["agreement"]
                                                            - scores["minmax"]["agreement"]), 4),
            "agreement_gain_vs_runner_up_points": round(100 * (scores[winner]["agreement"]
                                                               - scores[runner_up]["agreement"]), 4),
            "cosine_gain_vs_minmax": round(scores[winner]["cosine"] - scores["minmax"]["cosine"], 6)}
    result, ranges, check = candidates[winner]
    note = _ranges_not_the_cause(scores, winner, len(stats.points))
    if note:
        result.warnings.append(note)
    return result, _report(winner, AUTO, percentile, stats, ranges, check, bias_summary, auto, result)


def _ranges_not_the_cause(scores: dict[str, dict[str, float]], winner: str, points: int) -> str | None:
    """A warning when min/max loses over ``LOSS_WORTH_FIXING`` agreement and no range choice wins back half.

    Then the error is not in the ranges (an outlier stretching one of them) but rounding noise accumulating
    over every int8 tensor, which only training with fake-quant (QAT) or wider types remove.
    """
    loss = 1.0 - scores["minmax"]["agreement"]
    gained = scores[winner]["agreement"] - scores["minmax"]["agreement"]
    if loss <= LOSS_WORTH_FIXING or gained >= 0.5 * loss:
        return None
    return (f"calibration: min/max ranges lose {100 * loss:.1f}% top-1 agreement on the held-out calibration "
            f"samples and the best range choice ({winner}) wins back {100 * max(gained, 0.0):.1f} points: the error "
            f"is not in the ranges but rounding accumulating over {points} int8 tensors. Quantization-aware "
            "training recovers it: edgecompress compress MODEL --recipe qat --data TRAIN --out MODEL_qat.keras, "
            "then export that.")
