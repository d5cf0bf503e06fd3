"""Values a user can type are bounded where the stage takes them: one clear error instead of a crash or a hang."""

from __future__ import annotations

import pytest

from edgecompress.errors import InvalidModelError, ProfileError, RemoteError
from tests.tflite_craft import conv_model


@pytest.mark.parametrize("uri", ["ssh://[bad", "ssh://pi@[::1", "ssh://[]:22"])
def test_a_malformed_ssh_address_is_a_remote_error(uri):
    from edgecompress.runtimes.device import parse_ssh_uri

    with pytest.raises(RemoteError, match="ssh://user@host"):
        parse_ssh_uri(uri)


def test_an_ipv6_ssh_address_still_parses():
    from edgecompress.runtimes.device import parse_ssh_uri

    assert parse_ssh_uri("ssh://pi@[fe80::1]:2222").host == "fe80::1"


@pytest.mark.parametrize("options, needle", [({"threads": 1_000_000}, "--threads"), ({"threads": 0}, "--threads"),
                                             ({"runs": 10**9}, "--runs"), ({"warmup": 10**9}, "--warmup")])
def test_bench_counts_are_bounded_before_anything_runs(tmp_path, options, needle):
    from edgecompress.bench import measured_rows

    model = tmp_path / "m.tflite"
    model.write_bytes(conv_model())
    with pytest.raises(ProfileError, match=needle):
        measured_rows(model, "raspberry-pi-4", **options)


@pytest.mark.parametrize("arena", [-5, 0, 10**15, 1.5, True])
def test_a_tflm_arena_outside_any_board_is_refused_before_allocation(arena):
    pytest.importorskip("tflite_micro")
    from edgecompress.runtimes.micro_eval import MicroEvalRunner

    with pytest.raises(InvalidModelError, match="--arena-size"):
        MicroEvalRunner(conv_model(), arena_size=arena)


def test_every_runtime_answers_the_one_interpreter_and_timer_protocols(tmp_path):
    """One interface per role: the interpreters validate uses and the timers bench uses."""
    from edgecompress.runtimes.adb import AdbRunner
    from edgecompress.runtimes.host import HostDevice, HostRunner
    from edgecompress.runtimes.runner import Interpreter, Runner
    from edgecompress.runtimes.ssh import SshRunner

    assert isinstance(HostRunner(conv_model()), Interpreter)
    assert isinstance(HostDevice(), Runner)
    assert isinstance(SshRunner("ssh://pi@127.0.0.1"), Runner)
    binary, adb = tmp_path / "benchmark_model", tmp_path / "adb"  # no phone here: a stand-in adb, never run
    binary.write_bytes(b"")
    adb.write_text("#!/bin/sh\nexit 1\n")
    adb.chmod(0o755)
    assert isinstance(AdbRunner("adb://emulator-5554", benchmark_binary=str(binary), adb=str(adb)), Runner)
    if __import__("importlib").util.find_spec("tflite_micro") is not None:
        from edgecompress.runtimes.micro_eval import MicroEvalRunner

        assert isinstance(MicroEvalRunner(conv_model()), Interpreter)
