"""Where calibration puts fake-quant nodes, and what the nodes do (Keras graphs, no conversion)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgecompress.conversion.bias import bias_corrections, quantize_weights_per_channel  # noqa: E402
from edgecompress.conversion.fake_quant import _frozen_fake_quant_class, fake_quantized_model  # noqa: E402
from edgecompress.conversion.points import quantization_points  # noqa: E402


@pytest.fixture(scope="module")
def residual_model():
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((8, 8, 1), name="input")
    a = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv_bn")(inp)
    a = layers.BatchNormalization(name="bn")(a)
    a = layers.ReLU(6.0, name="relu6")(a)
    b = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_relu")(a)
    b = layers.Conv2D(4, 3, padding="same", name="conv_linear")(b)
    s = layers.ReLU(name="add_relu")(layers.Add(name="add")([a, b]))
    c = layers.Conv2D(2, 1, activation="relu", name="branch")(s)
    cat = layers.Concatenate(name="concat")([s, c])
    x = layers.Flatten(name="flatten")(layers.MaxPooling2D(2, name="pool")(cat))
    out = layers.Dense(10, activation="softmax", name="probs")(layers.Dense(16, name="hidden")(x))
    return keras.Model(inp, out)


def test_quantization_points_skip_fused_same_scale_concat_inputs_and_fixed_scale_outputs(residual_model):
    names = [p.name for p in quantization_points(residual_model)]
    assert names == ["input", "relu6", "conv_relu", "conv_linear", "concat", "hidden"]


def test_sequential_models_get_quantization_points_too():
    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, name="d1"),
                              keras.layers.ReLU(name="r"), keras.layers.Dense(2, name="d2")])
    assert [p.name for p in quantization_points(model)] == ["x", "r", "d2"]


def test_frozen_fake_quant_snaps_values_to_the_int8_grid_of_its_fixed_range():
    layer = _frozen_fake_quant_class()(-1.0, 3.0)
    values = np.linspace(-2.0, 4.0, 101, dtype=np.float32)[None]
    out = keras.ops.convert_to_numpy(layer(values))
    scale = 4.0 / 255
    # the range is nudged by under one step so that 0.0 is exactly representable
    assert -1.0 - scale < out.min() and out.max() < 3.0 + scale
    levels = (out - out.min()) / scale
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert float(keras.ops.convert_to_numpy(layer(np.zeros((1, 1), np.float32)))[0, 0]) == 0.0
    assert not layer.trainable_weights and not layer.weights


def test_frozen_fake_quant_round_trips_through_its_config():
    cls = _frozen_fake_quant_class()
    clone = cls.from_config(cls(-0.5, 2.0, name="fq").get_config())
    assert (clone.min_value, clone.max_value) == (-0.5, 2.0)


def test_fake_quantized_model_shares_weights_and_inserts_one_node_per_range(residual_model):
    fq = fake_quantized_model(residual_model, {"input": (0.0, 1.0), "relu6": (0.0, 2.0), "hidden": (-3.0, 3.0)})
    fq_layers = [layer.name for layer in fq.layers if layer.name.endswith("_fake_quant")]
    assert sorted(fq_layers) == ["hidden_fake_quant", "input_fake_quant", "relu6_fake_quant"]
    assert fq.get_layer("hidden") is residual_model.get_layer("hidden")


def test_bias_correction_cancels_the_mean_shift_of_quantized_weights_without_touching_the_original():
    keras.utils.set_random_seed(1)
    inp = keras.Input((6, 6, 3), name="input")
    out = keras.layers.Conv2D(5, 3, name="conv")(inp)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).uniform(0, 1, (64, 6, 6, 3)).astype(np.float32)
    kernel, bias = (w.copy() for w in model.get_layer("conv").get_weights())
    updates, summary = bias_corrections(model, x)
    assert summary["layers"] == 1
    np.testing.assert_array_equal(model.get_layer("conv").get_weights()[1], bias)
    quantized = keras.Model(inp, keras.layers.Conv2D(5, 3, name="conv_q")(inp))
    quantized.get_layer("conv_q").set_weights([quantize_weights_per_channel(kernel, (0, 1, 2)), updates["conv"][1]])
    shift_after = (quantized.predict(x, verbose=0) - model.predict(x, verbose=0)).mean(axis=(0, 1, 2))
    quantized.get_layer("conv_q").set_weights([quantize_weights_per_channel(kernel, (0, 1, 2)), bias])
    shift_before = (quantized.predict(x, verbose=0) - model.predict(x, verbose=0)).mean(axis=(0, 1, 2))
    assert np.abs(shift_after).max() < 0.05 * np.abs(shift_before).max() + 1e-7
