"""`edgecompress compress` runs a recipe end to end and the result exports to clean full int8."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.e2e.helpers import assert_clean_failure, run_cli

TINY_RECIPE = """
stages:
  - {kind: prune, sparsity: 0.5, schedule: constant, epochs: 2, skip: []}
  - {kind: cluster, clusters: 8, epochs: 1}
  - {kind: qat, epochs: 1}
"""


@pytest.mark.slow
def test_compress_json_stage_table_and_the_result_exports_full_int8(keras_file, digits, tmp_path):
    train, test = digits
    np.savez(tmp_path / "train.npz", x=train.first, y=train.y)
    np.savez(tmp_path / "val.npz", x=test.first, y=test.y)
    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE)
    out = tmp_path / "small.keras"
    proc = run_cli("compress", keras_file, "--recipe", tmp_path / "recipe.yaml", "--data", tmp_path / "train.npz",
                   "--val", tmp_path / "val.npz", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = {row["stage"]: row for row in json.loads(proc.stdout)["stages"]}
    assert list(stages) == ["input", "prune", "cluster", "qat"]
    assert stages["prune"]["nonzeros"] < 0.75 * stages["input"]["nonzeros"]
    assert stages["cluster"]["max_unique_per_kernel"] <= 9  # 8 centroids, plus the pruned zeros
    assert stages["qat"]["accuracy"] >= stages["input"]["accuracy"] - 0.05
    exported = run_cli("export", out, "--calibration", tmp_path / "train.npz", "--out", tmp_path / "s.tflite",
                       "--json")
    assert exported.returncode == 0, exported.stderr[-3000:]
    model = json.loads(exported.stdout)["model"]
    assert model["is_full_int8"] is True


@pytest.mark.slow
def test_the_shipped_qat_recipe_runs_by_name(keras_file, digits, tmp_path):
    train, test = digits
    np.savez(tmp_path / "train.npz", x=train.first, y=train.y)
    np.savez(tmp_path / "val.npz", x=test.first, y=test.y)
    proc = run_cli("compress", keras_file, "--recipe", "qat", "--data", tmp_path / "train.npz", "--val",
                   tmp_path / "val.npz", "--out", tmp_path / "qat.keras", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = {row["stage"]: row for row in json.loads(proc.stdout)["stages"]}
    assert list(stages) == ["input", "qat"]
    assert stages["qat"]["accuracy"] >= stages["input"]["accuracy"] - 0.02
    assert (tmp_path / "qat.keras").is_file()


def test_compress_with_a_bad_recipe_names_the_stage_and_key(keras_file, calibration_npz, tmp_path):
    (tmp_path / "bad.yaml").write_text("stages:\n  - {kind: prune, sparsity: 2.0}\n")
    proc = run_cli("compress", keras_file, "--recipe", tmp_path / "bad.yaml", "--data", calibration_npz,
                   "--out", tmp_path / "x.keras")
    assert_clean_failure(proc, 2, "stage 1 (prune)", "sparsity")
    assert not (tmp_path / "x.keras").exists()


TFMOT_RECIPE = """
stages:
  - {kind: prune, sparsity: 0.5, schedule: constant, epochs: 2}
  - {kind: qat, epochs: 1}
"""


@pytest.mark.slow
def test_tfmot_engine_compresses_a_legacy_h5_to_full_int8_in_a_subprocess(digits, tmp_path):
    from tests.models import write_legacy_h5

    train, test = digits
    model = write_legacy_h5(tmp_path / "plain.h5", train, batch_norm=False)
    np.savez(tmp_path / "train.npz", x=train.first, y=train.y)
    np.savez(tmp_path / "val.npz", x=test.first, y=test.y)
    (tmp_path / "recipe.yaml").write_text(TFMOT_RECIPE)
    out = tmp_path / "plain_int8.tflite"
    proc = run_cli("compress", model, "--recipe", tmp_path / "recipe.yaml", "--data", tmp_path / "train.npz",
                   "--val", tmp_path / "val.npz", "--out", out, "--engine", "tfmot", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["engine"] == "tfmot" and [r["stage"] for r in result["stages"]] == ["input", "prune", "qat"]
    assert result["stages"][-1]["accuracy"] >= 0.8
    info = json.loads(run_cli("inspect", out, "--json").stdout)
    assert info["is_full_int8"] is True


def test_tfmot_engine_refuses_distillation_and_keras3_files(keras_file, calibration_npz, tmp_path):
    (tmp_path / "r.yaml").write_text("stages:\n  - {kind: distill}\n  - {kind: qat}\n")
    proc = run_cli("compress", tmp_path / "m.h5", "--recipe", tmp_path / "r.yaml", "--data", calibration_npz,
                   "--out", tmp_path / "o.tflite", "--engine", "tfmot")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("compress", keras_file, "--recipe", tmp_path / "r.yaml", "--data", calibration_npz,
                   "--out", tmp_path / "o.tflite", "--engine", "tfmot")
    assert_clean_failure(proc, 2, ".h5")
