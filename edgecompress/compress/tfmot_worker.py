"""Subprocess worker for ``compress --engine tfmot``: run a recipe with tfmot on a legacy ``tf_keras`` model.

Run as ``python -m edgecompress.compress.tfmot_worker MODEL.h5 STAGES.json DATA.npz OUT safe|unsafe``. It lives in its own
process because importing tfmot switches the whole process to legacy Keras (``TF_USE_LEGACY_KERAS``). Stages:
prune, cluster and qat (tfmot has no distillation). With a qat stage the result is a full-int8 ``.tflite``
(a tfmot QAT model cannot be loaded by Keras 3); otherwise a stripped ``.h5`` that Keras 3 loads.
Prints one JSON line: ``{"stages": [{"stage", "accuracy"}], "output"}``.
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np


def main(argv: list[str]) -> int:
    model_path, stages_path, data_path, out, mode = argv
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    stages = json.loads(open(stages_path).read())
    data = np.load(data_path)
    x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    x_val, y_val = (data["x_val"], data["y_val"]) if "x_val" in data.files else (x, y)
    tf_keras.utils.set_random_seed(0)
    from tf_keras.src.saving import serialization_lib

    # tf_keras's legacy .h5 loader ignores safe_mode=; its scope is what makes Lambda deserialization refuse
    with serialization_lib.SafeModeScope(mode == "safe"):
        model = tf_keras.models.load_model(model_path, compile=False)
    results = []

    def accuracy(m) -> float:
        return float(np.mean(m.predict(x_val, verbose=0).reshape(len(x_val), -1).argmax(1) == y_val))

    def fit(m, s, callbacks=()):
        probabilities = getattr(model.layers[-1], "activation", None) is tf_keras.activations.softmax
        opt = {"adam": tf_keras.optimizers.Adam, "sgd": tf_keras.optimizers.SGD,
               "rmsprop": tf_keras.optimizers.RMSprop}.get(s["optimizer"].get("name", "adam"), tf_keras.optimizers.Adam)
        m.compile(optimizer=opt(s["optimizer"].get("learning_rate", 1e-3)),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities))
        m.fit(x, y, epochs=s["epochs"], batch_size=s["batch_size"], verbose=0, callbacks=list(callbacks))
        return m

    results.append({"stage": "input", "accuracy": accuracy(model)})
    quantized = None
    for s in stages:
        kind = s["kind"]
        if kind == "prune":
            steps = s["epochs"] * math.ceil(len(x) / s["batch_size"])
            schedule = (tfmot.sparsity.keras.ConstantSparsity(s["sparsity"], begin_step=0)
                        if s["schedule"] == "constant" else
                        tfmot.sparsity.keras.PolynomialDecay(0.0, s["sparsity"], begin_step=0,
                                                             end_step=max(steps - 1, 1), frequency=10))
            pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
            fit(pruned, s, [tfmot.sparsity.keras.UpdatePruningStep()])
            model = tfmot.sparsity.keras.strip_pruning(pruned)
            results.append({"stage": "prune", "accuracy": accuracy(model)})
        elif kind == "cluster":
            init = (tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS if s["init"] == "kmeans++"
                    else tfmot.clustering.keras.CentroidInitialization.LINEAR)
            clustered = tfmot.clustering.keras.cluster_weights(model, number_of_clusters=s["clusters"],
                                                               cluster_centroids_init=init)
            fit(clustered, s)
            model = tfmot.clustering.keras.strip_clustering(clustered)
            results.append({"stage": "cluster", "accuracy": accuracy(model)})
        elif kind == "qat":
            quantized = fit(tfmot.quantization.keras.quantize_model(model), s)
            results.append({"stage": "qat", "accuracy": accuracy(quantized)})
    if quantized is not None:
        converter = tf.lite.TFLiteConverter.from_keras_model(quantized)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(min(len(x), 300)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        tmp = out + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(converter.convert())
        os.replace(tmp, out)
    else:
        tmp = out + ".tmp.h5"
        model.save(tmp)
        os.replace(tmp, out)
    print(json.dumps({"stages": results, "output": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
