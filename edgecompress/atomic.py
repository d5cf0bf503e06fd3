"""Atomic output: every file edgecompress writes appears complete or not at all.

Data is written to a temporary name in the destination directory, flushed and fsynced, then renamed over the
final name (``os.replace`` is atomic on POSIX within one filesystem). A failure or a kill before the rename
leaves only the temporary file, whose name (``.name.tmp-XXXX``) cannot be mistaken for a finished output, and
the normal error path removes it.

An output *set* (the TFLite Micro sources, the demo's directory) is written the same way one level up
(``atomic_directory``): every file goes into a temporary sibling directory, which replaces the old set in one
rename once it is complete, so a reader never sees new files beside old ones.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

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
    final = _checked_destination(path)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{parent}: cannot create the output directory ({exc.strerror}). "
                          "Choose a writable --out location.") from exc
    try:
        # a short prefix: the temporary name must fit wherever the final name fits
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name[:32]}.tmp-", suffix=final.suffix[:16], dir=parent)
    except OSError as exc:
        raise _output_error(final, exc) from exc
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
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _output_error(final, exc) from exc
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, replaces: Collection[str]) -> Iterator[Path]:
    """Yield a temporary sibling directory; once the block completes it replaces ``path`` as one set.

    An existing ``path`` is replaced only after the new set is complete, and only when it holds nothing but
    names from ``replaces`` (a previous set), so unrelated user files are never deleted. A failure or Ctrl-C
    inside the block removes the temporary directory and leaves the old set byte-identical.

    Args:
        path: the final output directory.
        replaces: the file names a previous set may hold.

    Returns:
        A context manager yielding the temporary directory (``Path``) to write the set into.

    Example:
        >>> with atomic_directory("out_micro", replaces={"model_data.cc"}) as tmp:  # doctest: +SKIP
        ...     (tmp / "model_data.cc").write_text(source)
    """
    final = check_output_set(path, replaces=replaces)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name[:32]}.tmp-", dir=final.parent))
    except OSError as exc:
        raise _output_error(final, exc) from exc
    try:
        yield tmp
        for file in tmp.iterdir():
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        _swap_into_place(tmp, final)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            kept = "the previous set is unchanged" if final.exists() else "there was no previous set"
            reason = ("the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
                      else exc.strerror or type(exc).__name__)
            raise OutputError(f"{final}: cannot write the output set ({reason}); none of its files was written "
                              f"and {kept}. Free space or choose another --out location.") from exc
        raise


def check_output_set(path: str | os.PathLike[str], *, replaces: Collection[str]) -> Path:
    """Refuse an output-set directory before any work starts (see ``atomic_directory``).

    Example:
        >>> check_output_set("build/new_demo", replaces={"report.json"})
        PosixPath('build/new_demo')
    """
    final, mode = _existing(path, "a directory name")
    if mode is None:
        return final
    if stat.S_ISLNK(mode) or not stat.S_ISDIR(mode):
        raise OutputError(f"{final}: exists and is not a directory edgecompress wrote (a file, a link or a "
                          "device); it will not be replaced. Remove it or choose another --out.")
    foreign = sorted(entry.name for entry in final.iterdir() if entry.name not in replaces)
    if foreign:
        raise OutputError(f"{final}: holds files that are not part of an edgecompress output set "
                          f"({', '.join(foreign[:3])}); they would be deleted. Choose an empty or new --out.")
    return final


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is exchanged atomically (Linux renameat2) or, where
    that is unavailable, moved aside first and deleted only after the new set is in place."""
    if not final.exists():
        os.rename(tmp, final)
        return
    if _exchange(tmp, final):
        _remove(tmp)  # tmp now holds the old set
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name[:32]}.old-", dir=final.parent))
    os.rmdir(aside)
    os.rename(final, aside)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(aside, final)
        raise
    _remove(aside)


def _exchange(a: Path, b: Path) -> bool:
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def _existing(path: str | os.PathLike[str], expected: str) -> tuple[Path, int | None]:
    """``path`` as a ``Path`` and the mode of what is there (``None`` for a new name); an empty path is refused."""
    if not str(path).strip():
        raise OutputError(f"--out is empty: expected {expected}. Pass --out PATH.")
    final = Path(path)
    try:
        return final, os.lstat(final).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return final, None
    except OSError as exc:
        raise _output_error(final, exc) from exc


def _checked_destination(path: str | os.PathLike[str]) -> Path:
    """The output path, refused when empty or when something other than a regular file is there."""
    final, mode = _existing(path, "a file name")
    if mode is None:
        return final  # a new name; an unusable parent is reported where the directory is created
    if stat.S_ISLNK(mode):
        raise OutputError(f"{final}: is a symbolic link; edgecompress writes only regular files or new names. "
                          "Pass the real path as --out.")
    if stat.S_ISDIR(mode):
        raise OutputError(f"{final}: is a directory. Pass a file name as --out (e.g. {final / 'model_int8.tflite'}).")
    if not stat.S_ISREG(mode):
        raise OutputError(f"{final}: is not a regular file (a device, a socket or a pipe); edgecompress will not "
                          "replace it. Pass a file name as --out.")
    return final


def _output_error(final: Path, exc: OSError) -> OutputError:
    reasons = {errno.EROFS: "the file system is read-only", errno.ENAMETOOLONG: "the file name is too long",
               errno.EACCES: "permission denied", errno.EPERM: "the directory does not allow it (immutable?)",
               errno.ENOTDIR: "a part of the path is not a directory", errno.EISDIR: "it is a directory",
               errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}
    reason = reasons.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return OutputError(f"{final}: cannot write here ({reason}); nothing was written. Choose another --out location.")


def refuse_overwriting_inputs(out: str | os.PathLike[str], *inputs: Any) -> None:
    """Raise ``OutputError`` when ``out`` names one of the command's input files (or the same file by another name).

    Example:
        >>> refuse_overwriting_inputs("model_int8.tflite", "model.keras")
    """
    for source in inputs:
        if source is None or not isinstance(source, (str, os.PathLike)) or not str(source):
            continue
        try:
            same = os.path.samefile(out, source)
        except OSError:
            same = False
        if same or Path(out).resolve() == Path(source).resolve():
            raise OutputError(f"{out}: is an input of this command ({source}); writing there would destroy it. "
                              "Pass a different --out.")


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


def check_output(out: str | os.PathLike[str], *inputs: Any) -> Path:
    """Refuse ``out`` before any work starts: empty, not a regular file, or one of the command's inputs.

    Args:
        out: the output path the command will write.
        *inputs: the command's input paths (non-path values such as arrays are ignored).

    Returns:
        ``out`` as a ``Path``.

    Example:
        >>> check_output("model_int8.tflite", "model.keras", "calibration.npz")
        PosixPath('model_int8.tflite')
    """
    final = _checked_destination(out)
    refuse_overwriting_inputs(final, *inputs)
    return final
