"""Count per-operator MACs and tensor sizes of the published benchmark models from their architectures.

The latency estimator is calibrated against published figures (MobileNet v1/v2 on Coral, Pixel 3, Raspberry Pi;
person detection and keyword spotting on Cortex-M and ESP32-S3; ...). Those figures need the models' operator
costs, which we compute here from the architectures, without downloading weights: the Keras application is built
with ``weights=None`` and every layer that becomes a TFLite operator contributes one row
``[kind, macs, activation_elements, weight_elements]``. The MAC convention is the one ``edgecompress.tflite``
uses (CONV_2D: output elements x kh x kw x cin; DEPTHWISE_CONV_2D: output elements x kh x kw; FULLY_CONNECTED:
output elements x input features). BatchNormalization and activations fold into the preceding operator as the
converter folds them.

Writes ``edgecompress/data/latency/calibration_models.json``; run it again only when a model is added.

    PYTHONPATH=$PWD python benchmarks/calibration_models.py
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "edgecompress" / "data" / "latency" / "calibration_models.json"


def _elements(shape) -> int:
    return int(math.prod(int(d) for d in shape[1:] if d is not None))


def operator_rows(model) -> list[list]:
    """One ``[kind, macs, activation_elements, weight_elements]`` row per TFLite-operator-like layer."""
    import keras

    rows = []
    for layer in model.layers:
        ins = layer.input if isinstance(layer.input, list) else [layer.input]
        in_elems = sum(_elements(t.shape) for t in ins)
        out_shape = layer.output.shape
        out_elems = _elements(out_shape)
        weights = sum(int(math.prod(w.shape)) for w in layer.weights if "moving" not in w.name and "gamma" not in w.name
                      and "beta" not in w.name)
        acts = in_elems + out_elems
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            rows.append(["depthwise", out_elems * kh * kw, acts, weights])
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            rows.append(["conv", out_elems * kh * kw * int(ins[0].shape[-1]), acts, weights])
        elif isinstance(layer, keras.layers.Dense):
            rows.append(["fc", out_elems * int(ins[0].shape[-1]), acts, weights])
            if layer.activation is keras.activations.softmax:
                rows.append(["other", out_elems, 2 * out_elems, 0])
        elif isinstance(layer, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
            ph, pw = layer.pool_size
            rows.append(["other", out_elems * ph * pw, acts, 0])
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D | keras.layers.GlobalMaxPooling2D):
            rows.append(["other", in_elems, acts, 0])
        elif isinstance(layer, keras.layers.Add | keras.layers.Concatenate | keras.layers.ZeroPadding2D
                        | keras.layers.Reshape | keras.layers.Flatten):
            rows.append(["other", out_elems, acts, 0])
        elif isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.softmax:
            rows.append(["other", out_elems, acts, 0])
    return rows


def build(name: str):
    import keras

    apps = keras.applications
    if name.startswith("mobilenet_v1_"):
        _, _, alpha, res = name.split("_")
        return apps.MobileNet(input_shape=(int(res), int(res), 3), alpha=float(alpha), weights=None)
    if name == "mobilenet_v2_1.0_224":
        return apps.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    if name == "inception_v3_299":
        return apps.InceptionV3(input_shape=(299, 299, 3), weights=None)
    if name == "densenet121_224":
        return apps.DenseNet121(input_shape=(224, 224, 3), weights=None)
    if name == "vgg19_224":
        return apps.VGG19(input_shape=(224, 224, 3), weights=None)
    if name == "person_detect_96":
        # The TFLM person-detection model: MobileNet v1 alpha 0.25 on 96x96 grayscale, 2 classes.
        return apps.MobileNet(input_shape=(96, 96, 1), alpha=0.25, weights=None, classes=2)
    if name == "micro_speech_tiny_conv":
        # TFLM micro_speech "tiny_conv": 49x40 spectrogram, one 10x8 stride-2 conv with 8 filters, FC to 4 classes.
        inp = keras.Input((49, 40, 1))
        x = keras.layers.Conv2D(8, (10, 8), strides=2, padding="same", activation="relu")(inp)
        x = keras.layers.Flatten()(x)
        return keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    raise ValueError(name)


MODELS = ["mobilenet_v1_1.0_224", "mobilenet_v1_0.25_128", "mobilenet_v1_0.25_224", "mobilenet_v1_0.5_224",
          "mobilenet_v1_0.75_224", "mobilenet_v1_1.0_128", "mobilenet_v1_1.0_160", "mobilenet_v1_1.0_192",
          "mobilenet_v2_1.0_224", "inception_v3_299", "densenet121_224", "vgg19_224", "person_detect_96",
          "micro_speech_tiny_conv"]


def main() -> int:
    import keras

    out = {"_comment": "generated by benchmarks/calibration_models.py: per-operator [kind, macs, activation "
                       "elements, weight elements] of the calibration models, counted from their architectures",
           "models": {}}
    for name in MODELS:
        keras.backend.clear_session()
        rows = operator_rows(build(name))
        out["models"][name] = {"macs": sum(r[1] for r in rows if r[0] != "other"),
                               "weights": sum(r[3] for r in rows), "operators": rows}
        print(f"{name:28s} {out['models'][name]['macs'] / 1e6:10.2f} M MACs  {len(rows):4d} ops  "
              f"{out['models'][name]['weights'] / 1e6:8.2f} M weights", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = "{\n" + f' "_comment": {json.dumps(out["_comment"])},\n "models": {{\n'
    text += ",\n".join(f'  {json.dumps(k)}: {{"macs": {v["macs"]}, "weights": {v["weights"]}, "operators": '
                       f'{json.dumps(v["operators"], separators=(",", ":"))}}}' for k, v in out["models"].items())
    text += "\n }\n}\n"
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
