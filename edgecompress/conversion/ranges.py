"""Activation ranges from histograms (pure numpy): min/max, percentile, MSE and KL choosers, int8 scales.

``edgecompress.conversion.activations`` fills the histograms; ``edgecompress.conversion.ptq`` freezes the chosen
ranges into the graph. Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgecompress.errors import CalibrationError

METHODS = ("minmax", "percentile", "mse", "kl")
AUTO = "auto"
CHOICES = (*METHODS, AUTO)
DEFAULT_PERCENTILE = 99.99
HISTOGRAM_BINS = 8192
KL_BINS = 2048


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
