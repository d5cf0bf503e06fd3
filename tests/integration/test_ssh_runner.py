"""The ssh runner against a real OpenSSH server on 127.0.0.1: timings, host keys, quoting, hangs, garbage, drops.

The "device" is this machine: the remote Python is this test's interpreter (or a small shell script standing in
for a broken device). Every test also checks that the remote temporary directory is gone afterwards.
"""

from __future__ import annotations

import glob
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecompress.errors import RemoteError
from edgecompress.runtimes.device import parse_ssh_uri
from edgecompress.runtimes.ssh import SshRunner
from tests.sshd import LocalSshd, unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
INT8_MODEL = ROOT / "tests" / "data" / "tflite" / "conv_dw_dense_int8.tflite"
FLOAT_MODEL = ROOT / "tests" / "data" / "tflite" / "conv_dw_dense_float32.tflite"

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = LocalSshd.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def remote_dirs():
    """The set of remote temp dirs created during a test (the device is this machine)."""
    before = set(glob.glob("/tmp/edgecompress-bench.*"))
    created: set[str] = set()

    def leftover() -> set[str]:
        created.update(set(glob.glob("/tmp/edgecompress-bench.*")) - before)
        return {d for d in created if os.path.exists(d)}

    return leftover


def runner(sshd, **kwargs) -> SshRunner:
    options = {"identity": sshd.identity, "known_hosts": sshd.known_hosts, "remote_python": sys.executable,
               "timeout": 60.0}
    options.update(kwargs)
    return SshRunner(sshd.uri, **options)


def fake_python(directory: Path, body: str, name: str = "python") -> Path:
    """A shell script standing in for the device's Python; ``$3`` is the remote model path."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_bench_over_ssh_returns_per_run_timings_and_removes_its_directory(sshd, remote_dirs):
    measurement = runner(sshd).measure(INT8_MODEL, runs=7, warmup=2, threads=1)
    assert measurement.timings.runs == 7
    assert len(measurement.timings.samples_ms) == 7
    assert 0 < measurement.timings.min_ms <= measurement.timings.median_ms <= measurement.timings.p99_ms
    assert measurement.runtime.startswith("ai_edge_litert")
    assert measurement.dtype == "int8"
    assert measurement.peak_rss_bytes and measurement.peak_rss_bytes > 1_000_000
    assert measurement.device == sshd.uri
    assert remote_dirs() == set()


def test_float_and_int8_models_run_in_one_session(sshd, remote_dirs):
    measured = runner(sshd).measure_many([FLOAT_MODEL, INT8_MODEL], runs=3, warmup=1, threads=1)
    assert [m.dtype for m in measured] == ["float32", "int8"]
    assert [m.model for m in measured] == [FLOAT_MODEL.name, INT8_MODEL.name]
    assert remote_dirs() == set()


def test_unknown_host_key_is_refused(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(RemoteError, match="host key"):
        runner(sshd, known_hosts=empty).measure(INT8_MODEL, runs=1, warmup=0)


def test_changed_host_key_is_refused_even_with_accept_new(sshd, tmp_path):
    wrong = tmp_path / "known_hosts"
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIHR5cGljYWxseSBhIGRpZmZlcmVudCBrZXkgMTIzNDU2"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {other}\n")
    with pytest.raises(RemoteError, match="host key"):
        runner(sshd, known_hosts=wrong, accept_new_host_key=True).measure(INT8_MODEL, runs=1, warmup=0)


def test_accept_new_host_key_records_a_first_seen_key(sshd, tmp_path):
    fresh = tmp_path / "known_hosts"
    fresh.write_text("")
    runner(sshd, known_hosts=fresh, accept_new_host_key=True).measure(INT8_MODEL, runs=1, warmup=0)
    assert "ssh-ed25519" in fresh.read_text()


def test_shell_metacharacters_in_paths_are_not_executed(sshd, tmp_path, remote_dirs):
    marker = "edgecompress-injected"
    hostile = f"a b'c\"d; touch {marker}-1 #$(touch {marker}-2)`touch {marker}-3`"
    model_dir = tmp_path / hostile
    model_dir.mkdir()
    model = model_dir / f"m o'del; touch {marker}-4.tflite"
    model.write_bytes(INT8_MODEL.read_bytes())
    python = fake_python(tmp_path / f"py dir; touch {marker}-5 $(touch {marker}-6)", f'exec "{sys.executable}" "$@"',
                         name=f"python 'x'; touch {marker}-7")
    measurement = runner(sshd, remote_python=str(python)).measure(model, runs=2, warmup=0)
    assert measurement.model == model.name
    assert measurement.timings.runs == 2
    for where in (Path.home(), tmp_path, model_dir, Path("/tmp"), Path.cwd()):
        assert not list(where.glob(f"{marker}-*")), f"injected command ran in {where}"
    assert remote_dirs() == set()


@pytest.mark.slow
def test_a_hung_device_times_out_and_its_directory_and_process_are_removed(sshd, tmp_path, remote_dirs):
    seen = tmp_path / "seen"
    python = fake_python(tmp_path / "bin", f'echo "$3" > {seen}; echo $$ >> {seen}; exec sleep 120')
    with pytest.raises(RemoteError, match="within 3 s"):
        runner(sshd, remote_python=str(python), timeout=3.0).measure(INT8_MODEL, runs=1, warmup=0)
    model_path, pid = seen.read_text().split()
    assert not os.path.exists(os.path.dirname(model_path))
    assert _gone(int(pid))
    assert remote_dirs() == set()


@pytest.mark.parametrize("output", ["hello, this is not JSON", "EDGECOMPRESS_BENCH_JSON {not json",
                                    'EDGECOMPRESS_BENCH_JSON {"ok": true, "samples_ms": "fast"}',
                                    'EDGECOMPRESS_BENCH_JSON [1, 2]',
                                    'EDGECOMPRESS_BENCH_JSON {"ok": true, "samples_ms": [1.0], "warmup": "abc"}',
                                    'EDGECOMPRESS_BENCH_JSON {"ok": true, "samples_ms": [1.0, -3.0]}',
                                    'EDGECOMPRESS_BENCH_JSON {"ok": true, "samples_ms": [1.0, NaN]}'])
def test_garbage_from_the_device_is_a_remote_error(sshd, tmp_path, remote_dirs, output):
    python = fake_python(tmp_path / "bin", f"echo '{output}'")
    with pytest.raises(RemoteError, match="expected"):
        runner(sshd, remote_python=str(python)).measure(INT8_MODEL, runs=1, warmup=0)
    assert remote_dirs() == set()


def test_a_runner_error_reported_by_the_device_is_a_remote_error(sshd, tmp_path):
    python = fake_python(tmp_path / "bin", """echo 'EDGECOMPRESS_BENCH_JSON {"ok": false, "error": "numpy missing"}'""")
    with pytest.raises(RemoteError, match="numpy missing"):
        runner(sshd, remote_python=str(python)).measure(INT8_MODEL, runs=1, warmup=0)


def test_a_connection_dropped_mid_run_is_a_remote_error_and_is_cleaned_up(sshd, tmp_path, remote_dirs):
    seen = tmp_path / "seen"
    # The script's parent is the sshd session process: killing it drops the connection mid-run.
    python = fake_python(tmp_path / "bin", f'echo "$3" > {seen}; kill -9 $PPID; exec sleep 30')
    with pytest.raises(RemoteError, match="connection failed or dropped"):
        runner(sshd, remote_python=str(python)).measure(INT8_MODEL, runs=1, warmup=0)
    assert not os.path.exists(os.path.dirname(seen.read_text().strip()))
    assert remote_dirs() == set()


def test_an_unreachable_device_is_a_remote_error(sshd, tmp_path):
    free = sshd.port + 1 if sshd.port < 65535 else sshd.port - 1
    with pytest.raises(RemoteError):
        SshRunner(f"ssh://{sshd.user}@127.0.0.1:{free}", identity=sshd.identity, known_hosts=sshd.known_hosts,
                  connect_timeout=5).measure(INT8_MODEL, runs=1, warmup=0)


@pytest.mark.parametrize("uri", ["ssh://-oProxyCommand=touch@host", "ssh://user@-oProxyCommand=x",
                                 "http://host", "ssh://user@host/path", "ssh://us;er@host", "ssh://user@host:99999"])
def test_device_addresses_that_ssh_could_read_as_options_are_refused(uri):
    with pytest.raises(RemoteError, match="expected"):
        parse_ssh_uri(uri)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_samples_run_on_the_device_give_the_host_outputs_bit_for_bit(sshd, remote_dirs):
    from edgecompress.runtimes.host import HostRunner
    from edgecompress.runtimes.ssh import SshEvalRunner

    host = HostRunner(INT8_MODEL)
    shape = [12, *(int(d) for d in host.input_details[0]["shape"][1:])]
    x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    device = SshEvalRunner(INT8_MODEL, runner(sshd))
    on_device, on_host = device.predict(x)[0], host.predict(x)[0]
    assert on_device.shape == on_host.shape and on_device.dtype == np.float32
    np.testing.assert_array_equal(on_device, on_host)
    assert device.runtime_name.endswith(sshd.uri) and len(device.measurement.timings.samples_ms) == 12
    assert remote_dirs() == set()


@pytest.mark.parametrize("body", [
    # a runner that claims success but leaves no outputs file behind
    """echo 'EDGECOMPRESS_BENCH_JSON {"ok": true, "samples_ms": [1.0]}'""",
    # one that writes garbage where the outputs should be
    """for a; do last="$a"; done; echo garbage > "$last"; echo 'EDGECOMPRESS_BENCH_JSON {"ok": true, "samples_ms": [1.0]}'""",
])
def test_a_device_that_returns_no_or_unreadable_outputs_is_a_remote_error(sshd, tmp_path, remote_dirs, body):
    from edgecompress.runtimes.ssh import SshEvalRunner

    python = fake_python(tmp_path / "bin", body)
    with pytest.raises(RemoteError, match="expected"):
        SshEvalRunner(INT8_MODEL, runner(sshd, remote_python=str(python))).predict(
            np.zeros((2, 8, 8, 1), np.float32))
    assert remote_dirs() == set()


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_device_flooding_output_is_stopped_at_the_cap_and_its_process_killed(sshd, tmp_path, remote_dirs,
                                                                               stream):
    seen = tmp_path / "seen"
    redirect = " >&2" if stream == "stderr" else ""
    python = fake_python(tmp_path / "bin", f'echo $$ > {seen}; exec yes flood{redirect}')
    with pytest.raises(RemoteError, match=f"expected at most \\d+ bytes on {stream} from the benchmark"):
        runner(sshd, remote_python=str(python)).measure(INT8_MODEL, runs=1, warmup=0)
    assert _gone(int(seen.read_text()))
    assert remote_dirs() == set()


def test_an_outputs_file_larger_than_its_cap_is_not_downloaded_whole(sshd, tmp_path, remote_dirs):
    from edgecompress.runtimes.ssh import SshEvalRunner

    # a sparse 1 GiB "outputs.npz": cat streams zeros fast, and the download must stop at its cap
    python = fake_python(tmp_path / "bin", 'for a; do last="$a"; done; truncate -s 1G "$last"; '
                                           """echo 'EDGECOMPRESS_BENCH_JSON {"ok": true, "samples_ms": [1.0]}'""")
    with pytest.raises(RemoteError, match="expected at most \\d+ bytes on stdout from the download of the outputs"):
        SshEvalRunner(INT8_MODEL, runner(sshd, remote_python=str(python))).predict(
            np.zeros((2, 8, 8, 1), np.float32))
    assert remote_dirs() == set()
