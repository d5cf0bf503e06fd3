"""The cost-model estimator: its arithmetic, every shipped profile's cost model, and the calibration data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edgecompress.bench import OperatorCost, estimate_seconds
from edgecompress.pipeline.targets import estimate
from edgecompress.profile import list_targets, load_profile
from edgecompress.runtimes.runner import Timings, percentile

ROOT = Path(__file__).resolve().parents[2]
LATENCY = ROOT / "edgecompress" / "data" / "latency"
MODEL = ROOT / "tests" / "data" / "tflite" / "conv_dw_dense_int8.tflite"
UNIT = {"macs_per_cycle": 1, "clock_hz": 1e9, "efficiency": {"conv": 0.5}, "bandwidth_bytes_per_s": 1e9}


def test_compute_bound_operator_costs_macs_over_effective_peak():
    total, per_op = estimate_seconds([OperatorCost("conv", 10**9, 0, 0)], {"accelerator": UNIT})
    assert total == pytest.approx(2.0) and per_op == [pytest.approx(2.0)]


def test_memory_bound_operator_costs_bytes_over_bandwidth():
    total, _ = estimate_seconds([OperatorCost("conv", 10, 3 * 10**9, 0)], {"accelerator": UNIT})
    assert total == pytest.approx(3.0)


def test_cpu_placed_operators_use_the_cpu_unit():
    slow = {**UNIT, "efficiency": {"conv": 0.05}}
    ops = [OperatorCost("conv", 10**9, 0, 0, placement="cpu")]
    assert estimate_seconds(ops, {"accelerator": UNIT, "cpu": slow})[0] == pytest.approx(20.0)


def test_weights_beyond_the_cache_are_streamed():
    unit = {**UNIT, "weight_cache_bytes": 100, "stream_bandwidth_bytes_per_s": 10.0}
    total, _ = estimate_seconds([OperatorCost("other", 0, 0, 150)], {"accelerator": {**unit, "bandwidth_bytes_per_s": 1e12}})
    assert total == pytest.approx(5.0, rel=1e-6)


def test_more_threads_never_slow_a_multicore_estimate_down():
    unit = {**UNIT, "cores": 4, "threads": 4}
    ops = [OperatorCost("conv", 10**9, 0, 0)]
    one = estimate_seconds(ops, {"accelerator": unit}, threads=1)[0]
    four = estimate_seconds(ops, {"accelerator": unit}, threads=4)[0]
    assert four == pytest.approx(one / 4)


@pytest.mark.parametrize("name", list_targets())
def test_every_profile_has_a_fitted_cost_model_that_estimates_a_real_model(name):
    cost_model = load_profile(name).data["cost_model"]
    assert cost_model["status"] in ("fitted", "ratio-derived")
    assert "held_out_error" in cost_model
    row = estimate(MODEL, name)
    assert row.evidence == "model-estimate"
    assert row.median_ms > 0 and row.runs == 0
    assert len(row.operators) > 0 and sum(op["ms"] for op in row.operators) <= row.median_ms + 1e-4 * len(row.operators)


def test_calibration_figures_name_known_models_targets_and_sources():
    calibration = yaml.safe_load((LATENCY / "calibration.yaml").read_text())
    models = json.loads((LATENCY / "calibration_models.json").read_text())["models"]
    for figure in calibration["figures"]:
        assert figure["model"] in models
        assert figure["target"] in list_targets()
        assert figure["source"] in calibration["sources"]
        assert figure["role"] in ("fit", "held-out")


def test_counted_macs_match_the_published_architecture_figures():
    models = json.loads((LATENCY / "calibration_models.json").read_text())["models"]
    assert models["mobilenet_v1_1.0_224"]["macs"] == pytest.approx(569e6, rel=0.01)  # MobileNet paper
    assert models["mobilenet_v2_1.0_224"]["macs"] == pytest.approx(300e6, rel=0.01)  # MobileNetV2 paper
    assert models["person_detect_96"]["macs"] == pytest.approx(7_160_196, rel=0.001)  # Vela's count
    assert models["micro_speech_tiny_conv"]["macs"] == pytest.approx(336_008, rel=0.001)  # Vela's count


def test_held_out_estimator_error_is_within_the_goal():
    import statistics
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from estimator_error import cost_model_of, load_figures, load_models, table

    calibration = load_figures()
    targets = {f["target"] for f in calibration["figures"]}
    _, held = table({t: cost_model_of(t) for t in targets}, calibration, load_models())
    pooled = [e for errors in held.values() for e in errors]
    assert statistics.median(pooled) <= 0.35


def test_percentiles_interpolate_like_numpy():
    import numpy as np

    samples = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    for q in (0, 50, 90, 99, 100):
        assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)))
    t = Timings.from_samples(samples)
    assert (t.min_ms, t.max_ms, t.runs) == (1.0, 10.0, 6)
