"""Does the per-layer error ranking point at the layer whose float fallback recovers the most accuracy?

For each model (the digits CNN, and a MobileNetV2-shaped network trained briefly on digits upsampled to 32x32x3),
post-training int8 is ranked per layer; then each of the top 3 ranked layers, and 3 layers drawn at random
(seeded) from the rest, is kept in float on its own, and the recovery is measured on the held-out split:
top-1 points, top-1 agreement with the float model, output SNR in dB. QAT rows need edgecompress.compress.qat
and are skipped when it is not installed.

Run: PYTHONPATH=$PWD python benchmarks/validation.py [--epochs-mobilenet 3]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def digits_32(dataset):
    import tensorflow as tf

    from edgecompress.calibration import Dataset

    x = tf.image.resize(dataset.first, (32, 32)).numpy()
    return Dataset({"input": np.repeat(x, 3, axis=-1).astype(np.float32)}, dataset.y, dataset.source + " 32x32x3")


def train_mobilenet(train, epochs: int, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10)
    # MobileNetV2's BN momentum 0.999 needs thousands of steps; a brief run leaves moving statistics that make
    # the inference-mode network predict one class. 0.9 lets them settle within a few epochs.
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model = keras.Sequential([keras.Input((32, 32, 3), name="input"), base], name="mobilenetv2_digits")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0)
    return model


def measure(name, model, train, test, seed: int = 0):
    from edgecompress.convert import convert_float
    from edgecompress.fallback import calibrate, quantize
    from edgecompress.layer_error import layer_errors
    from edgecompress.runtimes.host import HostRunner
    from edgecompress.validate import evaluate

    float_bytes = convert_float(model)
    reference = HostRunner(float_bytes).predict(test.x)[0]
    float_eval = evaluate(float_bytes, test)
    calibrated = calibrate(float_bytes, train, max_samples=300)
    ptq = quantize(calibrated, [])
    base = evaluate(ptq, test, reference=reference)
    ranking = layer_errors(ptq, float_bytes, test, max_samples=64).layers
    rng = np.random.default_rng(seed)
    rest = ranking[3:]
    random_layers = [rest[i] for i in rng.choice(len(rest), size=min(3, len(rest)), replace=False)]
    rows = []
    for group, layers in (("ranked", ranking[:3]), ("random", random_layers)):
        for layer in layers:
            ev = evaluate(quantize(calibrated, [layer.float_tensor]), test, reference=reference)
            rows.append({"model": name, "group": group, "rank": ranking.index(layer) + 1, "op": layer.op,
                         "tensor": layer.tensor.split(";")[0][-44:], "db_lost": layer.snr_drop_db,
                         "top1_gain": 100 * (ev.top1 - base.top1),
                         "agree_gain": 100 * (ev.agreement - base.agreement), "snr_gain": ev.snr_db - base.snr_db})
    return {"name": name, "float_top1": float_eval.top1, "ptq_top1": base.top1, "ptq_agreement": base.agreement,
            "ptq_snr": base.snr_db, "layers": len(ranking), "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-digits", type=int, default=20)
    parser.add_argument("--epochs-mobilenet", type=int, default=6)
    args = parser.parse_args(argv)
    from edgecompress.calibration import digits_dataset
    from edgecompress.pipeline import train_demo_model

    try:
        import edgecompress.compress.qat  # noqa: F401
        qat_note = "QAT available but not yet wired into this benchmark"
    except ImportError:
        qat_note = "QAT rows skipped: edgecompress.compress.qat is not in this build (PTQ only)"
    train, test = digits_dataset()
    results = [measure("digits_cnn", train_demo_model(train, epochs=args.epochs_digits), train, test)]
    train32, test32 = digits_32(train), digits_32(test)
    results.append(measure("mobilenetv2_a0.35_32x32", train_mobilenet(train32, args.epochs_mobilenet),
                           train32, test32))
    print("| model | float top-1 | PTQ int8 top-1 | agreement | output SNR dB | int8 layers |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {100 * r['float_top1']:.2f}% | {100 * r['ptq_top1']:.2f}% | "
              f"{100 * r['ptq_agreement']:.2f}% | {r['ptq_snr']:.2f} | {r['layers']} |")
    print()
    print("| model | layer kept float | rank | op | tensor | dB lost | top-1 gain (pts) | agreement gain (pts) "
          "| output SNR gain (dB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for row in r["rows"]:
            print(f"| {row['model']} | {row['group']} | {row['rank']} | {row['op']} | {row['tensor']} | "
                  f"{row['db_lost']:.2f} | {row['top1_gain']:+.2f} | {row['agree_gain']:+.2f} | "
                  f"{row['snr_gain']:+.2f} |")
    print()
    for r in results:
        ranked = [row["snr_gain"] for row in r["rows"] if row["group"] == "ranked"]
        randoms = [row["snr_gain"] for row in r["rows"] if row["group"] == "random"]
        best = max(r["rows"], key=lambda row: row["snr_gain"])
        print(f"{r['name']}: mean SNR gain ranked top-3 {np.mean(ranked):+.2f} dB vs random 3 "
              f"{np.mean(randoms):+.2f} dB; best single fallback is rank {best['rank']} ({best['group']})")
    print(qat_note)
    print("command: PYTHONPATH=$PWD python benchmarks/validation.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
