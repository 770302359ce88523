"""Progress for long work: a live rich bar on a terminal or in Jupyter, plain lines anywhere else.

A rich bar written to a pipe or a log file cannot redraw itself, and is cut to the console width
(80 columns when the width is unknown: ``step 44… 33:5…``). There each task instead prints one
complete line now and then — about every 5 % of its total, at least once a minute while it moves,
and when it finishes — such as::

    step 1000/20000 (5%) 6m12s elapsed, ~1h58m left  loss 161.3 r 158.0 KL 48.1 bits …

:func:`progress` picks the display; the objects it returns share the part of
``rich.progress.Progress``'s interface the project uses (``with``, ``add_task``, ``update``,
``advance``).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


class NullProgress:
    """Shows nothing (``progress=False``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def advance(self, *args, **kwargs) -> None:
        pass


def _duration(seconds: float) -> str:
    """``42s``, ``6m12s``, ``1h58m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class LineProgress(NullProgress):
    """Plain-text progress: one line per report (see the module docstring for when)."""

    def __init__(self, stream: TextIO | None = None, *, fraction: float = 0.05, seconds: float = 60.0):
        self.stream, self.fraction, self.seconds = stream, fraction, seconds
        self.tasks: list[dict] = []

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        now = time.monotonic()
        self.tasks.append(dict(description=description, total=total, completed=completed, start=completed,
                               started=now, reported=completed, reported_at=now, fields=fields))  # fmt: skip
        return len(self.tasks) - 1

    def update(self, task_id: int, *, completed: float | None = None, advance: float | None = None, **fields) -> None:
        task = self.tasks[task_id]
        if completed is not None:
            task["completed"] = completed
        if advance is not None:
            task["completed"] += advance
        task["fields"].update(fields)
        total, done, now = task["total"], task["completed"], time.monotonic()
        finished = total is not None and done >= total
        due = done > task["reported"] and (
            (total and done - task["reported"] >= self.fraction * total) or now - task["reported_at"] >= self.seconds
        )
        if finished and task["reported"] < done or due:
            task["reported"], task["reported_at"] = done, now
            print(self._line(task, now), file=self.stream or sys.stdout, flush=True)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    @staticmethod
    def _line(task: dict, now: float) -> str:
        total, done = task["total"], task["completed"]
        elapsed = now - task["started"]
        head = f"{task['description']} {done:g}" + (f"/{total:g} ({100 * done / total:.0f}%)" if total else "")
        timing = f"{_duration(elapsed)} elapsed"
        if total and done < total and done > task["start"]:  # rate measured in this process only
            timing += f", ~{_duration(elapsed / (done - task['start']) * (total - done))} left"
        status = task["fields"].get("status")
        return f"{head} {timing}" + (f"  {status}" if status else "")


def live_display() -> bool:
    """Whether rich can redraw a bar here: a terminal, or a Jupyter kernel (as a widget)."""
    from rich.console import Console

    console = Console()
    return console.is_terminal or console.is_jupyter


def progress(enabled: bool, live_bar: Callable[[], object]):
    """Nothing when not ``enabled``; ``live_bar()`` (a ``rich.progress.Progress``) where it can be
    redrawn; plain lines on stdout otherwise (a pipe, a log file, CI)."""
    if not enabled:
        return NullProgress()
    return live_bar() if live_display() else LineProgress()
