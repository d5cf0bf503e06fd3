"""Every command-line option, declared once: flags, argparse behaviour and help text.

A command names the options it takes (``edgecompress.cli.commands``); ``add_options`` adds them in that order.
One flag that means different things in different commands (the positional ``model``, ``--target``, ``--out``,
``--calibration``, ``--data``, ``--device``, ``--recipe``) has one entry per meaning, named after the meaning, so
each entry still has exactly one declaration.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

# Exit code of ``validate`` when the accuracy gate (--max-drop) fails.
ACCURACY_GATE_EXIT = 5

PREPROCESS = "image-folder preprocessing (or a preprocess.yaml beside the images)"


@dataclasses.dataclass(frozen=True)
class Option:
    """One argparse argument: its flags, its ``add_argument`` keywords and the help group it is listed under.

    Args:
        flags: the positional name or the option strings, e.g. ``("--json",)``.
        settings: keyword arguments of ``ArgumentParser.add_argument`` (action, type, default, help, ...).
        group: the title of the argument group it is listed under, or None for the command's own options.

    Example:
        >>> Option(("--json",), {"action": "store_true", "help": "print the result as JSON"}).flags
        ('--json',)
    """

    flags: tuple[str, ...]
    settings: dict[str, Any]
    group: str | None = None


def _option(*flags: str, group: str | None = None, **settings: Any) -> Option:
    return Option(flags, settings, group)


_SSH_SOURCE = "ssh://user@host[:port]"

OPTIONS: dict[str, Option] = {
    # what is being worked on
    "source_model": _option("model", help=".keras, .h5 or .onnx file, or a SavedModel directory"),
    "keras_model": _option("model", help=".keras / .h5 model (or a SavedModel directory)"),
    "tflite": _option("model", help="a .tflite file"),
    "bench_tflite": _option("model", help="a .tflite file (usually the int8 model)"),
    "int8_tflite": _option("model", help="the int8 .tflite"),
    # data
    "export_calibration": _option("--calibration", required=True, metavar="DATA",
                                  help=".npz (x[, y]), image folder, or module:function"),
    "check_calibration": _option("--calibration", metavar="DATA",
                                 help="samples (.npz, image folder, module:function) for TFLite Micro's output "
                                      "comparison with LiteRT (default: seeded random int8 inputs)"),
    "fix_calibration": _option("--calibration", metavar="DATA", help="representative data for --fix re-export"),
    "eval": _option("--eval", metavar="DATA", help="evaluation data: report int8 vs float accuracy"),
    "eval_data": _option("--data", required=True, metavar="EVAL",
                         help="evaluation data (.npz with x[, y], image folder, module:function), NHWC"),
    "train_data": _option("--data", required=True, metavar="TRAIN", help="labelled training data (.npz with x, y)"),
    "val": _option("--val", metavar="VAL", help="labelled validation data for the per-stage accuracy"),
    "max_samples": _option("--max-samples", type=int, default=500, help="calibrate on at most N samples"),
    # outputs
    "export_out": _option("--out", metavar="FILE", help="output .tflite (default: <model>_int8.tflite)"),
    "demo_out": _option("--out", default="build/demo", help="output directory (default build/demo)"),
    "fix_out": _option("--out", metavar="FILE", help="where --fix writes the fixed .tflite"),
    "compress_out": _option("--out", required=True, metavar="OUT.keras", help="where to save the compressed model"),
    "compiled_out": _option("--compiled-out", metavar="FILE",
                            help="write the compiler's output model (Vela-optimised or Edge TPU .tflite) here"),
    "html": _option("--html", metavar="FILE", help="write a self-contained HTML report"),
    "json": _option("--json", action="store_true", help="print the result as JSON"),
    # conversion
    "io_dtype": _option("--io-dtype", choices=("int8", "uint8", "int16", "float32"), default=None,
                        help="dtype of the model's input and output tensors (default int8; int16 with "
                             "--precision 16x8, which takes int16 or float32)"),
    "precision": _option("--precision", choices=("int8", "16x8"), default="int8",
                         help="int8 (default) or 16x8: int16 activations with int8 weights, closer to float, "
                              "for TFLite Micro and Ethos-U (refused for Edge TPU and NNAPI, slow on XNNPACK)"),
    "allow_float_fallback": _option("--allow-float-fallback", action="store_true",
                                    help="write a mixed int8/float model when some operators cannot be int8"),
    "calibration_method": _option(
        "--calibration-method", choices=("minmax", "percentile", "mse", "kl", "auto"), default="minmax",
        help="how activation ranges are chosen: minmax (the converter's own, default), percentile, mse, kl "
             "(entropy), or auto (score each on held-out calibration samples, keep the best)"),
    "percentile": _option("--percentile", type=float, default=99.99,
                          help="for --calibration-method percentile/auto: keep values up to this percentile "
                               "(default 99.99)"),
    "bias_correction": _option("--bias-correction", action="store_true",
                               help="correct Conv/Dense biases for the mean output shift of int8 weight rounding"),
    "unsafe_load": _option("--unsafe-load", action="store_true",
                           help="turn Keras safe mode off (runs Lambda layers' code): only for trusted files"),
    # targets
    "export_target": _option("--target", metavar="NAME",
                             help="check the result against a target profile; TFLite Micro targets also get "
                                  "model_data.cc/.h, an op resolver and the arena size in <out>_micro/"),
    "validate_target": _option("--target", metavar="NAME",
                               help="target profile: microcontroller targets run on TFLite Micro"),
    "check_target": _option("--target", required=True, metavar="NAME",
                            help="a profile from `edgecompress targets`, or `all` for one row per target"),
    "bench_target": _option("--target", required=True, metavar="NAME",
                            help="a profile from `edgecompress targets`, or `all` for every target's estimate"),
    "param": _option("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="target profile parameter, e.g. --param api_level=29 (repeatable)"),
    "strict": _option("--strict", action="store_true", help="treat fallbacks as failure (exit 4 instead of 3)"),
    "rules_only": _option("--rules-only", action="store_true",
                          help="do not run the real tools (Vela, TFLite Micro, edgetpu_compiler); rules answer"),
    # image-folder preprocessing
    "image_size": _option("--image-size", metavar="HxW", help="resize images to H x W", group=PREPROCESS),
    "channels": _option("--channels", type=int, choices=(1, 3), help="1 (grayscale) or 3 (colour)",
                        group=PREPROCESS),
    "channel_order": _option("--channel-order", choices=("rgb", "bgr"), help="channel order (default rgb)",
                             group=PREPROCESS),
    "scale": _option("--scale", type=float, help="multiply pixels by this first (default 1/255)", group=PREPROCESS),
    "mean": _option("--mean", help="subtract this (one value or one per channel, comma-separated)",
                    group=PREPROCESS),
    "std": _option("--std", help="divide by this (one value or one per channel, comma-separated)",
                   group=PREPROCESS),
    # demo
    "epochs": _option("--epochs", type=int, default=None, help="training epochs (default 30)"),
    "seed": _option("--seed", type=int, default=0, help="random seed (default 0)"),
    "demo_recipe": _option("--recipe", nargs="?", const="default", metavar="RECIPE",
                           help="also compress the model with a recipe (no value: the shipped default: distill, "
                                "prune, cluster, QAT) and report it beside the plain int8 export"),
    # compress
    "compress_recipe": _option("--recipe", required=True,
                               help="recipe YAML, or a shipped recipe by name: default (distill, prune, cluster, "
                                    "QAT), qat"),
    "engine": _option("--engine", choices=("keras", "tfmot"), default="keras",
                      help="keras: ours, on Keras 3 (default); tfmot: tfmot on a legacy tf_keras .h5 model, in a "
                           "subprocess (prune, cluster, qat; with qat --out must be a .tflite)"),
    # inspect
    "tensors": _option("--tensors", action="store_true", help="also list every tensor"),
    # validate
    "reference": _option("--reference", metavar="FLOAT_MODEL",
                         help="float model: .keras, .h5, SavedModel directory, .onnx or float .tflite"),
    "runtime": _option("--runtime", choices=("host", "micro"), help="evaluate on host LiteRT or TFLite Micro"),
    "ssh_device": _option("--device", metavar="URI",
                          help=f"{_SSH_SOURCE}: run the int8 model on that Linux device (its own interpreter)"),
    "arena_size": _option("--arena-size", type=int, metavar="BYTES", help="TFLite Micro arena for evaluation"),
    "max_drop": _option("--max-drop", type=float, metavar="POINTS",
                        help=f"exit {ACCURACY_GATE_EXIT} when top-1 drops by more than POINTS "
                             "(without labels: top-1 disagreement with the reference, in points)"),
    "fix": _option("--fix", choices=("float-fallback",),
                   help="re-export with the worst layers kept in float and show before/after"),
    "fix_layers": _option("--fix-layers", type=int, default=3, metavar="K", help="layers to keep float (default 3)"),
    "layer_samples": _option("--layer-samples", type=int, default=64, metavar="N",
                             help="samples traced for the per-layer error (default 64)"),
    # a device reached over ssh (bench and validate)
    "identity": _option("--identity", metavar="KEY", help="ssh: private key file"),
    "known_hosts": _option("--known-hosts", metavar="FILE",
                           help="ssh: known_hosts file holding the device's host key"),
    "remote_python": _option("--remote-python", default="python3", metavar="PATH",
                             help="ssh: the device's Python (default python3)"),
    "accept_new_host_key": _option("--accept-new-host-key", action="store_true",
                                   help="ssh: trust and record a host key seen for the first time (a changed key "
                                        "is refused)"),
    "timeout": _option("--timeout", type=float, default=300.0, help="seconds a device run may take (default 300)"),
    # bench
    "bench_device": _option("--device", metavar="URI",
                            help=f"{_SSH_SOURCE} or adb://SERIAL (default: this host)"),
    "runs": _option("--runs", type=int, default=50, help="timed runs (default 50)"),
    "warmup": _option("--warmup", type=int, default=5, help="untimed runs first (default 5)"),
    "threads": _option("--threads", type=int, help="interpreter threads (default: the target's)"),
    "float_model": _option("--float", dest="float_model", metavar="MODEL_F32",
                           help="the float32 .tflite of the same network, measured beside MODEL in the same run"),
    "benchmark_binary": _option("--benchmark-binary", metavar="PATH",
                                help="adb: the Android benchmark_model executable for the device's ABI"),
    "op_profiling": _option("--op-profiling", action="store_true",
                            help="adb: per-operator timings from benchmark_model"),
}

SSH_OPTIONS = ("identity", "known_hosts", "remote_python", "accept_new_host_key", "timeout")
PREPROCESS_OPTIONS = ("image_size", "channels", "channel_order", "scale", "mean", "std")


def add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Add the named options to ``parser``, in order, each under its help group.

    Args:
        parser: a subcommand's parser.
        names: keys of ``OPTIONS``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_options(parser, ["json"])
        >>> parser.parse_args(["--json"]).json
        True
    """
    groups: dict[str, Any] = {}
    for name in names:
        option = OPTIONS[name]
        target: Any = parser
        if option.group is not None:
            if option.group not in groups:
                groups[option.group] = parser.add_argument_group(option.group)
            target = groups[option.group]
        target.add_argument(*option.flags, **option.settings)
