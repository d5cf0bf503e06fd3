"""Tracing an int8 and a float ``.tflite`` of one network, tensor by tensor, and pairing their tensors.

Both models run on the host LiteRT interpreter with every intermediate tensor kept
(``experimental_preserve_all_tensors``, default delegates off so XNNPACK does not fuse them away). Each int8
operator output is paired with the float tensor the same graph computed: by tensor name first (both flatbuffers
come from the same Keras graph, so the converter names tensors alike), then by operator type and output shape in
execution order.

The float model can also carry the int8 model's weights (dequantized) instead of its own: the output noise that
alone causes is what a float fallback of that operator would remove (``edgecompress.validate.layers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgecompress.capture import captured_output
from edgecompress.errors import InvalidModelError, ToolchainError

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
# Which operand positions hold constant weights and bias, per weighted operator.
_CONSTANT_OPERANDS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
                      "TRANSPOSE_CONV": (1, 3)}
SKIP_OPS = ("DELEGATE", "QUANTIZE", "DEQUANTIZE")


class _Trace:
    """Every operator output of a model over a few samples, with its quantization parameters."""

    def __init__(self, model: bytes, samples: list[dict[str, np.ndarray]]) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ToolchainError("ai-edge-litert is not installed; reinstall edgecompress.") from exc
        try:
            with captured_output():
                self.interpreter = Interpreter(
                    model_content=model, experimental_preserve_all_tensors=True,
                    experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InvalidModelError(f"LiteRT could not load the model for per-layer tracing ({exc}).") from exc
        self.tensors = {t["index"]: t for t in self.interpreter.get_tensor_details()}
        self.ops = [op for op in self.interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
        self.inputs = [d["index"] for d in self.interpreter.get_input_details()]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]
        watched = {o for op in self.ops for o in op["outputs"] if o >= 0} | set(self.inputs)
        self.values: dict[int, list[np.ndarray]] = {i: [] for i in watched}
        for sample in samples:
            _feed(self.interpreter, sample)
            self.interpreter.invoke()
            for index in watched:
                self.values[index].append(self.interpreter.get_tensor(index).copy())

    def raw(self, index: int) -> np.ndarray:
        return np.stack(self.values[index])

    def real(self, index: int) -> np.ndarray:
        raw = self.raw(index)
        scale, zero_point = self.tensors[index]["quantization"]
        if np.issubdtype(raw.dtype, np.integer) and scale:
            return (raw.astype(np.float32) - zero_point) * scale
        return raw.astype(np.float32)

    def is_int8(self, index: int) -> bool:
        return np.dtype(self.tensors[index]["dtype"]) in (np.dtype(np.int8), np.dtype(np.uint8))

    def name(self, index: int) -> str:
        return str(self.tensors[index]["name"])

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensors[index]["shape"])

    def dequantized_constant(self, index: int) -> np.ndarray | None:
        """A constant int8/int32 tensor as the real numbers the int8 kernel uses (per-axis scales applied)."""
        detail = self.tensors[index]
        params = detail.get("quantization_parameters", {})
        scales = np.asarray(params.get("scales", []), np.float64)
        if scales.size == 0:
            return None
        try:
            raw = self.interpreter.get_tensor(index).astype(np.float64)
        except ValueError:
            return None
        zero_points = np.asarray(params.get("zero_points", np.zeros_like(scales)), np.float64)
        if scales.size > 1:
            axis = int(params.get("quantized_dimension", 0))
            shape = [1] * raw.ndim
            shape[axis] = scales.size
            scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
        return ((raw - zero_points) * scales).astype(np.float32)

    def weights_kind(self, op: dict[str, Any]) -> str | None:
        if op["op_name"] not in WEIGHTED_OPS or len(op["inputs"]) < 2 or op["inputs"][1] < 0:
            return None
        scales = self.tensors[op["inputs"][1]].get("quantization_parameters", {}).get("scales", [])
        if len(scales) == 0:
            return None
        return "per-channel" if len(scales) > 1 else "per-tensor"


def _samples(data: Any, limit: int) -> list[dict[str, np.ndarray]]:
    """One ``{input name: (1, ...) array}`` per sample (a bare array is the single input "input")."""
    x = getattr(data, "x", data)
    arrays = {k: np.asarray(v, np.float32) for k, v in x.items()} if isinstance(x, Mapping) else {
        "input": np.asarray(x, np.float32)}
    count = min(min(len(v) for v in arrays.values()), limit)
    return [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(count)]


def _feed(interpreter: Any, sample: Mapping[str, np.ndarray]) -> None:
    """Set every model input from ``sample`` (matched by name), quantizing floats for integer inputs."""
    from edgecompress.runtimes.host import quantize
    from edgecompress.samples import match_inputs

    details = interpreter.get_input_details()
    try:
        arrays = match_inputs(details, sample)
    except ValueError as exc:
        raise InvalidModelError(f"per-layer error: {exc}. Name the data arrays after the model inputs.") from exc
    for detail, arr in zip(details, arrays, strict=True):
        arr = np.asarray(arr, np.float32).reshape(detail["shape"])
        dtype = np.dtype(detail["dtype"])
        if np.issubdtype(dtype, np.integer):
            arr = quantize(arr, *detail["quantization"], dtype)
        interpreter.set_tensor(detail["index"], arr.astype(dtype))


def _match(quant: _Trace, flt: _Trace) -> tuple[dict[int, int], int]:
    """int8 operator-output index -> float tensor index, and how many matched by name."""
    float_by_name = {flt.name(o): o for op in flt.ops for o in op["outputs"] if o >= 0}
    float_sequence = [(op["op_name"], o) for op in flt.ops for o in op["outputs"]
                      if o >= 0 and op["op_name"] not in SKIP_OPS]
    pairs: dict[int, int] = {}
    by_name = 0
    cursor = 0
    for op in quant.ops:
        if op["op_name"] in SKIP_OPS:
            continue
        for out in op["outputs"]:
            if out < 0 or not quant.is_int8(out):
                continue
            candidate = float_by_name.get(quant.name(out))
            if candidate is not None and flt.shape(candidate) == quant.shape(out):
                pairs[out] = candidate
                by_name += 1
                cursor = next((i + 1 for i, (_, o) in enumerate(float_sequence) if o == candidate), cursor)
                continue
            for i in range(cursor, len(float_sequence)):
                name, candidate = float_sequence[i]
                if name == op["op_name"] and flt.shape(candidate) == quant.shape(out):
                    pairs[out] = candidate
                    cursor = i + 1
                    break
    float_inputs = {flt.name(i): i for i in flt.inputs}
    for position, q_in in enumerate(quant.inputs):
        f_in = float_inputs.get(quant.name(q_in), flt.inputs[position] if position < len(flt.inputs) else None)
        if f_in is not None and quant.shape(q_in) == flt.shape(f_in):
            pairs.setdefault(q_in, f_in)
    return pairs, by_name


def _patched(model: bytes, replacements: Mapping[int, np.ndarray]) -> bytes | None:
    """``model`` with constant float32 tensors overwritten (tensor index -> values), None if one cannot be."""
    import tflite

    data = bytearray(model)
    root = tflite.Model.GetRootAsModel(data, 0)
    graph = root.Subgraphs(0)
    for index, values in replacements.items():
        raw = root.Buffers(graph.Tensors(index).Buffer()).DataAsNumpy()
        new = np.frombuffer(np.ascontiguousarray(values, "<f4").tobytes(), np.uint8)
        if isinstance(raw, int) or raw.nbytes != new.nbytes:
            return None
        raw[:] = new
    return bytes(data)


def _first_output(model: bytes, samples: list[dict[str, np.ndarray]]) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with captured_output():
        interpreter = Interpreter(model_content=model,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]["index"]
    outputs = []
    for sample in samples:
        _feed(interpreter, sample)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out).copy())
    return np.stack(outputs).astype(np.float64)


def _weight_swaps(quant: _Trace, flt: _Trace, pairs: Mapping[int, int]) -> dict[int, dict[int, np.ndarray]]:
    """int8 output tensor -> {float constant tensor index: the int8 constant it becomes, dequantized}."""
    producers = {o: op for op in flt.ops for o in op["outputs"] if o >= 0}
    found: dict[int, dict[int, np.ndarray]] = {}
    for op in quant.ops:
        positions = _CONSTANT_OPERANDS.get(op["op_name"])
        out = op["outputs"][0] if op["outputs"] else -1
        if positions is None or out not in pairs:
            continue
        f_op = producers.get(pairs[out])
        if f_op is None or f_op["op_name"] != op["op_name"]:
            continue
        swaps: dict[int, np.ndarray] = {}
        for position in positions:
            if position >= min(len(op["inputs"]), len(f_op["inputs"])):
                continue
            q_index, f_index = op["inputs"][position], f_op["inputs"][position]
            if q_index < 0 or f_index < 0 or np.dtype(flt.tensors[f_index]["dtype"]) != np.float32:
                continue
            values = quant.dequantized_constant(q_index)
            if values is not None and values.shape == flt.shape(f_index):
                swaps[f_index] = values
        if f_op["inputs"][positions[0]] in swaps:
            found[out] = swaps
    return found


def _own_weight_noise(quant: _Trace, flt: _Trace, pairs: Mapping[int, int], float_model: bytes,
                      samples: list[dict[str, np.ndarray]]) -> tuple[dict[int, float], float | None]:
    """Output noise power of the float model carrying int8 weights: per weighted operator, and all at once.

    Keeping one operator float re-quantizes its output to the same int8 scale, so the fallback removes exactly
    this: the rounding of its weights and bias. Each weighted operator's int8 constants (dequantized) replace the
    float ones in the float model, and the noise that alone causes at the model output is measured. With every
    operator's int8 constants at once, the result is the share of the whole int8 error that weights cause (the
    rest is activation rounding, which no float fallback of a few operators removes).

    Returns:
        ``({int8 output tensor: noise power}, noise power with all int8 weights or None)``.
    """
    reference = flt.real(flt.outputs[0]).astype(np.float64)
    by_op = _weight_swaps(quant, flt, pairs)

    def noise(swaps: Mapping[int, np.ndarray]) -> float | None:
        patched = _patched(float_model, swaps)
        if patched is None:
            return None
        return float(np.sum((_first_output(patched, samples).reshape(reference.shape) - reference) ** 2))

    own = {out: value for out, swaps in by_op.items() if (value := noise(swaps)) is not None}
    everything = {index: values for swaps in by_op.values() for index, values in swaps.items()}
    return own, (noise(everything) if everything else None)
