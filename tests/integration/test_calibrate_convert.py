"""Calibrated int8 export of tiny trained models: the chosen scales reach the flatbuffer, the graph stays clean."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgecompress.conversion.ptq import calibrate_and_convert  # noqa: E402
from edgecompress.conversion.ranges import int8_scale  # noqa: E402
from edgecompress.load.dataset import digits_dataset  # noqa: E402

pytestmark = pytest.mark.slow  # trains a tiny model and converts it: ~15 s on a shared 2-core machine


@pytest.fixture(scope="module")
def digits():
    return digits_dataset()


@pytest.fixture(scope="module")
def residual_model(digits):
    train, _ = digits
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((8, 8, 1), name="input")
    a = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)))
    b = layers.Conv2D(8, 3, padding="same")(layers.Conv2D(8, 3, padding="same", activation="relu")(a))
    s = layers.ReLU()(layers.Add()([a, b]))
    cat = layers.Concatenate()([s, layers.Conv2D(4, 1, activation="relu")(s)])
    x = layers.Flatten()(layers.MaxPooling2D(2)(cat))
    out = layers.Dense(10, activation="softmax")(layers.Dense(16, activation="relu")(x))
    model = keras.Model(inp, out, name="tiny_residual")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=2, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def mse_export(residual_model, digits):
    train, _ = digits
    return calibrate_and_convert(residual_model, train.take(120), method="mse")


def _interpreter(tflite: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    return interpreter


def test_mse_export_carries_every_chosen_scale_in_the_flatbuffer(mse_export):
    result, report = mse_export
    details = _interpreter(result.tflite).get_tensor_details()
    scales = np.array([d["quantization_parameters"]["scales"][0] for d in details
                       if len(d["quantization_parameters"]["scales"]) == 1])
    assert report.ranges
    for name, (lo, hi) in report.ranges.items():
        expected = int8_scale(lo, hi)
        assert np.min(np.abs(scales - expected)) <= 1e-6 * expected, name
    assert report.scales["verified"] == report.scales["expected"] == len(report.ranges)


def test_mse_export_clips_at_least_one_range_below_minmax(mse_export):
    _, report = mse_export
    assert any(report.ranges[k][1] < report.observed[k][1] for k in report.ranges)


def test_mse_export_has_no_quantize_or_dequantize_inside_the_graph(mse_export):
    result, _ = mse_export
    ops = [op["op_name"] for op in _interpreter(result.tflite)._get_ops_details()]
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops
    assert {"CONV_2D", "ADD", "CONCATENATION", "FULLY_CONNECTED"} <= set(ops)


def test_weights_stay_per_channel_symmetric_after_fake_quant_insertion(mse_export):
    result, _ = mse_export
    interpreter = _interpreter(result.tflite)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    checked = 0
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            weights = details[op["inputs"][1]]
            q = weights["quantization_parameters"]
            assert weights["dtype"] == np.int8
            assert len(q["scales"]) == weights["shape"][0] > 1
            assert not np.any(q["zero_points"])
            checked += 1
    assert checked >= 5


def test_calibrated_model_agrees_with_the_float_model(mse_export, residual_model, digits):
    from edgecompress.validate.evaluate import evaluate

    _, test = digits
    evaluation = evaluate(mse_export[0].tflite, test.take(150), reference=residual_model)
    assert evaluation.agreement >= 0.95


def test_report_includes_range_stability_checkpoints(mse_export):
    _, report = mse_export
    assert [row["samples"] for row in report.stability["checkpoints"]] == [25, 50, 100, 120]


def test_auto_picks_the_best_scored_method_and_reports_every_score(residual_model, digits):
    train, _ = digits
    result, report = calibrate_and_convert(residual_model, train.take(120), method="auto", bias_correction=True)
    scores = report.auto["scores"]
    assert set(scores) == {"minmax", "percentile", "mse", "kl"}
    best = max(scores.values(), key=lambda s: (s["agreement"], s["cosine"]))
    assert scores[report.method] == best
    assert report.requested == "auto" and report.auto["holdout_samples"] == 30
    assert report.bias_correction["layers"] >= 5
    assert result.tflite[4:8] == b"TFL3"
