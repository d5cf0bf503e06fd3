"""Each compression property survives full-int8 conversion: checked in the flatbuffer itself."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgecompress.compress.prune import (  # noqa: E402
    ConstantSparsity,
    PolynomialDecay,
    UpdatePruningStep,
    prune_low_magnitude,
    strip_pruning,
)
from edgecompress.compress.qat import quantize_model  # noqa: E402

from .conftest import convert_int8, layer_weights, operator_names, run_int8  # noqa: E402

pytestmark = pytest.mark.slow


def _cnn(train, *, batch_norm: bool = False, epochs: int = 4):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="input")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=not batch_norm,
                            activation=None if batch_norm else "relu")(inp)
    if batch_norm:
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0)
    return model


def _fit(model, train, epochs=1, callbacks=()):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0, callbacks=list(callbacks))
    return model


def test_qat_int8_model_has_no_inner_quantize_ops_and_agrees_with_keras(digits):
    train, test = digits
    qat = _fit(quantize_model(_cnn(train, batch_norm=True)), train, epochs=2)
    tflite = convert_int8(qat, train.first)
    ops = operator_names(tflite)
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops
    assert "BATCH_NORM" not in " ".join(ops) and "MUL" not in ops  # BN folded into the convolution
    int8 = run_int8(tflite, test.first)
    keras_out = qat.predict(test.first, verbose=0)
    assert np.mean(int8.argmax(1) == keras_out.argmax(1)) >= 0.99


def _nested(train):
    """A trained backbone (itself holding a nested Sequential) inside a Sequential head: tfmot refuses this."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="pixels")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    block = keras.Sequential([keras.Input((8, 8, 8)), keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                              keras.layers.MaxPooling2D()], name="block")
    backbone = keras.Model(inp, block(x), name="backbone")
    model = keras.Sequential([keras.Input((8, 8, 1), name="input"), backbone, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10, activation="softmax")], name="head")
    return _fit(model, train, epochs=8)


def test_qat_inlines_nested_models_and_converts_without_inner_quantize_ops(digits):
    train, test = digits
    model = _nested(train)
    before = [w.copy() for w in model.get_weights()]
    qat = quantize_model(model)
    assert not any(isinstance(layer, keras.Model) for layer in qat.layers)
    qat = _fit(qat, train, epochs=1)
    for old, new in zip(before, model.get_weights(), strict=True):  # training the QAT copy leaves the user's model
        np.testing.assert_array_equal(old, new)
    tflite = convert_int8(qat, train.first)
    ops = operator_names(tflite)
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops
    int8 = run_int8(tflite, test.first)
    assert np.mean(int8.argmax(1) == qat.predict(test.first, verbose=0).argmax(1)) >= 0.98
    float_top1 = np.mean(model.predict(test.first, verbose=0).argmax(1) == test.y)
    assert np.mean(int8.argmax(1) == test.y) >= float_top1 - 0.03


def test_calibration_places_ranges_inside_a_nested_backbone(digits):
    from edgecompress.conversion.points import quantization_points
    from edgecompress.conversion.ptq import calibrate_and_convert

    train, _ = digits
    model = _nested(train)
    names = [point.name for point in quantization_points(model)]
    assert "block" not in names and "backbone" not in names and len(names) >= 3
    result, report = calibrate_and_convert(model, train.first[:200], method="percentile")
    assert report.scales["missing"] == [] and report.scales["internal_requantize"] == []
    assert report.scales["verified"] == len(report.ranges)


def test_pruned_zeros_survive_int8_conversion(digits):
    train, _ = digits
    pruned = prune_low_magnitude(_cnn(train), PolynomialDecay(0.0, 0.75, 0, 20, frequency=5), skip=())
    plain = strip_pruning(_fit(pruned, train, callbacks=[UpdatePruningStep()]))
    weights = layer_weights(convert_int8(plain, train.first))
    assert len(weights) == 4
    for _, w in weights:
        assert np.mean(w == 0) >= 0.75 - 1e-3


def test_two_of_four_pattern_survives_int8_conversion(digits):
    train, _ = digits
    pruned = prune_low_magnitude(_cnn(train, epochs=1), ConstantSparsity(0.5, 0, frequency=1), m_by_n=(2, 4),
                                 skip=("first",))
    plain = strip_pruning(_fit(pruned, train, callbacks=[UpdatePruningStep()]))
    for op, w in layer_weights(convert_int8(plain, train.first))[1:]:
        groups = w.reshape(w.shape[0], -1, 4)  # OHWI / (out, in): runs of 4 consecutive inputs
        assert ((groups != 0).sum(axis=-1) <= 2).all(), op


def test_sparsity_preserving_qat_keeps_zeros_in_the_int8_file(digits):
    train, test = digits
    pruned = prune_low_magnitude(_cnn(train), ConstantSparsity(0.75, 0, frequency=1), skip=())
    plain = strip_pruning(_fit(pruned, train, callbacks=[UpdatePruningStep()]))
    qat = _fit(quantize_model(plain, preserve=("sparsity",)), train)
    tflite = convert_int8(qat, train.first)
    for _, w in layer_weights(tflite):
        assert np.mean(w == 0) >= 0.75 - 1e-3
    assert np.mean(run_int8(tflite, test.first).argmax(1) == qat.predict(test.first, verbose=0).argmax(1)) >= 0.99


def test_cluster_preserving_qat_keeps_shared_values_in_the_int8_file(digits):
    from edgecompress.compress.cluster import cluster_weights, strip_clustering

    train, test = digits
    plain = strip_clustering(_fit(cluster_weights(_cnn(train), 16), train))
    qat = _fit(quantize_model(plain, preserve=("clusters",)), train)
    tflite = convert_int8(qat, train.first)
    for op, w in layer_weights(tflite):
        per_channel = [np.unique(w[c]).size for c in range(w.shape[0])]
        assert max(per_channel) <= 16, op
    assert np.mean(run_int8(tflite, test.first).argmax(1) == qat.predict(test.first, verbose=0).argmax(1)) >= 0.99
