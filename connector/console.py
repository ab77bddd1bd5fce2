"""Rich consoles for the command line: wrapped to the terminal's width on a terminal; written to
a file or a pipe, lines are never wrapped (rich would wrap them at 80 columns) and tables and
rules get a width that fits most tables. Emoji codes stay text: ``dense:-1:cosine`` in an error
line, or ``:+1:`` in a dead letter's message, is what the user wrote."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["console_for"]

PIPE_WIDTH = 160  # of tables and rules when not on a terminal


def console_for(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(stderr=stderr, soft_wrap=not tty, width=None if tty else PIPE_WIDTH, emoji=False)
