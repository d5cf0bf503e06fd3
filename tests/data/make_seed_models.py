"""Regenerate the small real .tflite files the reader's tests and the fuzzer start from.

Run: python tests/data/make_seed_models.py
Each model is tiny (a few KB) and trained for one epoch on digits so its weights are real, not zeros.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent / "tflite"


def main() -> None:
    import keras
    import tensorflow as tf

    from edgecompress.conversion.converter import convert, convert_float, static_batch
    from edgecompress.load.dataset import digits_dataset

    train, _ = digits_dataset()
    x, y = train.first, train.y
    keras.utils.set_random_seed(0)

    inp = keras.Input((8, 8, 1), name="input")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    h = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dwconv")(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    cnn = keras.Model(inp, out, name="conv_dw_dense")
    cnn.compile("adam", "sparse_categorical_crossentropy")
    cnn.fit(x, y, epochs=1, verbose=0)

    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="branch_a")(inp)
    b = keras.layers.Conv2D(4, 1, padding="same", name="branch_b")(inp)
    s = keras.layers.Add(name="residual")([a, b])
    c = keras.layers.Concatenate(name="concat")([s, a])
    g = keras.layers.GlobalAveragePooling2D()(c)
    branchy = keras.Model(inp, keras.layers.Dense(10, name="logits")(g), name="add_concat")
    branchy.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    branchy.fit(x, y, epochs=1, verbose=0)

    HERE.mkdir(parents=True, exist_ok=True)
    (HERE / "conv_dw_dense_int8.tflite").write_bytes(convert(cnn, train.take(100)).tflite)
    (HERE / "conv_dw_dense_float32.tflite").write_bytes(convert_float(cnn))
    (HERE / "add_concat_int8.tflite").write_bytes(convert(branchy, train.take(100)).tflite)
    converter = tf.lite.TFLiteConverter.from_keras_model(static_batch(cnn))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic-range weights only
    (HERE / "conv_dw_dense_dynamic_range.tflite").write_bytes(converter.convert())
    for path in sorted(HERE.glob("*.tflite")):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
