"""Model files that carry code must not run it in safe mode: every spelling of a Lambda, and SavedModel graphs.

Each payload writes a marker file; the test checks the refusal and that the marker never appeared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgecompress.errors import LoadError
from edgecompress.load.guard import refuse_code_in_keras_config
from tests.e2e.helpers import ROOT, assert_clean_failure, run_cli
from tests.payloads import EVIL_SAVED_MODEL, legacy_lambda_h5


@pytest.fixture
def tfmot_inputs(digits, tmp_path):
    train, _ = digits
    np.savez(tmp_path / "train.npz", x=train.first[:64], y=train.y[:64])
    (tmp_path / "recipe.yaml").write_text("stages:\n  - {kind: prune, sparsity: 0.5, schedule: constant, epochs: 1}\n")
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["compact", "unicode", "tabs", "nested"])
def test_tfmot_engine_refuses_every_spelling_of_a_lambda(tfmot_inputs, variant):
    pytest.importorskip("tensorflow_model_optimization")
    tmp = tfmot_inputs
    marker = tmp / "pwned"
    model = legacy_lambda_h5(tmp / f"{variant}.h5", marker, variant)
    proc = run_cli("compress", model, "--recipe", tmp / "recipe.yaml", "--data", tmp / "train.npz",
                   "--out", tmp / "o.h5", "--engine", "tfmot")
    assert_clean_failure(proc, 2, "Lambda", "--unsafe-load")
    assert not marker.exists()
    assert not (tmp / "o.h5").exists()


@pytest.mark.slow
def test_tfmot_worker_loads_inside_tf_keras_safe_mode(tfmot_inputs):
    """Defence in depth: even if the config check were bypassed, the worker's own load refuses the Lambda."""
    pytest.importorskip("tensorflow_model_optimization")
    tmp = tfmot_inputs
    marker = tmp / "pwned"
    model = legacy_lambda_h5(tmp / "flat.h5", marker, "flat")
    (tmp / "stages.json").write_text("[]")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "edgecompress.compress.tfmot_worker", str(model),
                           str(tmp / "stages.json"), str(tmp / "train.npz"), str(tmp / "o.h5"), "safe"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "safe_mode" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("function", ["io.write_file", "print", "load_op_library", "raw_ops.WriteFile",
                                      "compat.v1.py_func", "py_function", "debugging.experimental.enable_dump_debug_info",
                                      "summary.write", "saved_model.save"])
def test_tf_op_lambda_outside_tensor_math_is_refused(tmp_path, function):
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "TFOpLambda", "config": {"name": "tf.op", "function": function}}]}}
    with pytest.raises(LoadError, match="--unsafe-load"):
        refuse_code_in_keras_config(tmp_path / "m.h5", json.dumps(config))


@pytest.mark.parametrize("function", ["__operators__.add", "math.multiply", "nn.relu", "reshape", "concat",
                                      "image.resize", "compat.v1.transpose", "linalg.matmul"])
def test_tf_op_lambda_doing_tensor_math_is_accepted(tmp_path, function):
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "TFOpLambda", "config": {"name": "tf.op", "function": function}},
        {"class_name": "Dense", "config": {"name": "d", "units": 3}}]}}
    refuse_code_in_keras_config(tmp_path / "m.h5", json.dumps(config))


def test_wrapped_lambda_is_found_inside_a_wrapper(tmp_path):
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
            "class_name": "Lambda", "config": {"name": "hidden", "function": ["x"], "function_type": "lambda"}}}}]}}
    with pytest.raises(LoadError, match="'hidden'"):
        refuse_code_in_keras_config(tmp_path / "m.h5", json.dumps(config, separators=(",", ":")))


@pytest.fixture(scope="module")
def evil_saved_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evil")
    marker = tmp / "pwned"
    subprocess.run([sys.executable, "-c", EVIL_SAVED_MODEL, str(tmp / "evil_sm"), str(marker)], check=True,
                   capture_output=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return tmp / "evil_sm", marker


def test_saved_model_with_write_file_is_refused_naming_the_op(evil_saved_model):
    from edgecompress.load.model import load_model

    path, marker = evil_saved_model
    with pytest.raises(LoadError, match=r"WriteFile.*--unsafe-load"):
        load_model(path)
    assert not marker.exists()


def test_saved_model_export_and_validate_do_not_run_its_graph(evil_saved_model, calibration_npz, test_npz, tmp_path,
                                                              small_cnn):
    path, marker = evil_saved_model
    # auto loads the graph (on a SavedModel it calibrates with minmax); an explicit per-layer method is refused
    # before anything is loaded
    proc = run_cli("export", path, "--calibration", calibration_npz, "--calibration-method", "auto",
                   "--out", tmp_path / "o.tflite")
    assert_clean_failure(proc, 2, "WriteFile", "--unsafe-load")
    assert not (tmp_path / "o.tflite").exists()
    int8 = tmp_path / "good.tflite"
    good = tmp_path / "good.keras"
    small_cnn.save(good)
    assert run_cli("export", good, "--calibration", calibration_npz, "--out", int8).returncode == 0
    proc = run_cli("validate", int8, "--reference", path, "--data", test_npz)
    assert_clean_failure(proc, 2, "WriteFile")
    assert not marker.exists()


def test_a_plain_keras_export_saved_model_passes_the_graph_check(savedmodel_dir):
    from edgecompress.load.guard import refuse_side_effect_ops

    refuse_side_effect_ops(savedmodel_dir)
