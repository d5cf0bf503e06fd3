"""Channels-first data for a channels-last model is one clear error on every interpreter, never a silent reshape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecompress.errors import CalibrationError
from edgecompress.samples import Dataset

ROOT = Path(__file__).resolve().parents[2]
INT8 = ROOT / "tests" / "data" / "tflite" / "conv_dw_dense_int8.tflite"


def _channels_first_samples(runner) -> np.ndarray:
    _, height, width, channels = (int(v) for v in runner.input_details[0]["shape"])
    assert channels != height  # the test needs a layout a transpose visibly changes
    return np.random.default_rng(0).random((2, channels, height, width), dtype=np.float32)


def test_host_interpreter_refuses_channels_first_samples_with_the_moveaxis_fix():
    from edgecompress.runtimes.host import HostRunner

    runner = HostRunner(INT8)
    with pytest.raises(CalibrationError, match=r"channels-first \(NCHW\).*np.moveaxis\(x, 1, -1\)"):
        runner.predict(_channels_first_samples(runner))


def test_tflite_micro_evaluation_refuses_channels_first_samples():
    from edgecompress.runtimes.host import HostRunner
    from edgecompress.validate.evaluate import evaluate

    x = _channels_first_samples(HostRunner(INT8))
    with pytest.raises(CalibrationError, match="channels-first"):
        evaluate(INT8.read_bytes(), Dataset({"x": x}, None), runtime="micro")
