"""Per-layer error, float fallback and runtimes on tiny digits models converted and run for real."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.conversion.requantize import float_fallback
from edgecompress.runtimes.host import HostRunner
from edgecompress.validate.evaluate import evaluate
from edgecompress.validate.layers import layer_errors


def broken_dense_model(small_cnn):
    """The small CNN with huge Dense weights that only ever multiply a dead (always zero) conv channel.

    The float model is unchanged in function; int8 Dense weights get a scale so coarse that the other weights
    round to zero, so the Dense layer is the one operator to blame.
    """
    import keras

    model = keras.models.clone_model(small_cnn)
    k1, b1, k2, b2, kd, bd = (w.copy() for w in small_cnn.get_weights())
    b2[0] = -1000.0
    kd.reshape(4, 4, 16, 10)[:, :, 0, :] = 200.0
    model.set_weights([k1, b1, k2, b2, kd, bd])
    return model


@pytest.fixture(scope="module")
def models(small_cnn, digits):
    from edgecompress.conversion.converter import convert_float

    train, _ = digits
    good_float = convert_float(small_cnn)
    bad_float = convert_float(broken_dense_model(small_cnn))
    return {"good_float": good_float, "good_int8": float_fallback(good_float, train.take(200), []),
            "bad_float": bad_float, "bad_int8": float_fallback(bad_float, train.take(200), [])}


@pytest.mark.slow
def test_every_int8_tensor_of_a_keras_export_matches_a_float_tensor(models, digits):
    report = layer_errors(models["good_int8"], models["good_float"], digits[1], max_samples=16)
    assert report.matched == report.int8_tensors == 6
    gains = [layer.fallback_gain_db for layer in report.layers]
    assert gains == sorted(gains, reverse=True)
    assert all(layer.snr_db > 25 for layer in report.layers)


@pytest.mark.slow
def test_the_layer_with_badly_quantized_weights_ranks_first(models, digits):
    report = layer_errors(models["bad_int8"], models["bad_float"], digits[1], max_samples=32)
    worst = report.layers[0]
    assert report.ranking == "estimated"
    assert worst.op == "FULLY_CONNECTED"
    assert worst.fallback_gain_db > 10 > report.layers[1].fallback_gain_db
    assert worst.snr_drop_db > 20
    assert "float" in worst.suggestion


@pytest.mark.slow
def test_the_first_ranked_layer_is_the_one_whose_fallback_recovers_the_most(models, digits):
    from edgecompress.conversion.requantize import calibrate, quantize

    train, test = digits
    test = test.take(200)
    reference = HostRunner(models["bad_float"]).predict(test.x)[0]
    calibrated = calibrate(models["bad_float"], train.take(200))
    baseline = evaluate(quantize(calibrated, []), test, reference=reference)
    ranking = layer_errors(models["bad_int8"], models["bad_float"], test, max_samples=32).layers
    weighted = [layer for layer in ranking if layer.op in ("CONV_2D", "FULLY_CONNECTED")]
    gains = {layer.tensor: evaluate(quantize(calibrated, [layer.float_tensor]), test, reference=reference).snr_db
             - baseline.snr_db for layer in weighted}
    assert len(weighted) == 3
    assert ranking[0].tensor == max(gains, key=gains.get)
    assert gains[ranking[0].tensor] > 10 + max(g for t, g in gains.items() if t != ranking[0].tensor)


@pytest.mark.slow
def test_well_quantized_layers_expect_little_from_fallback(models, digits):
    report = layer_errors(models["good_int8"], models["good_float"], digits[1], max_samples=16)
    assert report.output_snr_db is not None and report.output_snr_db > 20
    assert all(0.0 <= layer.fallback_gain_db < 3.0 for layer in report.layers)
    assert all(layer.fallback_gain_db == 0.0 for layer in report.layers if layer.weights is None)


@pytest.mark.slow
def test_the_diagnosis_says_whether_the_error_is_in_a_few_weights_or_spread_out(models, digits):
    bad = layer_errors(models["bad_int8"], models["bad_float"], digits[1], max_samples=32)
    good = layer_errors(models["good_int8"], models["good_float"], digits[1], max_samples=32)
    assert bad.diagnosis.startswith("concentrated: 1 operator(s)") and "FULLY_CONNECTED" in bad.diagnosis
    assert good.output_snr_db >= 30 and good.diagnosis.startswith("small:")
    # the broken Dense weights are the whole error; the good model's weights cost less than its int8 model does
    assert bad.weights_only_snr_db < bad.output_snr_db + 3.0
    assert good.weights_only_snr_db > good.output_snr_db
    assert good.to_dict()["weights_only_snr_db"] == good.weights_only_snr_db


@pytest.mark.slow
def test_a_per_tensor_model_is_re_exported_per_tensor(models, digits):
    from edgecompress.conversion.requantize import calibrate, quantize, weights_per_channel
    from edgecompress.tflite import read_model

    calibrated = calibrate(models["good_float"], digits[0].take(100))
    per_tensor = quantize(calibrated, [], per_channel=False)
    assert weights_per_channel(models["good_int8"]) and not weights_per_channel(per_tensor)
    info = read_model(per_tensor)
    conv_scales = [len(info.tensors[op.inputs[1]].scale) for op in info.operators if op.op == "CONV_2D"]
    assert conv_scales and set(conv_scales) == {1}


@pytest.mark.slow
def test_float_fallback_of_the_worst_layer_recovers_agreement(models, digits):
    train, test = digits
    reference = HostRunner(models["bad_float"]).predict(test.x)[0]
    before = evaluate(models["bad_int8"], test, reference=reference)
    worst = layer_errors(models["bad_int8"], models["bad_float"], test, max_samples=32).layers[0]
    fixed = float_fallback(models["bad_float"], train.take(200), [worst.float_tensor])
    after = evaluate(fixed, test, reference=reference)
    assert before.agreement < 0.5
    assert after.agreement >= 0.98
    runner = HostRunner(fixed)
    tensors = {t["name"]: t for t in runner.interpreter.get_tensor_details()}
    assert np.dtype(tensors[worst.float_tensor]["dtype"]) == np.float32
    assert np.dtype(runner.input_details[0]["dtype"]) == np.int8


@pytest.mark.slow
def test_tflite_micro_agrees_with_host_litert_on_the_same_int8_model(models, digits):
    test = digits[1].take(100)
    host = evaluate(models["good_int8"], test, reference=models["good_float"])
    micro = evaluate(models["good_int8"], test, reference=models["good_float"], runtime="micro")
    assert micro.runtime == "tflite-micro" and host.runtime == "host-litert"
    assert abs(micro.top1 - host.top1) <= 0.02
    assert micro.agreement >= 0.97


@pytest.mark.slow
def test_per_layer_error_of_a_two_input_model_matches_every_int8_tensor(digits):
    import keras

    from edgecompress.conversion.converter import convert, convert_float

    train, test = digits
    keras.utils.set_random_seed(0)
    pixels = keras.Input((8, 8, 1), name="pixels")
    sums = keras.Input((8,), name="row_sums")
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(pixels))
    y = keras.layers.Dense(8, activation="relu")(sums)
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Concatenate()([x, y]))
    model = keras.Model([pixels, sums], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    def arrays(ds):  # the second input is real too: each image's row sums
        return {"row_sums": ds.first.sum(axis=(2, 3)), "pixels": ds.first}  # keys deliberately out of order

    model.fit([train.first, arrays(train)["row_sums"]], train.y, epochs=3, verbose=0)
    int8 = convert(model, arrays(train)).tflite
    report = layer_errors(int8, convert_float(model), arrays(test), max_samples=32)
    assert report.int8_tensors >= 4 and report.matched == report.int8_tensors
    assert report.output_snr_db > 20 and report.weights_only_snr_db > report.output_snr_db
    assert {layer.op for layer in report.layers} >= {"CONV_2D", "FULLY_CONNECTED", "CONCATENATION"}
    # the TFLite Micro evaluation runner feeds both inputs by name too, and agrees with LiteRT
    from edgecompress.runtimes.micro_eval import MicroEvalRunner

    micro = MicroEvalRunner(int8).predict(arrays(test.take(40)))[0]
    host = HostRunner(int8).predict(arrays(test.take(40)))[0]
    assert micro.shape == host.shape == (40, 10)
    assert np.max(np.abs(micro - host)) <= 2 / 256 and np.mean(micro.argmax(1) == host.argmax(1)) >= 0.97
    # and --fix float-fallback re-exports it: calibration arrays fed by name, the worst operator kept float
    fixed = float_fallback(convert_float(model), arrays(train), [report.layers[0].float_tensor])
    tensors = {t["name"]: t for t in HostRunner(fixed).interpreter.get_tensor_details()}
    assert np.dtype(tensors[report.layers[0].float_tensor]["dtype"]) == np.float32
    reference = model.predict(arrays(test), verbose=0)
    assert evaluate(fixed, arrays(test), reference=reference).agreement >= 0.95
