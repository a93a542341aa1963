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


class NotUtf8(LocatedError):
    """A file the user named, read as text, holds bytes that are not UTF-8: bad input (exit 2), never a traceback.
    Each command says it in its own words from these facts: `start` (byte offset), `byte`, `line`, `column`."""

    def __init__(self, path: Path | str, raw: bytes, start: int) -> None:
        self.start = start
        self.byte = raw[start]
        self.column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        super().__init__(path, raw.count(b"\n", 0, start) + 1, f"not UTF-8 text (byte {start})")


def decode_utf8(raw: bytes, path: Path | str = "<text>") -> str:
    """The one strict UTF-8 decode of input files: NotUtf8 for bytes that are not UTF-8."""
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8(path, bytes(raw), exc.start) from None


def read_utf8(path: Path | str) -> str:
    """A file as UTF-8 text (OSError as reading raises it; NotUtf8 for bytes that are not UTF-8)."""
    return decode_utf8(Path(path).read_bytes(), path)
