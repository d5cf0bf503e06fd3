"""Every argument is checked before any TensorFlow work: one clear line, fast, with a "did you mean"."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.helpers import assert_clean_failure, run_cli

ROOT = Path(__file__).resolve().parents[2]
INT8 = ROOT / "tests" / "data" / "tflite" / "conv_dw_dense_int8.tflite"
# far below TensorFlow's own import time on this machine (~3 s): these failures must come before it
BEFORE_TENSORFLOW_S = 2.0


@pytest.fixture()
def files(tmp_path):
    keras_file = tmp_path / "m.keras"
    keras_file.write_bytes(b"PK\x03\x04 not a flatbuffer")
    np.savez(tmp_path / "cal.npz", x=np.zeros((4, 8, 8, 1), np.float32))
    return tmp_path


@pytest.mark.parametrize("args, needles", [
    (["export", "{d}/m.keras", "--calibration", "{d}/cal.npz", "--target", "esp32s3"],
     ["'esp32s3'", "Did you mean 'esp32-s3'?"]),
    (["export", "{d}/nope.keras", "--calibration", "{d}/cal.npz"], ["nope.keras", "no such file"]),
    (["export", "{d}/m.keras", "--calibration", "{d}/nope.npz"], ["nope.npz", "no such file"]),
    (["validate", str(INT8), "--data", "{d}/cal.npz", "--target", "raspbery-pi-4"], ["Did you mean 'raspberry-pi-4'?"]),
    (["bench", str(INT8), "--target", "ethosu55"], ["Did you mean 'ethos-u55'?"]),
    (["demo", "--recipe", "defualt"], ["defualt", "Did you mean 'default'?"]),
    (["compress", "{d}/m.keras", "--recipe", "qta", "--data", "{d}/cal.npz", "--out", "{d}/o.keras"],
     ["Did you mean 'qat'?"]),
    (["exprot", "{d}/m.keras"], ["Did you mean 'export'?"]),
    (["check", "{d}/m.keras", "--target", "esp32-s3"], ["check takes a .tflite", "edgecompress export"]),
    (["inspect", "{d}/m.keras"], ["inspect takes a .tflite"]),
])
def test_bad_arguments_fail_in_one_line_before_tensorflow_starts(files, args, needles):
    started = time.perf_counter()
    proc = run_cli(*(a.format(d=files) for a in args))
    elapsed = time.perf_counter() - started
    assert_clean_failure(proc, 2, *needles)
    assert elapsed < BEFORE_TENSORFLOW_S, elapsed
    assert not list(files.glob("*.tflite"))


def test_no_tensorflow_start_up_lines_reach_the_terminal(tmp_path):
    from edgecompress.tflite import read_model

    info = read_model(INT8)
    shape = tuple(int(v) for v in info.tensors[info.inputs[0]].shape[1:])
    np.savez(tmp_path / "eval.npz", x=np.random.default_rng(0).random((4, *shape), dtype=np.float32))
    proc = run_cli("validate", INT8, "--data", tmp_path / "eval.npz")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for noise in ("absl::InitializeLog", "cudart_stub", "cuInit", "oneDNN", "cuda_platform"):
        assert noise not in proc.stderr and noise not in proc.stdout, noise
