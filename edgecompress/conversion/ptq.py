"""Post-training int8 calibration that loses less than min/max: percentile, MSE and KL activation ranges.

The bare TFLite converter sets every activation range to the min and max it saw on the representative data, so
one outlier stretches a range and wastes most of the 256 levels. Here the float activations of every tensor the
converter quantizes on its own are histogrammed on the calibration data, a range is chosen per tensor
(``percentile``, ``mse`` or ``kl``), and the ranges are frozen into the graph as fake-quant nodes after the layer
outputs: the converter then emits exactly those scales (checked in the flatbuffer afterwards).

Where the fake-quant nodes go: ``edgecompress.conversion.points``. The parts: ``ranges`` (histograms and range
choosers), ``activations`` (collecting them), ``fake_quant`` (freezing), ``bias`` (bias correction); this
module converts, checks the flatbuffer and reports.

``minmax`` is the bare converter itself. ``auto`` calibrates every method on most of the calibration data,
scores each converted model on the held-out rest (top-1 agreement with the float model, then output cosine)
and keeps the winner. Optional bias correction removes the mean output shift that int8 per-channel weight
rounding causes in each Conv/Dense layer.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.conversion.activations import BATCH, ActivationStats, _input_arrays, collect_activations
from edgecompress.conversion.bias import bias_corrected_model, bias_corrections
from edgecompress.conversion.fake_quant import fake_quantized_model
from edgecompress.conversion.points import _functional
from edgecompress.conversion.ranges import (
    AUTO,
    CHOICES,
    DEFAULT_PERCENTILE,
    METHODS,
    Histogram,
    choose_range,
    int8_scale,
    percentile_range,
)
from edgecompress.errors import CalibrationError

STABILITY_TOLERANCE = 0.05
STABLE_FRACTION = 0.9
AUTO_HOLDOUT_FRACTION = 0.25
AUTO_MIN_SAMPLES = 40
HEAVY_CLIP_FRACTION = 0.5
# Agreement lost by min/max ranges above which ``auto`` says whether range choice can win it back.
LOSS_WORTH_FIXING = 0.01


def scale_check(tflite: bytes, ranges: dict[str, tuple[float, float]], *, rtol: float = 1e-6) -> dict[str, Any]:
    """Check a converted model carries the chosen ranges and no requantizing operators inside the graph.

    Args:
        tflite: the flatbuffer.
        ranges: the ranges that were frozen into the graph.
        rtol: relative tolerance on a scale.

    Returns:
        ``{"verified": n, "expected": m, "missing": [names], "internal_requantize": [op names]}``: a range
        counts as verified when some int8 activation tensor of the model has its scale.
    """
    from edgecompress.tflite import read_model

    info = read_model(tflite)
    scales = np.array([t.scale[0] for t in info.tensors
                       if not t.is_constant and t.dtype in ("int8", "uint8") and len(t.scale) == 1])
    missing = []
    for name, (lo, hi) in ranges.items():
        expected = int8_scale(lo, hi)
        if not scales.size or np.min(np.abs(scales - expected)) > rtol * expected:
            missing.append(name)
    edges = set(info.inputs) | set(info.outputs)
    requantize = [f"#{op.index} {op.op}" for op in info.operators if op.op in ("QUANTIZE", "DEQUANTIZE")
                  and not (set(op.inputs) & edges or set(op.outputs) & edges)]
    return {"verified": len(ranges) - len(missing), "expected": len(ranges), "missing": missing,
            "internal_requantize": requantize}


def heavily_clipped(stats: ActivationStats, ranges: dict[str, tuple[float, float]]) -> list[str]:
    """Tensors whose chosen range is under ``HEAVY_CLIP_FRACTION`` of the width holding 99.99% of their values.

    Entropy calibration can do this on spiky histograms (e.g. the first ReLU of a network fed upsampled
    images): worth a warning, because such a clip usually costs accuracy.
    """
    flagged = []
    for point in stats.points:
        if point.name not in ranges:
            continue
        lo, hi = percentile_range(stats.histograms[point.name], DEFAULT_PERCENTILE)
        chosen_lo, chosen_hi = ranges[point.name]
        if chosen_hi - chosen_lo < HEAVY_CLIP_FRACTION * (hi - lo):
            flagged.append(point.name)
    return flagged


def _score(tflite: bytes, holdout: dict[str, np.ndarray], reference: np.ndarray) -> dict[str, float]:
    from edgecompress.metrics import cosine_similarity
    from edgecompress.runtimes.host import HostRunner

    outputs = HostRunner(tflite).predict(holdout)[0].reshape(reference.shape)
    flat_out, flat_ref = outputs.reshape(len(outputs), -1), reference.reshape(len(reference), -1)
    return {"agreement": float(np.mean(flat_out.argmax(1) == flat_ref.argmax(1))),
            "cosine": float(np.mean(cosine_similarity(outputs, reference)))}


def _float_outputs(fn: Any, arrays: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    batch = [arrays[name] for name in names]
    with captured_output():
        out = fn.predict(batch if len(batch) > 1 else batch[0], batch_size=BATCH, verbose=0)
    return np.asarray(out[0] if isinstance(out, list | tuple) else out, np.float32)


def range_stability(stats: ActivationStats, method: str, percentile: float = DEFAULT_PERCENTILE,
                    tolerance: float = STABILITY_TOLERANCE) -> dict[str, Any]:
    """How the chosen ranges move as the number of calibration samples grows.

    At each checkpoint (25, 50, 100, 200, ... samples) the ranges are chosen again from the samples seen so far
    and compared with the ranges from all samples: relative change = (|dmin| + |dmax|) / final width.

    Args:
        stats: activation statistics with prefix histograms.
        method: the range chooser.
        percentile: for "percentile".
        tolerance: a tensor counts as settled when its relative change is at most this.

    Returns:
        ``{"tolerance", "checkpoints": [{"samples", "median_rel_change", "max_rel_change", "fraction_settled"}],
        "stable_after"}``: ``stable_after`` is the first checkpoint from which at least 90% of the tensors stay
        settled (``None`` when only the full set qualifies).
    """
    final = stats.ranges(method, percentile)
    rows = []
    count = len(next(iter(stats.prefixes.values()), []))
    for k in range(count):
        samples = None
        changes = []
        for point in stats.points:
            if point.name not in final:
                continue
            samples, hist = stats.prefixes[point.name][k]
            lo, hi = choose_range(hist, "minmax" if point.kind == "input" else method, percentile)
            f_lo, f_hi = final[point.name]
            changes.append((abs(lo - f_lo) + abs(hi - f_hi)) / (f_hi - f_lo))
        if samples is None:
            continue
        changes_arr = np.asarray(changes)
        rows.append({"samples": samples, "median_rel_change": round(float(np.median(changes_arr)), 4),
                     "max_rel_change": round(float(np.max(changes_arr)), 4),
                     "fraction_settled": round(float(np.mean(changes_arr <= tolerance)), 4)})
    stable_after = None
    for row in reversed(rows[:-1]):
        if row["fraction_settled"] < STABLE_FRACTION:
            break
        stable_after = row["samples"]
    return {"tolerance": tolerance, "checkpoints": rows, "stable_after": stable_after}


@dataclasses.dataclass
class CalibrationReport:
    """What calibration chose and why; the ``calibration`` section of an export's JSON.

    Args:
        method: the method used ("minmax" = the bare converter's own ranges).
        requested: what the user asked for ("auto" or a method).
        percentile: the percentile, for "percentile".
        samples: calibration samples used.
        ranges: the chosen range per quantization point (``[min, max]``).
        observed: the min/max seen per quantization point.
        scales: the flatbuffer check (``scale_check``), None for the bare converter.
        bias_correction: the ``bias_corrections`` summary, None when off.
        auto: for "auto": held-out samples, per-method scores, winner and margins.
        stability: ``range_stability`` of the chosen method.
        warnings: things the user should know.
    """

    method: str
    requested: str
    percentile: float | None
    samples: int
    ranges: dict[str, list[float]]
    observed: dict[str, list[float]]
    scales: dict[str, Any] | None = None
    bias_correction: dict[str, Any] | None = None
    auto: dict[str, Any] | None = None
    stability: dict[str, Any] | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _stability_warnings(stability: dict[str, Any], samples: int) -> list[str]:
    from edgecompress.samples import RECOMMENDED_CALIBRATION_SAMPLES

    messages = []
    if samples < RECOMMENDED_CALIBRATION_SAMPLES:
        messages.append(f"only {samples} calibration samples: activation ranges are chosen from few values; "
                        f"{RECOMMENDED_CALIBRATION_SAMPLES}+ give more stable int8 ranges.")
    if len(stability["checkpoints"]) > 1 and stability["stable_after"] is None:
        last = stability["checkpoints"][-2]
        messages.append(f"activation ranges were still moving at {last['samples']} of {samples} samples "
                        f"({100 * (1 - last['fraction_settled']):.0f}% of tensors off their final range by more "
                        f"than {100 * stability['tolerance']:.0f}%): add calibration samples.")
    return messages


def _convert_with(fn: Any, method: str, stats: ActivationStats, arrays: dict[str, np.ndarray],
                  updates: dict[str, list[np.ndarray]], percentile: float, convert_kwargs: dict[str, Any]
                  ) -> tuple[Any, dict[str, tuple[float, float]], dict[str, Any] | None]:
    from edgecompress.conversion.converter import convert

    if method == "minmax":
        target = bias_corrected_model(fn, updates) if updates else fn
        return convert(target, arrays, **convert_kwargs), {}, None
    ranges = stats.ranges(method, percentile)
    clipped = heavily_clipped(stats, ranges)
    with warnings.catch_warnings():
        # the converter notes that fake-quantized inputs carry no statistics: the frozen ranges are those statistics
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        result = convert(fake_quantized_model(fn, ranges, updates), arrays, **convert_kwargs)
    check = scale_check(result.tflite, ranges)
    if check["internal_requantize"]:
        result.warnings.append(f"{len(check['internal_requantize'])} requantizing operator(s) inside the graph "
                               f"({', '.join(check['internal_requantize'])}): two chosen ranges met at an "
                               "operator that needs one scale.")
    if clipped:
        result.warnings.append(f"{method} clipped {len(clipped)} tensor(s) to under {100 * HEAVY_CLIP_FRACTION:.0f}% "
                               f"of the range holding 99.99% of their values ({', '.join(clipped[:5])}); if "
                               "accuracy drops, try --calibration-method auto or percentile.")
    if check["missing"]:
        result.warnings.append(f"{len(check['missing'])} chosen range(s) did not reach the flatbuffer "
                               f"({', '.join(check['missing'][:5])}): the converter overrode them.")
    return result, ranges, check


OPAQUE_SOURCES = ("savedmodel", "onnx")


def opaque_graph_message(source: str, method: str, bias_correction: bool) -> str:
    """Why ``method`` (or bias correction) cannot run on a model loaded from a SavedModel or ONNX graph."""
    what = "--bias-correction" if bias_correction and method == "minmax" else f"--calibration-method {method}"
    return (f"{source}: {what} chooses ranges layer by layer, but a SavedModel or ONNX graph loads as one opaque "
            "layer whose inner tensors cannot be calibrated here. Use --calibration-method minmax (the "
            "converter calibrates every tensor), or export the model as .keras.")


def refuse_opaque_graph(fn: Any, method: str, bias_correction: bool) -> None:
    """Refuse a per-layer calibration method on a model wrapped in a ``TFSMLayer`` (SavedModel/ONNX sources)."""
    import keras

    if any(isinstance(layer, keras.layers.TFSMLayer) for layer in fn.layers):
        raise CalibrationError(opaque_graph_message(f"model '{fn.name}'", method, bias_correction))


def calibrate_and_convert(model: Any, calibration: Any, *, method: str = "mse",
                          percentile: float = DEFAULT_PERCENTILE, bias_correction: bool = False,
                          io_dtype: str = "int8", allow_float_fallback: bool = False, max_samples: int = 500,
                          holdout_fraction: float = AUTO_HOLDOUT_FRACTION, seed: int = 0) -> tuple[Any, CalibrationReport]:
    """Choose activation ranges with ``method``, freeze them into the graph and convert to full int8.

    Args:
        model: a Keras 3 model or ``LoadedModel``.
        calibration: a ``Dataset``, an array or a dict of arrays keyed by input name.
        method: "minmax" (the bare converter), "percentile", "mse", "kl" or "auto".
        percentile: for "percentile" (default 99.99).
        bias_correction: correct Conv/Dense biases for the mean shift of int8 weight rounding.
        io_dtype: "int8", "uint8" or "float32" model inputs/outputs.
        allow_float_fallback: keep operators without an int8 kernel in float.
        max_samples: calibrate on at most this many samples (the first ones).
        holdout_fraction: for "auto": the share of the calibration samples held out to score the methods.
        seed: for "auto": the seed of the held-out split.

    Returns:
        ``(ConversionResult, CalibrationReport)``.

    Example:
        >>> result, report = calibrate_and_convert(model, calibration, method="auto")  # doctest: +SKIP
        >>> report.method, report.auto["scores"]["mse"]["agreement"]  # doctest: +SKIP
        ('mse', 0.99)
    """
    from edgecompress.samples import MIN_CALIBRATION_SAMPLES

    if method not in CHOICES:
        raise CalibrationError(f"calibration method must be one of {', '.join(CHOICES)}. Received: {method!r}.")
    if method == "percentile" or method == AUTO:
        choose_range(Histogram.from_values(np.zeros(1)), "percentile", percentile)  # validates the value
    fn = _functional(model)
    refuse_opaque_graph(fn, method, bias_correction)
    names, arrays = _input_arrays(fn, calibration)
    count = min(len(next(iter(arrays.values()))), max_samples)
    if count < MIN_CALIBRATION_SAMPLES:
        raise CalibrationError(f"{count} calibration samples is too few to choose activation ranges; expected at "
                               f"least {MIN_CALIBRATION_SAMPLES}. Add samples.")
    arrays = {k: v[:count] for k, v in arrays.items()}
    convert_kwargs = {"io_dtype": io_dtype, "allow_float_fallback": allow_float_fallback, "max_samples": count}
    if method == AUTO:
        return _auto(fn, names, arrays, percentile, bias_correction, convert_kwargs, holdout_fraction, seed)
    updates, bias_summary = bias_corrections(fn, arrays) if bias_correction else ({}, None)
    stats = collect_activations(fn, arrays)
    result, ranges, check = _convert_with(fn, method, stats, arrays, updates, percentile, convert_kwargs)
    report = _report(method, method, percentile, stats, ranges, check, bias_summary, None, result)
    return result, report


def _report(method: str, requested: str, percentile: float, stats: ActivationStats,
            ranges: dict[str, tuple[float, float]], check: dict[str, Any] | None, bias_summary: dict[str, Any] | None,
            auto: dict[str, Any] | None, result: Any) -> CalibrationReport:
    stability = range_stability(stats, method, percentile)
    observed = stats.ranges("minmax")
    return CalibrationReport(
        method=method, requested=requested, percentile=percentile if method == "percentile" else None,
        samples=stats.samples,
        ranges={k: [round(v[0], 6), round(v[1], 6)] for k, v in (ranges or observed).items()},
        observed={k: [round(v[0], 6), round(v[1], 6)] for k, v in observed.items()},
        scales=check, bias_correction=bias_summary, auto=auto, stability=stability,
        warnings=_stability_warnings(stability, stats.samples) + list(result.warnings))


def _auto(fn: Any, names: list[str], arrays: dict[str, np.ndarray], percentile: float, bias_correction: bool,
          convert_kwargs: dict[str, Any], holdout_fraction: float, seed: int) -> tuple[Any, CalibrationReport]:
    """Calibrate every method on the fit slice, score each on the held-out slice, ship the winner as scored.

    The winner is not re-calibrated on all samples: a rare outlier that happens to sit in the held-out slice
    would then stretch the shipped ranges in a way no score ever saw.
    """
    count = len(next(iter(arrays.values())))
    if count < AUTO_MIN_SAMPLES:
        raise CalibrationError(f"--calibration-method auto needs at least {AUTO_MIN_SAMPLES} calibration samples "
                               f"(some are held out to score the methods). Received: {count}. Add samples or "
                               "pick a method.")
    order = np.random.default_rng(seed).permutation(count)
    held = max(10, int(round(count * holdout_fraction)))
    fit = {k: v[np.sort(order[held:])] for k, v in arrays.items()}
    holdout = {k: v[np.sort(order[:held])] for k, v in arrays.items()}
    reference = _float_outputs(fn, holdout, names)
    updates, bias_summary = bias_corrections(fn, fit) if bias_correction else ({}, None)
    stats = collect_activations(fn, fit)
    kwargs = {**convert_kwargs, "max_samples": count - held}
    scores, candidates = {}, {}
    for candidate in METHODS:
        candidates[candidate] = _convert_with(fn, candidate, stats, fit, updates, percentile, kwargs)
        scores[candidate] = _score(candidates[candidate][0].tflite, holdout, reference)
    ranked = sorted(METHODS, key=lambda m: (scores[m]["agreement"], scores[m]["cosine"]), reverse=True)
    winner, runner_up = ranked[0], ranked[1]
    auto = {"holdout_samples": held, "fit_samples": count - held, "scores": scores, "winner": winner,
            "runner_up": runner_up,
            "agreement_gain_vs_minmax_points": round(100 * (scores[winner]["agreement"]
                                                            - scores["minmax"]["agreement"]), 4),
            "agreement_gain_vs_runner_up_points": round(100 * (scores[winner]["agreement"]
                                                               - scores[runner_up]["agreement"]), 4),
            "cosine_gain_vs_minmax": round(scores[winner]["cosine"] - scores["minmax"]["cosine"], 6)}
    result, ranges, check = candidates[winner]
    note = _ranges_not_the_cause(scores, winner, len(stats.points))
    if note:
        result.warnings.append(note)
    return result, _report(winner, AUTO, percentile, stats, ranges, check, bias_summary, auto, result)


def _ranges_not_the_cause(scores: dict[str, dict[str, float]], winner: str, points: int) -> str | None:
    """A warning when min/max loses over ``LOSS_WORTH_FIXING`` agreement and no range choice wins back half.

    Then the error is not in the ranges (an outlier stretching one of them) but rounding noise accumulating
    over every int8 tensor, which only training with fake-quant (QAT) or wider types remove.
    """
    loss = 1.0 - scores["minmax"]["agreement"]
    gained = scores[winner]["agreement"] - scores["minmax"]["agreement"]
    if loss <= LOSS_WORTH_FIXING or gained >= 0.5 * loss:
        return None
    return (f"calibration: min/max ranges lose {100 * loss:.1f}% top-1 agreement on the held-out calibration "
            f"samples and the best range choice ({winner}) wins back {100 * max(gained, 0.0):.1f} points: the error "
            f"is not in the ranges but rounding accumulating over {points} int8 tensors. Quantization-aware "
            "training recovers it: edgecompress compress MODEL --recipe qat --data TRAIN --out MODEL_qat.keras, "
            "then export that.")
