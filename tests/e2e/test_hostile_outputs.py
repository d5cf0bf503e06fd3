"""Outputs that would destroy an input or a non-file, and option values argparse refuses: one error line, exit 2."""

from __future__ import annotations

import hashlib

import pytest

from tests.e2e.helpers import assert_clean_failure, run_cli


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_refuses_to_write_over_its_own_model(keras_file, calibration_npz, tmp_path):
    before = _digest(keras_file)
    proc = run_cli("export", keras_file, "--calibration", calibration_npz, "--out", keras_file)
    assert_clean_failure(proc, 2, "input", "--out")
    assert _digest(keras_file) == before


def test_export_refuses_a_symlink_at_the_output_and_leaves_its_target_alone(keras_file, calibration_npz, tmp_path):
    target = tmp_path / "precious.bin"
    target.write_bytes(b"precious")
    link = tmp_path / "link.tflite"
    link.symlink_to(target)
    assert_clean_failure(run_cli("export", keras_file, "--calibration", calibration_npz, "--out", link), 2,
                         "symbolic link")
    assert target.read_bytes() == b"precious" and link.is_symlink()


def test_compress_refuses_to_write_over_its_model(keras_file, calibration_npz, tmp_path):
    before = _digest(keras_file)
    proc = run_cli("compress", keras_file, "--recipe", "qat", "--data", calibration_npz, "--out", keras_file)
    assert_clean_failure(proc, 2, "input")
    assert _digest(keras_file) == before


def test_validate_html_into_a_directory_is_refused_before_any_work(tmp_path, test_npz):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"whatever")
    (tmp_path / "report").mkdir()
    assert_clean_failure(run_cli("validate", model, "--data", test_npz, "--html", tmp_path / "report"), 2,
                         "directory")


@pytest.mark.parametrize("argv, needle", [(["validate", "m.tflite", "--data", "d.npz", "--arena-size", "1e15"],
                                           "--arena-size"),
                                          (["bench", "m.tflite", "--target", "all", "--runs", "abc"], "--runs"),
                                          (["nope"], "invalid choice"),
                                          (["export"], "required")])
def test_bad_option_values_are_one_error_line(argv, needle):
    proc = run_cli(*argv)
    line = assert_clean_failure(proc, 2, needle)
    assert "--help" in line
    assert "usage:" not in proc.stderr


@pytest.mark.parametrize("member", ["saved_model.pb", "variables/variables.index"])
def test_a_fifo_inside_a_savedmodel_is_refused_instead_of_hanging(savedmodel_dir, calibration_npz, tmp_path, member):
    import os
    import shutil

    model = shutil.copytree(savedmodel_dir, tmp_path / "sm")
    (model / member).unlink()
    os.mkfifo(model / member)
    proc = run_cli("export", model, "--calibration", calibration_npz, "--out", tmp_path / "m.tflite", timeout=60)
    assert_clean_failure(proc, 2, member.split("/")[-1], "expected a regular file")
    assert not (tmp_path / "m.tflite").exists()
