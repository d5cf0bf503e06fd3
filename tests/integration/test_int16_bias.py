"""The int16-path bias post-pass on real 16x8 conversions, run in the real LiteRT interpreter."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from edgecompress.conversion.int16_bias import narrow_int16_biases
from edgecompress.tflite import read_model


@pytest.fixture(scope="module")
def model_16x8() -> tuple[bytes, np.ndarray]:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", bias_initializer="random_normal")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", bias_initializer="random_normal")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, bias_initializer="random_normal")(x)
    model = keras.Model(inp, out)
    calibration = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return bytes(converter.convert()), calibration


def _biases(data: bytes) -> dict[str, tuple[str, np.ndarray]]:
    info = read_model(data)
    found = {}
    for op in info.operators:
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 2:
            tensor = info.tensors[op.inputs[2]]
            found[op.op] = (tensor.dtype, np.asarray(info.constant(tensor.index)))
    return found


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def test_conv_and_dense_biases_become_int32_with_the_same_values(model_16x8):
    data, _ = model_16x8
    before = _biases(data)
    narrowed, summary = narrow_int16_biases(data)
    after = _biases(narrowed)
    assert before["CONV_2D"][0] == before["FULLY_CONNECTED"][0] == "int64"
    for op in ("CONV_2D", "FULLY_CONNECTED"):
        assert after[op][0] == "int32"
        np.testing.assert_array_equal(after[op][1].astype(np.int64), before[op][1])
    assert after["DEPTHWISE_CONV_2D"][0] == "int64"  # LiteRT's 16x8 depthwise kernel needs int64
    assert sorted(entry["op"].split()[1] for entry in summary["narrowed"]) == ["CONV_2D", "FULLY_CONNECTED"]
    assert summary["kept_int64"] == []


def test_narrowed_model_runs_and_stays_within_rounding_of_the_original(model_16x8):
    data, calibration = model_16x8
    narrowed, _ = narrow_int16_biases(data)
    reference = _run(data, calibration[:1])
    fast = _run(narrowed, calibration[:1])
    assert np.abs(fast - reference).max() <= 1e-3 * max(np.abs(reference).max(), 1e-6)


def test_a_bias_value_outside_int32_stays_int64(model_16x8):
    data, _ = model_16x8
    info = read_model(data)
    conv = next(op for op in info.operators if op.op == "CONV_2D")
    original = np.asarray(info.constant(conv.inputs[2])).astype("<i8").tobytes()
    start = data.index(original)
    huge = bytearray(data)
    struct.pack_into("<q", huge, start, 2**31)
    narrowed, summary = narrow_int16_biases(bytes(huge))
    assert _biases(narrowed)["CONV_2D"][0] == "int64"
    assert [entry["reason"] for entry in summary["kept_int64"]] == ["value 2147483648 outside the int32 range"]
    assert _biases(narrowed)["FULLY_CONNECTED"][0] == "int32"


def test_a_second_pass_finds_nothing_and_changes_no_byte(model_16x8):
    once, _ = narrow_int16_biases(model_16x8[0])
    twice, summary = narrow_int16_biases(once)
    assert twice == once
    assert summary == {"narrowed": [], "kept_int64": []}
