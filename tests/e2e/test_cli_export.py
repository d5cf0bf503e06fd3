"""`edgecompress export` as a subprocess: success output, and bad input that never produces a traceback."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from tests.e2e.helpers import assert_clean_failure, run_cli


@pytest.mark.slow
def test_export_json_reports_a_full_int8_file(keras_file, calibration_npz, test_npz, tmp_path):
    out = tmp_path / "m_int8.tflite"
    proc = run_cli("export", keras_file, "--calibration", calibration_npz, "--out", out, "--eval", test_npz, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["output"] == str(out) and out.exists()
    assert report["model"]["is_full_int8"] is True
    assert report["conversion"]["io_dtype"] == "int8"
    assert report["conversion"]["calibration_samples"] == 200
    assert 0.9 <= report["evaluation"]["agreement"] <= 1.0


def test_missing_model_file(tmp_path, calibration_npz):
    proc = run_cli("export", tmp_path / "nope.keras", "--calibration", calibration_npz)
    assert_clean_failure(proc, 2, "nope.keras", "no such file")


def test_unknown_model_suffix(tmp_path, calibration_npz):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x00" * 64)
    proc = run_cli("export", path, "--calibration", calibration_npz)
    assert_clean_failure(proc, 2, "model.pt", ".keras")


def test_truncated_keras_file(keras_file, tmp_path, calibration_npz):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(keras_file.read_bytes()[:500])
    proc = run_cli("export", broken, "--calibration", calibration_npz, "--out", tmp_path / "x.tflite")
    assert_clean_failure(proc, 2, "broken.keras")
    assert not (tmp_path / "x.tflite").exists()


def test_keras_zip_without_config(tmp_path, calibration_npz):
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a model")
    proc = run_cli("export", path, "--calibration", calibration_npz)
    assert_clean_failure(proc, 2, "empty.keras", "config.json")


def test_zip_bomb_keras_file_is_refused_before_unpacking(tmp_path, calibration_npz):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            chunk = b"\x00" * (16 << 20)
            for _ in range(20):  # 320 MiB of zeros, about 300 KiB on disk
                member.write(chunk)
    proc = run_cli("export", path, "--calibration", calibration_npz)
    assert_clean_failure(proc, 2, "bomb.keras", "zip bomb")


def test_zip_bomb_npz_calibration_is_refused(keras_file, tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            chunk = b"\x00" * (16 << 20)
            for _ in range(20):
                member.write(chunk)
    proc = run_cli("export", keras_file, "--calibration", path)
    assert_clean_failure(proc, 2, "bomb.npz", "zip bomb")


def test_h5_file_renamed_to_keras_and_truncated_h5(keras_file, h5_file, tmp_path, calibration_npz):
    renamed = tmp_path / "actually_h5.keras"
    renamed.write_bytes(h5_file.read_bytes())
    assert_clean_failure(run_cli("export", renamed, "--calibration", calibration_npz), 2, "actually_h5.keras",
                         "zip archive")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(h5_file.read_bytes()[:3000])
    assert_clean_failure(run_cli("export", truncated, "--calibration", calibration_npz), 2, "truncated.h5")


def test_corrupt_savedmodel_directory(tmp_path, calibration_npz):
    broken = tmp_path / "broken_savedmodel"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"\x08\x01garbage" * 50)
    assert_clean_failure(run_cli("export", broken, "--calibration", calibration_npz), 2, "broken_savedmodel")


def test_lambda_layer_is_refused_in_safe_mode_and_its_code_never_runs(tmp_path, calibration_npz):
    marker = tmp_path / "pwned"
    script = f"""
import keras
def evil(x):
    open({str(marker)!r}, "w").write("ran")
    return x
inp = keras.Input((8, 8, 1))
out = keras.layers.Lambda(evil)(inp)
out = keras.layers.Flatten()(out)
out = keras.layers.Dense(10)(out)
keras.Model(inp, out).save({str(tmp_path / 'lambda.keras')!r})
"""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    marker.unlink()  # building the model called evil() once; the file must not come back when loading
    proc = run_cli("export", tmp_path / "lambda.keras", "--calibration", calibration_npz,
                   "--out", tmp_path / "out.tflite")
    assert_clean_failure(proc, 2, "lambda.keras", "--unsafe-load")
    assert not marker.exists()
    assert not (tmp_path / "out.tflite").exists()


@pytest.mark.parametrize("case", ["wrong_shape", "nan", "empty", "few"])
def test_bad_calibration_data(case, keras_file, tmp_path):
    path = tmp_path / f"{case}.npz"
    x = {"wrong_shape": np.zeros((50, 8, 8)), "nan": np.full((50, 8, 8, 1), np.nan),
         "empty": np.zeros((0, 8, 8, 1)), "few": np.zeros((3, 8, 8, 1))}[case]
    np.savez(path, x=x)
    out = tmp_path / "out.tflite"
    proc = run_cli("export", keras_file, "--calibration", path, "--out", out)
    needle = {"wrong_shape": "(8, 8, 1)", "nan": "NaN", "empty": "empty", "few": "too few"}[case]
    assert_clean_failure(proc, 2, f"{case}.npz", needle)
    assert not out.exists()


def test_unwritable_output_location(keras_file, calibration_npz, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("export", keras_file, "--calibration", calibration_npz, "--out", blocker / "sub" / "m.tflite")
    assert_clean_failure(proc, 2, "output directory")


def test_help_lists_the_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("export", "demo"):
        assert command in proc.stdout


def test_all_zero_calibration_data_is_a_warning_naming_the_file_in_json(keras_file, tmp_path):
    np.savez(tmp_path / "zeros.npz", x=np.zeros((64, 8, 8, 1), np.float32))
    proc = run_cli("export", keras_file, "--calibration", tmp_path / "zeros.npz", "--out", tmp_path / "z.tflite",
                   "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = json.loads(proc.stdout)["calibration"]["warnings"]
    assert any("zeros.npz" in w and "constant (0)" in w for w in warnings), warnings


def test_export_eval_labels_outside_the_classes_are_refused_before_writing(keras_file, calibration_npz, test_npz,
                                                                            tmp_path):
    with np.load(test_npz) as data:
        np.savez(tmp_path / "wrong.npz", x=data["x"][:40], y=np.full(40, 10))
    proc = run_cli("export", keras_file, "--calibration", calibration_npz, "--eval", tmp_path / "wrong.npz",
                   "--out", tmp_path / "e.tflite")
    assert_clean_failure(proc, 2, "wrong.npz", "expected labels in 0..9")
    assert not (tmp_path / "e.tflite").exists()
