"""The ``edgecompress`` command line: parses arguments, calls the API, prints. No logic of its own.

Exit codes: 0 success, 2 bad input (an ``EdgeCompressError``), 1 internal failure (a bug), 130 interrupted.
Subcommands register themselves in ``_PARSERS``: each has an ``_add_<name>_parser`` and a ``_run_<name>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from edgecompress import __version__
from edgecompress.errors import EdgeCompressError


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _console():
    from rich.console import Console

    return Console(highlight=False)


_PARSERS: list[Callable[[Any], None]] = []


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="edgecompress",
        description="Compress a model, export a calibrated full-int8 TFLite, and validate it per edge target.",
    )
    parser.add_argument("--version", action="version", version=f"edgecompress {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in _PARSERS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgeCompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was written at the output path", file=sys.stderr)
        return 130


def _preprocess_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    spec: dict[str, Any] = {}
    if getattr(args, "image_size", None):
        try:
            height, width = (int(v) for v in args.image_size.lower().split("x"))
        except ValueError as exc:
            raise EdgeCompressError(f"--image-size expects HxW, e.g. 96x96. Received: {args.image_size!r}.") from exc
        spec["size"] = [height, width]
    for key in ("channels", "channel_order", "scale"):
        if getattr(args, key, None) is not None:
            spec[key] = getattr(args, key)
    for key in ("mean", "std"):
        value = getattr(args, key, None)
        if value is not None:
            try:
                numbers = [float(v) for v in value.split(",")]
            except ValueError as exc:
                raise EdgeCompressError(f"--{key} expects comma-separated numbers, e.g. 0.5,0.5,0.5. "
                                        f"Received: {value!r}.") from exc
            spec[key] = numbers if len(numbers) > 1 else numbers[0]
    return spec or None


def _add_preprocess_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("image-folder preprocessing (or a preprocess.yaml beside the images)")
    group.add_argument("--image-size", metavar="HxW", help="resize images to H x W")
    group.add_argument("--channels", type=int, choices=(1, 3), help="1 (grayscale) or 3 (colour)")
    group.add_argument("--channel-order", choices=("rgb", "bgr"), help="channel order (default rgb)")
    group.add_argument("--scale", type=float, help="multiply pixels by this first (default 1/255)")
    group.add_argument("--mean", help="subtract this (one value or one per channel, comma-separated)")
    group.add_argument("--std", help="divide by this (one value or one per channel, comma-separated)")


def _add_export_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="convert a model to a calibrated full-int8 .tflite",
        description="Convert a .keras/.h5/.onnx model or a SavedModel directory to a full-int8 TFLite "
                    "flatbuffer, calibrated on representative data.")
    parser.add_argument("model", help=".keras, .h5 or .onnx file, or a SavedModel directory")
    parser.add_argument("--calibration", required=True, metavar="DATA",
                        help=".npz (x[, y]), image folder, or module:function")
    parser.add_argument("--out", metavar="FILE", help="output .tflite (default: <model>_int8.tflite)")
    parser.add_argument("--io-dtype", choices=("int8", "uint8", "float32"), default="int8",
                        help="dtype of the model's input and output tensors (default int8)")
    parser.add_argument("--allow-float-fallback", action="store_true",
                        help="write a mixed int8/float model when some operators cannot be int8")
    parser.add_argument("--eval", metavar="DATA", help="evaluation data: report int8 vs float accuracy")
    parser.add_argument("--max-samples", type=int, default=500, help="calibrate on at most N samples")
    parser.add_argument("--unsafe-load", action="store_true",
                        help="turn Keras safe mode off (runs Lambda layers' code): only for trusted files")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_preprocess_arguments(parser)
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from edgecompress.pipeline import export

    if args.max_samples < 1:
        raise EdgeCompressError(f"--max-samples must be at least 1. Received: {args.max_samples}.")
    result = export(args.model, args.calibration, args.out, io_dtype=args.io_dtype,
                    allow_float_fallback=args.allow_float_fallback, safe_mode=not args.unsafe_load,
                    evaluation=args.eval, preprocess=_preprocess_from_args(args), max_samples=args.max_samples)
    if args.json:
        _print_json(result.to_dict())
        return 0
    console = _console()
    conv, model = result.conversion, result.model
    kind = "full int8" if model.get("is_full_int8") else "MIXED int8/float"
    console.print(f"wrote {result.output} ({conv['bytes']:,} bytes, {kind}, "
                  f"I/O {conv['io_dtype']}, calibrated on {conv['calibration_samples']} samples)")
    for warning in conv["warnings"]:
        console.print(f"warning: {warning}")
    for op in conv["float_ops"]:
        console.print(f"  float operator #{op['index']} {op['op']}: {op['reason']}")
    ops = ", ".join(f"{name} x{count}" for name, count in model.get("op_histogram", {}).items())
    console.print(f"operators: {ops}")
    if result.evaluation:
        ev = result.evaluation
        console.print(_evaluation_table(ev))
    console.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))
    return 0


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{100 * value:.2f}%"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _evaluation_table(ev: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"accuracy on {ev['n']} samples ({ev['runtime']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("float top-1", _fmt(ev.get("reference_top1"), True))
    table.add_row("int8 top-1", _fmt(ev.get("top1"), True))
    table.add_row("drop (points)", _fmt(ev.get("drop_points")))
    table.add_row("top-1 agreement", _fmt(ev.get("agreement"), True))
    table.add_row("mean cosine", _fmt(ev.get("cosine_mean")))
    return table


def _add_demo_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="train a digits CNN, export it to full int8, evaluate and report",
        description="Train a small CNN on scikit-learn's digits, export it to full int8 calibrated on "
                    "calibration/digits/, evaluate float vs int8 on the held-out split, and write "
                    "model.keras, model_int8.tflite and report.json.")
    parser.add_argument("--out", default="build/demo", help="output directory (default build/demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from edgecompress.pipeline import DEMO_EPOCHS, demo

    epochs = DEMO_EPOCHS if args.epochs is None else args.epochs
    if epochs < 1:
        raise EdgeCompressError(f"--epochs must be at least 1. Received: {epochs}.")
    console = _console()
    with console.status("training the digits CNN, exporting and evaluating..."):
        report = demo(args.out, epochs=epochs, seed=args.seed)
    if args.json:
        _print_json(report)
        return 0
    from rich.table import Table

    table = Table(title=f"edgecompress demo: {report['model']}")
    table.add_column("")
    table.add_column("float32 .tflite", justify="right")
    table.add_column("int8 .tflite", justify="right")
    table.add_row(f"top-1 (held-out, n={report['test_samples']})", _fmt(report["float_top1"], True),
                  _fmt(report["int8_top1"], True))
    table.add_row("size (bytes)", f"{report['float_bytes']:,}", f"{report['int8_bytes']:,}")
    table.add_row("top-1 agreement with float", "", _fmt(report["agreement"], True))
    table.add_row("full int8", "", "yes" if report["full_int8"] else "NO")
    console.print(table)
    console.print(f"wrote {', '.join(report['files'])} under {args.out}")
    return 0


_PARSERS.extend([_add_export_parser, _add_demo_parser])


# ------------------------------------------------------------------------------------------- check / targets

def _add_check_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check", help="will this .tflite run on a target? where does each operator run, does it fit?",
        description="Check a full-int8 .tflite against a target profile: per-operator placement (accelerator, "
                    "CPU fallback, unsupported) with the limit that decided, partitions, and memory. Exit code 0: "
                    "runs fully on the accelerator; 3: runs with fallbacks; 4: cannot run.")
    parser.add_argument("model", help="a .tflite file")
    parser.add_argument("--target", required=True, metavar="NAME",
                        help="a profile from `edgecompress targets`, or `all` for one row per target")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="profile parameter, e.g. --param api_level=29 (repeatable)")
    parser.add_argument("--strict", action="store_true", help="treat fallbacks as failure (exit 4 instead of 3)")
    parser.add_argument("--rules-only", action="store_true",
                        help="do not run the real tools (Vela, TFLite Micro, edgetpu_compiler); rules answer")
    parser.add_argument("--calibration", metavar="DATA",
                        help="samples (.npz, image folder, module:function) for TFLite Micro's output comparison "
                             "with LiteRT (default: seeded random int8 inputs)")
    parser.add_argument("--compiled-out", metavar="FILE",
                        help="write the compiler's output model (Vela-optimised or Edge TPU .tflite) here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from edgecompress.targets import check_model, list_targets, load_profile, parse_params

    params = parse_params(args.param)
    names = list_targets() if args.target == "all" else [args.target]
    inputs = None
    if args.calibration:
        from edgecompress.calibration import load_data

        inputs = list(load_data(args.calibration).x.values())
    reports = []
    for name in names:
        profile = load_profile(name, **(_params_for(name, params) if args.target == "all" else params))
        reports.append(check_model(args.model, profile, use_tools=not args.rules_only, inputs=inputs,
                                   compiled_out=args.compiled_out if args.target != "all" else None))
    if args.json:
        _print_json([r.to_dict() for r in reports] if args.target == "all" else reports[0].to_dict())
    elif args.target == "all":
        _print_check_summary(reports)
    else:
        _print_check_report(reports[0])
    worst = max(r.exit_code for r in reports)
    return 4 if args.strict and worst == 3 else worst


def _params_for(name: str, params: dict[str, str]) -> dict[str, str]:
    from edgecompress.targets import load_profile

    declared = load_profile(name).data.get("parameters", {})
    return {k: v for k, v in params.items() if k in declared}


def _print_check_summary(reports: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="edgecompress check: all targets")
    for column in ("target", "verdict", "accelerator", "cpu", "unsupported", "partitions", "memory", "answered by"):
        table.add_column(column)
    for r in reports:
        counts = r.counts()
        table.add_row(r.target, r.verdict, str(counts["accelerator"]), str(counts["cpu"]), str(counts["unsupported"]),
                      str(r.partitions), r.memory.get("verdict", ""), r.answered_by)
    _console().print(table)


def _print_check_report(report: Any) -> None:
    from rich.table import Table

    console = _console()
    params = ", ".join(f"{k}={v}" for k, v in report.params.items())
    console.print(f"[bold]{report.target}[/bold]{f' ({params})' if params else ''}: {report.verdict} "
                  f"(answered by {report.answered_by}; {report.partitions} partition(s))")
    for error in report.model_errors:
        console.print(f"model: {error}")
    table = Table()
    for column in ("#", "op", "runs on", "reason"):
        table.add_column(column, overflow="fold")
    for op in report.operators:
        table.add_row(str(op.index), op.op, op.placement, op.reason)
    if report.operators:
        console.print(table)
    mem = report.memory
    figures = ", ".join(f"{k}={v}" for k, v in mem.items() if k.endswith("_bytes") and v is not None)
    console.print(f"memory: {mem.get('verdict')} ({figures})")
    for item in mem.get("exceeded", []):
        console.print(f"  exceeds {item['limit']}: {item['what']} {item['value']} B > {item['limit_bytes']} B "
                      f"by {item['by']} B")
    for tool, figures in report.tool.items():
        if isinstance(figures, dict):
            shown = ", ".join(f"{k}={v}" for k, v in figures.items()
                              if isinstance(v, (int, float, str)) and not isinstance(v, bool) and v != "")
            console.print(f"{tool}: {shown}")
    for warning in report.warnings:
        console.print(f"note: {warning}")


def _add_targets_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("targets", help="list the target profiles",
                                   description="List the shipped target profiles and their parameters.")
    parser.add_argument("--json", action="store_true", help="print the profiles as JSON")
    parser.set_defaults(func=_run_targets)


def _run_targets(args: argparse.Namespace) -> int:
    from edgecompress.targets import list_targets, load_profile

    profiles = [load_profile(name) for name in list_targets()]
    if args.json:
        _print_json([p.to_dict() for p in profiles])
        return 0
    from rich.table import Table

    table = Table(title="edgecompress targets")
    for column in ("name", "runtime", "delegate", "status", "parameters"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", overflow="fold")
    for p in profiles:
        declared = p.data.get("parameters", {})
        table.add_row(p.name, p.runtime, str(p.data.get("delegate")), p.status,
                      ", ".join(f"{k}={v['default']}" for k, v in declared.items()),
                      p.description.split(" (")[0])
    _console().print(table)
    return 0


_PARSERS.extend([_add_check_parser, _add_targets_parser])
