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


# Lines TensorFlow's C++ start-up writes on every CPU-only machine before absl logging is initialised (so
# TF_CPP_MIN_LOG_LEVEL does not reach them): the absl preamble, oneDNN's notice, and the CUDA probe's "could not
# find drivers" and "failed call to cuInit" (no GPU is expected). Anything else is passed through.
_STARTUP_NOISE = ("All log messages before absl::InitializeLog() is called", "port.cc:", "cudart_stub.cc:",
                  "cuda_platform.cc:", "cuda_executor.cc:", "cuda_diagnostics.cc:", "gpu_device.cc:",
                  "computation_placer.cc:", "cpu_feature_guard.cc:", "This TensorFlow binary is optimized",
                  "To enable the following instructions")


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with the known start-up lines dropped; other lines pass through.

    Call it once, before the first TensorFlow work, so nothing of TensorFlow's precedes our first line. Only
    fd 2 is redirected (not ``sys.stderr``: absl's Python handler keeps the stream it sees at import), and every
    line that is not in ``_STARTUP_NOISE`` is written back to stderr, so a real error still shows.

    Example:
        >>> start_tensorflow_quietly()  # doctest: +SKIP
    """
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
    kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in _STARTUP_NOISE)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
