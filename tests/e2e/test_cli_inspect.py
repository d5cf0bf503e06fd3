"""`edgecompress inspect` as a subprocess: JSON for scripts, a table for people, clean errors for garbage."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.helpers import assert_clean_failure, run_cli

SEEDS = Path(__file__).resolve().parents[1] / "data" / "tflite"


def test_inspect_json_describes_the_model():
    proc = run_cli("inspect", SEEDS / "conv_dw_dense_int8.tflite", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["is_full_int8"] is True
    assert [op["op"] for op in info["operators"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert info["total_macs"] == sum(op["macs"] for op in info["operators"]) > 0
    assert info["inputs"][0]["dtype"] == "int8" and info["inputs"][0]["shape"] == [1, 8, 8, 1]


def test_inspect_table_says_when_a_model_is_not_really_int8():
    proc = run_cli("inspect", SEEDS / "conv_dw_dense_dynamic_range.tflite", "--tensors")
    assert proc.returncode == 0, proc.stderr
    assert "full int8: NO" in proc.stdout


def test_inspect_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00\x01\x02" * 100)
    assert_clean_failure(run_cli("inspect", garbage), 2, "garbage.tflite", "not a valid TFLite model")
    assert_clean_failure(run_cli("inspect", tmp_path / "missing.tflite"), 2, "missing.tflite")
