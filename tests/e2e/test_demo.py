"""The README's first command: `edgecompress demo` trains, exports, evaluates and writes its files."""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import run_cli


@pytest.mark.slow
def test_demo_writes_model_tflite_and_report_with_int8_within_one_point(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("model.keras", "model_int8.tflite", "report.json"):
        assert (out / name).is_file()
    report = json.loads((out / "report.json").read_text())
    for key in ("float_top1", "int8_top1"):
        assert isinstance(report[key], float) and 0.0 <= report[key] <= 1.0
    for key in ("float_bytes", "int8_bytes"):
        assert isinstance(report[key], int) and report[key] > 0
    assert report["float_top1"] >= 0.95
    assert report["int8_top1"] >= report["float_top1"] - 0.01
    assert report["int8_bytes"] < report["float_bytes"] / 2
    assert report["full_int8"] is True
    assert report["error_diagnosis"].startswith(("small:", "spread:", "concentrated:"))
    assert "where the int8 error is" in (out / "report.html").read_text()
    assert "int8" in proc.stdout
    from edgecompress.profile import list_targets

    assert sorted(row["target"] for row in report["targets"]) == sorted(list_targets())
    assert {row["verdict"] for row in report["targets"]} <= {"accelerated", "fallback", "unsupported"}
    assert (out / "report.html").read_text().count("<section") >= 4
    evidence = {(row["target"], row["evidence"]) for row in report["latency"]}
    assert ("host", "measured-host") in evidence
    assert {target for target, kind in evidence if kind == "model-estimate"} == set(list_targets())
    assert all(row["median_ms"] > 0 for row in report["latency"])
    leftovers = [p.name for p in out.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


@pytest.mark.slow
def test_demo_with_the_default_recipe_reports_a_smaller_full_int8_model(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", out, "--recipe")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    compressed = report["compressed"]
    assert [row["stage"] for row in compressed["stages"]] == ["input", "distill", "prune", "cluster", "qat"]
    assert compressed["full_int8"] is True
    assert compressed["gzip_bytes"] * 10 <= compressed["float_gzip_bytes"]
    assert compressed["total_macs"] * 3 <= report["total_macs"]
    assert compressed["int8_top1"] >= report["float_top1"] - 0.015
    assert (out / "compressed_int8.tflite").is_file() and (out / "compressed.keras").is_file()
