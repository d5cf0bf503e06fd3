"""The ``edgecompress`` command line: parses arguments, calls the API, prints. No logic of its own.

Exit codes: 0 success, 2 bad input (an ``EdgeCompressError``), 1 internal failure (a bug), 130 interrupted.
Subcommands register themselves in ``_PARSERS``: each has an ``_add_<name>_parser`` and a ``_run_<name>``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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

    # piped output (CI logs, `| less`) gets a wide fixed width instead of rich's 80-column default
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


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
    interrupted = _InterruptFlag()
    previous = signal.signal(signal.SIGINT, interrupted.handler)
    try:
        code = int(args.func(args) or 0)
        interrupted.handling = True
        if interrupted.seen:
            # the KeyboardInterrupt was raised where Python ignores exceptions (a TensorFlow __del__) and the
            # command ran to the end: its outputs are complete, so say so rather than claim nothing was written
            print("interrupt ignored: TensorFlow's cleanup code swallowed it and the command ran to the end; the "
                  "outputs are complete", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        interrupted.handling = True
        return _interrupted()
    except EdgeCompressError as exc:
        interrupted.handling = True
        # TensorFlow's converter can swallow the KeyboardInterrupt and fail with an unrelated error instead
        if interrupted.seen:
            return _interrupted()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:
        interrupted.handling = True
        if interrupted.seen:
            return _interrupted()
        raise
    finally:
        # the caller's handler comes back (``run`` then ignores Ctrl-C while the process exits)
        signal.signal(signal.SIGINT, previous)


class _InterruptFlag:
    """Remembers that Ctrl-C was pressed and raises KeyboardInterrupt, every time until the interrupt is handled.

    Raising again on a second Ctrl-C matters: the first KeyboardInterrupt can land in a finalizer (TensorFlow's
    ``__del__`` methods), where Python prints and drops it. Once ``main`` is handling an interrupt (or has
    finished), further presses only set the flag, so they cannot break the exit path.
    """

    seen = False
    handling = False

    def handler(self, signum: int, frame: Any) -> None:
        self.seen = True
        if self.handling:
            return
        raise KeyboardInterrupt


def run() -> None:
    """The ``edgecompress`` command: ``main()``, then exit with its code.

    After Ctrl-C, CPython may still end the process by re-raising SIGINT (it does when the interrupt landed in
    Python code that C called, e.g. through pybind11, even though the KeyboardInterrupt was handled), which a
    parent sees as "killed by signal 2" rather than exit 130. So an interrupted run flushes, runs the exit
    handlers (temporary directories) itself and leaves with exactly 130. A Ctrl-C that arrives after the work
    finished (outputs already renamed into place) is ignored while TensorFlow tears down, so the exit code
    reports the work, not a signal.
    """
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == INTERRUPTED_EXIT:
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED_EXIT)
    sys.exit(code)


INTERRUPTED_EXIT = 130


def _interrupted() -> int:
    print("interrupted: nothing was written at the output path", file=sys.stderr)
    return INTERRUPTED_EXIT


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


def _target_params(pairs: list[str]) -> dict[str, str]:
    from edgecompress.pipeline.targets import parse_params

    return parse_params(pairs)


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
    parser.add_argument("--calibration-method", choices=("minmax", "percentile", "mse", "kl", "auto"),
                        default="minmax",
                        help="how activation ranges are chosen: minmax (the converter's own, default), percentile, "
                             "mse, kl (entropy), or auto (score each on held-out calibration samples, keep the best)")
    parser.add_argument("--percentile", type=float, default=99.99,
                        help="for --calibration-method percentile/auto: keep values up to this percentile "
                             "(default 99.99)")
    parser.add_argument("--bias-correction", action="store_true",
                        help="correct Conv/Dense biases for the mean output shift of int8 weight rounding")
    parser.add_argument("--unsafe-load", action="store_true",
                        help="turn Keras safe mode off (runs Lambda layers' code): only for trusted files")
    parser.add_argument("--target", metavar="NAME",
                        help="check the result against a target profile; TFLite Micro targets also get "
                             "model_data.cc/.h, an op resolver and the arena size in <out>_micro/")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="target profile parameter, e.g. api_level=29 (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_preprocess_arguments(parser)
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from edgecompress.pipeline import export

    if args.max_samples < 1:
        raise EdgeCompressError(f"--max-samples must be at least 1. Received: {args.max_samples}.")
    if not 50.0 < args.percentile <= 100.0:
        raise EdgeCompressError(f"--percentile must be in (50, 100]. Received: {args.percentile}.")
    result = export(args.model, args.calibration, args.out, io_dtype=args.io_dtype,
                    allow_float_fallback=args.allow_float_fallback, safe_mode=not args.unsafe_load,
                    evaluation=args.eval, preprocess=_preprocess_from_args(args), max_samples=args.max_samples,
                    target=args.target, target_params=_target_params(args.param),
                    calibration_method=args.calibration_method, percentile=args.percentile,
                    bias_correction=args.bias_correction)
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
        console.print(f"  float operator #{op['index']} {_shown(op['op'])}: {_shown(op['reason'])}")
    if result.calibration:
        console.print(_calibration_line(result.calibration))
        for warning in result.calibration.get("warnings", []):
            console.print(f"warning: {warning}")
    ops = ", ".join(f"{name} x{count}" for name, count in model.get("op_histogram", {}).items())
    console.print(f"operators: {ops}")
    if result.evaluation:
        ev = result.evaluation
        console.print(_evaluation_table(ev))
    if result.check:
        check = result.check
        counts = ", ".join(f"{k} {v}" for k, v in check.get("counts", {}).items())
        console.print(f"target {check['target']}: {check['verdict']} ({counts}; answered by "
                      f"{check['answered_by']}; memory {check.get('memory', {}).get('verdict')})")
    for path in result.extra_files:
        console.print(f"wrote {path}")
    console.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))
    return 0


def _calibration_line(calibration: dict[str, Any]) -> str:
    line = f"calibration: {calibration['method']}"
    auto = calibration.get("auto")
    if auto:
        scores = ", ".join(f"{name} {100 * s['agreement']:.1f}%" for name, s in auto["scores"].items())
        line += (f" (auto on {auto['holdout_samples']} held-out samples: {scores}; "
                 f"+{auto['agreement_gain_vs_minmax_points']:.2f} points of agreement over minmax)")
    if calibration.get("bias_correction"):
        line += f", bias correction on {calibration['bias_correction']['layers']} layer(s)"
    stability = calibration.get("stability")
    if stability:
        after = stability["stable_after"]
        line += f", ranges stable after {after} samples" if after else ", ranges not yet stable"
    return line


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
    parser.add_argument("--recipe", nargs="?", const="default", metavar="RECIPE",
                        help="also compress the model with a recipe (no value: the shipped default: distill, "
                             "prune, cluster, QAT) and report it beside the plain int8 export")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from edgecompress.pipeline import DEMO_EPOCHS, demo

    epochs = DEMO_EPOCHS if args.epochs is None else args.epochs
    if epochs < 1:
        raise EdgeCompressError(f"--epochs must be at least 1. Received: {epochs}.")
    console = _console()
    with console.status("training the digits CNN, exporting and evaluating..."):
        recipe = args.recipe
        if recipe == "default":
            from edgecompress.compress.recipe import default_recipe_path

            recipe = default_recipe_path()
        report = demo(args.out, epochs=epochs, seed=args.seed, recipe=recipe)
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
    targets = Table(title="does it run there? (edgecompress check --target all)")
    for col in ("target", "verdict", "answered by", "memory", "why not fully accelerated"):
        targets.add_column(col)
    for row in report.get("targets", []):
        targets.add_row(row["target"], row["verdict"], row["answered_by"], str(row["memory_verdict"]),
                        row["detail"] or "-")
    console.print(targets)
    latency = Table(title="how fast? (edgecompress bench --target all; estimates are labelled)")
    for col in ("target", "dtype", "evidence", "median ms"):
        latency.add_column(col, justify="right" if col == "median ms" else "left")
    for row in report.get("latency", []):
        median = "-" if row["median_ms"] is None else f"{row['median_ms']:.3f}"
        latency.add_row(row["target"], row["dtype"] or "int8", row["evidence"], median)
    console.print(latency)
    if "compressed" in report:
        compressed = report["compressed"]
        console.print(_stage_table(compressed["stages"]))
        console.print(f"compressed int8: top-1 {_fmt(compressed['int8_top1'], True)}, {compressed['int8_bytes']:,} "
                      f"bytes ({compressed['gzip_bytes']:,} gzipped, {compressed['gzip_ratio_vs_float']}x smaller "
                      f"than the gzipped float .tflite), {compressed['total_macs']:,} MACs")
    console.print(f"wrote {', '.join(report['files'])} under {args.out}")
    return 0


def _add_inspect_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect", help="list a .tflite model's operators, tensors, parameters and MACs (no TensorFlow)",
        description="Read a TFLite flatbuffer without running it and say exactly what it is.")
    parser.add_argument("model", help="a .tflite file")
    parser.add_argument("--tensors", action="store_true", help="also list every tensor")
    parser.add_argument("--json", action="store_true", help="print everything as JSON")
    parser.set_defaults(func=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from edgecompress.tflite import read_model

    info = read_model(args.model)
    if args.json:
        _print_json(info.to_dict())
        return 0
    from rich.table import Table

    console = _console()
    ops = Table(title=f"{_shown(args.model)}: {len(info.operators)} operators")
    for col in ("#", "op", "v", "inputs", "outputs", "MACs"):
        ops.add_column(col, justify="right" if col in ("#", "v", "MACs") else "left")
    for op in info.operators:
        ops.add_row(str(op.index), _shown(op.op), str(op.version), ",".join(map(str, op.inputs)),
                    ",".join(map(str, op.outputs)), f"{op.macs:,}")
    console.print(ops)
    if args.tensors:
        tensors = Table(title="tensors")
        for col in ("#", "name", "shape", "dtype", "scale", "zero point", "const"):
            tensors.add_column(col)
        for t in info.tensors:
            scale = f"{t.scale[0]:.3g}" + (f" (+{len(t.scale) - 1})" if len(t.scale) > 1 else "") if t.scale else "-"
            zp = str(t.zero_point[0]) if t.zero_point else "-"
            tensors.add_row(str(t.index), _shown(t.name[:60]), str(list(t.shape)), t.dtype, scale, zp,
                            "yes" if t.is_constant else "")
        console.print(tensors)
    io = ", ".join(f"{_shown(info.tensors[i].name)} {list(info.tensors[i].shape)} {info.tensors[i].dtype}"
                   for i in info.inputs + info.outputs)
    console.print(f"I/O: {io}")
    console.print(f"size {info.size_bytes:,} bytes, {info.param_count:,} parameters ({info.param_bytes:,} bytes), "
                  f"{info.total_macs:,} MACs, {info.subgraph_count} subgraph(s)")
    if info.is_full_int8:
        console.print("full int8: yes (every activation int8, no float tensor, no QUANTIZE/DEQUANTIZE to float)")
    else:
        reasons = [] if info.operators else ["no operators"]
        if info.float_tensors:
            reasons.append(f"{len(info.float_tensors)} float tensor(s) ({_first_names(info.float_tensors)})")
        other = [name for name in info.non_int8_tensors if name not in set(info.float_tensors)]
        if other:
            reasons.append(f"{len(other)} other non-int8 activation(s) ({_first_names(other)})")
        reasons.append(f"{info.quantize_ops_inside} QUANTIZE/DEQUANTIZE to or from float inside the graph")
        console.print("full int8: NO: " + "; ".join(reasons))
    return 0


def _shown(text: object) -> str:
    """Names come from the file: neutralise rich markup ("[/x]" would raise) and terminal control characters."""
    from rich.markup import escape

    return escape("".join(c if c.isprintable() else "?" for c in str(text)))


def _first_names(names: list[str], shown: int = 5) -> str:
    return _shown(", ".join(names[:shown]) + (" ..." if len(names) > shown else ""))


_PARSERS.extend([_add_export_parser, _add_demo_parser, _add_inspect_parser])


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
    from edgecompress.pipeline.targets import check_model, list_targets, load_profile, parse_params

    params = parse_params(args.param)
    names = list_targets() if args.target == "all" else [args.target]
    inputs = None
    if args.calibration:
        from edgecompress.load.dataset import load_data

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
    from edgecompress.pipeline.targets import load_profile

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
        console.print(f"model: {_shown(error)}")
    table = Table()
    for column in ("#", "op", "runs on", "reason"):
        table.add_column(column, overflow="fold")
    for op in report.operators:
        table.add_row(str(op.index), _shown(op.op), op.placement, _shown(op.reason))
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
            console.print(f"{tool}: {_shown(shown)}")
    for warning in report.warnings:
        console.print(f"note: {_shown(warning)}")


def _add_targets_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("targets", help="list the target profiles",
                                   description="List the shipped target profiles and their parameters.")
    parser.add_argument("--json", action="store_true", help="print the profiles as JSON")
    parser.set_defaults(func=_run_targets)


def _run_targets(args: argparse.Namespace) -> int:
    from edgecompress.pipeline.targets import list_targets, load_profile

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
ACCURACY_GATE_EXIT = 5


def _add_validate_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate", help="accuracy of an int8 .tflite against its float model, per layer, with an accuracy gate",
        description="Run evaluation data through the int8 model (host LiteRT, TFLite Micro for "
                    "microcontroller targets, or a Linux device over ssh) and through the float reference; report top-1/top-5, agreement, "
                    "cosine, SNR, max abs error, the per-layer quantization error worst first, and optionally "
                    f"re-export with the worst layers in float. Exit {ACCURACY_GATE_EXIT} when --max-drop is "
                    "exceeded.")
    parser.add_argument("model", help="the int8 .tflite")
    parser.add_argument("--reference", metavar="FLOAT_MODEL",
                        help="float model: .keras, .h5, SavedModel directory, .onnx or float .tflite")
    parser.add_argument("--data", required=True, metavar="EVAL",
                        help="evaluation data (.npz with x[, y], image folder, module:function), NHWC")
    parser.add_argument("--target", metavar="NAME", help="target profile: microcontroller targets run on TFLite Micro")
    parser.add_argument("--runtime", choices=("host", "micro"), help="evaluate on host LiteRT or TFLite Micro")
    parser.add_argument("--device", metavar="URI",
                        help="ssh://user@host[:port]: run the int8 model on that Linux device (its own interpreter)")
    _add_ssh_options(parser)
    parser.add_argument("--arena-size", type=int, metavar="BYTES", help="TFLite Micro arena for evaluation")
    parser.add_argument("--max-drop", type=float, metavar="POINTS",
                        help=f"exit {ACCURACY_GATE_EXIT} when top-1 drops by more than POINTS "
                             "(without labels: top-1 disagreement with the reference, in points)")
    parser.add_argument("--fix", choices=("float-fallback",),
                        help="re-export with the worst layers kept in float and show before/after")
    parser.add_argument("--fix-layers", type=int, default=3, metavar="K", help="layers to keep float (default 3)")
    parser.add_argument("--calibration", metavar="DATA", help="representative data for --fix re-export")
    parser.add_argument("--out", metavar="FILE", help="where --fix writes the fixed .tflite")
    parser.add_argument("--layer-samples", type=int, default=64, metavar="N",
                        help="samples traced for the per-layer error (default 64)")
    parser.add_argument("--unsafe-load", action="store_true",
                        help="turn Keras safe mode off for the reference: only for trusted files")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    parser.set_defaults(func=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from edgecompress.pipeline import validate_model
    from edgecompress.report.html import Report
    from edgecompress.validate.evaluate import gated_drop

    if args.fix_layers < 1:
        raise EdgeCompressError(f"--fix-layers must be at least 1. Received: {args.fix_layers}.")
    if args.layer_samples < 1:
        raise EdgeCompressError(f"--layer-samples must be at least 1. Received: {args.layer_samples}.")
    result = validate_model(args.model, args.data, args.reference, target=args.target, runtime=args.runtime,
                            device=args.device, arena_size=args.arena_size, fix=args.fix,
                            fix_layers=args.fix_layers, calibration=args.calibration, fix_out=args.out,
                            layer_samples=args.layer_samples, safe_mode=not args.unsafe_load, html=args.html,
                            ssh_options={"identity": args.identity, "known_hosts": args.known_hosts,
                                         "remote_python": args.remote_python,
                                         "accept_new_host_key": args.accept_new_host_key, "timeout": args.timeout})
    drop = gated_drop(result.evaluation)
    failed = args.max_drop is not None and drop is not None and drop > args.max_drop
    payload = result.to_dict()
    if args.max_drop is not None:
        payload["gate"] = {"max_drop": args.max_drop, "drop": drop, "passed": not failed}
    if args.json:
        _print_json(payload)
    else:
        console = _console()
        for renderable in Report.from_validation(result).terminal():
            console.print(renderable)
        if result.fix is not None:
            before, after = result.fix.before, result.fix.after
            console.print(f"float fallback ({', '.join(result.fix.float_ops)}): top-1 {_fmt(before.top1, True)} -> "
                          f"{_fmt(after.top1, True)}, agreement {_fmt(before.agreement, True)} -> "
                          f"{_fmt(after.agreement, True)}; wrote {result.fix.output}")
        if args.html:
            console.print(f"wrote {args.html}")
        if args.max_drop is not None:
            verdict = "FAILED" if failed else "passed"
            console.print(f"accuracy gate {verdict}: drop {_fmt(drop)} points, bound {args.max_drop}")
    if args.max_drop is not None and drop is None:
        raise EdgeCompressError("--max-drop needs labels in --data or a --reference to compare with. Received: "
                                "neither, so there is no drop to gate on.")
    return ACCURACY_GATE_EXIT if failed else 0


_PARSERS.append(_add_validate_parser)


# ------------------------------------------------------------------------------------------- bench

def _add_ssh_options(parser: argparse.ArgumentParser) -> None:
    """The options of a device reached over ssh (bench and validate)."""
    parser.add_argument("--identity", metavar="KEY", help="ssh: private key file")
    parser.add_argument("--known-hosts", metavar="FILE", help="ssh: known_hosts file holding the device's host key")
    parser.add_argument("--remote-python", default="python3", metavar="PATH",
                        help="ssh: the device's Python (default python3)")
    parser.add_argument("--accept-new-host-key", action="store_true",
                        help="ssh: trust and record a host key seen for the first time (a changed key is refused)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a device run may take (default 300)")


def _add_bench_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench", help="how fast will this .tflite be on a target? (measured or estimated, always labelled)",
        description="Latency of a .tflite: measured on a device (--device ssh://user@host[:port] or adb://SERIAL), "
                    "measured on this host (LiteRT + XNNPACK, the target's threads), estimated by the target's "
                    "compiler (Vela), or estimated by the target's fitted cost model. Every row names its evidence.")
    parser.add_argument("model", help="a .tflite file (usually the int8 model)")
    parser.add_argument("--target", required=True, metavar="NAME",
                        help="a profile from `edgecompress targets`, or `all` for every target's estimate")
    parser.add_argument("--device", metavar="URI", help="ssh://user@host[:port] or adb://SERIAL (default: this host)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    parser.add_argument("--threads", type=int, help="interpreter threads (default: the target's)")
    parser.add_argument("--float", dest="float_model", metavar="MODEL_F32",
                        help="the float32 .tflite of the same network, measured beside MODEL in the same run")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="profile parameter, e.g. --param accelerator_config=ethos-u55-128 (repeatable)")
    _add_ssh_options(parser)
    parser.add_argument("--benchmark-binary", metavar="PATH",
                        help="adb: the Android benchmark_model executable for the device's ABI")
    parser.add_argument("--op-profiling", action="store_true", help="adb: per-operator timings from benchmark_model")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from edgecompress.pipeline.targets import bench_model as bench
    from edgecompress.pipeline.targets import parse_params

    rows = bench(args.model, args.target, device=args.device, runs=args.runs, warmup=args.warmup,
                 threads=args.threads, float_model=args.float_model, params=parse_params(args.param),
                 identity=args.identity, known_hosts=args.known_hosts, remote_python=args.remote_python,
                 accept_new_host_key=args.accept_new_host_key, benchmark_binary=args.benchmark_binary,
                 op_profiling=args.op_profiling, timeout=args.timeout)
    if args.json:
        payload = [r.to_dict() for r in rows]
        # One target: the best-evidence row at the top level (scripts read target/evidence/median_ms), all rows
        # under "rows". --target all: the list of rows.
        _print_json(payload if args.target == "all" else {**payload[0], "rows": payload})
        return 0
    from rich.table import Table

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    table = Table(title=f"edgecompress bench: {_shown(args.model)}")
    for column in ("target", "evidence", "model", "dtype", "median ms", "p90 ms", "p99 ms", "mean ms", "runs",
                   "threads", "where"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.target, r.evidence, _shown(r.model), r.dtype, ms(r.median_ms), ms(r.p90_ms), ms(r.p99_ms),
                      ms(r.mean_ms), str(r.runs or "-"), str(r.threads or "-"), _shown(r.device or r.runtime))
    console = _console()
    console.print(table)
    for r in rows:
        for note in r.notes:
            console.print(f"note ({r.target}, {r.evidence}): {_shown(note)}")
    return 0


_PARSERS.append(_add_bench_parser)


def _add_compress_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compress", help="run a compression recipe (distill, prune, cluster, QAT) on a Keras model",
        description="Fine-tune a Keras model through the stages of a YAML recipe and save the result.")
    parser.add_argument("model", help=".keras / .h5 model (or a SavedModel directory)")
    parser.add_argument("--recipe", required=True,
                        help="recipe YAML, or a shipped recipe by name: default (distill, prune, cluster, QAT), qat")
    parser.add_argument("--data", required=True, metavar="TRAIN", help="labelled training data (.npz with x, y)")
    parser.add_argument("--val", metavar="VAL", help="labelled validation data for the per-stage accuracy")
    parser.add_argument("--out", required=True, metavar="OUT.keras", help="where to save the compressed model")
    parser.add_argument("--engine", choices=("keras", "tfmot"), default="keras",
                        help="keras: ours, on Keras 3 (default); tfmot: tfmot on a legacy tf_keras .h5 model, in a "
                             "subprocess (prune, cluster, qat; with qat --out must be a .tflite)")
    parser.add_argument("--unsafe-load", action="store_true", help="turn Keras safe mode off (trusted files only)")
    parser.add_argument("--json", action="store_true", help="print the per-stage table as JSON")
    parser.set_defaults(func=_run_compress)


def _run_compress(args: argparse.Namespace) -> int:
    from edgecompress.pipeline import compress

    if args.engine == "keras" and not str(args.out).endswith(".keras"):
        raise EdgeCompressError(f"--out must end in .keras. Received: {args.out}.")
    if args.json or args.engine == "tfmot":
        result = compress(args.model, args.recipe, args.data, args.out, val=args.val, safe_mode=not args.unsafe_load,
                          engine=args.engine)
        if args.json:
            _print_json(result)
        else:
            for row in result["stages"]:
                _console().print(f"{row['stage']}: accuracy {_fmt(row['accuracy'], True)}")
            _console().print(f"wrote {result['output']} (engine tfmot)")
        return 0
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console()) as progress:
        tasks: dict[int, Any] = {}

        def on_epoch(stage: Any, epoch: int) -> None:
            if stage.index not in tasks:
                tasks[stage.index] = progress.add_task(stage.label, total=stage.settings["epochs"])
            progress.update(tasks[stage.index], completed=epoch)

        result = compress(args.model, args.recipe, args.data, args.out, val=args.val, safe_mode=not args.unsafe_load,
                          on_epoch=on_epoch)
    _console().print(_stage_table(result["stages"]))
    _console().print(f"wrote {result['output']}")
    return 0


def _stage_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title="compression stages (accuracy: Keras model on the validation data; sizes: its int8 export)")
    for col in ("stage", "accuracy", "parameters", "non-zeros", "max unique / kernel", "int8 bytes", "gzip bytes",
                "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for row in rows:
        table.add_row(row["stage"], _fmt(row["accuracy"], True), f"{row['parameters']:,}", f"{row['nonzeros']:,}",
                      str(row["max_unique_per_kernel"]), f"{row['int8_bytes']:,}", f"{row['gzip_bytes']:,}",
                      f"{row['seconds']:.1f}")
    return table


_PARSERS.append(_add_compress_parser)
