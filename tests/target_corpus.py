"""A corpus of tiny, varied int8 models for the target-checker tests (built with Keras 3, converted to full int8).

Each entry is ``name -> (builder, input shape)``; builders return an untrained Keras model with seeded weights
(placement and arena questions do not need training). Channels are tiny so the whole corpus converts in about a
minute. ``build_corpus(dir)`` converts every model once and caches the ``.tflite`` files in ``dir``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _seq(layers: Callable[[], list[Any]]) -> Callable[[tuple[int, ...]], Any]:
    def build(shape: tuple[int, ...]) -> Any:
        import keras

        return keras.Sequential([keras.Input(shape), *layers()])
    return build


def _functional(body: Callable[[Any], Any]) -> Callable[[tuple[int, ...]], Any]:
    def build(shape: tuple[int, ...]) -> Any:
        import keras

        inp = keras.Input(shape)
        return keras.Model(inp, body(inp))
    return build


def _L():
    import keras

    return keras.layers


def _ops():
    import keras

    return keras.ops


CORPUS: dict[str, tuple[Callable[[tuple[int, ...]], Any], tuple[int, ...]]] = {
    "conv_pool_dense_softmax": (_seq(lambda: [_L().Conv2D(4, 3, activation="relu"), _L().MaxPooling2D(2),
                                              _L().Flatten(), _L().Dense(5), _L().Softmax()]), (8, 8, 1)),
    "separable_depthwise": (_seq(lambda: [_L().SeparableConv2D(4, 3, padding="same", activation="relu"),
                                          _L().DepthwiseConv2D(3, strides=2, padding="same"),
                                          _L().GlobalAveragePooling2D()]), (8, 8, 2)),
    "residual_add": (_functional(lambda x: _L().Add()([_L().Conv2D(2, 3, padding="same")(x), x])), (6, 6, 2)),
    "concat_branches": (_functional(lambda x: _L().Concatenate()([_L().Conv2D(2, 1)(x), _L().Conv2D(3, 3, padding="same")(x)])),
                        (6, 6, 2)),
    "resize_bilinear_2x": (_seq(lambda: [_L().Conv2D(2, 1), _L().UpSampling2D(2, interpolation="bilinear")]), (4, 4, 2)),
    "resize_nearest_3x": (_seq(lambda: [_L().Conv2D(2, 1), _L().UpSampling2D(3, interpolation="nearest")]), (4, 4, 2)),
    "transpose_conv_s2": (_seq(lambda: [_L().Conv2DTranspose(2, 3, strides=2, padding="same")]), (4, 4, 2)),
    "softmax_dense": (_seq(lambda: [_L().Dense(6), _L().Softmax()]), (10,)),
    "mean_and_max_reduce": (_functional(lambda x: _L().Concatenate()([_L().GlobalAveragePooling2D()(x),
                                                                      _L().GlobalMaxPooling2D()(x)])), (5, 5, 3)),
    "lstm_small": (_seq(lambda: [_L().LSTM(4, unroll=True), _L().Dense(2)]), (3, 2)),
    "five_d_add": (_functional(lambda x: _L().Reshape((2, 4, 4))(
        _L().Add()([_L().Reshape((2, 2, 2, 4))(x), _L().Reshape((2, 2, 2, 4))(_L().Conv2D(2, 1)(x))]))), (4, 4, 2)),
    "large_kernel_stride4_same": (_seq(lambda: [_L().Conv2D(2, 9, strides=4, padding="same")]), (16, 16, 1)),
    "stride4_valid": (_seq(lambda: [_L().Conv2D(2, 4, strides=4, padding="valid")]), (16, 16, 1)),
    "avgpool_9_same": (_seq(lambda: [_L().AveragePooling2D(9, strides=1, padding="same")]), (10, 10, 2)),
    "dilated_conv": (_seq(lambda: [_L().Conv2D(2, 3, dilation_rate=2)]), (9, 9, 1)),
    "mean_over_channels": (_functional(lambda x: _ops().mean(x, axis=-1, keepdims=True)), (4, 4, 3)),
    "activations_mix": (_seq(lambda: [_L().Conv2D(3, 1), _L().Activation("hard_swish"), _L().Activation("sigmoid"),
                                      _L().Activation("tanh"), _L().LeakyReLU(0.2)]), (4, 4, 2)),
    "pad_maxpool": (_seq(lambda: [_L().ZeroPadding2D(1), _L().MaxPooling2D(3, strides=2)]), (6, 6, 2)),
    "exp_op": (_functional(lambda x: _ops().exp(x)), (4, 3)),
    "permute_transpose": (_seq(lambda: [_L().Conv2D(2, 1), _L().Permute((2, 1, 3))]), (3, 5, 2)),
    "strided_slice_every_other": (_functional(lambda x: x[:, ::2, :, :] + 0.5), (6, 4, 2)),
    "prelu": (_seq(lambda: [_L().Conv2D(2, 1), _L().PReLU(shared_axes=[1, 2])]), (4, 4, 2)),
}


def calibration(shape: tuple[int, ...], n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, *shape)).astype(np.float32)


def build_model(name: str, directory: Path) -> Path | None:
    """Convert one corpus model to ``directory/<name>.tflite`` (cached); None when it cannot be made full-int8."""
    import keras

    path = directory / f"{name}.tflite"
    failed = directory / f"{name}.failed"
    if path.exists():
        return path
    if failed.exists():
        return None
    builder, shape = CORPUS[name]
    keras.utils.set_random_seed(0)
    model = builder(shape)
    try:
        data = full_int8(model, calibration(shape))
    except Exception as exc:  # the converter raises several types; the test only needs to know it failed
        failed.write_text(str(exc))
        return None
    path.write_bytes(data)
    return path


def full_int8(model: Any, samples: np.ndarray) -> bytes:
    """Full-int8 conversion with int8 I/O and a static batch of 1 (the settings of edgecompress.conversion.converter)."""
    import keras
    import tensorflow as tf

    inp = keras.Input(batch_shape=(1, *samples.shape[1:]))
    fixed = keras.Model(inp, model(inp))
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def build_corpus(directory: Path) -> dict[str, Path]:
    """Convert every corpus model (cached in ``directory``); returns the ones that became full-int8."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in CORPUS:
        path = build_model(name, directory)
        if path is not None:
            out[name] = path
    return out
