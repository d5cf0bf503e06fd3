"""Wall time of `edgecompress.export` vs a bare full-int8 `tf.lite.TFLiteConverter` run, same models, same data.

Run: python benchmarks/export_overhead.py [--repeats 3] [--samples 100]

Both sides start from the same `.keras` file on disk and calibrate on the same samples: the bare side loads it
with `keras.saving.load_model` and runs the converter with the usual full-int8 settings; our side is the whole
`edgecompress.export` (load, data checks, static batch 1, convert, float-op check, atomic write). Runs alternate
between the two sides; the table shows medians and the ratio ours / bare (target: at most 1.15x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bare_convert(model_path: Path, x: np.ndarray) -> int:
    import keras
    import tensorflow as tf

    from edgecompress.capture import captured_output

    model = keras.saving.load_model(model_path, compile=False)

    def representative():
        for i in range(len(x)):
            yield [x[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with captured_output():
        return len(converter.convert())


def ours(model_path: Path, data_path: Path, out: Path) -> int:
    from edgecompress.capture import captured_output
    from edgecompress.pipeline import export

    with captured_output():
        result = export(model_path, data_path, out)
    return result.conversion["bytes"]


def models(workdir: Path, samples: int):
    import keras

    from edgecompress.load.dataset import digits_dataset
    from edgecompress.pipeline import train_demo_model

    train, _ = digits_dataset()
    demo = train_demo_model(train, epochs=5)
    demo_path = workdir / "digits_cnn.keras"
    demo.save(demo_path)
    x_demo = train.first[:samples]
    np.savez(workdir / "digits.npz", x=x_demo)
    yield "digits CNN (8x8x1)", demo_path, workdir / "digits.npz", x_demo

    keras.utils.set_random_seed(0)
    mnv2 = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10)
    mnv2_path = workdir / "mobilenetv2_96_a035.keras"
    mnv2.save(mnv2_path)
    import tensorflow as tf

    up = tf.image.resize(train.first[:samples], (96, 96)).numpy()
    x_mnv2 = np.repeat(up, 3, axis=-1).astype(np.float32) * 2.0 - 1.0
    np.savez(workdir / "mnv2.npz", x=x_mnv2)
    yield "MobileNetV2 96x96 a=0.35", mnv2_path, workdir / "mnv2.npz", x_mnv2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"export wall time, median of {args.repeats} (calibration samples: {args.samples})")
    for col in ("model", "bare TFLiteConverter (s)", "edgecompress export (s)", "ratio ours/bare", "int8 bytes (bare / ours)"):
        table.add_column(col, justify="right" if col != "model" else "left")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, model_path, data_path, x in models(workdir, args.samples):
            bare_s, ours_s = [], []
            bare_bytes = ours_bytes = 0
            # one untimed warm-up of each side so TensorFlow's one-off start-up cost lands on neither
            bare_convert(model_path, x)
            ours(model_path, data_path, workdir / "warm.tflite")
            for _ in range(args.repeats):
                start = time.perf_counter()
                bare_bytes = bare_convert(model_path, x)
                bare_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                ours_bytes = ours(model_path, data_path, workdir / "ours.tflite")
                ours_s.append(time.perf_counter() - start)
            b, o = statistics.median(bare_s), statistics.median(ours_s)
            table.add_row(name, f"{b:.2f}", f"{o:.2f}", f"{o / b:.2f}x", f"{bare_bytes:,} / {ours_bytes:,}")
    Console(width=160).print(table)
    print("command: python benchmarks/export_overhead.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
