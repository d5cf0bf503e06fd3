"""Where an int8 model loses accuracy: per-layer quantization error against the float model, worst first.

Both models are traced with every intermediate tensor kept and each int8 operator output is paired with the
float tensor the same graph computed (``edgecompress.validate.tracing``). The int8 values are dequantized and
compared:

- ``rmse``: root-mean-square error divided by the float tensor's range (0.01 = 1 % of the range);
- ``snr_db``: signal-to-noise ratio of the dequantized tensor, 10*log10(sum(f^2) / sum((q - f)^2));
- ``snr_drop_db``: how many dB this operator lost relative to its input (where the error appears);
- ``saturation``: fraction of values clipped at the int8 limits (values at qmin only count when qmin is not the
  float zero of a ReLU-style output);
- ``fallback_gain_db``: the ranking key, the output SNR gain expected from keeping this operator in float.

Why the ranking is not ``snr_drop_db``: a float fallback re-quantizes the operator's output to the same int8
scale, so it removes only the rounding of that operator's weights and bias, never the activation rounding that
dominates ``snr_drop_db`` (an outlier channel's coarse scale shows up as dB lost, and no fallback fixes it). So
each weighted operator's int8 weights (dequantized) are put alone into the float model, and the output noise
they cause is compared with the whole int8 model's output noise: noise powers add, so removing it gains
``10*log10(total / (total - own))`` dB. Operators without weights get 0. Measured on the benchmark models
(``benchmarks/validation.py``), single-operator fallbacks of well-quantized layers move the output SNR by about
+-1 dB in either direction on different samples, so a ranking that measured them one by one would chase noise.

Why not ``tf.lite.experimental.QuantizationDebugger``: it measures a debug model the converter instruments with
NumericVerify operators, so it needs the source model and a re-conversion, and never looks at the file the user
ships; matching tensors works on the user's own ``.tflite`` and any float counterpart.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.metrics import SNR_CAP_DB, snr_db
from edgecompress.validate.tracing import SKIP_OPS, _match, _own_weight_noise, _samples, _Trace

SATURATION_WARN = 0.01
# A fallback cannot remove more than the whole output noise; past that the estimate saturates here.
GAIN_CAP_DB = 40.0
# Below this expected output-SNR gain, keeping an operator float is not worth recommending.
FALLBACK_WORTH_DB = 1.0
# An int8 output this far above its error (noise amplitude about 3% of the signal) is called small.
SMALL_ERROR_SNR_DB = 30.0
RANKING_ESTIMATED = "estimated"
# Fixed-range outputs: a softmax at 127 is a confident 0.996, not a clipped activation.
FIXED_RANGE_OPS = ("SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX")

@dataclasses.dataclass
class LayerError:
    """Quantization error of one int8 tensor against its float counterpart.

    Args:
        tensor: the int8 tensor's name.
        op: the TFLite operator that produced it.
        op_index: that operator's index in the int8 model.
        float_tensor: the matched float tensor's name (used to keep that operator float on re-export).
        shape: tensor shape.
        rmse: RMS error divided by the float tensor's range.
        snr_db: signal-to-noise ratio in dB (capped at 120).
        snr_drop_db: dB lost by this operator relative to its input.
        saturation: fraction of values clipped at the int8 limits.
        weights: "per-channel", "per-tensor" or None (no weights).
        suggestion: what would help, in plain words.
        fallback_gain_db: output SNR gain in dB expected from keeping this operator in float (the ranking key);
            see ``LayerReport.ranking`` for whether it was estimated or measured.
    """

    tensor: str
    op: str
    op_index: int
    float_tensor: str
    shape: list[int]
    rmse: float
    snr_db: float
    snr_drop_db: float
    saturation: float
    weights: str | None
    suggestion: str = ""
    fallback_gain_db: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class LayerReport:
    """Per-layer errors ranked worst first, plus what did not match and outputs that barely move.

    Args:
        layers: one ``LayerError`` per matched int8 tensor, largest ``fallback_gain_db`` first (then largest
            ``snr_drop_db``).
        int8_tensors: int8 operator outputs in the model.
        matched: how many of them had a float counterpart.
        matched_by_name: how many matched by tensor name (the rest by operator type and shape in order).
        samples: how many samples were traced.
        stuck_outputs: model outputs that barely move across samples (int8 output stuck near one value).
        ranking: how ``fallback_gain_db`` was obtained: "estimated" (each operator's int8 weights alone in the
            float model).
        output_snr_db: SNR of the int8 model's first output against the float model's on the traced samples.
        weights_only_snr_db: the same SNR for the float model carrying every operator's int8 weights (and only
            those): how much of the error the weights cause; the rest is activation rounding.
        diagnosis: one sentence from ``diagnose``: whether the error is concentrated or spread out.
    """

    layers: list[LayerError]
    int8_tensors: int
    matched: int
    matched_by_name: int
    samples: int
    stuck_outputs: list[str] = dataclasses.field(default_factory=list)
    ranking: str = RANKING_ESTIMATED
    output_snr_db: float | None = None
    weights_only_snr_db: float | None = None
    diagnosis: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [layer.to_dict() for layer in self.layers], "int8_tensors": self.int8_tensors,
                "matched": self.matched, "matched_by_name": self.matched_by_name, "samples": self.samples,
                "stuck_outputs": self.stuck_outputs, "ranking": self.ranking, "output_snr_db": self.output_snr_db,
                "weights_only_snr_db": self.weights_only_snr_db, "diagnosis": self.diagnosis}


def saturation_fraction(q: np.ndarray, zero_point: int, dtype: Any = np.int8) -> float:
    """Fraction of quantized values clipped at the integer limits.

    A value at qmin counts only when qmin is not the tensor's float zero (a ReLU output's zero point is qmin, and
    its zeros are not clipped).

    Example:
        >>> saturation_fraction(np.array([-128, 0, 127, 5], np.int8), zero_point=0)
        0.5
    """
    info = np.iinfo(dtype)
    q = np.asarray(q)
    clipped = q == info.max
    if zero_point > info.min:
        clipped |= q == info.min
    return float(np.mean(clipped)) if q.size else 0.0


def estimated_gain_db(total_noise: float, removed_noise: float) -> float:
    """Output SNR gain in dB from removing ``removed_noise`` of ``total_noise`` (noise powers add), capped at 40.

    Example:
        >>> round(estimated_gain_db(2.0, 1.0), 2)
        3.01
    """
    if total_noise <= 0.0 or removed_noise <= 0.0:
        return 0.0
    floor = total_noise * 10.0 ** (-GAIN_CAP_DB / 10.0)
    return float(min(GAIN_CAP_DB, 10.0 * np.log10(total_noise / max(total_noise - removed_noise, floor))))


def _suggest(layer: LayerError) -> str:
    if layer.fallback_gain_db >= FALLBACK_WORTH_DB:
        return (f"its int8 weights alone cost about {layer.fallback_gain_db:.1f} dB at the output: keep this operator "
                "in float (--fix float-fallback) if the target allows it, or QAT for this block"
                + (", or per-channel weights" if layer.weights == "per-tensor" else ""))
    if layer.saturation >= SATURATION_WARN:
        return (f"{100 * layer.saturation:.1f}% of values are clipped at the int8 limits: calibrate on data that "
                "covers the real input range (or --calibration-method percentile/mse); float fallback keeps the "
                "same int8 output range, so it would not help")
    if layer.snr_drop_db >= 1.0:
        return ("the error comes from rounding this activation, not from the weights: try --calibration-method "
                "mse/percentile/auto or QAT; float fallback keeps this output int8, so it would recover little")
    return "little to gain here: this layer adds little error of its own"


def layer_errors(int8_model: bytes | str | os.PathLike[str], float_model: bytes | str | os.PathLike[str],
                 data: Any, *, max_samples: int = 64) -> LayerReport:
    """Rank every int8 tensor of ``int8_model`` by the quantization error it adds against ``float_model``.

    Args:
        int8_model: the int8 ``.tflite`` (bytes or path).
        float_model: a float ``.tflite`` of the same network (e.g. ``convert_float`` of the Keras model).
        data: evaluation samples: a ``Dataset``, an array, or arrays keyed by model input name.
        max_samples: trace at most this many samples.

    Returns:
        A ``LayerReport`` with layers ranked worst first.

    Example:
        >>> report = layer_errors("model_int8.tflite", "model_float.tflite", test)  # doctest: +SKIP
        >>> report.layers[0].op, round(report.layers[0].snr_drop_db, 1)  # doctest: +SKIP
        ('CONV_2D', 14.2)
    """
    q_bytes = bytes(int8_model) if isinstance(int8_model, bytes | bytearray) else Path(int8_model).read_bytes()
    f_bytes = bytes(float_model) if isinstance(float_model, bytes | bytearray) else Path(float_model).read_bytes()
    samples = _samples(data, max_samples)
    quant, flt = _Trace(q_bytes, samples), _Trace(f_bytes, samples)
    pairs, by_name = _match(quant, flt)
    snr: dict[int, float] = {}
    for q_in in quant.inputs:
        if q_in in pairs and quant.is_int8(q_in):
            snr[q_in] = snr_db(flt.real(pairs[q_in]), quant.real(q_in))
    layers: list[LayerError] = []
    int8_outputs = 0
    for op in quant.ops:
        if op["op_name"] in SKIP_OPS:
            for out in op["outputs"]:
                if out in pairs:
                    snr[out] = snr_db(flt.real(pairs[out]), quant.real(out))
            continue
        for out in op["outputs"]:
            if out < 0 or not quant.is_int8(out):
                continue
            int8_outputs += 1
            if out not in pairs:
                continue
            ref, got = flt.real(pairs[out]), quant.real(out)
            value_range = float(ref.max() - ref.min()) or 1.0
            rmse = float(np.sqrt(np.mean((got.astype(np.float64) - ref) ** 2))) / value_range
            snr[out] = snr_db(ref, got)
            inputs = [i for i in op["inputs"] if i in snr]
            before = min((snr[i] for i in inputs), default=SNR_CAP_DB)
            zero_point = int(quant.tensors[out]["quantization"][1])
            saturation = (0.0 if op["op_name"] in FIXED_RANGE_OPS
                          else saturation_fraction(quant.raw(out), zero_point, quant.tensors[out]["dtype"]))
            weights = quant.weights_kind(op)
            layers.append(LayerError(
                tensor=quant.name(out), op=op["op_name"], op_index=int(op["index"]),
                float_tensor=flt.name(pairs[out]), shape=list(quant.shape(out)), rmse=round(rmse, 6),
                snr_db=round(snr[out], 3), snr_drop_db=round(max(0.0, before - snr[out]), 3),
                saturation=round(saturation, 6), weights=weights))
    f_out, q_out = flt.real(flt.outputs[0]).astype(np.float64), quant.real(quant.outputs[0]).astype(np.float64)
    total_noise = float(np.sum((q_out.reshape(f_out.shape) - f_out) ** 2))
    own, all_weights_noise = _own_weight_noise(quant, flt, pairs, f_bytes, samples)
    by_tensor = {quant.name(o): o for o in own}
    for layer in layers:
        removed = own.get(by_tensor.get(layer.tensor, -1), 0.0)
        layer.fallback_gain_db = round(estimated_gain_db(total_noise, removed), 3)
        layer.suggestion = _suggest(layer)
    rank(layers)
    stuck = [quant.name(o) for o in quant.outputs if quant.is_int8(o) and _barely_moves(quant.raw(o))]
    output_snr = round(snr_db(f_out, q_out.reshape(f_out.shape)), 3)
    weights_snr = None
    if all_weights_noise is not None:
        signal = float(np.sum(f_out**2))
        weights_snr = round(min(SNR_CAP_DB, 10.0 * np.log10(signal / all_weights_noise)), 3) if (
            all_weights_noise > 0 and signal > 0) else SNR_CAP_DB
    report = LayerReport(layers, int8_outputs, sum(1 for layer in layers), by_name, len(samples), stuck,
                         RANKING_ESTIMATED, output_snr, weights_snr)
    report.diagnosis = diagnose(report)
    return report


def diagnose(report: LayerReport) -> str | None:
    """One sentence on where the int8 error sits: in a few operators' weights (fallback helps), nowhere worth
    fixing (small), or spread over every tensor (QAT helps).

    Example:
        >>> diagnose(LayerReport([], 0, 0, 0, 0)) is None
        True
    """
    if not report.layers or report.output_snr_db is None:
        return None
    best = max(report.layers, key=lambda layer: layer.fallback_gain_db)
    if best.fallback_gain_db >= FALLBACK_WORTH_DB:
        worth = sum(1 for layer in report.layers if layer.fallback_gain_db >= FALLBACK_WORTH_DB)
        return (f"concentrated: {worth} operator(s) lose {FALLBACK_WORTH_DB:.0f} dB or more of output SNR to their "
                f"int8 weights (worst: {best.op} {best.tensor.split(';')[0]}, {best.fallback_gain_db:.1f} dB); "
                "keeping them float (--fix float-fallback) or QAT for those blocks should recover most of it")
    if report.output_snr_db >= SMALL_ERROR_SNR_DB:
        return (f"small: the int8 output is {report.output_snr_db:.1f} dB above its error against the float model and "
                f"no operator's int8 weights cost {FALLBACK_WORTH_DB:.0f} dB of it (largest "
                f"{best.fallback_gain_db:.2f} dB); nothing here needs fixing")
    weights = ("" if report.weights_only_snr_db is None else
               f"the int8 weights alone leave {report.weights_only_snr_db:.1f} dB of output SNR against "
               f"{report.output_snr_db:.1f} dB for the whole int8 model, so most of the error is activation "
               f"rounding; ")
    return (f"spread: no operator's int8 weights cost {FALLBACK_WORTH_DB:.0f} dB of output SNR (largest "
            f"{best.fallback_gain_db:.2f} dB); {weights}it accumulates over {report.matched} int8 tensors. Keeping a "
            "few layers float will recover little; quantization-aware training can (edgecompress compress MODEL "
            "--recipe qat)")


def rank(layers: list[LayerError]) -> None:
    """Sort ``layers`` in place: largest expected fallback gain first, then most dB lost, then lowest SNR."""
    layers.sort(key=lambda layer: (-layer.fallback_gain_db, -layer.snr_drop_db, layer.snr_db))


def _barely_moves(raw: np.ndarray) -> bool:
    """An int8 output that takes at most two distinct values per element across samples is stuck."""
    flat = raw.reshape(len(raw), -1)
    if len(flat) < 4:
        return False
    distinct = max(len(np.unique(flat[:, j])) for j in range(flat.shape[1]))
    return distinct <= 2
