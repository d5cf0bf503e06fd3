"""`edgecompress inspect` as a subprocess: JSON for scripts, a table for people, clean errors for garbage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.helpers import ROOT, assert_clean_failure, run_cli

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


def test_inspect_table_lists_operators_macs_and_the_int8_verdict():
    proc = run_cli("inspect", SEEDS / "conv_dw_dense_int8.tflite")
    assert proc.returncode == 0, proc.stderr
    assert "DEPTHWISE_CONV_2D" in proc.stdout and "2,304" in proc.stdout  # the depthwise layer's MACs
    assert "full int8: yes" in proc.stdout


def test_inspect_tensors_table_shows_dtype_scale_and_zero_point():
    proc = run_cli("inspect", SEEDS / "conv_dw_dense_int8.tflite", "--tensors")
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "serving_default_input" in line)
    assert "int8" in row and "[1, 8, 8, 1]" in row


def test_inspect_prints_names_from_the_file_literally(tmp_path):
    from tests.tflite_craft import Code, Op, Tensor, build_model

    path = tmp_path / "markup.tflite"
    path.write_bytes(build_model([Tensor([1, 4], name="[/x]"), Tensor([1, 4], "FLOAT32", name="[bold]y\x1b[2J")],
                                 [Op(0, [0], [1])], [Code("CUSTOM", custom="[/oops]")], [None], [0], [1]))
    proc = run_cli("inspect", path, "--tensors")
    assert proc.returncode == 0, proc.stderr
    assert "[/oops]" in proc.stdout and "[bold]y?[2J" in proc.stdout and "\x1b[2J" not in proc.stdout


def test_inspect_refuses_a_device_file():
    assert_clean_failure(run_cli("inspect", "/dev/zero"), 2, "not a regular file")


def test_inspect_json_does_not_import_tensorflow():
    code = ("import sys, contextlib, io; from edgecompress.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    code = main(['inspect', {str(SEEDS / 'add_concat_int8.tflite')!r}, '--json'])\n"
            "print(code, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.split() == ["0", "False"], proc.stderr


def test_check_prints_hostile_operator_names_without_a_traceback(tmp_path):
    from tests.tflite_craft import Code, Op, Tensor, build_model

    path = tmp_path / "markup.tflite"
    path.write_bytes(build_model([Tensor([1, 4], "INT8", name="a"), Tensor([1, 4], "INT8", name="b")],
                                 [Op(0, [0], [1])], [Code("CUSTOM", custom="[/oops]")], [None], [0], [1]))
    proc = run_cli("check", path, "--target", "esp32-s3", "--rules-only")
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (3, 4), proc.stderr
    assert "[/oops]" in proc.stdout


def test_inspect_shows_each_input_and_output_scale_and_zero_point():
    from edgecompress.tflite import read_model

    model = Path(__file__).resolve().parents[2] / "tests" / "data" / "tflite" / "conv_dw_dense_int8.tflite"
    info = read_model(model)
    proc = run_cli("inspect", model)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("I/O:")]
    assert len(lines) == len(info.inputs) + len(info.outputs)
    for line, index in zip(lines, info.inputs + info.outputs, strict=True):
        tensor = info.tensors[index]
        assert f"scale {tensor.scale[0]:.6g} zero point {tensor.zero_point[0]}" in line
