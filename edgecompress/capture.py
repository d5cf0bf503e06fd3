"""Keep TensorFlow's chatter off the user's terminal (and out of ``--json`` output).

The converter prints "Saved artifact at ..." and pages of signature dumps to stdout from Python, and MLIR
notes to stderr from C++. ``captured_output`` redirects both file descriptors into a temporary file for the
duration of a block; the text is kept so an error can quote it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class Captured:
    """The text a block wrote to stdout and stderr."""

    text: str = ""


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Redirect fd 1 and 2 (and ``sys.stdout``/``sys.stderr``) into a buffer for the block.

    Returns:
        A context manager yielding a ``Captured`` whose ``text`` is filled when the block ends.

    Example:
        >>> with captured_output() as out:
        ...     print("noise")
        >>> out.text.strip()
        'noise'
    """
    captured = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(_FdWriter(1)), contextlib.redirect_stderr(_FdWriter(2)):
                yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


class _FdWriter:
    """A minimal text stream writing straight to a file descriptor (so Python prints land in the sink)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, text: str) -> int:
        os.write(self._fd, text.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
