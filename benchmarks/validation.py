"""Does the per-layer ranking point at the layers whose float fallback recovers the most accuracy? PTQ vs QAT.

Models: the digits CNN; a MobileNetV2-shaped network (alpha 0.35) trained briefly on digits upsampled to 32x32x3;
and, as a constructed control with one badly quantizable layer, the digits CNN with a dead conv channel whose
Dense weights are huge (same float function; the per-tensor int8 Dense scale rounds its other weights to zero).

For each model, post-training int8 (calibrated on 300 training samples) is ranked per layer on 64 *training*
samples, and then EVERY layer is kept in float on its own and measured on the held-out test split: output SNR
gain (dB), top-1 agreement gain and top-1 gain (points) against the same PTQ model. Compared:
- the ranking's top 3 (``fallback_gain_db``, the estimate ``validate`` ranks by);
- the old ranking's top 3 (``snr_drop_db``, dB lost at each operator);
- 3 random layers outside the top 3, five seeded draws (seed 0), and the exact mean over all those layers.
The top 3 are also kept float together (one re-export) against 3 random layers together (five draws). The
calibration noise floor is the spread of PTQ's output SNR over five calibration subsets (290 of the 300 samples):
a fallback re-draws the rounding of everything downstream, so a gain below that spread is not a measurement.
QAT: ``edgecompress.compress.qat.quantize_model`` on the trained model, fine-tuned briefly, converted with
``edgecompress.conversion.converter``, compared with the same float model (fallback is not measured for QAT: its ranges come
from fake-quant nodes, which the calibrate-and-denylist re-export does not use). Expected gains are printed with
two decimals; on the two trained models they are all below 0.3 dB.

Run: PYTHONPATH=$PWD python benchmarks/validation.py [--epochs-mobilenet 6] [--qat-epochs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DRAWS = 5
RANK_SAMPLES = 64


def digits_32(dataset):
    import tensorflow as tf

    from edgecompress.samples import Dataset

    x = tf.image.resize(dataset.first, (32, 32)).numpy()
    return Dataset({"input": np.repeat(x, 3, axis=-1).astype(np.float32)}, dataset.y, dataset.source + " 32x32x3")


def train_mobilenet(train, epochs: int, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    # Flat (input_tensor) rather than nested in a Sequential: quantize_model takes flat models.
    model = keras.applications.MobileNetV2(weights=None, input_tensor=keras.Input((32, 32, 3), name="input"),
                                           alpha=0.35, classes=10, name="mobilenetv2_digits")
    # MobileNetV2's BN momentum 0.999 needs thousands of steps; a brief run leaves moving statistics that make
    # the inference-mode network predict one class. 0.9 lets them settle within a few epochs.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0)
    return model


def outlier_dense(model):
    """The digits CNN with conv2's channel 0 dead (bias -1000) and that channel's Dense weights set to 200."""
    import keras

    broken = keras.models.clone_model(model)
    weights = [w.copy() for w in model.get_weights()]
    k2_bias, dense_kernel = weights[3], weights[4]
    k2_bias[0] = -1000.0
    dense_kernel.reshape(4, 4, k2_bias.size, -1)[:, :, 0, :] = 200.0
    broken.set_weights(weights)
    return broken


def qat_int8(model, train, epochs: int):
    import keras

    from edgecompress.compress.qat import quantize_model
    from edgecompress.conversion.converter import convert

    keras.utils.set_random_seed(0)
    qat = quantize_model(model)
    qat.compile(optimizer=keras.optimizers.Adam(5e-4), loss="sparse_categorical_crossentropy")
    qat.fit(train.first, train.y, epochs=epochs, batch_size=32, verbose=0)
    return qat, convert(qat, train, max_samples=300).tflite


def _gains(ev, base):
    return {"snr": ev.snr_db - base.snr_db, "agree": 100 * (ev.agreement - base.agreement),
            "top1": 100 * (ev.top1 - base.top1)}


def _mean(rows, key):
    return float(np.mean([row[key] for row in rows])) if rows else float("nan")


def noise_floor(float_bytes, train, test, reference, *, seed: int = 0, subsets: int = DRAWS):
    """How much PTQ's output SNR and agreement move with no change but the calibration subset (290 of 300).

    A fallback changes the rounding of everything downstream, so a measured gain smaller than this spread
    cannot be told from a different draw of the same rounding noise.
    """
    from edgecompress.conversion.requantize import calibrate, quantize
    from edgecompress.samples import Dataset
    from edgecompress.validate.evaluate import evaluate

    rng = np.random.default_rng(seed + 2)
    first, name = train.first, next(iter(train.x))
    runs = []
    for _ in range(subsets):
        keep = np.sort(rng.choice(300, size=290, replace=False))
        subset = Dataset({name: first[:300][keep]}, None, "calibration subset")
        ev = evaluate(quantize(calibrate(float_bytes, subset, max_samples=290), []), test, reference=reference)
        runs.append((ev.snr_db, 100 * ev.agreement))
    snrs, agrees = np.array(runs).T
    return {"snr_spread": float(snrs.max() - snrs.min()), "snr_std": float(snrs.std(ddof=1)),
            "agree_spread": float(agrees.max() - agrees.min())}


def measure(name, model, train, test, *, qat_epochs: int = 0, seed: int = 0):
    from scipy.stats import spearmanr

    from edgecompress.conversion.converter import convert_float
    from edgecompress.conversion.requantize import calibrate, quantize
    from edgecompress.runtimes.host import HostRunner
    from edgecompress.validate.evaluate import evaluate
    from edgecompress.validate.layers import layer_errors

    float_bytes = convert_float(model)
    reference = HostRunner(float_bytes).predict(test.x)[0]
    float_eval = evaluate(float_bytes, test)
    calibrated = calibrate(float_bytes, train, max_samples=300)
    ptq = quantize(calibrated, [])
    base = evaluate(ptq, test, reference=reference)
    start = time.perf_counter()
    report = layer_errors(ptq, float_bytes, train.take(RANK_SAMPLES), max_samples=RANK_SAMPLES)
    rank_seconds = time.perf_counter() - start
    ranking = report.layers
    measured = []
    for rank, layer in enumerate(ranking, 1):
        ev = evaluate(quantize(calibrated, [layer.float_tensor]), test, reference=reference)
        measured.append({"rank": rank, "op": layer.op, "tensor": layer.tensor.split(";")[0][-40:],
                         "estimate": layer.fallback_gain_db, "db_lost": layer.snr_drop_db, **_gains(ev, base)})
    floor = noise_floor(float_bytes, train, test, reference, seed=seed)
    together = {"ranked top 3": _gains(evaluate(quantize(calibrated, [layer.float_tensor for layer in ranking[:3]]),
                                                test, reference=reference), base)}
    rng_together = np.random.default_rng(seed + 1)
    group_draws = []
    for _ in range(DRAWS):
        picks = rng_together.choice(np.arange(3, len(ranking)), size=min(3, len(ranking) - 3), replace=False)
        group_draws.append(_gains(evaluate(quantize(calibrated, [ranking[i].float_tensor for i in picks]), test,
                                           reference=reference), base))
    together[f"random 3 outside the top 3 ({DRAWS} seeded draws, mean)"] = {
        k: _mean(group_draws, k) for k in ("snr", "agree", "top1")}
    top = measured[:3]
    old_top = sorted(measured, key=lambda row: -row["db_lost"])[:3]
    rest = measured[3:]
    rng = np.random.default_rng(seed)
    draws = [[rest[i] for i in rng.choice(len(rest), size=min(3, len(rest)), replace=False)] for _ in range(DRAWS)]
    groups = {
        "ranked top 3 (expected fallback gain)": top,
        "old ranking top 3 (dB lost)": old_top,
        f"random 3 outside the top 3 ({DRAWS} seeded draws)": [row for draw in draws for row in draw],
        f"all {len(rest)} layers outside the top 3": rest,
    }
    weighted = [row for row in measured if row["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    rho = spearmanr([r["estimate"] for r in weighted], [r["snr"] for r in weighted]).statistic if len(
        weighted) > 2 else float("nan")
    result = {"name": name, "float_top1": float_eval.top1, "ptq": base, "layers": len(ranking), "top": top,
              "groups": {label: {k: _mean(rows, k) for k in ("snr", "agree", "top1")} for label, rows in
                         groups.items()},
              "best": max(measured, key=lambda row: row["snr"]), "rho": rho, "rank_seconds": rank_seconds,
              "qat": None, "floor": floor, "together": together, "diagnosis": report.diagnosis,
              "weights_only_snr": report.weights_only_snr_db, "ranked_output_snr": report.output_snr_db}
    if qat_epochs:
        qat_model, qat = qat_int8(model, train, qat_epochs)
        result["qat"] = {"eval": evaluate(qat, test, reference=reference),
                         "vs_keras": evaluate(qat, test, reference=qat_model)}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-digits", type=int, default=20)
    parser.add_argument("--epochs-mobilenet", type=int, default=6)
    parser.add_argument("--qat-epochs", type=int, default=2)
    args = parser.parse_args(argv)
    from edgecompress.load.dataset import digits_dataset
    from edgecompress.pipeline import train_demo_model

    train, test = digits_dataset()
    digits_model = train_demo_model(train, epochs=args.epochs_digits)
    results = [measure("digits_cnn", digits_model, train, test, qat_epochs=args.qat_epochs)]
    train32, test32 = digits_32(train), digits_32(test)
    results.append(measure("mobilenetv2_a0.35_32x32", train_mobilenet(train32, args.epochs_mobilenet),
                           train32, test32, qat_epochs=args.qat_epochs))
    results.append(measure("digits_cnn_outlier_dense (constructed)", outlier_dense(digits_model), train, test))

    def pct(value):
        return f"{100 * value:.2f}%"

    print("Agreement and SNR are against the float model's outputs; QAT fine-tunes the weights, so its int8 model is "
          "also compared with the QAT Keras model it came from.")
    print()
    print("| model | float top-1 | PTQ top-1 | PTQ agreement | PTQ output SNR dB | QAT int8 top-1 | QAT agreement "
          "| QAT output SNR dB | QAT int8 vs QAT Keras agreement | int8 layers |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        q = r["qat"]["eval"] if r["qat"] else None
        qat_cells = (f"{pct(q.top1)} | {pct(q.agreement)} | {q.snr_db:.2f} | {pct(r['qat']['vs_keras'].agreement)}"
                     if q else "- | - | - | -")
        print(f"| {r['name']} | {pct(r['float_top1'])} | {pct(r['ptq'].top1)} | {pct(r['ptq'].agreement)} | "
              f"{r['ptq'].snr_db:.2f} | {qat_cells} | {r['layers']} |")
    print()
    print("Single-layer float fallback of PTQ, measured on the held-out split (mean per layer kept float):")
    print()
    print("| model | layers kept float (one at a time) | output SNR gain dB | agreement gain pts | top-1 gain pts |")
    print("|---|---|---|---|---|")
    for r in results:
        for label, g in r["groups"].items():
            print(f"| {r['name']} | {label} | {g['snr']:+.2f} | {g['agree']:+.2f} | {g['top1']:+.2f} |")
    print()
    print("| model | rank | op | tensor | expected gain dB | dB lost | measured SNR gain dB | agreement gain pts |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for row in r["top"]:
            print(f"| {r['name']} | {row['rank']} | {row['op']} | {row['tensor']} | {row['estimate']:.2f} | "
                  f"{row['db_lost']:.2f} | {row['snr']:+.2f} | {row['agree']:+.2f} |")
    print()
    print("The same layers kept float together (one re-export per group), and the calibration noise floor: the spread"
          f" of PTQ's output SNR and agreement over {DRAWS} calibration subsets of 290 of the 300 samples:")
    print()
    print("| model | layers kept float together | output SNR gain dB | agreement gain pts | top-1 gain pts |")
    print("|---|---|---|---|---|")
    for r in results:
        for label, g in r["together"].items():
            print(f"| {r['name']} | {label} | {g['snr']:+.2f} | {g['agree']:+.2f} | {g['top1']:+.2f} |")
    print()
    print("| model | noise floor: SNR spread dB (std) | agreement spread pts | weights-only output SNR dB | int8 output "
          "SNR dB (ranking samples) | diagnosis (validate's note) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        f = r["floor"]
        print(f"| {r['name']} | {f['snr_spread']:.2f} ({f['snr_std']:.2f}) | {f['agree_spread']:.2f} | "
              f"{r['weights_only_snr']} | {r['ranked_output_snr']} | {(r['diagnosis'] or '').split(':')[0]} |")
    print()
    for r in results:
        top, rand = r["groups"]["ranked top 3 (expected fallback gain)"], r["groups"][
            f"random 3 outside the top 3 ({DRAWS} seeded draws)"]
        beats = top["snr"] > rand["snr"] and top["agree"] > rand["agree"]
        if r["best"]["snr"] <= r["floor"]["snr_spread"]:
            verdict = (f"not measurable: no single fallback gains more than the {r['floor']['snr_spread']:.2f} dB "
                       f"calibration noise floor (best {r['best']['snr']:+.2f} dB); top 3 "
                       f"{'above' if beats else 'not above'} random 3")
        else:
            verdict = "yes" if beats else "no"
        print(f"{r['name']}: top 3 beat random 3 on both SNR and agreement gain: {verdict}; best "
              f"single fallback is rank {r['best']['rank']} ({r['best']['op']}, {r['best']['snr']:+.2f} dB); "
              f"Spearman(expected, measured SNR gain) over weighted layers {r['rho']:+.2f}; ranking took "
              f"{r['rank_seconds']:.1f} s")
    print("command: PYTHONPATH=$PWD python benchmarks/validation.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
