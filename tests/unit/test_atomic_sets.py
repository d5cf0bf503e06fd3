"""Output sets (the TFLite Micro sources, the demo's directory) replace an older set as one, or not at all."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from edgecompress.atomic import atomic_directory
from edgecompress.errors import OutputError

DATA = Path(__file__).resolve().parents[1] / "data" / "tflite"
MICRO = {"model_data.h", "model_data.cc", "op_resolver.h", "arena_size.h"}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _old_set(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    for name in sorted(MICRO):
        (folder / name).write_bytes(f"old {name}\n".encode())
    return _snapshot(folder)


def test_a_new_set_replaces_the_old_one_whole(tmp_path):
    old = _old_set(tmp_path / "m_micro")
    with atomic_directory(tmp_path / "m_micro", replaces=MICRO) as tmp:
        (tmp / "model_data.cc").write_text("new")
    assert _snapshot(tmp_path / "m_micro") == {"model_data.cc": b"new"} != old
    assert [p.name for p in tmp_path.iterdir()] == ["m_micro"]


def test_a_writer_failing_midway_leaves_the_old_set_byte_identical_and_no_temp(tmp_path):
    old = _old_set(tmp_path / "m_micro")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_directory(tmp_path / "m_micro", replaces=MICRO) as tmp:
            (tmp / "model_data.cc").write_text("new model")
            raise RuntimeError("killed midway")
    assert _snapshot(tmp_path / "m_micro") == old
    assert [p.name for p in tmp_path.iterdir()] == ["m_micro"]


def test_a_full_disk_says_nothing_of_the_set_was_written_and_the_old_set_is_kept(tmp_path):
    old = _old_set(tmp_path / "m_micro")
    with pytest.raises(OutputError, match="disk is full.*none of its files was written and the previous set is "
                                          "unchanged"):
        with atomic_directory(tmp_path / "m_micro", replaces=MICRO):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert _snapshot(tmp_path / "m_micro") == old
    assert [p.name for p in tmp_path.iterdir()] == ["m_micro"]


def test_a_directory_with_other_files_is_not_replaced(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("mine")
    with pytest.raises(OutputError, match="thesis.tex.*would be deleted"):
        with atomic_directory(tmp_path / "out", replaces=MICRO):
            pass
    assert (tmp_path / "out" / "thesis.tex").read_text() == "mine"


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_a_file_or_link_where_the_set_goes_is_refused(tmp_path, kind):
    target = tmp_path / "m_micro"
    if kind == "file":
        target.write_text("x")
    else:
        (tmp_path / "real").mkdir()
        target.symlink_to(tmp_path / "real")
    with pytest.raises(OutputError, match="is not a directory edgecompress wrote"):
        with atomic_directory(target, replaces=MICRO):
            pass


def test_micro_sources_interrupted_after_two_files_leave_the_old_sources_intact(tmp_path, monkeypatch):
    from edgecompress.pipeline.targets import write_micro_artifacts
    from edgecompress.tflite import read_model

    model = next(iter(sorted(DATA.glob("*.tflite"))))
    old = _old_set(tmp_path / "m_micro")
    real_write_text = Path.write_text
    calls = []

    def write_then_die(self, *args, **kwargs):
        calls.append(self.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_micro_artifacts(model.read_bytes(), tmp_path / "m_micro", read_model(model), 4096)
    monkeypatch.undo()
    assert len(calls) == 3
    assert _snapshot(tmp_path / "m_micro") == old
    assert [p.name for p in tmp_path.iterdir()] == ["m_micro"]
    written = write_micro_artifacts(model.read_bytes(), tmp_path / "m_micro", read_model(model), 4096)
    assert {p.name for p in written.values()} == set(_snapshot(tmp_path / "m_micro")) == MICRO
    assert "kTensorArenaSize" in written["arena"].read_text()
