"""Post-training int8 calibration: edgecompress's range choosers next to the bare TFLite converter.

Run: PYTHONPATH=. python benchmarks/calibration.py [--quick]

Four models, each trained briefly on scikit-learn's digits with fixed seeds, calibrated on the shipped 300-sample
calibration set (calibration/digits/, training split) and evaluated on the held-out test split (450 samples):

* digits_cnn: the demo's Conv-Conv-Pool-Dense CNN;
* mobilenetv2_a035: keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35), digits
  upsampled to 32x32 and repeated to 3 channels;
* residual_add_concat: a small residual net with Add and Concatenate;
* outlier_relu_dense: Flatten-Dense(ReLU)-Dense where one hidden unit fires only on a hot pixel; one calibration
  image has that hot pixel, so the unbounded ReLU tensor sees one huge value (the test images never do).

For every model the bare converter (its min/max ranges) and each method run in the same process, on the same
weights and data: top-1 agreement with the float Keras model, top-1 drop in points against the labels, mean
output cosine, and the conversion time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SEED = 0
HOT_PIXEL_VALUE = 1.0
DETECTOR_GAIN = 400.0


def _datasets():
    from edgecompress.load.dataset import digits_dataset, load_data, shipped_calibration
    from edgecompress.samples import Dataset

    train, test = digits_dataset()
    calib = load_data(shipped_calibration("digits") / "digits_calibration.npz", input_names=["input"],
                      input_shapes=[(8, 8, 1)])
    return train, test, calib, Dataset


def _upsampled(ds, dataset_cls):
    x = np.repeat(np.kron(ds.first, np.ones((1, 4, 4, 1), np.float32)), 3, axis=-1)
    return dataset_cls({"input": x.astype(np.float32)}, ds.y, ds.source + " (32x32x3)")


def _fit(model, train, epochs, lr=3e-3):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    return model


def digits_cnn(train, epochs):
    from edgecompress.pipeline import train_demo_model

    return train_demo_model(train, epochs=epochs, seed=SEED)


def mobilenetv2(train, epochs):
    import keras

    keras.utils.set_random_seed(SEED)
    inp = keras.Input((32, 32, 3), name="input")
    model = keras.applications.MobileNetV2(weights=None, input_tensor=inp, alpha=0.35, classes=10)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # the default 0.999 leaves the moving statistics near their init after a few epochs
    return _fit(model, train, epochs, lr=2e-3)


def residual_add_concat(train, epochs):
    import keras

    keras.utils.set_random_seed(SEED)
    layers = keras.layers
    inp = keras.Input((8, 8, 1), name="input")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for _ in range(2):
        y = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
        y = layers.Conv2D(16, 3, padding="same")(y)
        x = layers.ReLU()(layers.Add()([x, y]))
    branch = layers.Conv2D(8, 1, activation="relu")(x)
    x = layers.Concatenate()([x, branch])
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(10, activation="softmax")(x)
    return _fit(keras.Model(inp, out, name="residual_add_concat"), train, epochs)


def outlier_relu_dense(train, epochs):
    """A Dense(ReLU) hidden layer with one extra unit that only fires on pixel (0, 0), which digits never light."""
    import keras

    keras.utils.set_random_seed(SEED)
    inp = keras.Input((8, 8, 1), name="input")
    x = keras.layers.Flatten()(inp)
    hidden = keras.layers.Dense(65, activation="relu", name="hidden")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(hidden)
    model = _fit(keras.Model(inp, out, name="outlier_relu_dense"), train, epochs)
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:, -1] = 0.0
    kernel[0, -1] = DETECTOR_GAIN
    bias[-1] = 0.0
    model.get_layer("hidden").set_weights([kernel, bias])
    w_out, b_out = model.get_layer("probs").get_weights()
    w_out[-1, :] = np.linspace(-0.01, 0.01, w_out.shape[1])
    model.get_layer("probs").set_weights([w_out, b_out])
    return model


def _with_hot_pixel(calib, dataset_cls):
    x = calib.first.copy()
    x[len(x) // 2, 0, 0, 0] = HOT_PIXEL_VALUE
    return dataset_cls({"input": x}, calib.y, calib.source + " + 1 hot pixel")


ROWS = [("bare converter (min/max)", None, False), ("bare + bias correction", "minmax", True),
        ("percentile 99.99", "percentile", False), ("mse", "mse", False), ("kl", "kl", False),
        ("mse + bias correction", "mse", True), ("auto", "auto", False), ("auto + bias correction", "auto", True)]


def run_model(name, model, calib, test):
    from edgecompress.conversion.converter import convert
    from edgecompress.conversion.ptq import calibrate_and_convert
    from edgecompress.validate.evaluate import evaluate

    rows = []
    for label, method, bias in ROWS:
        start = time.perf_counter()
        note = ""
        if method is None:
            tflite = convert(model, calib).tflite
        else:
            result, report = calibrate_and_convert(model, calib, method=method, bias_correction=bias)
            tflite = result.tflite
            if report.auto:
                note = f"won: {report.method}"
            if report.scales and (report.scales["missing"] or report.scales["internal_requantize"]):
                note += f" scale check: {report.scales}"
        seconds = time.perf_counter() - start
        ev = evaluate(tflite, test, reference=model)
        rows.append({"model": name, "calibration": label, "agreement": ev.agreement, "drop": ev.drop_points,
                     "cosine": ev.cosine_mean, "float_top1": ev.reference_top1, "seconds": seconds, "note": note})
        print(f"  {name:22s} {label:26s} agreement {100 * ev.agreement:6.2f}%  drop {ev.drop_points:6.2f}  "
              f"cosine {ev.cosine_mean:.5f}  {seconds:5.1f}s {note}", file=sys.stderr, flush=True)
    return rows


def _snr(reference, test):
    reference, test = np.asarray(reference, np.float64), np.asarray(test, np.float64).reshape(np.shape(reference))
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((test - reference) ** 2), 1e-30)))


def noise_budget(name, model, calib, test):
    """Split the bare converter's output error into its parts, each measured alone.

    weights only: the float .tflite carrying the int8 model's (dequantized) weights (``layer_errors``);
    activations only: the Keras model with every quantization point fake-quantized to its range, float weights;
    per tensor: each quantization point's own int8 rounding of its float values on the test split.
    """
    from edgecompress.conversion.activations import collect_activations
    from edgecompress.conversion.converter import convert, convert_float
    from edgecompress.conversion.fake_quant import fake_quantized_model
    from edgecompress.validate.layers import layer_errors

    reference = model.predict(test.first, verbose=0)
    report = layer_errors(convert(model, calib).tflite, convert_float(model), test, max_samples=len(test.first))
    stats = collect_activations(model, calib)
    act = {}
    for method in ("minmax", "percentile"):
        fq = fake_quantized_model(model, stats.ranges(method))
        act[method] = _snr(reference, fq.predict(test.first, verbose=0))
    observed = collect_activations(model, test, points=stats.points)
    per_tensor = []
    for point in stats.points:
        lo, hi = stats.ranges("minmax").get(point.name, (0.0, 0.0))
        hist = observed.histograms[point.name]
        if hi <= lo or hist.total == 0:
            continue
        centers, counts = hist.centers, hist.counts
        inside = max(float(np.sum(counts[(centers >= lo) & (centers <= hi)])) - hist.zeros, 0.0)
        # clipped values lose their distance to the range; the rest round uniformly; exact zeros stay exact
        error = np.sum(counts * (np.clip(centers, lo, hi) - centers) ** 2) + inside * ((hi - lo) / 255.0) ** 2 / 12
        per_tensor.append(10 * np.log10(np.sum(counts * centers**2) / max(error, 1e-30)))
    return {"model": name, "points": len(stats.points), "weights": report.weights_only_snr_db,
            "act_minmax": act["minmax"], "act_percentile": act["percentile"], "whole": report.output_snr_db,
            "tensor_median": float(np.median(per_tensor)), "tensor_min": float(np.min(per_tensor))}


ORACLE_SCALES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25)


def range_search(name, model, calib, test, search_on, sweeps=2):
    """Per-tensor range search for the best output SNR, on calibration data or (as an oracle) on the test split.

    A Keras simulation (every quantization point fake-quantized with a variable range, weights rounded per
    channel as the converter does) is searched tensor by tensor, ``sweeps`` times over, for the scale of its
    min/max range in ``ORACLE_SCALES`` that maximises the output SNR on ``search_on`` ("calibration" or "test").
    Searching the test split itself cheats on purpose: it bounds what any choice of ranges could do. Searching
    the calibration data is a method a tool could ship; the test split shows whether it generalises.
    """
    import keras
    import tensorflow as tf

    from edgecompress.conversion.activations import collect_activations
    from edgecompress.conversion.bias import quantize_weights_per_channel
    from edgecompress.conversion.points import _functional

    fn = _functional(keras.models.clone_model(model))
    fn.set_weights(model.get_weights())
    for layer in fn.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D", "Dense"):
            kernel = layer.kernel.numpy()
            axes = (0, 1) if kind == "DepthwiseConv2D" else tuple(range(kernel.ndim - 1))
            layer.kernel.assign(quantize_weights_per_channel(kernel, axes).astype(np.float32))
    minmax = collect_activations(model, calib).ranges("minmax")
    bounds = {n: (tf.Variable(lo, dtype=tf.float32), tf.Variable(hi, dtype=tf.float32)) for n, (lo, hi) in
              minmax.items()}

    def call(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        if layer.name in bounds:
            out = keras.layers.Lambda(lambda t, b=bounds[layer.name]: tf.quantization.fake_quant_with_min_max_vars(
                t, b[0], b[1], num_bits=8))(out)
        return out

    sim = keras.models.clone_model(fn, clone_function=lambda layer: layer, call_function=call)
    forward = tf.function(lambda x: sim(x, training=False))
    splits = {"calibration": calib.first, "test": test.first}
    references = {k: model.predict(v, verbose=0) for k, v in splits.items()}

    def score(split):
        out = forward(tf.constant(splits[split])).numpy()
        ref = references[split]
        return _snr(ref, out), float(np.mean(out.argmax(1) == ref.argmax(1)))

    start = score("test")
    best = score(search_on)[0]
    for _ in range(sweeps):
        for name_, (lo_var, hi_var) in bounds.items():
            lo, hi = minmax[name_]
            choice = (float(lo_var.numpy()), float(hi_var.numpy()))
            for scale in ORACLE_SCALES:
                lo_var.assign(lo * scale)
                hi_var.assign(hi * scale)
                value = score(search_on)[0]
                if value > best:
                    best, choice = value, (lo * scale, hi * scale)
            lo_var.assign(choice[0])
            hi_var.assign(choice[1])
    end = score("test")
    return {"model": name, "searched": search_on, "objective": best, "start_snr": start[0],
            "start_agreement": start[1], "snr": end[0], "agreement": end[1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer training epochs (a smoke run)")
    parser.add_argument("--models", default="digits_cnn,mobilenetv2_a035,residual_add_concat,outlier_relu_dense")
    parser.add_argument("--oracle", action="store_true",
                        help="also search every tensor's range for output SNR, on the calibration data and (an "
                             "upper bound) on the test split itself; slow")
    args = parser.parse_args(argv)
    train, test, calib, dataset_cls = _datasets()
    scale = 0.3 if args.quick else 1.0
    builders = {
        "digits_cnn": (digits_cnn, 15, lambda d: d),
        "mobilenetv2_a035": (mobilenetv2, 8, lambda d: _upsampled(d, dataset_cls)),
        "residual_add_concat": (residual_add_concat, 10, lambda d: d),
        "outlier_relu_dense": (outlier_relu_dense, 20, lambda d: d),
    }
    started = time.perf_counter()
    table, budgets, oracles = [], [], []
    for name in args.models.split(","):
        build, epochs, view = builders[name]
        model = build(view(train), max(1, int(epochs * scale)))
        model_calib = view(calib)
        if name == "outlier_relu_dense":
            model_calib = _with_hot_pixel(model_calib, dataset_cls)
        table.extend(run_model(name, model, model_calib, view(test)))
        budgets.append(noise_budget(name, model, model_calib, view(test)))
        if args.oracle:
            for split in ("calibration", "test"):
                oracles.append(range_search(name, model, model_calib, view(test), split))
    print(render(table))
    verdicts(table)
    print()
    print("Where the bare converter's error comes from (output SNR against the float model on the test split, dB):")
    print()
    print("| model | calibrated int8 tensors | weights only | activations only, min/max | activations only, percentile "
          "| whole int8 model (bare) | per-tensor SNR, median (min) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in budgets:
        print(f"| {row['model']} | {row['points']} | {row['weights']:.1f} | {row['act_minmax']:.1f} | "
              f"{row['act_percentile']:.1f} | {row['whole']:.1f} | {row['tensor_median']:.1f} "
              f"({row['tensor_min']:.1f}) |")
    if oracles:
        print()
        print("Range search: each tensor's min/max range scaled by the factor in "
              f"{ORACLE_SCALES} that maximises output SNR on the split named (Keras simulation, int8 weights); "
              "searching the test split is an oracle:")
        print()
        print("| model | searched on | objective SNR dB reached | test, min/max: SNR dB, agreement | test, searched "
              "ranges: SNR dB, agreement |")
        print("|---|---|---:|---:|---:|")
        for row in oracles:
            print(f"| {row['model']} | {row['searched']} | {row['objective']:.1f} | {row['start_snr']:.1f}, "
                  f"{100 * row['start_agreement']:.2f}% | {row['snr']:.1f}, {100 * row['agreement']:.2f}% |")
    print(f"\ntotal {time.perf_counter() - started:.0f}s; command: PYTHONPATH=. python benchmarks/calibration.py"
          + (" --quick" if args.quick else "") + (" --oracle" if args.oracle else "") + ("" if args.models == parser.get_default("models")
                                                   else f" --models {args.models}"))
    return 0


def render(table):
    lines = ["| model (float top-1) | calibration | top-1 agreement | top-1 drop (points) | mean cosine | time (s) | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row in table:
        lines.append(f"| {row['model']} ({100 * row['float_top1']:.2f}%) | {row['calibration']} | {100 * row['agreement']:.2f}% | {row['drop']:.2f} | "
                     f"{row['cosine']:.5f} | {row['seconds']:.1f} | {row['note']} |")
    return "\n".join(lines)


def verdicts(table):
    """Print, per model, the target: best >= bare, and at least half the bare loss recovered when it exceeds 1%."""
    print()
    for model in dict.fromkeys(row["model"] for row in table):
        rows = [r for r in table if r["model"] == model]
        bare = rows[0]
        best = max(rows[1:], key=lambda r: (r["agreement"], r["cosine"]))
        loss = 1 - bare["agreement"]
        recovered = (best["agreement"] - bare["agreement"]) / loss if loss > 0 else None
        ok = best["agreement"] >= bare["agreement"] and (loss <= 0.01 or (recovered or 0) >= 0.5)
        rec = "n/a" if recovered is None else f"{100 * recovered:.0f}%"
        print(f"{model}: bare agreement {100 * bare['agreement']:.2f}%, best {best['calibration']} "
              f"{100 * best['agreement']:.2f}%, loss recovered {rec} -> {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    sys.exit(main())
