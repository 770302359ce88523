"""The project's user-facing errors: problems the user can fix, reported in one line.

Every layer raises a subclass of :class:`UserError` (MidiError, DatasetError, RenderError,
CheckpointError …) for bad input; the command line prints such an error as ``error: …`` and
exits 1. Anything else escaping a command is a bug and keeps its traceback. Tests (the fuzz
tests in particular) assert that bad input raises nothing but :data:`USER_ERRORS`.
"""

from __future__ import annotations

import os


class UserError(Exception):
    """A problem with the user's input or environment; ``str(error)`` is one line."""

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


# What bad input may raise anywhere in the package. ValueError stays in for the argument
# checks of the public Python API (``raise ValueError("steps must be ≥ 2")``).
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError)


def os_error_message(exc: OSError) -> str:
    """One line for a failed file operation: what failed, on which path (no errno noise)."""
    reason = exc.strerror or type(exc).__name__
    paths = [os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{reason}: {' -> '.join(paths)}" if paths else reason


def plural(word: str, count: int) -> str:
    """``word`` as it reads after the number ``count``: "bar" for 1, "bars" otherwise."""
    return word if count == 1 else f"{word}s"
