"""Outputs appear complete or not at all, including when the disk fills up."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edgecompress.atomic import atomic_path, atomic_write_bytes


def test_atomic_write_replaces_the_file_in_one_step(tmp_path):
    path = tmp_path / "out" / "model.tflite"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["model.tflite"]


def test_a_failure_inside_the_block_leaves_nothing_behind(tmp_path):
    path = tmp_path / "model.tflite"
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed halfway")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_gives_a_clear_error_and_removes_the_partial_file(tmp_path):
    # RLIMIT_FSIZE makes writes past 64 KiB fail with EFBIG, like a full disk, without needing a tmpfs
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        from edgecompress.atomic import atomic_write_bytes
        from edgecompress.errors import OutputError
        try:
            atomic_write_bytes(Path({str(tmp_path / 'big.tflite')!r}), b"x" * 1_000_000)
        except OutputError as exc:
            print(exc)
            sys.exit(2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "nothing was written" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", ["directory", "symlink", "fifo"])
def test_anything_but_a_regular_file_at_the_output_is_refused(tmp_path, make):
    from edgecompress.errors import OutputError

    out = tmp_path / "out.tflite"
    target = tmp_path / "target.bin"
    target.write_bytes(b"keep")
    if make == "directory":
        out.mkdir()
    elif make == "symlink":
        out.symlink_to(target)
    else:
        import os

        os.mkfifo(out)
    with pytest.raises(OutputError, match="--out"):
        atomic_write_bytes(out, b"new")
    assert target.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tflite", "target.bin"]


def test_an_empty_output_name_is_refused(tmp_path):
    from edgecompress.errors import OutputError

    with pytest.raises(OutputError, match="empty"):
        atomic_write_bytes("", b"x")


def test_a_long_file_name_that_fits_is_written_and_one_that_does_not_is_a_clear_error(tmp_path):
    from edgecompress.errors import OutputError

    fits = tmp_path / ("m" * 240 + ".tflite")
    atomic_write_bytes(fits, b"x")
    assert fits.read_bytes() == b"x"
    with pytest.raises(OutputError, match="too long"):
        atomic_write_bytes(tmp_path / ("m" * 300 + ".tflite"), b"x")


def test_writing_over_an_input_is_refused(tmp_path):
    from edgecompress.atomic import refuse_overwriting_inputs
    from edgecompress.errors import OutputError

    model = tmp_path / "model.keras"
    model.write_bytes(b"model")
    with pytest.raises(OutputError, match="input"):
        refuse_overwriting_inputs(tmp_path / "." / "model.keras", model)
    refuse_overwriting_inputs(tmp_path / "model_int8.tflite", model, None)


@pytest.mark.parametrize("code, words", [(30, "read-only"), (1, "immutable"), (13, "permission denied")])
def test_os_errors_on_the_output_directory_are_one_clear_error(tmp_path, monkeypatch, code, words):
    """Root ignores permission bits and this sandbox cannot remount read-only: the OS error is raised where the
    temporary file is created, as a read-only or immutable directory raises it."""
    import errno
    import os
    import tempfile

    from edgecompress.errors import OutputError

    assert code in (errno.EROFS, errno.EPERM, errno.EACCES)

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match=words):
        atomic_write_bytes(tmp_path / "m.tflite", b"x")
