"""Shared fixtures: real digits data and tiny real models in every supported format, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EDGECOMPRESS_HARDWARE") == "1":
        return
    skip = pytest.mark.skip(reason="needs a physical device; set EDGECOMPRESS_HARDWARE=1 to run")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits():
    from edgecompress.load.dataset import digits_dataset

    return digits_dataset()


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def small_cnn(digits):
    from tests.models import train_small_cnn

    return train_small_cnn(digits[0], epochs=6)


@pytest.fixture(scope="session")
def calibration_npz(digits, work_dir) -> Path:
    train, _ = digits
    path = work_dir / "calibration.npz"
    np.savez(path, x=train.first[:200], y=train.y[:200])
    return path


@pytest.fixture(scope="session")
def test_npz(digits, work_dir) -> Path:
    _, test = digits
    path = work_dir / "test.npz"
    np.savez(path, x=test.first, y=test.y)
    return path


@pytest.fixture(scope="session")
def keras_file(small_cnn, work_dir) -> Path:
    path = work_dir / "small_cnn.keras"
    small_cnn.save(path)
    return path


@pytest.fixture(scope="session")
def h5_file(digits, work_dir) -> Path:
    from tests.models import write_legacy_h5

    return write_legacy_h5(work_dir / "legacy_keras2.h5", digits[0])


@pytest.fixture(scope="session")
def savedmodel_dir(small_cnn, work_dir) -> Path:
    path = work_dir / "small_cnn_savedmodel"
    small_cnn.export(str(path), format="tf_saved_model", verbose=False)
    return path


@pytest.fixture(scope="session")
def onnx_bundle(work_dir):
    """A real ONNX file (NCHW, 3 channels) with trained weights, plus NCHW calibration and test data."""
    from tests.models import digits_rgb, train_gap_cnn, write_onnx_from_gap_cnn

    train, test = digits_rgb()
    model = train_gap_cnn(train)
    path = write_onnx_from_gap_cnn(model, work_dir / "gap_cnn.onnx")
    calib = work_dir / "onnx_calibration_nchw.npz"
    np.savez(calib, x=train.first[:200].transpose(0, 3, 1, 2), y=train.y[:200])
    test_path = work_dir / "onnx_test_nchw.npz"
    np.savez(test_path, x=test.first.transpose(0, 3, 1, 2), y=test.y)
    return {"model": path, "calibration": calib, "test": test_path, "keras": model}
