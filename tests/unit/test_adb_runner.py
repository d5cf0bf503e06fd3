"""AdbRunner command construction against a stand-in `adb` on PATH that records its argv (no phone here)."""

from __future__ import annotations

import json
import shlex
import stat
import sys
from pathlib import Path

import pytest

from edgecompress.errors import RemoteError
from edgecompress.runtimes.adb import AdbRunner
from edgecompress.runtimes.device import parse_adb_uri

DATA = Path(__file__).resolve().parents[1] / "data"
MODEL = DATA / "tflite" / "conv_dw_dense_int8.tflite"
REMOTE = "/data/local/tmp/edgecompress.abcd1234"

FAKE_ADB = f'''#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
command = " ".join(sys.argv[1:])
if "mktemp" in command:
    print("{REMOTE}")
elif "--graph=" in command:
    sys.stdout.write(open(os.environ["FAKE_ADB_OUTPUT"]).read())
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB)
    adb.chmod(adb.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(DATA / "benchmark_model" / "tensorflow_27948_op_profiling.txt"))
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF stand-in")
    return {"log": log, "binary": binary}


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_nnapi_run_pushes_both_files_runs_with_delegate_flags_and_cleans_up(fake_adb):
    runner = AdbRunner("adb://R58M1234", benchmark_binary=fake_adb["binary"], delegate="nnapi", op_profiling=True)
    measurement = runner.measure(MODEL, runs=30, warmup=3, threads=4)
    argv = calls(fake_adb["log"])
    assert all(call[:2] == ["-s", "R58M1234"] for call in argv)
    assert ["-s", "R58M1234", "push", str(fake_adb["binary"]), f"{REMOTE}/benchmark_model"] in argv
    assert ["-s", "R58M1234", "push", str(MODEL), f"{REMOTE}/model.tflite"] in argv
    run = next(call for call in argv if "--graph=" in " ".join(call))
    words = shlex.split(run[3])
    assert words[0] == f"{REMOTE}/benchmark_model"
    assert {f"--graph={REMOTE}/model.tflite", "--num_runs=30", "--warmup_runs=3", "--num_threads=4",
            "--use_nnapi=true", "--enable_op_profiling=true"} <= set(words)
    assert shlex.split(argv[-1][3]) == ["rm", "-rf", REMOTE]
    assert measurement.timings.mean_ms == pytest.approx(947.35)
    assert measurement.operators[0]["op"] == "DEPTHWISE_CONV_2D"


def test_xnnpack_target_gets_the_xnnpack_flag_and_no_nnapi(fake_adb):
    runner = AdbRunner("adb://emulator-5554", benchmark_binary=fake_adb["binary"], delegate="xnnpack")
    runner.measure(MODEL, runs=5, warmup=1, threads=2)
    run = next(call for call in calls(fake_adb["log"]) if "--graph=" in " ".join(call))
    words = shlex.split(run[3])
    assert "--use_xnnpack=true" in words and not any(w.startswith("--use_nnapi") for w in words)


def test_missing_benchmark_binary_is_a_clear_error(tmp_path):
    with pytest.raises(RemoteError, match="--benchmark-binary"):
        AdbRunner("adb://R58M1234", benchmark_binary=tmp_path / "nope")


@pytest.mark.parametrize("uri", ["adb://", "adb://-s evil", "adb://a;reboot", "ssh://x", "adb://$(reboot)"])
def test_serials_that_could_be_read_as_options_or_commands_are_refused(uri):
    with pytest.raises(RemoteError, match="adb://SERIAL"):
        parse_adb_uri(uri)
