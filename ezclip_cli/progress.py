"""The one progress display of the CLI, handed to the library as a callback.

The library reports `progress(done, total, failed, status)`: once before its loop with the
starting count (0, or the resumed step) and then after each unit of work. It never draws
anything itself; the caller decides what to show, as whisper's `transcribe()` leaves output
to its `cli()`. `Progress` shows a rich bar when stderr is a terminal and otherwise one plain
line every `interval` seconds (SLURM logs, CI, `2>log`), each with done/total, failures,
rate and ETA.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from ezclip_cli.errors import UsageError

ProgressCallback = Callable[[int, int, int, str], None]
"""`(done, total, failed, status)`: units finished, units planned, of those failed, free text."""

PAUSE_ENV = "EZCLIP_PAUSE_AT"  # tests only: "POINT:COUNT:MARKER" (see pause_point)
INTERVAL_ENV = "EZCLIP_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0  # seconds between plain lines: a few hundred lines a day in a job log


def pause_point(point: str, count: int) -> None:
    """A known place for tests that kill or interrupt a process: with $EZCLIP_PAUSE_AT="POINT:COUNT:MARKER"
    the process writes its pid to MARKER when it reaches COUNT of POINT (e.g. the third row written),
    then waits there for the test's signal. Unset (always, outside tests), this is one dict look-up."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    name, _, rest = spec.partition(":")
    wanted, _, marker = rest.partition(":")
    if name != point or str(count) != wanted:
        return
    with open(marker, "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
    while True:  # a signal ends the wait (SIGTERM's handler raises, SIGKILL ends the process)
        time.sleep(1)


_chosen_interval: list[float] = []  # --progress-interval of the running command (set_interval)


def set_interval(seconds: float | None) -> None:
    """The command's --progress-interval, for displays deeper in the library (prompt encoding) too."""
    _chosen_interval[:] = [] if seconds is None else [seconds]


def default_interval() -> float:
    """Seconds between plain progress lines: --progress-interval, $EZCLIP_PROGRESS_INTERVAL, else 30."""
    if _chosen_interval:
        return _chosen_interval[0]
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # NaN and negatives too
        raise UsageError(f"{INTERVAL_ENV}={text!r} is not a number of seconds >= 0; unset it or fix it")
    return value


def format_duration(seconds: float) -> str:
    """12s, 4m18s, 3h05m: short enough for a log line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """A `ProgressCallback` for one loop: a rich bar on a terminal, else plain lines every `interval` s.

    `what` names the loop ("tagging"), `unit` what is counted ("videos"); `failures=False` leaves
    the failure count out where nothing can fail one by one (training steps). Call `close()` (or use
    it as a context manager) when the loop ends; a plain display then writes a last line, if it
    wrote any before, so a log shows where the run ended.
    """

    def __init__(
        self,
        what: str,
        unit: str,
        *,
        interval: float | None = None,
        stream: IO[str] | None = None,
        terminal: bool | None = None,
        failures: bool = True,
        scale: float = 1.0,
    ):
        self.what, self.unit, self.failures = what, unit, failures
        self.scale = scale  # counts are shown divided by it: bytes as MB with unit="MB", scale=1e6
        self.interval = default_interval() if interval is None else interval
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = _is_terminal(self.stream) if terminal is None else terminal
        self.base: tuple[float, int] | None = None  # (time, done) of the first report: rates start there
        self.last: tuple[int, int, int, str] | None = None
        self.printed_at = time.monotonic()
        self.printed: tuple[int, int, int, str] | None = None  # the report the last plain line showed
        self.lines = 0
        self.bar: Any = None
        self.finished = False  # the bar reached its total and was stopped

    def __call__(self, done: int, total: int, failed: int = 0, status: str = "") -> None:
        now = time.monotonic()
        if self.base is None:
            self.base = (now, done)
        self.last = (done, total, failed, status)
        if self.terminal:
            if self.finished:
                return
            self._draw(done, total, now)
            if total and done >= total:  # finished: stop the bar now, so the command's summary prints below it
                self.finished = True
                self.close()
        elif now - self.printed_at >= self.interval and done > self.base[1]:
            self._print_line(now)
        elif total and done >= total and self.lines and self.last != self.printed:
            self._print_line(now)  # the closing line of a log that had progress lines, before the summary

    def describe(self, now: float | None = None) -> str:
        """'120/1000 videos (12%), 2 failed, 3.40 videos/s, ETA 4m18s[, status]' for the last report."""
        if self.last is None or self.base is None:
            return f"0 {self.unit}"
        done, total, failed, status = self.last
        now = time.monotonic() if now is None else now
        rate = (done - self.base[1]) / max(now - self.base[0], 1e-9) / self.scale
        shown = f"{done / self.scale:.1f}" if self.scale != 1 else str(done)
        if total:
            shown += f"/{total / self.scale:.1f}" if self.scale != 1 else f"/{total}"
        parts = [f"{shown} {self.unit}" + (f" ({100 * done / total:.0f}%)" if total else "")]
        if self.failures:
            parts.append(f"{failed} failed")
        parts.append(f"{rate:.2f} {self.unit}/s" if rate < 100 else f"{rate:.0f} {self.unit}/s")
        if total and done >= total:
            parts.append(f"took {format_duration(now - self.base[0])}")
        elif rate > 0 and total:
            parts.append(f"ETA {format_duration((total - done) / self.scale / rate)}")
        else:
            parts.append("ETA unknown")
        if status:
            parts.append(status)
        return ", ".join(parts)

    def _print_line(self, now: float) -> None:
        self.stream.write(f"ezclip: {self.what} {self.describe(now)}\n")
        self.stream.flush()
        self.printed_at, self.printed = now, self.last
        self.lines += 1

    def _draw(self, done: int, total: int, now: float) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as RichProgress

            console = Console(file=self.stream, force_terminal=True)
            self.bar = RichProgress(
                TextColumn(self.what),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[text]}"),
                # stdout carries results (`ezclip tag ... > out.csv`): never route it through the bar.
                console=console,
                transient=False,
                redirect_stdout=False,
            )
            self.task = self.bar.add_task(self.what, total=total / self.scale or None, completed=0, text="")
            self.bar.start()
        text = self.describe(now).split(", ", 1)[1] if self.last else ""  # the bar shows done/total itself
        self.bar.update(self.task, total=total / self.scale or None, completed=done / self.scale, text=text)

    def close(self) -> None:
        """Stop the bar, or write the final plain line (only if the run wrote one before)."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        elif self.lines and self.last != self.printed:
            self._print_line(time.monotonic())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
