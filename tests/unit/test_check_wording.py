"""check says what a target really has, and what a float model really needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecompress.check.checker import check_model
from edgecompress.profile import load_profile

DATA = Path(__file__).resolve().parents[1] / "data" / "tflite"


@pytest.mark.parametrize("target, name", [("esp32-s3", "TFLite Micro int8 kernels (ESP-NN)"),
                                          ("arduino-nano-33-ble", "TFLite Micro int8 kernels (CMSIS-NN)"),
                                          ("raspberry-pi-4", "XNNPACK"), ("coral-edgetpu", "Edge TPU")])
def test_the_fast_path_is_named_after_what_the_target_has(target, name):
    report = check_model(DATA / "conv_dw_dense_int8.tflite", load_profile(target), use_tools=False)
    assert report.accelerator_name == name
    assert report.to_dict()["accelerator_name"] == name


@pytest.mark.parametrize("model", ["conv_dw_dense_float32.tflite", "conv_dw_dense_dynamic_range.tflite"])
def test_a_float_model_is_told_to_quantize_first(model):
    report = check_model(DATA / model, load_profile("esp32-s3"), use_tools=False)
    assert any("quantize it first (edgecompress export" in w for w in report.warnings)


def test_a_full_int8_model_is_not_told_to_quantize():
    report = check_model(DATA / "conv_dw_dense_int8.tflite", load_profile("esp32-s3"), use_tools=False)
    assert not any("quantize it first" in w for w in report.warnings)
