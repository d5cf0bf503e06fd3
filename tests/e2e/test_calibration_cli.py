"""`edgecompress export --calibration-method ...` as a user runs it: a subprocess with --json output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains, saves and exports a model in a subprocess

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    keras = pytest.importorskip("keras")
    from edgecompress.load.dataset import digits_dataset

    tmp = tmp_path_factory.mktemp("calibration_cli")
    train, test = digits_dataset()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="input"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ], name="cli_cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(train.first, train.y, epochs=2, verbose=0)
    model.save(tmp / "cnn.keras")
    np.savez(tmp / "calib.npz", x=train.first[:100], y=train.y[:100])
    np.savez(tmp / "eval.npz", x=test.first[:60] * 255.0, y=test.y[:60])
    return tmp


def _export(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "edgecompress", "export", str(tmp / "cnn.keras"),
                           "--calibration", str(tmp / "calib.npz"), "--json", *extra],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp)


def test_export_with_mse_reports_the_method_and_verified_scales_as_json(model_and_data):
    proc = _export(model_and_data, "--calibration-method", "mse", "--out", str(model_and_data / "mse.tflite"))
    assert proc.returncode == 0, proc.stderr
    calibration = json.loads(proc.stdout)["calibration"]
    assert calibration["method"] == "mse"
    assert calibration["scales"]["verified"] == calibration["scales"]["expected"] > 0
    assert calibration["scales"]["internal_requantize"] == []
    assert calibration["stability"]["checkpoints"][-1]["samples"] == 100
    assert (model_and_data / "mse.tflite").read_bytes()[4:8] == b"TFL3"


def test_export_warns_when_evaluation_inputs_are_scaled_unlike_calibration(model_and_data):
    proc = _export(model_and_data, "--calibration-method", "percentile", "--percentile", "99.9",
                   "--eval", str(model_and_data / "eval.npz"), "--out", str(model_and_data / "pct.tflite"))
    assert proc.returncode == 0, proc.stderr
    calibration = json.loads(proc.stdout)["calibration"]
    assert calibration["percentile"] == 99.9
    assert any("divide by 255" in w for w in calibration["warnings"])


def test_export_default_keeps_the_bare_converter_and_says_so(model_and_data):
    proc = _export(model_and_data, "--out", str(model_and_data / "bare.tflite"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["calibration"]["method"] == "minmax"


def test_export_rejects_a_percentile_outside_50_to_100_with_exit_2(model_and_data):
    proc = _export(model_and_data, "--calibration-method", "percentile", "--percentile", "120")
    assert proc.returncode == 2
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: --percentile must be in (50, 100]")
