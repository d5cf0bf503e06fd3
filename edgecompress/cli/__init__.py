"""The ``edgecompress`` command line: parses arguments, calls the pipeline, prints. No logic of its own.

Exit codes: 0 success, 2 bad input (an ``EdgeCompressError``), 1 internal failure (a bug), 130 interrupted;
``check`` and ``validate`` add their own (``edgecompress.cli.commands``). Every option is declared once in
``edgecompress.cli.options``; each subcommand in ``edgecompress.cli.commands.COMMANDS`` names the options it takes
and its handler.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from edgecompress import __version__
from edgecompress.capture import start_tensorflow_quietly
from edgecompress.cli.commands import COMMANDS
from edgecompress.cli.options import add_options
from edgecompress.cli.preflight import TENSORFLOW_COMMANDS, preflight
from edgecompress.errors import EdgeCompressError

__all__ = ["INTERRUPTED_EXIT", "build_parser", "main", "run"]


class _Parser(argparse.ArgumentParser):
    """argparse with bad-option errors in the house format: one ``error:`` line naming the fix, exit 2."""

    def error(self, message: str) -> Any:
        print(f"error: {self.prog}: {message}.{_did_you_mean(message)} See '{self.prog} --help'.", file=sys.stderr)
        raise SystemExit(2)


def _did_you_mean(message: str) -> str:
    """`` Did you mean 'export'?`` for argparse's "invalid choice" message when one choice is close, else ``""``."""
    import difflib
    import re

    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not found:
        return ""
    choices = re.findall(r"'([^']*)'", found.group(2))
    close = difflib.get_close_matches(found.group(1), choices, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand of ``COMMANDS``.

    Returns:
        The parser; ``parse_args`` gives a namespace whose ``func`` is the chosen command's handler.

    Example:
        >>> build_parser().parse_args(["targets", "--json"]).json
        True
    """
    parser = _Parser(
        prog="edgecompress",
        description="Compress a model, export a calibrated full-int8 TFLite, and validate it per edge target.",
    )
    parser.add_argument("--version", action="version", version=f"edgecompress {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.description)
        add_options(sub, command.options)
        sub.set_defaults(func=command.handler, options=command.options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, 2 for bad input, 130 when interrupted, or the command's own.

    Example:
        >>> main(["targets", "--json"])  # doctest: +SKIP
        0
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    interrupted = _InterruptFlag()
    previous = signal.signal(signal.SIGINT, interrupted.handler)
    try:
        preflight(args, args.options)
        if args.command in TENSORFLOW_COMMANDS:
            start_tensorflow_quietly()
        code = int(args.func(args) or 0)
        interrupted.handling = True
        if interrupted.seen:
            # the KeyboardInterrupt was raised where Python ignores exceptions (a TensorFlow __del__) and the
            # command ran to the end: its outputs are complete, so say so rather than claim nothing was written
            print("interrupt ignored: TensorFlow's cleanup code swallowed it and the command ran to the end; the "
                  "outputs are complete", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        interrupted.handling = True
        return _interrupted()
    except EdgeCompressError as exc:
        interrupted.handling = True
        # TensorFlow's converter can swallow the KeyboardInterrupt and fail with an unrelated error instead
        if interrupted.seen:
            return _interrupted()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:
        interrupted.handling = True
        if interrupted.seen:
            return _interrupted()
        raise
    finally:
        # the caller's handler comes back (``run`` then ignores Ctrl-C while the process exits)
        signal.signal(signal.SIGINT, previous)


class _InterruptFlag:
    """Remembers that Ctrl-C was pressed and raises KeyboardInterrupt, every time until the interrupt is handled.

    Raising again on a second Ctrl-C matters: the first KeyboardInterrupt can land in a finalizer (TensorFlow's
    ``__del__`` methods), where Python prints and drops it. Once ``main`` is handling an interrupt (or has
    finished), further presses only set the flag, so they cannot break the exit path.
    """

    seen = False
    handling = False

    def handler(self, signum: int, frame: Any) -> None:
        self.seen = True
        if self.handling:
            return
        raise KeyboardInterrupt


def run() -> None:
    """The ``edgecompress`` command: ``main()``, then exit with its code.

    After Ctrl-C, CPython may still end the process by re-raising SIGINT (it does when the interrupt landed in
    Python code that C called, e.g. through pybind11, even though the KeyboardInterrupt was handled), which a
    parent sees as "killed by signal 2" rather than exit 130. So an interrupted run flushes, runs the exit
    handlers (temporary directories) itself and leaves with exactly 130. A Ctrl-C that arrives after the work
    finished (outputs already renamed into place) is ignored while TensorFlow tears down, so the exit code
    reports the work, not a signal.
    """
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == INTERRUPTED_EXIT:
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED_EXIT)
    sys.exit(code)


INTERRUPTED_EXIT = 130


def _interrupted() -> int:
    print("interrupted: nothing was written at the output path", file=sys.stderr)
    return INTERRUPTED_EXIT
