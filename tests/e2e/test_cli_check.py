"""`edgecompress check` and `edgecompress targets` as a user runs them: exit codes, JSON names, clear failures."""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import assert_clean_failure, run_cli
from tests.target_corpus import build_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import tensorflow  # noqa: F401  (imported outside the capture: absl binds its log handler at import)

    from edgecompress.capture import captured_output

    directory = tmp_path_factory.getbasetemp() / "target_corpus"
    directory.mkdir(exist_ok=True)
    with captured_output():
        return {name: build_model(name, directory) for name in
                ("conv_pool_dense_softmax", "large_kernel_stride4_same", "resize_nearest_3x")}


def test_targets_lists_every_profile_as_json():
    proc = run_cli("targets", "--json")
    assert proc.returncode == 0, proc.stderr
    names = {p["name"] for p in json.loads(proc.stdout)}
    assert {"android-nnapi", "coral-edgetpu", "raspberry-pi-4", "raspberry-pi-5", "arduino-nano-33-ble", "esp32-s3",
            "ethos-u55"} <= names


def test_check_exits_0_when_everything_runs_on_the_accelerator(models):
    proc = run_cli("check", models["conv_pool_dense_softmax"], "--target", "ethos-u55", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verdict"] == "accelerated" and report["answered_by"] == "vela"
    assert {"index", "op", "placement", "reason"} <= set(report["operators"][0])


def test_check_exits_3_on_fallback_and_4_with_strict(models):
    path = models["large_kernel_stride4_same"]
    assert run_cli("check", path, "--target", "ethos-u55").returncode == 3
    assert run_cli("check", path, "--target", "ethos-u55", "--strict").returncode == 4


def test_check_exits_4_when_the_model_cannot_run(models):
    proc = run_cli("check", models["resize_nearest_3x"], "--target", "arduino-nano-33-ble", "--json")
    assert proc.returncode == 4
    assert json.loads(proc.stdout)["verdict"] == "unsupported"


def test_check_all_prints_one_json_report_per_target(models):
    proc = run_cli("check", models["conv_pool_dense_softmax"], "--target", "all", "--json", "--rules-only",
                   "--param", "api_level=29")
    reports = json.loads(proc.stdout)
    assert len(reports) >= 7
    nnapi = next(r for r in reports if r["target"] == "android-nnapi")
    assert nnapi["params"] == {"api_level": 29}
    assert proc.returncode == max({"accelerated": 0, "fallback": 3, "unsupported": 4}[r["verdict"]] for r in reports)


def test_check_table_names_the_limit_and_the_value(models):
    proc = run_cli("check", models["large_kernel_stride4_same"], "--target", "ethos-u55", "--rules-only")
    assert "stride 4x4 > max 3" in proc.stdout


def test_malformed_model_gets_a_verdict_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    proc = run_cli("check", bad, "--target", "esp32-s3")
    assert proc.returncode == 4
    assert "not a valid TFLite model" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_unknown_target_is_a_clean_error(models):
    assert_clean_failure(run_cli("check", models["conv_pool_dense_softmax"], "--target", "jetson"), 2, "jetson")


def test_out_of_range_api_level_is_a_clean_error(models):
    proc = run_cli("check", models["conv_pool_dense_softmax"], "--target", "android-nnapi", "--param", "api_level=22")
    assert_clean_failure(proc, 2, "api_level")


def test_check_writes_the_vela_optimised_model_when_asked(models, tmp_path):
    out = tmp_path / "model_vela.tflite"
    proc = run_cli("check", models["conv_pool_dense_softmax"], "--target", "ethos-u55", "--compiled-out", out)
    assert proc.returncode == 0, proc.stderr
    from edgecompress.tflite import read_model

    assert [op.op for op in read_model(out).operators] == ["ethos-u"]
