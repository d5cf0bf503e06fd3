"""Per-layer calibration methods on a SavedModel or ONNX graph: one line before any work, never a traceback.

A SavedModel (and an ONNX model through onnx2tf) loads as one opaque ``TFSMLayer``; percentile, mse, kl
and bias correction choose ranges layer by layer, so they cannot run on it. Before this check every SavedModel
ended in "'NoneType' object is not callable". `auto` on such a graph chooses minmax and says why.
"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import assert_clean_failure, run_cli


@pytest.mark.parametrize("flags", [("--calibration-method", "percentile"), ("--calibration-method", "mse"),
                                   ("--bias-correction",)])
def test_savedmodel_with_a_per_layer_method_is_one_line(savedmodel_dir, calibration_npz, tmp_path, flags):
    out = tmp_path / "x.tflite"
    proc = run_cli("export", savedmodel_dir, "--calibration", calibration_npz, *flags, "--out", out)
    assert_clean_failure(proc, 2, str(savedmodel_dir), "minmax")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_api_refuses_a_wrapped_graph_with_the_same_line(savedmodel_dir, calibration_npz):
    import numpy as np

    from edgecompress.conversion.ptq import calibrate_and_convert
    from edgecompress.errors import CalibrationError
    from edgecompress.load.model import load_model

    loaded = load_model(savedmodel_dir)
    with pytest.raises(CalibrationError, match="opaque layer.*minmax"):
        calibrate_and_convert(loaded, np.load(calibration_npz)["x"], method="percentile")


def test_savedmodel_with_auto_chooses_minmax_and_says_why(savedmodel_dir, calibration_npz, tmp_path):
    import json

    out = tmp_path / "x.tflite"
    proc = run_cli("export", savedmodel_dir, "--calibration", calibration_npz, "--calibration-method", "auto",
                   "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    calibration = json.loads(proc.stdout)["calibration"]
    assert (calibration["requested"], calibration["method"]) == ("auto", "minmax")
    assert any("auto chose minmax" in w and "opaque" in w for w in calibration["warnings"])
    assert out.stat().st_size > 0


def test_savedmodel_with_minmax_still_exports(savedmodel_dir, calibration_npz, tmp_path):
    out = tmp_path / "x.tflite"
    proc = run_cli("export", savedmodel_dir, "--calibration", calibration_npz, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.stat().st_size > 0
