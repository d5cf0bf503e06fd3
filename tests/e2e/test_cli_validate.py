"""`edgecompress validate` as a user runs it: JSON contract, accuracy gate exit codes, fix, HTML report."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.helpers import assert_clean_failure, run_cli
from tests.integration.test_validate_layers import broken_dense_model
from tests.sshd import unavailable_reason as sshd_unavailable


@pytest.fixture(scope="module")
def files(small_cnn, digits, keras_file, test_npz, calibration_npz, tmp_path_factory):
    from edgecompress.conversion.converter import convert_float
    from edgecompress.conversion.requantize import float_fallback

    out = tmp_path_factory.mktemp("validate")
    train = digits[0].take(200)
    (out / "good_int8.tflite").write_bytes(float_fallback(convert_float(small_cnn), train, []))
    bad = broken_dense_model(small_cnn)
    bad.save(out / "bad.keras")
    (out / "bad_int8.tflite").write_bytes(float_fallback(convert_float(bad), train, []))
    return {"dir": out, "keras": keras_file, "test": test_npz, "calibration": calibration_npz}


@pytest.mark.slow
def test_json_output_has_the_fields_scripts_rely_on(files):
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--reference", files["keras"], "--data",
                   files["test"], "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    for key in ("runtime", "top1", "reference_top1", "drop_points", "agreement", "cosine_mean", "layers"):
        assert key in payload
    assert payload["runtime"] == "host-litert"
    assert 0.9 <= payload["top1"] <= 1.0 and payload["agreement"] >= 0.95
    assert payload["layers"] and {"tensor", "op", "rmse", "snr_db"} <= set(payload["layers"][0])
    diagnosis = payload["layer_matching"]["diagnosis"]
    assert diagnosis.startswith("small:") and any(diagnosis in note for note in payload["notes"])
    assert payload["layer_matching"]["weights_only_snr_db"] > payload["layer_matching"]["output_snr_db"]


@pytest.mark.slow
def test_top1_fields_are_null_without_labels(files, digits, tmp_path):
    unlabeled = tmp_path / "unlabeled.npz"
    np.savez(unlabeled, x=digits[1].first[:50])
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--reference", files["keras"], "--data",
                   unlabeled, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    assert payload["top1"] is None and payload["reference_top1"] is None and payload["drop_points"] is None
    assert payload["agreement"] is not None


@pytest.mark.slow
def test_accuracy_gate_exits_5_when_the_drop_exceeds_the_bound(files):
    proc = run_cli("validate", files["dir"] / "bad_int8.tflite", "--reference", files["dir"] / "bad.keras",
                   "--data", files["test"], "--max-drop", "1.0", "--json")
    assert proc.returncode == 5, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["gate"]["passed"] is False


@pytest.mark.slow
def test_accuracy_gate_exits_0_within_the_bound(files):
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--reference", files["keras"], "--data",
                   files["test"], "--max-drop", "1.0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accuracy gate passed" in proc.stdout


def test_the_accuracy_gate_cannot_pass_when_every_label_is_wrong(files, tmp_path):
    with np.load(files["test"]) as data:
        np.savez(tmp_path / "wrong.npz", x=data["x"][:40], y=np.full(40, 99))
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--reference", files["keras"], "--data",
                   tmp_path / "wrong.npz", "--max-drop", "1.0")
    assert_clean_failure(proc, 2, "wrong.npz", "expected labels in 0..9")


@pytest.mark.slow
def test_fix_float_fallback_reports_before_and_after_and_writes_the_fixed_model(files, tmp_path):
    fixed = tmp_path / "fixed.tflite"
    proc = run_cli("validate", files["dir"] / "bad_int8.tflite", "--reference", files["dir"] / "bad.keras",
                   "--data", files["test"], "--fix", "float-fallback", "--fix-layers", "1", "--calibration",
                   files["calibration"], "--out", fixed, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fix = json.loads(proc.stdout)["fix"]
    assert fix["float_ops"] == ["FULLY_CONNECTED"]
    assert fix["after"]["agreement"] >= fix["before"]["agreement"]
    assert fix["after"]["agreement"] >= 0.98
    assert fixed.is_file()
    assert json.loads(proc.stdout)["layer_matching"]["diagnosis"].startswith("concentrated: 1 operator(s)")


@pytest.mark.slow
def test_microcontroller_target_runs_on_tflite_micro_and_agrees_with_host(files, digits, tmp_path):
    data = tmp_path / "test100.npz"
    np.savez(data, x=digits[1].first[:100], y=digits[1].y[:100])
    model = files["dir"] / "good_int8.tflite"
    micro = run_cli("validate", model, "--reference", files["keras"], "--data", data, "--target",
                    "arduino-nano-33-ble", "--json")
    host = run_cli("validate", model, "--reference", files["keras"], "--data", data, "--json")
    assert micro.returncode == 0 and host.returncode == 0, micro.stderr[-3000:] + host.stderr[-3000:]
    on_micro, on_host = json.loads(micro.stdout), json.loads(host.stdout)
    assert on_micro["runtime"] == "tflite-micro" and on_host["runtime"] == "host-litert"
    assert on_micro["target"] == "arduino-nano-33-ble"
    assert abs(on_micro["top1"] - on_host["top1"]) <= 0.02
    assert on_micro["agreement"] >= 0.97


def test_unknown_target_is_a_clean_error(files):
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--data", files["test"], "--target", "pdp-11")
    assert_clean_failure(proc, 2, "pdp-11")


def test_target_and_a_conflicting_runtime_is_a_clean_error(files):
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--data", files["test"], "--target",
                   "esp32-s3", "--runtime", "host")
    assert_clean_failure(proc, 2, "--runtime host")


def test_accuracy_over_adb_is_refused_with_the_reason(files):
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--data", files["test"], "--device",
                   "adb://emulator-5554")
    assert_clean_failure(proc, 2, "benchmark_model binary only times")


def test_a_microcontroller_target_on_an_ssh_device_is_a_clean_error(files, tmp_path):
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--data", files["test"], "--target", "esp32-s3",
                   "--device", "ssh://pi@127.0.0.1:1", "--known-hosts", tmp_path / "none", "--accept-new-host-key")
    assert_clean_failure(proc, 2, "TFLite Micro", "--device")


@pytest.mark.slow
@pytest.mark.skipif(sshd_unavailable() is not None, reason=sshd_unavailable() or "")
def test_validate_on_a_device_over_ssh_matches_the_host_run(files, tmp_path):
    import sys

    from tests.sshd import LocalSshd

    server = LocalSshd.start(tmp_path / "sshd")
    try:
        common = ["validate", files["dir"] / "good_int8.tflite", "--reference", files["keras"], "--data",
                  files["test"], "--json"]
        remote = run_cli(*common, "--device", server.uri, "--identity", server.identity, "--known-hosts",
                         server.known_hosts, "--remote-python", sys.executable)
        host = run_cli(*common)
    finally:
        server.stop()
    assert remote.returncode == 0, remote.stderr[-3000:]
    on_device, on_host = json.loads(remote.stdout), json.loads(host.stdout)
    assert on_device["runtime"].endswith(server.uri) and on_host["runtime"] == "host-litert"
    for key in ("top1", "agreement", "cosine_mean", "snr_db", "confusion"):
        assert on_device[key] == on_host[key]
    assert any(server.uri in note for note in on_device["notes"])


def test_fix_without_calibration_is_a_clean_error(files):
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--reference", files["keras"], "--data",
                   files["test"], "--fix", "float-fallback")
    assert_clean_failure(proc, 2, "--calibration")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="Debian 'chromium' is not installed (apt-get install chromium)")
def test_html_report_renders_its_sections_and_a_non_blank_chart_in_headless_chromium(files, tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    proc = run_cli("validate", files["dir"] / "good_int8.tflite", "--reference", files["keras"], "--data",
                   files["test"], "--html", page)
    assert proc.returncode == 0, proc.stderr[-3000:]
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in ("summary", "checks", "latency", "accuracy", "layers", "confusion"):
        assert f'id="{section}"' in dom.stdout
    assert 'id="layer-chart"' in dom.stdout
    shot = tmp_path / "shot.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    chart_blue = (image[:, :, 2] > 180) & (image[:, :, 0] < 60) & (image[:, :, 1] < 140)
    chart_red = (image[:, :, 0] > 180) & (image[:, :, 1] < 60) & (image[:, :, 2] < 80)
    assert chart_red.sum() > 500, "the per-layer chart's worst bars (red) did not render"
    assert (chart_blue | chart_red).sum() > 1000
    assert Path(page).read_text().count("<script") == 0
