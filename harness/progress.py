"""One line per job on the terminal: a live ``name: 3/16`` on a terminal when the job runs in the
launching process, replaced by the job's verdict when it ends; elsewhere (a log file, a launcher's
worker, whose lines would overwrite each other) only the verdict line. ``HARNESS_VERBOSE=1`` (the
``harness -v`` flag) adds a line about every 10% of a job, as in a log."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

VERBOSE_ENV = "HARNESS_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


class JobLine:
    """``report(done, total)`` while the job runs, ``finish(text)`` once at its end."""

    def __init__(self, label: str, live: bool = True, stream: TextIO | None = None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.live = live and self.stream.isatty()
        self.verbose, self._tenth = verbose(), -1

    def report(self, done: int, total: int) -> None:
        with contextlib.suppress(OSError, ValueError):  # after SIGHUP the terminal may be gone
            self._report(done, total)

    def _report(self, done: int, total: int) -> None:
        if self.live:
            self.stream.write(f"\r\x1b[K{self.label}: {done}/{total}")
            self.stream.flush()
        tenth = 10 * done // max(total, 1)
        if self.verbose and not self.live and tenth != self._tenth:
            self.stream.write(f"{self.label}: {done}/{total}\n")
            self.stream.flush()
        self._tenth = tenth

    def interrupt(self) -> None:
        """End the live line, so that a message about the job starts on its own line."""
        if self.live and self._tenth >= 0:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\n")
                self.stream.flush()
            self._tenth = -1

    def finish(self, text: str) -> None:
        erase = "\r\x1b[K" if self.live else ""  # the live line, replaced
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(f"{erase}{self.label}: {text}\n")
            self.stream.flush()
