"""`edgecompress bench` as a user runs it: JSON contract, evidence labels, a real ssh device, clean failures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import assert_clean_failure, run_cli
from tests.sshd import LocalSshd, unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
INT8 = ROOT / "tests" / "data" / "tflite" / "conv_dw_dense_int8.tflite"
FLOAT = ROOT / "tests" / "data" / "tflite" / "conv_dw_dense_float32.tflite"
CONTRACT = {"target", "evidence", "median_ms", "p90_ms", "runs"}


def test_bench_one_target_json_puts_the_targets_estimate_on_top_and_the_host_timing_under_host():
    proc = run_cli("bench", INT8, "--target", "raspberry-pi-4", "--runs", "5", "--warmup", "1", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(proc.stdout)
    assert CONTRACT <= set(payload)
    estimate = next(r for r in payload["rows"] if r["evidence"] == "model-estimate")
    assert (payload["target"], payload["evidence"], payload["median_ms"]) == \
        ("raspberry-pi-4", "model-estimate", estimate["median_ms"])
    assert any("error" in note for note in payload["notes"])
    host = payload["host"]
    assert (host["evidence"], host["runs"], host["threads"]) == ("measured-host", 5, 4)
    assert host["median_ms"] > 0 and host["p90_ms"] >= host["median_ms"]
    assert [row["evidence"] for row in payload["rows"]] == ["model-estimate", "measured-host"]


def test_bench_json_for_a_microcontroller_never_reports_the_host_figure_at_the_top():
    proc = run_cli("bench", INT8, "--target", "esp32-s3", "--runs", "3", "--warmup", "0", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(proc.stdout)
    assert payload["evidence"] == "model-estimate" and payload["target"] == "esp32-s3"
    assert payload["median_ms"] != payload["host"]["median_ms"]
    assert payload["median_ms"] > payload["host"]["median_ms"]


def test_bench_all_lists_host_measurements_and_every_targets_estimate_clearly_marked():
    proc = run_cli("bench", INT8, "--target", "all", "--runs", "3", "--warmup", "0", "--float", FLOAT, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list) and all(CONTRACT <= set(row) for row in rows)
    measured = [r for r in rows if r["evidence"] == "measured-host"]
    assert [(r["target"], r["dtype"]) for r in measured] == [("host", "int8"), ("host", "float32")]
    estimated = {r["target"] for r in rows if r["evidence"] == "model-estimate"}
    assert {"coral-edgetpu", "raspberry-pi-5", "esp32-s3", "ethos-u55"} <= estimated
    assert any(r["evidence"] == "compiler-estimate" and r["target"] == "ethos-u55" and r["median_ms"] for r in rows)
    assert all(r["runs"] == 0 and r["p90_ms"] is None for r in rows if r["evidence"].endswith("estimate"))


def test_bench_table_names_the_evidence_of_every_row():
    proc = run_cli("bench", INT8, "--target", "coral-edgetpu", "--runs", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "measured-host" in proc.stdout and "model-estimate" in proc.stdout
    first = proc.stdout.splitlines()[0]
    assert first.startswith("coral-edgetpu: ") and "model-estimate" in first


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_bench_over_ssh_from_the_command_line(tmp_path):
    server = LocalSshd.start(tmp_path / "sshd")
    try:
        proc = run_cli("bench", INT8, "--target", "raspberry-pi-5", "--device", server.uri, "--identity",
                       server.identity, "--known-hosts", server.known_hosts, "--remote-python", sys.executable,
                       "--runs", "4", "--warmup", "1", "--json")
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        refused = run_cli("bench", INT8, "--target", "raspberry-pi-5", "--device", server.uri, "--identity",
                          server.identity, "--known-hosts", empty, "--remote-python", sys.executable)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(proc.stdout)
    assert (payload["evidence"], payload["runs"], payload["device"]) == ("measured-device", 4, server.uri)
    assert_clean_failure(refused, 2, "host key")


@pytest.mark.parametrize("args, needle", [
    (["--target", "no-such-board"], "no-such-board"),
    (["--target", "android-nnapi", "--device", "adb://R58M1234"], "--benchmark-binary"),
    (["--target", "raspberry-pi-4", "--device", "ftp://host"], "ssh://"),
    (["--target", "raspberry-pi-4", "--runs", "0"], "--runs"),
])
def test_bad_bench_input_is_one_clear_error_line(args, needle):
    assert_clean_failure(run_cli("bench", INT8, *args), 2, needle)


def test_missing_model_is_one_clear_error_line(tmp_path):
    assert_clean_failure(run_cli("bench", tmp_path / "nope.tflite", "--target", "esp32-s3"), 2, "nope.tflite")
