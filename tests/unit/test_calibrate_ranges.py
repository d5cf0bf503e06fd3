"""Range choosers of edgecompress.conversion.ranges on synthetic distributions (numpy only, no conversion)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.conversion.activations import ActivationStats
from edgecompress.conversion.bias import quantize_weights_per_channel
from edgecompress.conversion.points import QuantizationPoint
from edgecompress.conversion.ptq import heavily_clipped, range_stability
from edgecompress.conversion.ranges import (
    METHODS,
    Histogram,
    choose_range,
    int8_scale,
    kl_range,
    minmax_range,
    mse_range,
    percentile_range,
    quantization_mse,
)
from edgecompress.errors import CalibrationError

RNG = np.random.default_rng(0)
UNIFORM_WITH_OUTLIER = np.concatenate([RNG.uniform(0.0, 1.0, 100_000), [1000.0]])
HEAVY_TAILED = RNG.standard_t(2, 200_000)
RELU_NORMAL = np.maximum(RNG.normal(size=200_000), 0.0)


def test_minmax_range_is_the_observed_extent_widened_to_zero():
    assert minmax_range(Histogram.from_values(np.array([0.5, 2.0]))) == (0.0, 2.0)


def test_percentile_range_clips_a_single_outlier():
    lo, hi = percentile_range(Histogram.from_values(UNIFORM_WITH_OUTLIER), 99.99)
    assert lo == 0.0
    assert 0.99 <= hi < 2.0


def test_percentile_range_clips_both_tails_of_a_two_sided_distribution():
    values = RNG.normal(size=100_000)
    lo, hi = percentile_range(Histogram.from_values(values), 99.9)
    assert values.min() < lo < -2.5
    assert 2.5 < hi < values.max()


def test_percentile_outside_50_to_100_is_rejected():
    with pytest.raises(CalibrationError, match="percentile"):
        percentile_range(Histogram.from_values(RELU_NORMAL), 40.0)


def test_mse_range_is_narrower_than_minmax_for_heavy_tails():
    hist = Histogram.from_values(HEAVY_TAILED)
    lo, hi = mse_range(hist)
    m_lo, m_hi = minmax_range(hist)
    assert hi - lo < 0.9 * (m_hi - m_lo)


def test_mse_range_has_lower_quantization_error_than_minmax():
    hist = Histogram.from_values(HEAVY_TAILED)
    lo, hi = mse_range(hist)
    m_lo, m_hi = minmax_range(hist)
    assert quantization_mse(hist, np.array(lo), np.array(hi)) < quantization_mse(hist, np.array(m_lo), np.array(m_hi))


def test_quantization_mse_matches_a_direct_simulation():
    values = RNG.normal(size=50_000)
    hist = Histogram.from_values(values)
    lo, hi = -2.0, 2.5
    scale = int8_scale(lo, hi)
    simulated = np.clip(np.round((values - lo) / scale), 0, 255) * scale + lo
    direct = np.mean((values - simulated) ** 2)
    assert quantization_mse(hist, np.array(lo), np.array(hi)) == pytest.approx(direct, rel=0.05)


def test_kl_range_of_a_relu_output_clips_the_tail_but_keeps_the_bulk():
    lo, hi = kl_range(Histogram.from_values(RELU_NORMAL))
    assert lo == 0.0
    assert 2.5 < hi <= RELU_NORMAL.max()


def test_kl_range_of_a_two_sided_distribution_stays_inside_the_observed_values():
    values = RNG.normal(size=100_000)
    lo, hi = kl_range(Histogram.from_values(values))
    assert values.min() <= lo < -2.0
    assert 2.0 < hi <= values.max()


def test_kl_range_clips_a_single_outlier():
    lo, hi = kl_range(Histogram.from_values(UNIFORM_WITH_OUTLIER))
    assert hi < 0.2 * UNIFORM_WITH_OUTLIER.max()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_a_range_containing_zero_within_the_observed_extent(method):
    values = RNG.normal(1.0, 0.5, 20_000)
    lo, hi = choose_range(Histogram.from_values(values), method)
    assert lo <= 0.0 <= hi
    assert hi <= values.max() + 1e-9


def test_unknown_method_is_rejected():
    with pytest.raises(CalibrationError, match="calibration method"):
        choose_range(Histogram.from_values(RELU_NORMAL), "magic")


def test_merged_histograms_equal_the_histogram_of_all_values():
    a, b = RNG.normal(size=1000), RNG.normal(size=500)
    span = (-5.0, 5.0)
    merged = Histogram.from_values(a, 64, span).merged(Histogram.from_values(b, 64, span))
    whole = Histogram.from_values(np.concatenate([a, b]), 64, span)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert (merged.observed_min, merged.observed_max) == (whole.observed_min, whole.observed_max)


def test_weights_quantize_per_channel_symmetrically_with_127_levels():
    kernel = RNG.normal(size=(3, 3, 4, 8)) * np.arange(1, 9)
    quantized = quantize_weights_per_channel(kernel, (0, 1, 2))
    scales = np.abs(kernel).max(axis=(0, 1, 2)) / 127
    levels = quantized / scales
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)
    assert np.abs(levels).max() == pytest.approx(127)
    assert np.all(np.abs(quantized - kernel) <= scales / 2 + 1e-12)


def _stats_from(samples: np.ndarray) -> ActivationStats:
    """Stats of one tensor whose per-sample values are the rows of ``samples``."""
    span = (min(samples.min(), 0.0), max(samples.max(), 0.0))
    prefixes, running = [], None
    checkpoints = [c for c in (25, 50, 100, 200) if c < len(samples)] + [len(samples)]
    for start, stop in zip([0, *checkpoints[:-1]], checkpoints, strict=True):
        part = Histogram.from_values(samples[start:stop], 512, span)
        running = part if running is None else running.merged(part)
        prefixes.append((stop, running))
    point = QuantizationPoint("t", "layer", "Dense")
    return ActivationStats([point], {"t": running}, {"t": prefixes}, len(samples))


def test_range_stability_reports_settled_ranges_for_a_stationary_distribution():
    samples = np.abs(RNG.normal(size=(400, 1000)))
    report = range_stability(_stats_from(samples), "percentile", 99.0)
    assert [row["samples"] for row in report["checkpoints"]] == [25, 50, 100, 200, 400]
    assert report["stable_after"] is not None and report["stable_after"] <= 100


def test_range_stability_flags_ranges_still_moving_at_the_end():
    samples = np.abs(RNG.normal(size=(400, 100))) * np.linspace(1, 5, 400)[:, None]
    report = range_stability(_stats_from(samples), "minmax")
    assert report["stable_after"] is None
    assert report["checkpoints"][-2]["max_rel_change"] > 0.05


def test_a_range_clipped_far_inside_the_bulk_of_the_values_is_flagged():
    stats = _stats_from(np.abs(RNG.normal(size=(100, 1000))))
    assert heavily_clipped(stats, {"t": (0.0, 0.5)}) == ["t"]
    assert heavily_clipped(stats, stats.ranges("mse")) == []


def test_auto_warns_that_ranges_are_not_the_cause_when_no_method_wins_back_half_the_loss():
    from edgecompress.conversion.ptq import _ranges_not_the_cause

    scores = {"minmax": {"agreement": 0.96}, "percentile": {"agreement": 0.97}, "mse": {"agreement": 0.95}}
    note = _ranges_not_the_cause(scores, "percentile", 64)
    assert note is not None and "4.0% top-1 agreement" in note and "1.0 points" in note and "64 int8" in note


def test_auto_stays_quiet_when_a_method_wins_back_half_or_the_loss_is_small():
    from edgecompress.conversion.ptq import _ranges_not_the_cause

    assert _ranges_not_the_cause({"minmax": {"agreement": 0.96}, "mse": {"agreement": 0.98}}, "mse", 10) is None
    assert _ranges_not_the_cause({"minmax": {"agreement": 0.995}, "mse": {"agreement": 0.995}}, "mse", 10) is None
