"""Progress of a long command on stderr: a bar on a terminal, a count now and then otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30
#: How often a terminal line is redrawn, and a plain count line written, in seconds.
TTY_INTERVAL = 0.1
PLAIN_INTERVAL = 5.0


class Progress:
    """Counts `done` out of an optional `total` and shows it while the work goes on."""

    def __init__(self, what: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._shown = 0.0

    def advance(self, n: int = 1, *, total: int | None = None) -> None:
        """Add `n` to the count (and update the total when it becomes known)."""
        self.done += n
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now - self._shown >= (TTY_INTERVAL if self.tty else PLAIN_INTERVAL):
            self._shown = now
            self._show(final=False)

    def finish(self) -> None:
        """Show the last state; on a terminal, end the line that was being redrawn."""
        if self.tty or self._shown:
            self._show(final=True)

    def line(self) -> str:
        """The current state as text: bar (when the total is known), count and rate."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = f"{self.done / elapsed:,.0f}/s"
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = round(share * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            return f"{self.what} [{bar}] {self.done:,}/{self.total:,} {share:4.0%} {rate}"
        return f"{self.what} {self.done:,} {rate}"

    def _show(self, final: bool) -> None:
        if self.tty:
            end = "\n" if final else ""
            self.stream.write(f"\r\x1b[2K{self.line()}{end}")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
