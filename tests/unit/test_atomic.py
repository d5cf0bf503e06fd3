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
