"""The terminal rendering of every verb's result: rich tables and plain lines, and the JSON the CLI prints.

Each ``render_<verb>(result, console, ...)`` prints what that command shows; it computes nothing the result
does not already hold. Names that come from a model file go through ``shown`` first.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from edgecompress.report.html import Report


def make_console() -> Any:
    """A rich console for the command's output.

    Returns:
        A ``rich.console.Console``: the terminal's width, or 160 columns when the output is piped.

    Example:
        >>> make_console().print("hello")  # doctest: +SKIP
    """
    from rich.console import Console

    # piped output (CI logs, `| less`) gets a wide fixed width instead of rich's 80-column default
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def render_json(payload: Any) -> None:
    """Print ``payload`` as indented JSON on stdout (objects with ``to_dict``/``tolist`` are converted).

    Args:
        payload: a JSON-able value.

    Example:
        >>> render_json({"a": 1})  # doctest: +NORMALIZE_WHITESPACE
        {
          "a": 1
        }
    """
    print(json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def shown(text: object) -> str:
    """Names come from the file: neutralise rich markup ("[/x]" would raise) and terminal control characters.

    Args:
        text: anything; it is printed as ``str(text)``.

    Returns:
        The text, escaped for rich, with non-printable characters replaced by ``?``.

    Example:
        >>> shown("[/x]\\x1b")
        '\\\\[/x]?'
    """
    from rich.markup import escape

    return escape("".join(c if c.isprintable() else "?" for c in str(text)))


def _first_names(names: list[str], count: int = 5) -> str:
    return shown(", ".join(names[:count]) + (" ..." if len(names) > count else ""))


def fmt(value: Any, percent: bool = False) -> str:
    """A number for a table cell: ``-`` for None, a percentage, 4 decimals for floats.

    Example:
        >>> fmt(0.5, True), fmt(0.25), fmt(None)
        ('50.00%', '0.2500', '-')
    """
    if value is None:
        return "-"
    if percent:
        return f"{100 * value:.2f}%"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------------- export

def render_export(result: Any, console: Any) -> None:
    """Print an ``ExportResult``: the written file, warnings, float operators, calibration, accuracy, check.

    Args:
        result: the ``ExportResult`` of ``edgecompress.pipeline.export``.
        console: a rich console.

    Example:
        >>> render_export(export("m.keras", "calib.npz"), make_console())  # doctest: +SKIP
    """
    conv, model = result.conversion, result.model
    precision = conv.get("precision", "int8")
    if precision == "16x8":
        kind = "16x8: int16 activations, int8 weights" + ("" if not conv["float_ops"] else ", MIXED with float")
    else:
        kind = "full int8" if model.get("is_full_int8") else "MIXED int8/float"
    console.print(f"wrote {result.output} ({conv['bytes']:,} bytes, precision {precision}, {kind}, "
                  f"I/O {conv['io_dtype']}, calibrated on {conv['calibration_samples']} samples)")
    bias = conv.get("int16_bias")
    if bias is not None:
        console.print(f"int16 biases: {len(bias['narrowed'])} stored as int32 (optimized kernels), "
                      f"{len(bias['kept_int64'])} kept int64")
    for warning in conv["warnings"]:
        console.print(f"warning: {warning}")
    for op in conv["float_ops"]:
        console.print(f"  float operator #{op['index']} {shown(op['op'])}: {shown(op['reason'])}")
    if result.calibration:
        console.print(calibration_line(result.calibration))
        for warning in result.calibration.get("warnings", []):
            console.print(f"warning: {warning}")
    ops = ", ".join(f"{name} x{count}" for name, count in model.get("op_histogram", {}).items())
    console.print(f"operators: {ops}")
    if result.evaluation:
        console.print(evaluation_table(result.evaluation))
    if result.check:
        check = result.check
        counts = ", ".join(f"{k} {v}" for k, v in check.get("counts", {}).items())
        console.print(f"target {check['target']}: {check['verdict']} ({counts}; answered by "
                      f"{check['answered_by']}; memory {check.get('memory', {}).get('verdict')})")
    for path in result.extra_files:
        console.print(f"wrote {path}")
    console.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))


def calibration_line(calibration: dict[str, Any]) -> str:
    """One line on how the activation ranges were chosen (``CalibrationReport.to_dict()``)."""
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


def evaluation_table(ev: dict[str, Any]) -> Any:
    """The float vs int8 accuracy table of ``Evaluation.to_dict()``."""
    from rich.table import Table

    table = Table(title=f"accuracy on {ev['n']} samples ({ev['runtime']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("float top-1", fmt(ev.get("reference_top1"), True))
    table.add_row("int8 top-1", fmt(ev.get("top1"), True))
    table.add_row("drop (points)", fmt(ev.get("drop_points")))
    table.add_row("top-1 agreement", fmt(ev.get("agreement"), True))
    table.add_row("mean cosine", fmt(ev.get("cosine_mean")))
    return table


# ------------------------------------------------------------------------------------------- compress / demo

def stage_table(rows: list[dict[str, Any]]) -> Any:
    """The per-stage table of a compression run (``StageResult.to_dict()`` rows)."""
    from rich.table import Table

    table = Table(title="compression stages (accuracy: Keras model on the validation data; sizes: its int8 export)")
    for col in ("stage", "accuracy", "parameters", "non-zeros", "max unique / kernel", "int8 bytes", "gzip bytes",
                "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for row in rows:
        table.add_row(row["stage"], fmt(row["accuracy"], True), f"{row['parameters']:,}", f"{row['nonzeros']:,}",
                      str(row["max_unique_per_kernel"]), f"{row['int8_bytes']:,}", f"{row['gzip_bytes']:,}",
                      f"{row['seconds']:.1f}")
    return table


def render_compress(result: Any, console: Any) -> None:
    """Print a ``CompressResult``: the stage table (ours) or one accuracy line per stage (tfmot).

    Args:
        result: the ``CompressResult`` of ``edgecompress.pipeline.compress``.
        console: a rich console.

    Example:
        >>> result = compress("m.keras", "qat", "train.npz", "m_qat.keras")  # doctest: +SKIP
        >>> render_compress(result, make_console())  # doctest: +SKIP
    """
    if result.engine == "tfmot":
        for row in result.stages:
            console.print(f"{row['stage']}: accuracy {fmt(row['accuracy'], True)}")
        console.print(f"wrote {result.output} (engine tfmot)")
        return
    console.print(stage_table(result.stages))
    console.print(f"wrote {result.output}")


def render_demo(result: Any, out: str, console: Any) -> None:
    """Print a ``DemoResult``: accuracy and size, target verdicts, latency, the compressed model if any.

    Args:
        result: the ``DemoResult`` of ``edgecompress.pipeline.demo``.
        out: the output directory the files were written under.
        console: a rich console.

    Example:
        >>> render_demo(demo("build/demo"), "build/demo", make_console())  # doctest: +SKIP
    """
    from rich.table import Table

    report = result.to_dict()
    table = Table(title=f"edgecompress demo: {report['model']}")
    table.add_column("")
    table.add_column("float32 .tflite", justify="right")
    table.add_column("int8 .tflite", justify="right")
    table.add_row(f"top-1 (held-out, n={report['test_samples']})", fmt(report["float_top1"], True),
                  fmt(report["int8_top1"], True))
    table.add_row("size (bytes)", f"{report['float_bytes']:,}", f"{report['int8_bytes']:,}")
    table.add_row("top-1 agreement with float", "", fmt(report["agreement"], True))
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
        console.print(stage_table(compressed["stages"]))
        console.print(f"compressed int8: top-1 {fmt(compressed['int8_top1'], True)}, {compressed['int8_bytes']:,} "
                      f"bytes ({compressed['gzip_bytes']:,} gzipped, {compressed['gzip_ratio_vs_float']}x smaller "
                      f"than the gzipped float .tflite), {compressed['total_macs']:,} MACs")
    console.print(f"wrote {', '.join(report['files'])} under {out}")


# ------------------------------------------------------------------------------------------- inspect

def render_inspect(info: Any, path: str, console: Any, *, tensors: bool = False) -> None:
    """Print a ``ModelInfo``: operators, optionally every tensor, I/O, sizes and the full-int8 verdict.

    Args:
        info: the ``edgecompress.tflite.ModelInfo`` of ``read_model``.
        path: the file it was read from (the table's title).
        console: a rich console.
        tensors: also list every tensor.

    Example:
        >>> render_inspect(read_model("m.tflite"), "m.tflite", make_console(), tensors=True)  # doctest: +SKIP
    """
    from rich.table import Table

    ops = Table(title=f"{shown(path)}: {len(info.operators)} operators")
    for col in ("#", "op", "v", "inputs", "outputs", "MACs"):
        ops.add_column(col, justify="right" if col in ("#", "v", "MACs") else "left")
    for op in info.operators:
        ops.add_row(str(op.index), shown(op.op), str(op.version), ",".join(map(str, op.inputs)),
                    ",".join(map(str, op.outputs)), f"{op.macs:,}")
    console.print(ops)
    if tensors:
        table = Table(title="tensors")
        for col in ("#", "name", "shape", "dtype", "scale", "zero point", "const"):
            table.add_column(col)
        for t in info.tensors:
            scale = f"{t.scale[0]:.3g}" + (f" (+{len(t.scale) - 1})" if len(t.scale) > 1 else "") if t.scale else "-"
            zp = str(t.zero_point[0]) if t.zero_point else "-"
            table.add_row(str(t.index), shown(t.name[:60]), str(list(t.shape)), t.dtype, scale, zp,
                          "yes" if t.is_constant else "")
        console.print(table)
    def io_line(kind: str, index: int) -> str:
        t = info.tensors[index]
        line = f"{kind} {shown(t.name)} {list(t.shape)} {t.dtype}"
        if t.scale:
            # what a caller needs to quantize its input and dequantize the output: real = scale * (q - zero_point)
            line += f" scale {t.scale[0]:.6g} zero point {t.zero_point[0] if t.zero_point else 0}"
        return line

    for line in [io_line("input", i) for i in info.inputs] + [io_line("output", i) for i in info.outputs]:
        console.print(f"I/O: {line}")
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


# ------------------------------------------------------------------------------------------- check / targets

def render_check_summary(reports: list[Any], console: Any) -> None:
    """Print one row per target of ``check --target all`` (``CheckReport`` objects).

    Example:
        >>> reports = [check_model("m.tflite", load_profile(name)) for name in list_targets()]  # doctest: +SKIP
        >>> render_check_summary(reports, make_console())  # doctest: +SKIP
    """
    from rich.table import Table

    table = Table(title="edgecompress check: all targets")
    for column in ("target", "verdict", "accelerator", "cpu", "unsupported", "partitions", "memory", "answered by"):
        table.add_column(column)
    for r in reports:
        counts = r.counts()
        table.add_row(r.target, r.verdict, str(counts["accelerator"]), str(counts["cpu"]), str(counts["unsupported"]),
                      str(r.partitions), r.memory.get("verdict", ""), r.answered_by)
    console.print(table)


def render_check(report: Any, console: Any) -> None:
    """Print one ``CheckReport``: verdict, per-operator placement, memory, the tools' figures and notes.

    Example:
        >>> report = check_model("m.tflite", load_profile("esp32-s3"))  # doctest: +SKIP
        >>> render_check(report, make_console())  # doctest: +SKIP
    """
    from rich.table import Table

    params = ", ".join(f"{k}={v}" for k, v in report.params.items())
    console.print(f"[bold]{report.target}[/bold]{f' ({params})' if params else ''}: {report.verdict} "
                  f"(answered by {report.answered_by}; {report.partitions} partition(s))")
    for error in report.model_errors:
        console.print(f"model: {shown(error)}")
    table = Table()
    for column in ("#", "op", "runs on", "reason"):
        table.add_column(column, overflow="fold")
    for op in report.operators:
        where = getattr(report, "accelerator_name", "") if op.placement == "accelerator" else op.placement
        table.add_row(str(op.index), shown(op.op), shown(where or op.placement), shown(op.reason))
    if report.operators:
        console.print(table)
    mem = report.memory
    figures = ", ".join(f"{k}={v}" for k, v in mem.items() if k.endswith("_bytes") and v is not None)
    console.print(f"memory: {mem.get('verdict')} ({figures})")
    for item in mem.get("exceeded", []):
        console.print(f"  exceeds {item['limit']}: {item['what']} {item['value']} B > {item['limit_bytes']} B "
                      f"by {item['by']} B")
    for tool, tool_figures in report.tool.items():
        if isinstance(tool_figures, dict):
            text = ", ".join(f"{k}={v}" for k, v in tool_figures.items()
                             if isinstance(v, (int, float, str)) and not isinstance(v, bool) and v != "")
            console.print(f"{tool}: {shown(text)}")
    for warning in report.warnings:
        console.print(f"note: {shown(warning)}")


def render_targets(profiles: list[Any], console: Any) -> None:
    """Print the shipped target profiles (``Profile`` objects), one row each.

    Example:
        >>> profiles = [load_profile(name) for name in list_targets()]  # doctest: +SKIP
        >>> render_targets(profiles, make_console())  # doctest: +SKIP
    """
    from rich.table import Table

    table = Table(title="edgecompress targets")
    for column in ("name", "runtime", "delegate", "status", "parameters"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", overflow="fold")
    for p in profiles:
        declared = p.parameters
        table.add_row(p.name, p.runtime, str(p.delegate), p.status,
                      ", ".join(f"{k}={v['default']}" for k, v in declared.items()),
                      p.description.split(" (")[0])
    console.print(table)


# ------------------------------------------------------------------------------------------- validate / bench

def render_validate(result: Any, console: Any, *, html: str | None = None,
                    gate: dict[str, Any] | None = None) -> None:
    """Print a ``ValidationResult``: accuracy, worst layers, notes, the fix, the HTML file and the gate.

    Args:
        result: the ``ValidationResult`` of ``edgecompress.pipeline.validate_model``.
        console: a rich console.
        html: the HTML report's path, when one was written.
        gate: ``{"max_drop", "drop", "passed"}`` when --max-drop was given.

    Example:
        >>> render_validate(validate_model("m.tflite", "test.npz", "m.keras"), make_console())  # doctest: +SKIP
    """
    for renderable in Report.from_validation(result).terminal():
        console.print(renderable)
    if result.fix is not None:
        before, after = result.fix.before, result.fix.after
        console.print(f"float fallback ({', '.join(result.fix.float_ops)}): top-1 {fmt(before.top1, True)} -> "
                      f"{fmt(after.top1, True)}, agreement {fmt(before.agreement, True)} -> "
                      f"{fmt(after.agreement, True)}; wrote {result.fix.output}")
    if html:
        console.print(f"wrote {html}")
    if gate is not None:
        verdict = "passed" if gate["passed"] else "FAILED"
        console.print(f"accuracy gate {verdict}: drop {fmt(gate['drop'])} points, bound {gate['max_drop']}")


def render_bench(rows: list[Any], model: str, console: Any, best: Any = None) -> None:
    """Print the target's figure (``best``) first, then ``BenchRow`` objects as one table, then each row's notes.

    Args:
        rows: the rows of ``bench_model``.
        model: the benchmarked file (the table's title).
        console: a rich console.
        best: the row that stands for the target (``bench.best_row``); None for ``--target all``.

    Example:
        >>> render_bench(bench_model("m.tflite", "all"), "m.tflite", make_console())  # doctest: +SKIP
    """
    from rich.table import Table

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    if best is not None:
        if best.median_ms is None:
            console.print(f"[bold]{best.target}: no figure[/bold] ({shown(best.notes[0])})")
        else:
            error = next((shown(n) for n in best.notes if "error" in n), "")
            console.print(f"[bold]{best.target}: {best.median_ms:.3f} ms[/bold] ({best.evidence}"
                          f"{'; ' + error if error else ''})")
        if any(r.evidence == "measured-host" for r in rows):
            console.print("the measured-host rows are this x86 machine's timing, not the target's")
    table = Table(title=f"edgecompress bench: {shown(model)}")
    for column in ("target", "evidence", "model", "dtype", "median ms", "p90 ms", "p99 ms", "mean ms", "runs",
                   "threads", "where"):
        table.add_column(column, overflow="fold")
    for r in rows:
        where = "host" if r.evidence == "measured-host" else r.target
        table.add_row(where, r.evidence, shown(r.model), r.dtype, ms(r.median_ms), ms(r.p90_ms), ms(r.p99_ms),
                      ms(r.mean_ms), str(r.runs or "-"), str(r.threads or "-"), shown(r.device or r.runtime))
    console.print(table)
    for r in rows:
        for note in r.notes:
            console.print(f"note ({r.target}, {r.evidence}): {shown(note)}")


# ------------------------------------------------------------------------------------------- deploy

def deploy_text(result: dict[str, Any]) -> str:
    """The terminal text of a ``DeployResult.to_dict()``: file and sizes, accuracy, a line per target.

    Args:
        result: ``DeployResult.to_dict()``.

    Returns:
        Plain text, one fact per line.

    Example:
        >>> print(deploy_text(deploy("m.keras", "calib.npz", ["esp32-s3"]).to_dict()))  # doctest: +SKIP
    """
    lines = [f"wrote {result['output']} ({result['int8_size_bytes']:,} bytes full int8; source model "
             f"{result['source_size_bytes']:,} bytes on disk)"]
    calibration = (result.get("export") or {}).get("calibration") or {}
    if calibration:
        lines.append(calibration_line(calibration))
    for warning in calibration.get("warnings", []):
        lines.append(f"warning: {warning}")
    if result.get("accuracy") is not None:
        line = f"accuracy: int8 top-1 {fmt(result['accuracy'], percent=True)}"
        if result.get("float_accuracy") is not None:
            line += f", float top-1 {fmt(result['float_accuracy'], percent=True)}"
        if result.get("agreement") is not None:
            line += f", agreement with float {fmt(result['agreement'], percent=True)}"
        lines.append(line)
    for target in result["targets"]:
        if target["latency_ms"] is None:
            latency = "no latency evidence"
        else:
            latency = f"{target['latency_ms']:.3f} ms ({target['latency_evidence']})"
        lines.append(f"target {target['target']}: {target['verdict']} (answered by {target['answered_by']}); "
                     f"latency {latency}")
        for note in target["latency_notes"]:
            lines.append(f"  note: {note}")
    return "\n".join(lines)
