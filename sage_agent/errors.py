"""Errors that point at a place in a file: `path:line: message`."""

from __future__ import annotations

from pathlib import Path


class LocatedError(ValueError):
    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")
