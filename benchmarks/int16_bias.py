"""Host latency of 16x8 models before/after the int32-bias post-pass (conversion/int16_bias.py), same run.

Run: PYTHONPATH=$PWD python -m benchmarks.int16_bias
Models: a 3-layer 32x32x16 CNN (Conv, DepthwiseConv, Conv, Dense) and a 64-256-256-10 MLP (seeded random
weights; MobileNetV2 with weights=None is not used: the converter's own 16x8 output of it fails LiteRT's
Prepare, "no_integer_overflow_from_quantization", before any post-pass); calibration on seeded normal samples. Latency: LiteRT, 1 thread, median of 30 runs.
"""

from __future__ import annotations

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.conversion.int16_bias import narrow_int16_biases
from edgecompress.runtimes.host import HostRunner


def _models():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 16))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", bias_initializer="random_normal")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", bias_initializer="random_normal")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", bias_initializer="random_normal")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    yield "cnn-32x32", keras.Model(inp, keras.layers.Dense(10, bias_initializer="random_normal")(x))
    inp = keras.Input((64,))
    x = keras.layers.Dense(256, activation="relu", bias_initializer="random_normal")(inp)
    x = keras.layers.Dense(256, activation="relu", bias_initializer="random_normal")(x)
    yield "mlp-64-256-256-10", keras.Model(inp, keras.layers.Dense(10, bias_initializer="random_normal")(x))


def _convert_16x8(model, samples: int = 16) -> bytes:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shape = (samples, *model.inputs[0].shape[1:])
    calibration = rng.normal(size=shape).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(samples))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    with captured_output():
        return bytes(converter.convert())


def main() -> None:
    print(f"{'model':<22}{'int64 bias ms':>15}{'int32 bias ms':>15}{'speedup':>9}{'narrowed':>10}{'kept':>6}"
          f"{'max |diff|':>12}")
    for name, model in _models():
        before = _convert_16x8(model)
        after, summary = narrow_int16_biases(before)
        slow, fast = HostRunner(before, threads=1), HostRunner(after, threads=1)
        x = slow.random_inputs(0)[0]
        diff = float(np.abs(slow.run(x)[0] - fast.run(x)[0]).max())
        t_slow = slow.time_invocations(runs=30).median_ms
        t_fast = fast.time_invocations(runs=30).median_ms
        print(f"{name:<22}{t_slow:>15.2f}{t_fast:>15.2f}{t_slow / t_fast:>8.1f}x{len(summary['narrowed']):>10}"
              f"{len(summary['kept_int64']):>6}{diff:>12.2e}")
    print("command: PYTHONPATH=$PWD python -m benchmarks.int16_bias")


if __name__ == "__main__":
    main()
