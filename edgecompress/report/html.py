"""One report object, rendered as JSON, a self-contained HTML page and a terminal table.

The HTML has no network dependency at all: CSS is inline and the charts are SVG drawn here (a bar chart of the
per-layer error, a confusion-matrix heat map), so the page opens the same offline, in CI artefacts and in mail.
Sections carry stable ids (``summary``, ``checks``, ``latency``, ``accuracy``, ``layers``, ``confusion``) that
tests and scripts can look for; a section without data says so instead of disappearing.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

SECTIONS = ("summary", "checks", "latency", "accuracy", "layers", "confusion")
ACCURACY_COLUMNS = (("top1", "top-1", True), ("top5", "top-5", True), ("drop_points", "drop (points)", False),
                    ("agreement", "agreement", True), ("cosine_mean", "mean cosine", False),
                    ("cosine_min", "worst cosine", False), ("snr_db", "SNR (dB)", False),
                    ("max_abs_error", "max abs error", False))
CHART_LAYERS = 20
TERMINAL_COLUMNS = ("top1", "top5", "drop_points", "agreement", "cosine_mean", "snr_db")

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;
color:#1f2328;background:#fff}h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #d0d7de;
padding-bottom:4px;margin-top:28px}table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid
#d0d7de;padding:4px 8px;text-align:right}th{background:#f6f8fa}td.l,th.l{text-align:left}.muted{color:#656d76}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
code{font-size:12px;background:#f6f8fa;padding:1px 4px}.note{font-size:13px}svg text{font-family:inherit}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent and isinstance(value, float):
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _short(name: str, limit: int = 48) -> str:
    first = name.split(";")[0]
    return first if len(first) <= limit else "..." + first[-(limit - 3):]


@dataclasses.dataclass
class Report:
    """Everything one run measured, ready to render.

    Args:
        title: the page title.
        model: the model summary (size, I/O dtypes, operator histogram, ...).
        accuracy: one row per evaluated model: ``name`` plus ``Evaluation.to_dict()`` keys.
        layers: per-layer errors worst first (``LayerError.to_dict()`` rows).
        confusion: confusion matrix of the main model (rows true, columns predicted).
        checks: per-target verdicts ``{"target", "verdict", "detail"}`` (from ``check``), optional.
        latency: rows ``{"target", "runtime", "ms", "kind"}`` (measured or estimated), optional.
        notes: plain-language notes.
        extra: anything else to keep in the JSON.

    Example:
        >>> Report("demo", {"size_bytes": 1000}, [{"name": "int8", "top1": 0.95}]).to_dict()["title"]
        'demo'
    """

    title: str
    model: dict[str, Any]
    accuracy: list[dict[str, Any]]
    layers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    confusion: list[list[int]] | None = None
    checks: list[dict[str, Any]] | None = None
    latency: list[dict[str, Any]] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_validation(cls, result: Any, *, checks: list[dict[str, Any]] | None = None,
                        latency: list[dict[str, Any]] | None = None) -> Report:
        """Build the report of a ``ValidationResult``."""
        data = result.to_dict()
        rows = [{"name": "int8 (evaluated)", **result.evaluation.to_dict()}]
        if result.fix is not None:
            rows.append({"name": "re-export, no fallback", **result.fix.reexport.to_dict()})
            rows.append({"name": f"float fallback x{len(result.fix.float_tensors)}", **result.fix.after.to_dict()})
        reference = data.get("reference") or {}
        matching = data.get("layer_matching") or {}
        notes = list(result.notes)
        if matching:
            notes.append(f"per-layer: {matching['matched']} of {matching['int8_tensors']} int8 tensors matched a "
                         f"float tensor ({matching['matched_by_name']} by name), over {matching['samples']} samples")
            for name in matching.get("stuck_outputs", []):
                notes.append(f"output {name} barely moves across samples (stuck near one int8 value)")
        return cls(title=f"edgecompress validate: {result.model}", model={**result.summary, "path": result.model,
                   "reference": reference.get("path"), "target": result.target},
                   accuracy=rows, layers=data["layers"], confusion=data["confusion"], checks=checks,
                   latency=latency, notes=notes, extra={"fix": data["fix"]})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_html(self) -> str:
        """A self-contained HTML page (inline CSS and SVG; no scripts, no network)."""
        parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(self.title)}</title>"
                 f"<style>{_CSS}</style></head><body><h1>{_e(self.title)}</h1>"]
        parts.append(self._summary_html())
        parts.append(self._checks_html())
        parts.append(self._latency_html())
        parts.append(self._accuracy_html())
        parts.append(self._layers_html())
        parts.append(self._confusion_html())
        if self.notes:
            parts.append("<h2>Notes</h2><ul class='note'>" + "".join(f"<li>{_e(n)}</li>" for n in self.notes)
                         + "</ul>")
        parts.append("<p class='muted'>Generated by edgecompress. Self-contained: no scripts, no network.</p>"
                     "</body></html>")
        return "".join(parts)

    def _summary_html(self) -> str:
        rows = []
        for key, value in self.model.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} x{v}" for k, v in value.items())
            elif isinstance(value, list):
                value = "; ".join(f"{v.get('name')} {v.get('shape')} {v.get('dtype')}" if isinstance(v, dict)
                                  else str(v) for v in value)
            rows.append(f"<tr><th class='l'>{_e(key)}</th><td class='l'>{_e(_fmt(value))}</td></tr>")
        return f"<section id='summary'><h2>Model summary</h2><table>{''.join(rows)}</table></section>"

    def _checks_html(self) -> str:
        if not self.checks:
            return ("<section id='checks'><h2>Target checks</h2><p class='muted'>No target was checked in this "
                    "run (edgecompress check --target NAME).</p></section>")
        rows = []
        for row in self.checks:
            verdict = str(row.get("verdict", "-"))
            css = {"pass": "pass", "ok": "pass", "fail": "fail"}.get(verdict.lower(), "warn")
            rows.append(f"<tr><td class='l'>{_e(row.get('target'))}</td><td class='l {css}'>{_e(verdict)}</td>"
                        f"<td class='l'>{_e(row.get('detail', ''))}</td></tr>")
        return ("<section id='checks'><h2>Target checks</h2><table><tr><th class='l'>target</th>"
                f"<th class='l'>verdict</th><th class='l'>detail</th></tr>{''.join(rows)}</table></section>")

    def _latency_html(self) -> str:
        if not self.latency:
            return ("<section id='latency'><h2>Latency</h2><p class='muted'>No latency was measured in this run "
                    "(edgecompress bench).</p></section>")
        rows = "".join(f"<tr><td class='l'>{_e(r.get('target', r.get('runtime', '-')))}</td>"
                       f"<td>{_e(_fmt(r.get('ms')))}</td><td class='l'>{_e(r.get('kind', 'measured'))}</td></tr>"
                       for r in self.latency)
        return ("<section id='latency'><h2>Latency</h2><table><tr><th class='l'>target</th><th>ms</th>"
                f"<th class='l'>measured / estimated</th></tr>{rows}</table></section>")

    def _accuracy_html(self) -> str:
        head = "".join(f"<th>{_e(label)}</th>" for _, label, _ in ACCURACY_COLUMNS)
        rows = []
        for row in self.accuracy:
            cells = "".join(f"<td>{_e(_fmt(row.get(key), pct))}</td>" for key, _, pct in ACCURACY_COLUMNS)
            rows.append(f"<tr><td class='l'>{_e(row.get('name', '-'))}</td><td class='l'>{_e(row.get('runtime', '-'))}"
                        f"</td><td>{_e(row.get('n', '-'))}</td>{cells}</tr>")
        reference = next((r.get("reference_top1") for r in self.accuracy if r.get("reference_top1") is not None), None)
        ref_line = (f"<p class='note'>float reference top-1: {_e(_fmt(reference, True))}</p>"
                    if reference is not None else "")
        return ("<section id='accuracy'><h2>Accuracy</h2><table><tr><th class='l'>model</th><th class='l'>runtime"
                f"</th><th>n</th>{head}</tr>{''.join(rows)}</table>{ref_line}</section>")

    def _layers_html(self) -> str:
        if not self.layers:
            return ("<section id='layers'><h2>Per-layer quantization error</h2><p class='muted'>No per-layer "
                    "comparison (it needs a Keras or float .tflite reference).</p></section>")
        rows = "".join(
            f"<tr><td>{i + 1}</td><td class='l'>{_e(layer['op'])}</td><td class='l'><code>{_e(_short(layer['tensor']))}"
            f"</code></td><td>{_e(_fmt(layer.get('fallback_gain_db')))}</td>"
            f"<td>{_e(_fmt(layer['snr_drop_db']))}</td><td>{_e(_fmt(layer['snr_db']))}</td>"
            f"<td>{_e(_fmt(layer['rmse']))}</td><td>{_e(_fmt(layer['saturation'], True))}</td>"
            f"<td class='l'>{_e(layer.get('suggestion', ''))}</td></tr>"
            for i, layer in enumerate(self.layers))
        return ("<section id='layers'><h2>Per-layer quantization error (ranked by expected fallback gain)</h2>"
                "<p class='note'>Rows are ranked by the output SNR gain expected from keeping that operator in "
                "float (its int8 weights' own share of the output noise). The chart shows dB lost at each "
                "operator (its SNR drop relative to its input), which activation rounding dominates and a "
                "fallback does not remove.</p>" + layer_chart_svg(self.layers[:CHART_LAYERS]) +
                "<table><tr><th>#</th><th class='l'>operator</th><th class='l'>tensor</th>"
                "<th>fallback gain (dB)</th><th>dB lost</th>"
                "<th>SNR (dB)</th><th>RMSE / range</th><th>clipped</th><th class='l'>what would help</th></tr>"
                f"{rows}</table></section>")

    def _confusion_html(self) -> str:
        if not self.confusion:
            return ("<section id='confusion'><h2>Confusion matrix</h2><p class='muted'>No labels, so no confusion "
                    "matrix.</p></section>")
        return ("<section id='confusion'><h2>Confusion matrix (int8, rows: true label, columns: predicted)</h2>"
                + confusion_svg(self.confusion) + "</section>")

    def terminal(self) -> list[Any]:
        """Rich renderables: the accuracy table and the ten worst layers."""
        from rich.table import Table

        runtimes = sorted({str(row.get("runtime", "-")) for row in self.accuracy})
        accuracy = Table(title=f"accuracy ({', '.join(runtimes)})")
        accuracy.add_column("model")
        columns = [c for c in ACCURACY_COLUMNS if c[0] in TERMINAL_COLUMNS]
        for _, label, _ in columns:
            accuracy.add_column(label, justify="right")
        for row in self.accuracy:
            accuracy.add_row(str(row.get("name", "-")), *(_fmt(row.get(key), pct) for key, _, pct in columns))
        renderables: list[Any] = [accuracy]
        if self.layers:
            layers = Table(title="per-layer quantization error, largest expected fallback gain first")
            for name in ("#", "operator", "tensor", "fallback gain dB", "dB lost", "SNR dB", "RMSE/range",
                         "clipped"):
                layers.add_column(name, justify="left" if name in ("operator", "tensor") else "right")
            for i, layer in enumerate(self.layers[:10]):
                layers.add_row(str(i + 1), layer["op"], _short(layer["tensor"], 40),
                               _fmt(layer.get("fallback_gain_db")), _fmt(layer["snr_drop_db"]),
                               _fmt(layer["snr_db"]), _fmt(layer["rmse"]), _fmt(layer["saturation"], True))
            renderables.append(layers)
            renderables.append(f"worst layer: {self.layers[0]['op']} {_short(self.layers[0]['tensor'])}: "
                               f"{self.layers[0].get('suggestion', '')}")
        renderables.extend(f"note: {note}" for note in self.notes)
        return renderables


def layer_chart_svg(layers: list[dict[str, Any]], width: int = 900) -> str:
    """A horizontal bar chart of ``snr_drop_db`` per layer, one bar per row, labels on the left."""
    bar_h, gap, label_w, top = 18, 6, 330, 24
    height = top + len(layers) * (bar_h + gap) + 10
    biggest = max((float(layer["snr_drop_db"]) for layer in layers), default=0.0) or 1.0
    span = width - label_w - 90
    rows = []
    for i, layer in enumerate(layers):
        y = top + i * (bar_h + gap)
        value = float(layer["snr_drop_db"])
        length = max(2.0, span * value / biggest)
        colour = "#cf222e" if i < 3 else "#0969da"
        rows.append(f"<text x='{label_w - 8}' y='{y + 13}' font-size='12' text-anchor='end'>"
                    f"{_e(layer['op'])} {_e(_short(layer['tensor'], 36))}</text>"
                    f"<rect x='{label_w}' y='{y}' width='{length:.1f}' height='{bar_h}' fill='{colour}'/>"
                    f"<text x='{label_w + length + 6:.1f}' y='{y + 13}' font-size='12'>{value:.2f} dB</text>")
    return (f"<svg id='layer-chart' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' role='img' aria-label='per-layer dB lost'>"
            f"<text x='{label_w}' y='14' font-size='12' fill='#656d76'>dB lost at the operator</text>"
            + "".join(rows) + "</svg>")


def confusion_svg(matrix: list[list[int]], cell: int = 34) -> str:
    """A confusion-matrix heat map: darker blue for larger counts, the count in each cell."""
    n = len(matrix)
    margin = 30
    size = margin + n * cell + 4
    peak = max((max(row) for row in matrix if row), default=0) or 1
    cells = []
    for i, row in enumerate(matrix):
        cells.append(f"<text x='{margin - 6}' y='{margin + i * cell + cell / 2 + 4}' font-size='11' "
                     f"text-anchor='end'>{i}</text>")
        cells.append(f"<text x='{margin + i * cell + cell / 2}' y='{margin - 8}' font-size='11' "
                     f"text-anchor='middle'>{i}</text>")
        for j, count in enumerate(row):
            shade = count / peak
            fill = f"rgb({int(255 - 246 * shade)},{int(255 - 150 * shade)},{int(255 - 37 * shade)})"
            text = "#fff" if shade > 0.5 else "#1f2328"
            x, y = margin + j * cell, margin + i * cell
            cells.append(f"<rect x='{x}' y='{y}' width='{cell}' height='{cell}' fill='{fill}' stroke='#d0d7de'/>"
                         f"<text x='{x + cell / 2}' y='{y + cell / 2 + 4}' font-size='11' text-anchor='middle' "
                         f"fill='{text}'>{count}</text>")
    return (f"<svg id='confusion-chart' xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' "
            f"viewBox='0 0 {size} {size}' role='img' aria-label='confusion matrix'>" + "".join(cells) + "</svg>")
