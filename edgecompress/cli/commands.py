"""The subcommands: what each is called, the options it takes, and its handler.

A handler turns the parsed options into one pipeline call and hands the result to a renderer of
``edgecompress.report.terminal`` (or prints it as JSON). It returns the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from edgecompress.cli.options import ACCURACY_GATE_EXIT, PREPROCESS_OPTIONS, SSH_OPTIONS
from edgecompress.errors import EdgeCompressError
from edgecompress.report.terminal import (
    make_console,
    render_bench,
    render_check,
    render_check_summary,
    render_compress,
    render_demo,
    render_export,
    render_inspect,
    render_json,
    render_targets,
    render_validate,
)


@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand.

    Args:
        name: what the user types, e.g. ``export``.
        help: the one line shown in ``edgecompress --help``.
        description: the paragraph shown in ``edgecompress NAME --help``.
        options: keys of ``edgecompress.cli.options.OPTIONS``, in the order they are listed.
        handler: ``parsed options -> exit code``.
    """

    name: str
    help: str
    description: str
    options: tuple[str, ...]
    handler: Callable[[argparse.Namespace], int]


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


def _ssh_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"identity": args.identity, "known_hosts": args.known_hosts, "remote_python": args.remote_python,
            "accept_new_host_key": args.accept_new_host_key, "timeout": args.timeout}


def _run_export(args: argparse.Namespace) -> int:
    """``edgecompress export``."""
    from edgecompress.pipeline.exporting import export
    from edgecompress.pipeline.targets import parse_params

    if args.max_samples < 1:
        raise EdgeCompressError(f"--max-samples must be at least 1. Received: {args.max_samples}.")
    if not 50.0 < args.percentile <= 100.0:
        raise EdgeCompressError(f"--percentile must be in (50, 100]. Received: {args.percentile}.")
    result = export(args.model, args.calibration, args.out, io_dtype=args.io_dtype,
                    allow_float_fallback=args.allow_float_fallback, safe_mode=not args.unsafe_load,
                    evaluation=args.eval, preprocess=_preprocess_from_args(args), max_samples=args.max_samples,
                    target=args.target, target_params=parse_params(args.param),
                    calibration_method=args.calibration_method, percentile=args.percentile,
                    bias_correction=args.bias_correction, precision=args.precision)
    if args.json:
        render_json(result.to_dict())
    else:
        render_export(result, make_console())
    if result.check and result.check.get("verdict") == "unsupported":
        import sys

        print(f"error: kept {result.output}: it is a correct int8 model, but target {result.check['target']} cannot "
              "run it (see the check above; no firmware files were written). Run `edgecompress check` for the "
              "reasons or export for another target.", file=sys.stderr)
        return 4
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    """``edgecompress demo``."""
    from edgecompress.pipeline.demo import DEMO_EPOCHS, demo

    epochs = DEMO_EPOCHS if args.epochs is None else args.epochs
    if epochs < 1:
        raise EdgeCompressError(f"--epochs must be at least 1. Received: {epochs}.")
    console = make_console()
    with console.status("training the digits CNN, exporting and evaluating..."):
        recipe = args.recipe
        if recipe == "default":
            from edgecompress.compress.recipe import default_recipe_path

            recipe = default_recipe_path()
        result = demo(args.out, epochs=epochs, seed=args.seed, recipe=recipe)
    if args.json:
        render_json(result.to_dict())
    else:
        render_demo(result, args.out, console)
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    """``edgecompress inspect``."""
    from edgecompress.tflite import read_model

    info = read_model(args.model)
    if args.json:
        render_json(info.to_dict())
    else:
        render_inspect(info, args.model, make_console(), tensors=args.tensors)
    return 0


def _run_check(args: argparse.Namespace) -> int:
    """``edgecompress check``: exit 0 fully accelerated, 3 with fallbacks (4 with --strict), 4 cannot run."""
    from edgecompress.pipeline.targets import (
        check_model,
        declared_params,
        list_targets,
        load_profile,
        parse_params,
    )

    params = parse_params(args.param)
    every = args.target == "all"
    names = list_targets() if every else [args.target]
    inputs = None
    if args.calibration:
        from edgecompress.load.dataset import load_data

        inputs = list(load_data(args.calibration).x.values())
    reports = []
    for name in names:
        profile = load_profile(name, **(declared_params(name, params) if every else params))
        reports.append(check_model(args.model, profile, use_tools=not args.rules_only, inputs=inputs,
                                   compiled_out=None if every else args.compiled_out))
    if args.json:
        render_json([r.to_dict() for r in reports] if every else reports[0].to_dict())
    elif every:
        render_check_summary(reports, make_console())
    else:
        render_check(reports[0], make_console())
    worst = max(r.exit_code for r in reports)
    return 4 if args.strict and worst == 3 else worst


def _run_targets(args: argparse.Namespace) -> int:
    """``edgecompress targets``."""
    from edgecompress.pipeline.targets import list_targets, load_profile

    profiles = [load_profile(name) for name in list_targets()]
    if args.json:
        render_json([p.to_dict() for p in profiles])
    else:
        render_targets(profiles, make_console())
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    """``edgecompress validate``: exit ``ACCURACY_GATE_EXIT`` when the --max-drop gate fails."""
    from edgecompress.pipeline.validating import validate_model
    from edgecompress.validate.evaluate import gated_drop

    if args.fix_layers < 1:
        raise EdgeCompressError(f"--fix-layers must be at least 1. Received: {args.fix_layers}.")
    if args.layer_samples < 1:
        raise EdgeCompressError(f"--layer-samples must be at least 1. Received: {args.layer_samples}.")
    result = validate_model(args.model, args.data, args.reference, target=args.target, runtime=args.runtime,
                            device=args.device, arena_size=args.arena_size, fix=args.fix,
                            fix_layers=args.fix_layers, calibration=args.calibration, fix_out=args.out,
                            layer_samples=args.layer_samples, safe_mode=not args.unsafe_load, html=args.html,
                            ssh_options=_ssh_options(args))
    drop = gated_drop(result.evaluation)
    failed = args.max_drop is not None and drop is not None and drop > args.max_drop
    gate = None if args.max_drop is None else {"max_drop": args.max_drop, "drop": drop, "passed": not failed}
    if args.json:
        payload = result.to_dict()
        if gate is not None:
            payload["gate"] = gate
        render_json(payload)
    else:
        render_validate(result, make_console(), html=args.html, gate=gate)
    if args.max_drop is not None and drop is None:
        raise EdgeCompressError("--max-drop needs labels in --data or a --reference to compare with. Received: "
                                "neither, so there is no drop to gate on.")
    return ACCURACY_GATE_EXIT if failed else 0


def _run_bench(args: argparse.Namespace) -> int:
    """``edgecompress bench``."""
    from edgecompress.bench import best_row
    from edgecompress.pipeline.targets import bench_model, parse_params

    rows = bench_model(args.model, args.target, device=args.device, runs=args.runs, warmup=args.warmup,
                       threads=args.threads, float_model=args.float_model, params=parse_params(args.param),
                       benchmark_binary=args.benchmark_binary, op_profiling=args.op_profiling,
                       **_ssh_options(args))
    best = None if args.target == "all" else best_row(rows, args.target)
    if args.json:
        payload = [r.to_dict() for r in rows]
        # One target: the target's best evidence at the top level (scripts read target/evidence/median_ms), never
        # the x86 host timing, which stays under "host"; all rows under "rows". --target all: the list of rows.
        if best is None:
            render_json(payload)
        else:
            host = next((r for r in payload if r["evidence"] == "measured-host"), None)
            render_json({**best.to_dict(), "host": host, "rows": payload})
    else:
        render_bench(rows, args.model, make_console(), best=best)
    return 0


def _run_compress(args: argparse.Namespace) -> int:
    """``edgecompress compress``: a progress bar per stage with our engine, then the stage table."""
    from edgecompress.pipeline.compressing import compress

    if args.engine == "keras" and not str(args.out).endswith(".keras"):
        raise EdgeCompressError(f"--out must end in .keras. Received: {args.out}.")
    options = {"val": args.val, "safe_mode": not args.unsafe_load}
    if args.json or args.engine == "tfmot":
        result = compress(args.model, args.recipe, args.data, args.out, engine=args.engine, **options)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=make_console()) as progress:
            tasks: dict[int, Any] = {}

            def on_epoch(stage: Any, epoch: int) -> None:
                if stage.index not in tasks:
                    tasks[stage.index] = progress.add_task(stage.label, total=stage.settings["epochs"])
                progress.update(tasks[stage.index], completed=epoch)

            result = compress(args.model, args.recipe, args.data, args.out, on_epoch=on_epoch, **options)
    if args.json:
        render_json(result.to_dict())
    else:
        render_compress(result, make_console())
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("export", "convert a model to a calibrated full-int8 .tflite",
            "Convert a .keras/.h5/.onnx model or a SavedModel directory to a full-int8 TFLite flatbuffer, "
            "calibrated on representative data.",
            ("source_model", "export_calibration", "export_out", "io_dtype", "allow_float_fallback", "eval",
             "max_samples", "calibration_method", "percentile", "bias_correction", "precision", "unsafe_load",
             "export_target",
             "param", "json", *PREPROCESS_OPTIONS), _run_export),
    Command("demo", "train a digits CNN, export it to full int8, evaluate and report",
            "Train a small CNN on scikit-learn's digits, export it to full int8 calibrated on calibration/digits/, "
            "evaluate float vs int8 on the held-out split, and write model.keras, model_int8.tflite and "
            "report.json.",
            ("demo_out", "epochs", "seed", "demo_recipe", "json"), _run_demo),
    Command("inspect", "list a .tflite model's operators, tensors, parameters and MACs (no TensorFlow)",
            "Read a TFLite flatbuffer without running it and say exactly what it is.",
            ("tflite", "tensors", "json"), _run_inspect),
    Command("check", "will this .tflite run on a target? where does each operator run, does it fit?",
            "Check a full-int8 .tflite against a target profile: per-operator placement (accelerator, CPU "
            "fallback, unsupported) with the limit that decided, partitions, and memory. Exit code 0: runs fully "
            "on the accelerator; 3: runs with fallbacks; 4: cannot run.",
            ("tflite", "check_target", "param", "strict", "rules_only", "check_calibration", "compiled_out", "json"),
            _run_check),
    Command("targets", "list the target profiles", "List the shipped target profiles and their parameters.",
            ("json",), _run_targets),
    Command("validate", "accuracy of an int8 .tflite against its float model, per layer, with an accuracy gate",
            "Run evaluation data through the int8 model (host LiteRT, TFLite Micro for microcontroller targets, "
            "or a Linux device over ssh) and through the float reference; report top-1/top-5, agreement, cosine, "
            "SNR, max abs error, the per-layer quantization error worst first, and optionally re-export with the "
            f"worst layers in float. Exit {ACCURACY_GATE_EXIT} when --max-drop is exceeded.",
            ("int8_tflite", "reference", "eval_data", "validate_target", "runtime", "ssh_device", *SSH_OPTIONS,
             "arena_size", "max_drop", "fix", "fix_layers", "fix_calibration", "fix_out", "layer_samples",
             "unsafe_load", "json", "html"), _run_validate),
    Command("bench", "how fast will this .tflite be on a target? (measured or estimated, always labelled)",
            "Latency of a .tflite: measured on a device (--device ssh://user@host[:port] or adb://SERIAL), "
            "measured on this host (LiteRT + XNNPACK, the target's threads), estimated by the target's compiler "
            "(Vela), or estimated by the target's fitted cost model. Every row names its evidence.",
            ("bench_tflite", "bench_target", "bench_device", "runs", "warmup", "threads", "float_model", "param",
             *SSH_OPTIONS, "benchmark_binary", "op_profiling", "json"), _run_bench),
    Command("compress", "run a compression recipe (distill, prune, cluster, QAT) on a Keras model",
            "Fine-tune a Keras model through the stages of a YAML recipe and save the result.",
            ("keras_model", "compress_recipe", "train_data", "val", "compress_out", "engine", "unsafe_load",
             "json"), _run_compress),
)
