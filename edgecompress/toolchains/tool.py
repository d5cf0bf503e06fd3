"""Run an external compiler or tool the one way STYLE.md asks for: an argument list, a timeout, a checked exit code."""

from __future__ import annotations

import subprocess

from edgecompress.errors import ToolchainError


def run_tool(name: str, cmd: list[str], *, timeout: float, on_timeout: str,
             on_failure: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and return the finished process; a timeout or a non-zero exit is a ``ToolchainError`` naming the tool.

    Args:
        name: the tool's name for messages (``"vela"``).
        cmd: the argument list (never a shell string).
        timeout: seconds before the tool is killed.
        on_timeout: the remedy sentence when it times out.
        on_failure: the remedy sentence when it exits non-zero (its last output lines are quoted too).

    Returns:
        The ``CompletedProcess`` (exit code 0), with its stdout and stderr as text.

    Example:
        >>> run_tool("echo", ["echo", "hi"], timeout=5, on_timeout="", on_failure="").stdout.strip()
        'hi'
    """
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"{name}: expected to finish within {timeout:.0f} s. Received: no result. "
                             f"{on_timeout}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ToolchainError(f"{name}: expected exit code 0. Received: {proc.returncode} ({' | '.join(tail)}). "
                             f"{on_failure}")
    return proc
