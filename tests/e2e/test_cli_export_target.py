"""`export --target T` when T cannot run the result: the .tflite is kept and said so, exit 4, no firmware files."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.helpers import run_cli


@pytest.mark.slow  # ~25 s on 2 shared cores: a 1.9 MB model converted and run in TFLite Micro
def test_export_for_a_target_that_cannot_hold_the_model_keeps_it_says_why_and_exits_4(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    # ~1.9 MB of int8 weights: more than the nano 33 BLE's 1 MB of flash
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4000),
                              keras.layers.Dense(400), keras.layers.Dense(3)])
    model.save(tmp_path / "big.keras")
    np.savez(tmp_path / "cal.npz", x=np.random.default_rng(0).random((12, 8, 8, 1), dtype=np.float32))
    proc = run_cli("export", tmp_path / "big.keras", "--calibration", tmp_path / "cal.npz", "--out",
                   tmp_path / "big.tflite", "--target", "arduino-nano-33-ble")
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "target arduino-nano-33-ble: unsupported" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "kept" in errors[0] and "cannot run it" in errors[0]
    assert (tmp_path / "big.tflite").read_bytes()[4:8] == b"TFL3"
    assert not (tmp_path / "big_micro").exists()
