"""Atomic output: every file edgecompress writes appears complete or not at all.

Data is written to a temporary name in the destination directory, flushed and fsynced, then renamed over the
final name (``os.replace`` is atomic on POSIX within one filesystem). A failure or a kill before the rename
leaves only the temporary file, whose name (``.name.tmp-XXXX``) cannot be mistaken for a finished output, and
the normal error path removes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgecompress.errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    Args:
        path: the final output path (a file, or a directory for SavedModel-like outputs).

    Returns:
        A context manager yielding the temporary ``Path`` to write to.

    Example:
        >>> with atomic_path("model.keras") as tmp:  # doctest: +SKIP
        ...     model.save(tmp)
    """
    final = Path(path)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{parent}: cannot create the output directory ({exc.strerror}). "
                          "Choose a writable --out location.") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", suffix=final.suffix, dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # callers such as keras.Model.save want to create the file themselves
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise OutputError(f"{final}: the disk is full ({exc.strerror}); nothing was written. "
                              "Free space or choose another --out location.") from exc
        if isinstance(exc, PermissionError):
            raise OutputError(f"{final}: permission denied; nothing was written. "
                              "Choose a writable --out location.") from exc
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the final path.

    Args:
        path: destination file.
        data: the bytes to write.

    Returns:
        The destination as a ``Path``.

    Example:
        >>> atomic_write_bytes("/tmp/x.bin", b"abc")  # doctest: +SKIP
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the final path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
