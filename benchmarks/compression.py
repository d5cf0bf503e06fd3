"""Compression on the digits task: every row measured in this run, same epochs and optimizer for each.

Rows: float; bare-TensorFlow post-training int8; our QAT; our prune 75% + QAT; our prune + cluster(16) + QAT;
a distilled half-width student + QAT; and tfmot QAT / tfmot prune + QAT on a tf_keras copy of the same
architecture (run in a subprocess: importing tfmot switches the whole process to legacy Keras).

Run:  PYTHONPATH=$PWD /work/venv/bin/python benchmarks/compression.py [--epochs 10] [--finetune 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LR = 1e-3
BATCH = 32


def build(width: float = 1.0, keras_module=None):
    import keras as default_keras

    k = keras_module or default_keras
    k.utils.set_random_seed(0)
    return k.Sequential([
        k.Input((8, 8, 1), name="input"),
        k.layers.Conv2D(int(16 * width), 3, padding="same", activation="relu"),
        k.layers.Conv2D(int(32 * width), 3, padding="same", activation="relu"),
        k.layers.MaxPooling2D(2),
        k.layers.Flatten(),
        k.layers.Dense(int(64 * width), activation="relu"),
        k.layers.Dense(10, activation="softmax"),
    ])


def fit(model, train, epochs, callbacks=()):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(LR), loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=epochs, batch_size=BATCH, verbose=0, callbacks=list(callbacks))
    return model


def to_int8(model, x) -> bytes:
    from edgecompress.conversion import converter as conversion

    return conversion.convert(model, x, max_samples=300).tflite


def measure(tflite: bytes, test) -> dict:
    """Top-1, sizes and the weights' sparsity / unique values, read from the flatbuffer itself."""
    from ai_edge_litert.interpreter import Interpreter

    from edgecompress.runtimes.host import HostRunner

    out = HostRunner(tflite).predict(test.first)[0]
    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    weights = [interpreter.get_tensor(op["inputs"][1]) for op in interpreter._get_ops_details()
               if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    total = sum(w.size for w in weights)
    return {
        "top1": float(np.mean(out.argmax(1) == test.y)),
        "bytes": len(tflite),
        "gzip": len(gzip.compress(tflite, 9)),
        "sparsity": float(sum((w == 0).sum() for w in weights) / total) if total else 0.0,
        "unique_max": max(int(np.unique(w).size) for w in weights) if weights else 0,
        "inner_qdq": sum(op in ("QUANTIZE", "DEQUANTIZE") for op in ops),
    }


def macs(model) -> int:
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            h, w = layer.output.shape[1:3]
            kh, kw, cin, cout = layer.kernel.shape
            total += h * w * kh * kw * cin * cout
        elif kind == "Dense":
            total += int(np.prod(layer.kernel.shape))
    return int(total)


TFMOT_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow_model_optimization as tfmot
    import tf_keras as k
    import tensorflow as tf
    sys.path.insert(0, sys.argv[1])
    from benchmarks.compression import build
    from edgecompress.load.dataset import digits_dataset
    from ai_edge_litert.interpreter import Interpreter
    import gzip
    epochs, finetune = int(sys.argv[2]), int(sys.argv[3])
    train, test = digits_dataset()
    def fit(model, n, callbacks=()):
        model.compile(optimizer=k.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        model.fit(train.first, train.y, epochs=n, batch_size=32, verbose=0, callbacks=list(callbacks))
        return model
    def int8(model):
        inp = k.Input(batch_shape=(1, 8, 8, 1))
        fixed = k.Model(inp, model(inp))
        c = tf.lite.TFLiteConverter.from_keras_model(fixed)
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: ([train.first[i:i+1]] for i in range(300))
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = c.inference_output_type = tf.int8
        return c.convert()
    def measure(b):
        it = Interpreter(model_content=b); it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        preds = []
        for x in test.first:
            s, z = i["quantization"]
            it.set_tensor(i["index"], np.clip(np.round(x[None] / s + z), -128, 127).astype(np.int8)); it.invoke()
            preds.append(it.get_tensor(o["index"])[0].astype(np.float32))
        ws = [it.get_tensor(op["inputs"][1]) for op in it._get_ops_details()
              if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
        total = sum(w.size for w in ws)
        ops = [op["op_name"] for op in it._get_ops_details()]
        return {"top1": float(np.mean(np.argmax(preds, 1) == test.y)), "bytes": len(b),
                "gzip": len(gzip.compress(b, 9)), "sparsity": float(sum((w == 0).sum() for w in ws) / total),
                "unique_max": max(int(np.unique(w).size) for w in ws),
                "inner_qdq": sum(op in ("QUANTIZE", "DEQUANTIZE") for op in ops)}
    rows = {}
    base = fit(build(keras_module=k), epochs)
    t = time.time()
    q = fit(tfmot.quantization.keras.quantize_model(base), finetune)
    rows["tfmot QAT"] = dict(measure(int8(q)), seconds=time.time() - t)
    t = time.time()
    sched = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.75, 0, (len(train.first) // 32 + 1) * finetune - 1, frequency=10)
    pruned = fit(tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=sched), finetune,
                 [tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    annotated = tfmot.quantization.keras.quantize_annotate_model(stripped)
    pq = tfmot.quantization.keras.quantize_apply(
        annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    pq = fit(pq, finetune)
    rows["tfmot prune75+QAT"] = dict(measure(int8(pq)), seconds=time.time() - t)
    print("JSON" + json.dumps(rows))
""")


def tfmot_rows(root: str, epochs: int, finetune: int) -> dict:
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=root)
    try:
        done = subprocess.run([sys.executable, "-c", TFMOT_SCRIPT, root, str(epochs), str(finetune)],
                              capture_output=True, text=True, timeout=1800, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"tfmot": {"error": "timed out after 1800 s"}}
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("JSON")), None)
    if done.returncode != 0 or line is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"tfmot": {"error": f"exit {done.returncode}: {tail[:200]}"}}
    return json.loads(line[4:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="float training epochs")
    parser.add_argument("--finetune", type=int, default=3, help="epochs of every compression stage")
    parser.add_argument("--skip-tfmot", action="store_true")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)

    from edgecompress.compress.cluster import cluster_weights, strip_clustering
    from edgecompress.compress.distill import Distiller, make_student
    from edgecompress.compress.prune import (
        PolynomialDecay,
        UpdatePruningStep,
        prune_low_magnitude,
        strip_pruning,
    )
    from edgecompress.compress.qat import quantize_model
    from edgecompress.conversion.converter import convert_float
    from edgecompress.load.dataset import digits_dataset

    train, test = digits_dataset()
    steps = (len(train.first) + BATCH - 1) // BATCH * args.finetune
    rows: dict[str, dict] = {}
    started = time.time()
    base = fit(build(), train, args.epochs)
    float_tflite = convert_float(base)
    rows["float"] = dict(measure(float_tflite, test), seconds=time.time() - started, macs=macs(base))

    t = time.time()
    rows["bare-TF PTQ int8"] = dict(measure(to_int8(base, train.first), test), seconds=time.time() - t, macs=macs(base))

    t = time.time()
    qat = fit(quantize_model(base), train, args.finetune)
    rows["ours QAT"] = dict(measure(to_int8(qat, train.first), test), seconds=time.time() - t, macs=macs(base))

    t = time.time()
    schedule = PolynomialDecay(0.0, 0.75, begin_step=0, end_step=steps - 1, frequency=10)
    pruned = strip_pruning(fit(prune_low_magnitude(base, schedule), train, args.finetune, [UpdatePruningStep()]))
    pruned_qat = fit(quantize_model(pruned, preserve=("sparsity",)), train, args.finetune)
    rows["ours prune75+QAT"] = dict(measure(to_int8(pruned_qat, train.first), test), seconds=time.time() - t,
                                    macs=macs(base))

    t = time.time()
    clustered = strip_clustering(fit(cluster_weights(pruned, 16), train, args.finetune))
    pcq = fit(quantize_model(clustered, preserve=("sparsity", "clusters")), train, args.finetune)
    rows["ours prune75+cluster16+QAT"] = dict(measure(to_int8(pcq, train.first), test), seconds=time.time() - t,
                                              macs=macs(base))

    t = time.time()
    student = make_student(base, width=0.5)
    distiller = Distiller(student, base, alpha=0.1, temperature=4.0)
    distiller.compile(optimizer=__import__("keras").optimizers.Adam(LR))
    distiller.fit(train.first, train.y, epochs=args.epochs, batch_size=BATCH, verbose=0)
    student_qat = fit(quantize_model(student), train, args.finetune)
    rows["ours distilled 0.5x+QAT"] = dict(measure(to_int8(student_qat, train.first), test),
                                           seconds=time.time() - t, macs=macs(student))

    if not args.skip_tfmot:
        rows.update(tfmot_rows(root, args.epochs, args.finetune))

    float_gzip = rows["float"]["gzip"]
    print(f"digits (sklearn, 8x8x1, test n={len(test.y)}); float {args.epochs} epochs, each stage "
          f"{args.finetune} epochs, Adam({LR}), batch {BATCH}")
    header = (f"| {'row':28} | {'int8 top-1':>10} | {'bytes':>7} | {'gzip':>6} | {'ratio (gzip)':>12} | "
              f"{'sparsity':>8} | {'max uniq/kernel':>15} | {'Q/DQ inside':>11} | {'MACs':>7} | {'wall s':>6} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name, row in rows.items():
        if "error" in row:
            print(f"| {name:28} | error: {row['error']}")
            continue
        label = "float32 top-1" if name == "float" else ""
        print(f"| {name:28} | {row['top1'] * 100:9.2f}% | {row['bytes']:7d} | {row['gzip']:6d} | "
              f"{float_gzip / row['gzip']:11.2f}x | {row['sparsity'] * 100:7.1f}% | {row['unique_max']:15d} | "
              f"{row['inner_qdq']:11d} | {row.get('macs', '-')!s:>7} | {row['seconds']:6.1f} | {label}")
    print(f"command: PYTHONPATH=$PWD {sys.executable} benchmarks/compression.py --epochs {args.epochs} "
          f"--finetune {args.finetune}")


if __name__ == "__main__":
    main()
