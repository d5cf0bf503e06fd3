"""Every Keras layer type a keras.applications model (or a common building block) uses quantizes and trains."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgecompress.compress.qat import quantize_model  # noqa: E402
from edgecompress.compress.quantizers import QuantizeWrapper, int8_refusals  # noqa: E402
from tests.layer_zoo import LAYER_ZOO, sample_inputs  # noqa: E402


@pytest.mark.parametrize("name", sorted(LAYER_ZOO))
def test_layer_quantizes_and_one_train_step_changes_the_weights(name):
    keras.utils.set_random_seed(0)
    model = LAYER_ZOO[name]()
    qat = quantize_model(model)
    x = sample_inputs(model)
    before = [w.copy() for w in qat.get_weights()]
    qat.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    loss = qat.train_on_batch(x, np.ones((len(x), 2), "float32"))
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, qat.get_weights(), strict=True))
    assert any(isinstance(layer, QuantizeWrapper) for layer in qat.layers)


def test_separable_conv_batch_norm_folds_into_the_pointwise_kernel():
    qat = quantize_model(LAYER_ZOO["SeparableConv2D+BN"]())
    (wrapper,) = [layer for layer in qat.layers if type(getattr(layer, "layer", None)).__name__ == "SeparableConv2D"]
    assert wrapper.batch_norm is not None
    assert not any(type(getattr(layer, "layer", layer)).__name__ == "BatchNormalization" for layer in qat.layers)


def test_layer_without_an_int8_kernel_is_named_by_int8_refusals():
    qat = quantize_model(LAYER_ZOO["Conv3D"]())
    refusals = int8_refusals(qat)
    assert [(r["kind"], r["op"]) for r in refusals] == [("Conv3D", "CONV_3D")]
    assert int8_refusals(quantize_model(LAYER_ZOO["Rescaling"]())) == []


def test_integer_model_input_gets_no_fake_quant():
    qat = quantize_model(LAYER_ZOO["Embedding"]())
    assert not any(layer.name.startswith("quantize_ids") for layer in qat.layers)
