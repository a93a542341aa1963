"""A spinner with the elapsed time for a command that runs longer than half a second (REPL only).

It draws on one terminal line from a thread and steps aside (clears its line, stops drawing) whenever the
REPL writes or asks something, so it never mixes with output or a prompt."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
CLEAR = "\r\x1b[2K"


class Spinner:
    def __init__(self, write: Callable[[str], None], *, enabled: bool, delay: float = 0.5,
                 interval: float = 0.1) -> None:
        self._write = write
        self.enabled = enabled
        self.delay = delay
        self.interval = interval
        self._lock = threading.Lock()
        self._label = ""
        self._started = 0.0
        self._paused = 0
        self._drawn = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def running(self, label: str) -> Iterator[None]:
        """Spin while the block runs (from `delay` seconds on)."""
        if not self.enabled or self._thread is not None:
            yield
            return
        self._label, self._started = label, time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sage-spinner", daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()
            self._thread = None
            with self._lock:
                self._clear()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Step aside while the REPL prints or prompts."""
        with self._lock:
            self._paused += 1
            self._clear()
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    def _clear(self) -> None:
        if self._drawn:
            self._write(CLEAR)
            self._drawn = False

    def _loop(self) -> None:
        n = 0
        if self._stop.wait(self.delay):
            return
        while not self._stop.is_set():
            with self._lock:
                if not self._paused:
                    elapsed = time.monotonic() - self._started
                    self._write(f"{CLEAR}{FRAMES[n % len(FRAMES)]} {self._label} {elapsed:.1f}s  (Ctrl-C cancels)")
                    self._drawn = True
            n += 1
            self._stop.wait(self.interval)
