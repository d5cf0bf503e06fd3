"""The tensor-arena estimate of a TFLite Micro model: a greedy planner over activation lifetimes.

Shared by ``check`` (the memory verdict) and ``runtimes.micro`` (the estimate shown beside the real arena).

Example:
    >>> from edgecompress.tflite import read_model
    >>> estimate_arena_bytes(read_model("m.tflite"))["total"]  # doctest: +SKIP
    2800
"""

from __future__ import annotations

from typing import Any

_ARENA_ALIGNMENT = 16


def estimate_arena_bytes(model_info: Any, *, alignment: int = _ARENA_ALIGNMENT) -> dict[str, int]:
    """Estimate a TFLite Micro tensor arena: a greedy planner over activation lifetimes plus persistent data.

    The non-persistent part mirrors TFLM's ``GreedyMemoryPlanner``: buffers sorted by size (largest first),
    each placed at the lowest offset that does not overlap a buffer alive at the same time. The persistent part
    approximates the interpreter's bookkeeping (per-tensor and per-node structs, per-channel quantization data).

    Args:
        model_info: a ``ModelInfo``.
        alignment: byte alignment of each buffer.

    Returns:
        ``{"head": planned activation bytes, "tail": persistent estimate, "total": head + tail}``.

    Example:
        >>> estimate_arena_bytes(read_model("m.tflite"))["total"]  # doctest: +SKIP
        2800
    """
    n_ops = len(model_info.operators)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in model_info.inputs:
        first[i] = 0
    for op in model_info.operators:
        for t in op.outputs:
            if t >= 0:
                first.setdefault(t, op.index)
                last[t] = max(last.get(t, op.index), op.index)
        for t in op.inputs:
            if t >= 0 and not model_info.tensors[t].is_constant:
                first.setdefault(t, op.index)
                last[t] = max(last.get(t, op.index), op.index)
    for i in model_info.outputs:
        last[i] = max(n_ops - 1, 0)
    buffers = []
    for t, start in first.items():
        tensor = model_info.tensors[t]
        if tensor.is_constant or tensor.is_variable:
            continue
        size = -(-tensor.nbytes // alignment) * alignment
        buffers.append((size, start, last.get(t, start), t))
    buffers.sort(key=lambda b: (-b[0], b[3]))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, start, end
    head = 0
    for size, start, end, _ in buffers:
        live = sorted((o, s) for o, s, a, b in placed if not (b < start or a > end))
        offset = 0
        for o, s in live:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, start, end))
        head = max(head, offset + size)
    # Persistent part, calibrated on the 64-bit host build of TFLM: 24 B per TfLiteEvalTensor, 64 B per
    # NodeAndRegistration, 96 B per model input/output (TfLiteTensor + quantization), ~80 B of kernel data per
    # operator plus 8 B per output channel for per-channel multipliers/shifts, and ~1 KB for the interpreter's
    # allocator, planner and subgraph bookkeeping (fitted on the test corpus: median error ~10 %; LSTMs more).
    tail = 1000 + 24 * len(model_info.tensors) + 64 * n_ops + 96 * (len(model_info.inputs) + len(model_info.outputs))
    for op in model_info.operators:
        tail += 80
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"):
            outs = [model_info.tensors[o] for o in op.outputs if o >= 0]
            channels = outs[0].shape[-1] if outs and outs[0].shape else 1
            tail += 8 * int(channels)
    return {"head": head, "tail": tail, "total": head + tail}
