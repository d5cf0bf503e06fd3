"""Putting one operator's int8 weights into a float .tflite: the flatbuffer is patched, not re-converted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecompress.tflite import read_model
from edgecompress.validate.tracing import _patched

FLOAT_MODEL = Path(__file__).resolve().parents[1] / "data" / "tflite" / "conv_dw_dense_float32.tflite"


def _first_weights(info):
    op = next(op for op in info.operators if op.op == "CONV_2D")
    return op.inputs[1]


def test_patched_weights_are_what_the_reader_sees_and_nothing_else_changes():
    original = FLOAT_MODEL.read_bytes()
    info = read_model(original)
    index = _first_weights(info)
    new = np.round(info.constant(index) * 8) / 8
    patched = _patched(original, {index: new})
    after = read_model(patched)
    assert len(patched) == len(original)
    np.testing.assert_array_equal(after.constant(index), new.astype(np.float32))
    others = [t.index for t in info.tensors if t.is_constant and t.index != index]
    assert all(np.array_equal(after.constant(i), info.constant(i)) for i in others)


def test_a_replacement_of_the_wrong_size_is_refused():
    original = FLOAT_MODEL.read_bytes()
    index = _first_weights(read_model(original))
    assert _patched(original, {index: np.zeros(3, np.float32)}) is None
