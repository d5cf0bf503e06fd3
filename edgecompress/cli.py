"""The ``edgecompress`` command line: parses arguments, calls the API, prints. No logic of its own.

Exit codes: 0 success, 2 bad input (an ``EdgeCompressError``), 1 internal failure (a bug), 130 interrupted.
Subcommands register themselves in ``_PARSERS``: each has an ``_add_<name>_parser`` and a ``_run_<name>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from edgecompress import __version__
from edgecompress.errors import EdgeCompressError


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _console():
    from rich.console import Console

    return Console(highlight=False)


_PARSERS: list[Callable[[Any], None]] = []


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="edgecompress",
        description="Compress a model, export a calibrated full-int8 TFLite, and validate it per edge target.",
    )
    parser.add_argument("--version", action="version", version=f"edgecompress {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in _PARSERS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgeCompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was written at the output path", file=sys.stderr)
        return 130
