"""Accuracy and error metrics on synthetic arrays, and the report's rendering, without any model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgecompress.metrics import cosine_similarity, snr_db
from edgecompress.report.html import Report, layer_chart_svg
from edgecompress.validate.evaluate import (
    Evaluation,
    confusion_matrix,
    gated_drop,
    top1_accuracy,
    topk_accuracy,
)
from edgecompress.validate.layers import GAIN_CAP_DB, estimated_gain_db, saturation_fraction


def test_snr_of_identical_arrays_is_capped_at_120_db():
    x = np.linspace(-1, 1, 100)
    assert snr_db(x, x) == 120.0


def test_snr_of_noise_at_a_tenth_of_the_signal_amplitude_is_20_db():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=10_000)
    noise = rng.normal(size=10_000)
    noise *= 0.1 * np.linalg.norm(signal) / np.linalg.norm(noise)
    assert snr_db(signal, signal + noise) == pytest.approx(20.0, abs=1e-6)


def test_cosine_is_one_for_scaled_rows_and_minus_one_for_opposite_rows():
    a = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    b = np.array([[2.0, 4.0, 6.0], [-1.0, 0.0, 0.0]])
    assert cosine_similarity(a, b) == pytest.approx([1.0, -1.0])


def test_top5_counts_a_label_ranked_fifth_and_misses_one_ranked_sixth():
    scores = np.array([[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]] * 2)
    assert topk_accuracy(scores, np.array([3, 2]), k=5) == 0.5


def test_top5_is_undefined_with_five_classes_or_fewer():
    assert topk_accuracy(np.eye(5), np.arange(5), k=5) is None


def test_top1_and_confusion_matrix_agree():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 1, 1])
    assert top1_accuracy(scores, labels) == pytest.approx(2 / 3)
    assert confusion_matrix(scores, labels) == [[1, 0], [1, 1]]


def test_removing_half_the_output_noise_gains_three_db():
    assert estimated_gain_db(4.0, 2.0) == pytest.approx(3.0103, abs=1e-3)


def test_removing_no_noise_gains_nothing_and_removing_all_of_it_is_capped():
    assert estimated_gain_db(4.0, 0.0) == 0.0
    assert estimated_gain_db(0.0, 1.0) == 0.0
    assert estimated_gain_db(4.0, 5.0) == GAIN_CAP_DB


def test_saturation_counts_both_limits_for_a_signed_tensor():
    q = np.array([-128, -5, 0, 127], np.int8)
    assert saturation_fraction(q, zero_point=0) == 0.5


def test_saturation_ignores_qmin_when_it_is_the_float_zero_of_a_relu_output():
    q = np.array([-128, -128, 10, 127], np.int8)
    assert saturation_fraction(q, zero_point=-128) == 0.25


def test_gate_uses_disagreement_points_when_there_are_no_labels():
    ev = Evaluation(n=100, top1=None, reference_top1=None, agreement=0.97, cosine_mean=0.99, cosine_min=0.9,
                    max_abs_error=0.1)
    assert gated_drop(ev) == pytest.approx(3.0)


def test_gate_uses_the_top1_drop_in_points_with_labels():
    ev = Evaluation(n=100, top1=0.90, reference_top1=0.95, agreement=0.9, cosine_mean=0.99, cosine_min=0.9,
                    max_abs_error=0.1)
    assert gated_drop(ev) == pytest.approx(5.0)


LAYERS = [{"tensor": f"model/conv{i}/Relu", "op": "CONV_2D", "rmse": 0.01 * i, "snr_db": 40.0 - i,
           "snr_drop_db": 10.0 - i, "saturation": 0.0, "suggestion": "QAT for this block"} for i in range(4)]


def _report() -> Report:
    return Report("a <title>", {"size_bytes": 1234, "op_histogram": {"CONV_2D": 4}},
                  [{"name": "int8", "runtime": "host-litert", "n": 3, "top1": 0.9, "reference_top1": 0.95,
                    "drop_points": 5.0, "agreement": 0.9}],
                  LAYERS, [[2, 1], [0, 3]], checks=[{"target": "esp32-s3", "verdict": "pass", "detail": "ok"}],
                  latency=[{"target": "host", "ms": 0.42, "kind": "measured"}], notes=["note & more"])


def test_html_report_is_self_contained_with_every_section():
    page = _report().to_html()
    for section in ("summary", "checks", "latency", "accuracy", "layers", "confusion"):
        assert f"<section id='{section}'>" in page
    assert "<script" not in page
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert "a &lt;title&gt;" in page and "note &amp; more" in page


def test_layer_chart_draws_one_bar_per_layer_longest_for_the_worst():
    svg = layer_chart_svg(LAYERS)
    widths = [float(w) for w in re.findall(r"<rect x='\d+' y='\d+' width='([\d.]+)'", svg)]
    assert len(widths) == len(LAYERS)
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]


def test_report_without_optional_inputs_says_what_is_missing():
    page = Report("r", {}, [{"name": "int8"}]).to_html()
    assert "No target was checked" in page and "No latency was measured" in page and "No labels" in page


def test_demo_report_renders_float_and_int8_rows_and_the_layer_chart():
    from edgecompress.pipeline.demo import _demo_report
    from edgecompress.validate.layers import LayerError, LayerReport

    ev = Evaluation(n=3, top1=0.9, reference_top1=None, agreement=None, cosine_mean=None, cosine_min=None,
                    max_abs_error=None, confusion=[[1, 0], [0, 2]])
    layer = LayerError("t", "CONV_2D", 0, "t", [1, 8, 8, 8], 0.01, 40.0, 3.0, 0.0, "per-channel", "QAT")
    report = {"model": "digits", "int8_bytes": 10, "float_bytes": 40, "full_int8": True, "int8_io": ["int8"],
              "operators": {"CONV_2D": 1}, "total_macs": 5, "calibration": {"file": "c.npz"}}
    page = _demo_report(report, ev, ev, LayerReport([layer], 1, 1, 1, 3)).to_html()
    assert "float32 .tflite" in page and "int8 .tflite" in page and "id='layer-chart'" in page


def _layer_report(output_snr, gains, weights_snr=None):
    from edgecompress.validate.layers import LayerError, LayerReport

    layers = [LayerError(tensor=f"t{i};x", op="CONV_2D", op_index=i, float_tensor=f"t{i}", shape=[1], rmse=0.0,
                         snr_db=30.0, snr_drop_db=1.0, saturation=0.0, weights="per-channel", fallback_gain_db=g)
              for i, g in enumerate(gains)]
    return LayerReport(layers, len(layers), len(layers), len(layers), 8, output_snr_db=output_snr,
                       weights_only_snr_db=weights_snr)


def test_diagnosis_tells_concentrated_small_and_spread_errors_apart():
    from edgecompress.validate.layers import diagnose

    assert diagnose(_layer_report(12.0, [6.0, 0.2, 1.5])).startswith("concentrated: 2 operator(s)")
    assert "CONV_2D t0" in diagnose(_layer_report(12.0, [6.0, 0.2]))
    assert diagnose(_layer_report(41.0, [0.1, 0.05])).startswith("small: the int8 output is 41.0 dB")
    spread = diagnose(_layer_report(19.8, [0.2, 0.1], weights_snr=28.4))
    assert spread.startswith("spread:") and "28.4 dB" in spread and "19.8 dB" in spread and "quantization-aware" in spread
