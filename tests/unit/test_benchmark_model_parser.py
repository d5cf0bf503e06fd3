"""The benchmark_model parser on real output pasted in public issues (tests/data/benchmark_model/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecompress.errors import RemoteError
from edgecompress.runtimes.adb import parse_benchmark_output

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmark_model"


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def test_current_format_gives_the_timed_runs_not_the_warmup():
    report = parse_benchmark_output(recorded("google_research_802_kws_svdf.txt"))
    assert (report.count, report.min_us, report.max_us, report.avg_us, report.std_us) == (1000, 1012, 1190, 1039.66, 22)
    assert report.warmup_count == 478
    assert report.warmup_avg_us == pytest.approx(1041.15)
    assert report.init_us == pytest.approx(17851)


def test_old_format_with_average_inference_timings_line():
    report = parse_benchmark_output(recorded("yuenshome_77_mobilenet_v2_quant.txt"))
    assert (report.count, report.avg_us, report.std_us) == (10, 133690, 230)
    assert report.init_us == pytest.approx(12516)
    assert report.warmup_avg_us == pytest.approx(146548)


def test_op_profiling_run_order_rows_are_parsed():
    report = parse_benchmark_output(recorded("tensorflow_27948_op_profiling.txt"))
    assert report.count == 50 and report.avg_us == 947350
    assert [row["op"] for row in report.operators] == ["DEPTHWISE_CONV_2D"] + ["CONV_2D"] * 5
    first = report.operators[0]
    assert first["name"] == "srnetwork/Conv/Relu"
    assert first["avg_ms"] == pytest.approx(536.830) and first["percent"] == pytest.approx(56.668)
    assert report.init_us == pytest.approx(253800)


def test_info_and_logcat_prefixes_are_ignored():
    text = recorded("google_research_802_kws_svdf.txt")
    info = "\n".join(f"INFO: {line}" for line in text.splitlines())
    logcat = "\n".join(f"05-31 10:31:13.023 21767 21767 I tflite  : {line}" for line in text.splitlines())
    for variant in (info, logcat):
        report = parse_benchmark_output(variant)
        assert (report.count, report.avg_us, report.init_us) == (1000, 1039.66, 17851)


def test_aggregates_become_timings_without_invented_percentiles():
    timings = parse_benchmark_output(recorded("google_research_802_kws_svdf.txt")).timings(warmup=1)
    assert timings.mean_ms == pytest.approx(1.03966)
    assert timings.min_ms == pytest.approx(1.012)
    assert timings.median_ms is None and timings.p90_ms is None
    assert timings.runs == 1000


def test_output_without_statistics_is_a_remote_error():
    with pytest.raises(RemoteError, match="statistics line"):
        parse_benchmark_output("/system/bin/sh: benchmark_model: can't execute: Exec format error")
