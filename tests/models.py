"""Tiny real models for the tests, trained on scikit-learn's digits with fixed seeds.

Each builder returns a trained model in seconds; the ONNX builder writes a real ONNX graph (opset 13) carrying
a trained Keras model's weights, checked against onnxruntime.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from edgecompress.load.dataset import digits_dataset
from edgecompress.samples import Dataset


def digits_rgb() -> tuple[Dataset, Dataset]:
    """Digits with the gray channel repeated 3 times (8x8x3), for image-model code paths."""
    train, test = digits_dataset()
    return (Dataset({"input": np.repeat(train.first, 3, axis=-1)}, train.y, "digits rgb train"),
            Dataset({"input": np.repeat(test.first, 3, axis=-1)}, test.y, "digits rgb test"))


def train_small_cnn(train: Dataset, *, epochs: int = 8, seed: int = 0):
    """A Conv-Conv-Pool-Dense classifier (Keras 3), trained briefly."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=train.first.shape[1:], name="input"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ], name="small_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0)
    return model


def train_gap_cnn(train: Dataset, *, epochs: int = 12, seed: int = 0):
    """Conv-ReLU-Conv-ReLU-GlobalAveragePool-Dense-Softmax: the architecture mirrored into ONNX."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=train.first.shape[1:], name="input"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
        keras.layers.Softmax(),
    ], name="gap_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0)
    return model


def write_onnx_from_gap_cnn(model, path: Path) -> Path:
    """Write ``train_gap_cnn``'s network as an NCHW ONNX graph with the same trained weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    conv1, conv2, dense = (layer for layer in model.layers if layer.weights)
    h, w, c = model.inputs[0].shape[1:]
    inits = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value.astype(np.float32)), name))
        return name

    k1, b1 = (v.numpy() for v in conv1.weights)
    k2, b2 = (v.numpy() for v in conv2.weights)
    kd, bd = (v.numpy() for v in dense.weights)
    nodes = [
        helper.make_node("Conv", ["input", const("w1", k1.transpose(3, 2, 0, 1)), const("b1", b1)], ["c1"],
                         pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", const("w2", k2.transpose(3, 2, 0, 1)), const("b2", b2)], ["c2"],
                         pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", const("wd", kd), const("bd", bd)], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "gap_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])],
        initializer=inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgecompress-tests")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))
    return path


LEGACY_H5_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tf_keras as k
    data = np.load(sys.argv[2])
    k.utils.set_random_seed(0)
    bn = [k.layers.BatchNormalization()] if sys.argv[3] == "bn" else []
    m = k.Sequential([k.layers.Input((8, 8, 1), name="input"),
                      k.layers.Conv2D(8, 3, padding="same", activation="relu"),
                      *bn,
                      k.layers.MaxPooling2D(2),
                      k.layers.Flatten(),
                      k.layers.Dense(10, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(data["x"], data["y"], epochs=8, verbose=0)
    m.save(sys.argv[1])
""")


def write_legacy_h5(path: Path, train: Dataset, *, batch_norm: bool = True) -> Path:
    """Train and save a model with legacy Keras 2 (tf_keras) in a subprocess, as a Keras 2 user would."""
    data = path.with_suffix(".train.npz")
    np.savez(data, x=train.first, y=train.y)
    subprocess.run([sys.executable, "-c", LEGACY_H5_SCRIPT, str(path), str(data), "bn" if batch_norm else "plain"],
                   check=True,
                   capture_output=True, timeout=300)
    return path
