"""Specification of the QAT wrappers: BN folding, weight quantizers, configs and serialization."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgecompress.compress.qat import quantize_model  # noqa: E402
from edgecompress.compress.quantizers import (  # noqa: E402
    QuantizeConfig,
    QuantizeWrapper,
    quantize_annotate_layer,
    quantize_weight,
)
from edgecompress.errors import ConversionError  # noqa: E402
from edgecompress.graph import call_with_weights  # noqa: E402


def _conv_bn(kind: str = "Conv2D") -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3))
    conv = (keras.layers.Conv2D(4, 3, padding="same", use_bias=False) if kind == "Conv2D"
            else keras.layers.DepthwiseConv2D(3, padding="same"))
    x = conv(inp)
    bn = keras.layers.BatchNormalization()
    x = keras.layers.ReLU()(bn(x))
    model = keras.Model(inp, x)
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 2, 3 if kind != "Conv2D" else 4).astype("float32") for _ in range(2)]
                   + [rng.normal(size=bn.moving_mean.shape).astype("float32"),
                      rng.uniform(0.5, 2, bn.moving_variance.shape).astype("float32")])
    return model


@pytest.mark.parametrize("kind", ["Conv2D", "DepthwiseConv2D"])
def test_folded_batch_norm_equals_unfolded_in_float(kind):
    model = _conv_bn(kind)
    qat = quantize_model(model)
    wrapper = next(layer for layer in qat.layers if isinstance(layer, QuantizeWrapper) and layer.batch_norm)
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype("float32")
    kernel, bias = wrapper._folded(wrapper.layer.kernel)
    substitutes = [(wrapper.layer.kernel, kernel)]
    if wrapper.layer.use_bias:
        substitutes.append((wrapper.layer.bias, bias))
        folded = call_with_weights(wrapper.layer, substitutes, x)
    else:
        folded = call_with_weights(wrapper.layer, substitutes, x) + bias
    unfolded = model.layers[2](model.layers[1](x), training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded), keras.ops.convert_to_numpy(unfolded),
                               rtol=1e-4, atol=1e-5)


def test_batch_norm_after_conv_is_folded_and_relu_shares_the_quantizer():
    qat = quantize_model(_conv_bn())
    kinds = [type(layer).__name__ for layer in qat.layers]
    assert "BatchNormalization" not in kinds
    conv = next(layer for layer in qat.layers if isinstance(layer, QuantizeWrapper) and layer.batch_norm)
    assert not conv.quantize_config.quantize_output


def test_weight_quantizer_is_symmetric_with_at_most_255_levels_per_channel():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 5)).astype("float32")
    quantized = keras.ops.convert_to_numpy(quantize_weight(kernel, -1))
    for channel in range(5):
        values = quantized[..., channel]
        scale = np.abs(kernel[..., channel]).max() / 127
        np.testing.assert_allclose(values / scale, np.round(values / scale), atol=1e-3)
        assert np.abs(values).max() == pytest.approx(np.abs(kernel[..., channel]).max(), rel=1e-5)


def test_batch_norm_after_relu_and_after_add_is_kept_and_quantized():
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    y = keras.layers.Add()([x, keras.layers.Conv2D(4, 1)(x)])
    y = keras.layers.BatchNormalization()(y)
    qat = quantize_model(keras.Model(inp, y))
    kept = [layer for layer in qat.layers if isinstance(layer, QuantizeWrapper)
            and type(layer.layer).__name__ == "BatchNormalization"]
    assert len(kept) == 2
    assert qat.predict(np.ones((1, 6, 6, 3), "float32"), verbose=0).shape == (1, 6, 6, 4)


@keras.saving.register_keras_serializable(package="edgecompress_tests")
class Scale(keras.layers.Layer):
    """A custom layer quantize_model cannot know about."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w


def test_unknown_custom_layer_asks_for_an_annotation():
    inp = keras.Input((4,))
    model = keras.Model(inp, Scale()(keras.layers.Dense(4)(inp)))
    with pytest.raises(ConversionError, match="quantize_annotate_layer"):
        quantize_model(model)

    annotated = keras.Model(inp, quantize_annotate_layer(Scale(), QuantizeConfig({"w": None}))(
        keras.layers.Dense(4)(inp)))
    qat = quantize_model(annotated)
    assert qat.predict(np.ones((1, 4), "float32"), verbose=0).shape == (1, 4)


def test_qat_model_saves_and_loads_as_keras_file(tmp_path):
    qat = quantize_model(_conv_bn())
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 3)).astype("float32")
    qat.compile(optimizer="sgd", loss="mse")
    qat.fit(x, np.zeros((2, 6, 6, 4), "float32"), verbose=0, epochs=1)
    path = tmp_path / "qat.keras"
    qat.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), qat.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
