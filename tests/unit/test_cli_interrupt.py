"""Ctrl-C handling of the command line: an interrupt swallowed by a finalizer must not disable Ctrl-C."""

from __future__ import annotations

import signal

import pytest

from edgecompress.cli import _InterruptFlag


def test_every_press_raises_until_the_interrupt_is_handled():
    flag = _InterruptFlag()
    with pytest.raises(KeyboardInterrupt):
        flag.handler(signal.SIGINT, None)
    # the first KeyboardInterrupt was dropped (as Python does inside __del__): the next press must raise again
    with pytest.raises(KeyboardInterrupt):
        flag.handler(signal.SIGINT, None)
    flag.handling = True
    flag.handler(signal.SIGINT, None)  # main is on its way out: presses only set the flag now
    assert flag.seen


def test_a_command_that_finishes_despite_a_swallowed_interrupt_says_its_outputs_are_complete(monkeypatch, capsys):
    import edgecompress.cli as cli

    def command(args):
        try:  # what a TensorFlow finalizer does with the KeyboardInterrupt our handler raises
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return 0

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    args = parser.parse_args(["targets"])
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: args)
    args.func = command
    assert cli.main([]) == 0
    assert "interrupt ignored" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
