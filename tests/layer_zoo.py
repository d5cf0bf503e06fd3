"""One tiny model per Keras layer type that quantize_model must handle (shared by the unit and integration tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

L = keras.layers


def _image(shape: tuple[int, ...] = (8, 8, 3)) -> Any:
    return keras.Input(shape, name="image")


def _seq(body: Callable[[Any], Any], shape: tuple[int, ...] = (8, 8, 3)) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        inp = _image(shape)
        return keras.Model(inp, L.Dense(2)(L.Flatten()(body(inp))))
    return build


def _activation(name: str) -> Callable[[Any], Any]:
    return lambda x: L.Activation(name)(L.Conv2D(4, 1)(x))


def _attention() -> keras.Model:
    inp = keras.Input((6, 8), name="tokens")
    x = L.MultiHeadAttention(num_heads=2, key_dim=4)(inp, inp)
    return keras.Model(inp, L.Dense(2)(L.Flatten()(L.LayerNormalization()(x + inp))))


def _embedding() -> keras.Model:
    inp = keras.Input((5,), dtype="int32", name="ids")
    return keras.Model(inp, L.Dense(2)(L.Flatten()(L.Embedding(20, 4)(inp))))


def _se_block(x: Any) -> Any:
    x = L.Conv2D(4, 1)(x)
    squeeze = L.Activation("hard_sigmoid")(L.Conv2D(4, 1)(L.GlobalAveragePooling2D(keepdims=True)(x)))
    return L.Multiply()([x, squeeze])


def _merges(x: Any) -> Any:
    a, b = L.Conv2D(4, 1)(x), L.Conv2D(4, 1)(x)
    return L.Concatenate()([L.Add()([a, b]), L.Subtract()([a, b]), L.Average()([a, b]), L.Maximum()([a, b]),
                            L.Minimum()([a, b])])


def _normalization(x: Any) -> Any:
    norm = L.Normalization(mean=[0.5, 0.4, 0.3], variance=[0.1, 0.2, 0.3])
    return L.Conv2D(4, 3)(norm(x))


LAYER_ZOO: dict[str, Callable[[], keras.Model]] = {
    "Rescaling": _seq(lambda x: L.Conv2D(4, 3)(L.Rescaling(1 / 127.5, offset=-1)(x))),
    "Normalization": _seq(_normalization),
    "SeparableConv2D+BN": _seq(lambda x: L.ReLU()(L.BatchNormalization()(L.SeparableConv2D(4, 3, use_bias=False)(x)))),
    "SeparableConv1D": _seq(lambda x: L.SeparableConv1D(4, 3)(x), (8, 3)),
    "DepthwiseConv2D": _seq(lambda x: L.DepthwiseConv2D(3, activation="relu6")(x)),
    "DepthwiseConv1D": _seq(lambda x: L.DepthwiseConv1D(3)(x), (8, 3)),
    "Conv1D": _seq(lambda x: L.Conv1D(4, 3)(x), (8, 3)),
    "Conv1DTranspose": _seq(lambda x: L.Conv1DTranspose(4, 3, strides=2)(x), (8, 3)),
    "Conv2DTranspose": _seq(lambda x: L.Conv2DTranspose(4, 3, strides=2)(x)),
    "Conv3D": _seq(lambda x: L.Conv3D(2, 2)(x), (4, 4, 4, 1)),
    "SE block (Multiply, hard_sigmoid)": _seq(_se_block),
    "Add/Subtract/Average/Maximum/Minimum/Concatenate": _seq(_merges),
    **{f"Activation({name})": _seq(_activation(name))
       for name in ("relu6", "swish", "hard_swish", "gelu", "sigmoid", "hard_sigmoid", "tanh", "softmax", "elu",
                    "leaky_relu")},
    "ReLU6 layer": _seq(lambda x: L.ReLU(6.0)(L.Conv2D(4, 1)(x))),
    "LeakyReLU": _seq(lambda x: L.LeakyReLU(0.1)(L.Conv2D(4, 1)(x))),
    "PReLU": _seq(lambda x: L.PReLU(shared_axes=[1, 2])(L.Conv2D(4, 1)(x))),
    "ELU layer": _seq(lambda x: L.ELU()(L.Conv2D(4, 1)(x))),
    "Softmax layer": _seq(lambda x: L.Softmax()(L.Conv2D(4, 1)(x))),
    "LayerNormalization": _seq(lambda x: L.LayerNormalization()(L.Conv2D(4, 1)(x))),
    "BatchNormalization after ReLU": _seq(lambda x: L.BatchNormalization()(L.ReLU()(L.Conv2D(4, 1)(x)))),
    "UpSampling2D": _seq(lambda x: L.UpSampling2D()(L.Conv2D(4, 1)(x))),
    "UpSampling1D": _seq(lambda x: L.UpSampling1D()(L.Conv1D(4, 1)(x)), (8, 3)),
    "Resizing": _seq(lambda x: L.Resizing(4, 4)(L.Conv2D(4, 1)(x))),
    "ZeroPadding2D/Cropping2D": _seq(lambda x: L.Cropping2D(1)(L.ZeroPadding2D(2)(L.Conv2D(4, 1)(x)))),
    "Reshape/Permute": _seq(lambda x: L.Permute((2, 1))(L.Reshape((64, 4))(L.Conv2D(4, 1)(x)))),
    "Pooling": _seq(lambda x: L.AveragePooling2D(2)(L.MaxPooling2D(2)(L.Conv2D(4, 1)(x)))),
    "GlobalPooling": _seq(lambda x: L.GlobalMaxPooling2D()(L.Conv2D(4, 1)(x))),
    "Dropout": _seq(lambda x: L.Dropout(0.2)(L.Conv2D(4, 1)(x))),
    "EinsumDense": _seq(lambda x: L.EinsumDense("ab,bc->ac", output_shape=4)(L.Flatten()(x))),
    "Keras ops (x + 3) * (1/6)": _seq(lambda x: L.ReLU(6.0)(L.Conv2D(4, 1)(x) + 3.0) * (1.0 / 6.0)),
    "Embedding": _embedding,
    "MultiHeadAttention": _attention,
}


def sample_inputs(model: keras.Model, count: int = 16, seed: int = 0) -> np.ndarray:
    """Seeded inputs for ``model``'s one input: token ids for integer inputs, values in [0, 1) otherwise."""
    rng = np.random.default_rng(seed)
    shape = (count, *model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return rng.integers(0, 20, shape).astype("int32")
    return rng.uniform(0, 1, shape).astype("float32")
