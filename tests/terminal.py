"""Drive `sage` in a real pseudo-terminal (pexpect), the way a person types, at a given width."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[1]
PROMPT_START = "\x1b[?2004h"  # prompt-toolkit switches on bracketed paste at the start of every prompt
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\r")
UP = "\x1b[A"


def plain(text: str) -> str:
    return _ANSI.sub("", text)


class Terminal:
    def __init__(self, project: Path, db_url: str, columns: int, rows: int = 50) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "TERM": "xterm",
               "PROMPT_TOOLKIT_NO_CPR": "1"}  # a real terminal answers cursor-position requests; this one does not
        env.pop("COLUMNS", None)
        env.pop("ANTHROPIC_API_KEY", None)
        self.child = pexpect.spawn(sys.executable, ["-m", "sage_agent", "--db-url", db_url], cwd=str(project),
                                   dimensions=(rows, columns), encoding="utf-8", env=env, timeout=90)
        self.child.expect_exact(PROMPT_START)

    def type(self, text: str, *, then: str = PROMPT_START) -> str:
        """Type `text` and Enter; return what was shown until the next prompt (answer or command)."""
        self.child.send(text + "\r")
        self.child.expect_exact(then)
        return plain(self.child.before)

    def tab(self, text: str, completed: str) -> None:
        """Type `text`, press Tab and wait until the line shows `completed` (as a person waits to see it)."""
        word = text.split(" ")[-1]
        self.child.send(text + "\t")
        self.child.expect_exact(completed[len(word):] if completed.startswith(word) else completed)  # the rest

    def close(self) -> None:
        """*exit; a REPL stuck in a question (a failed test) is ended instead, so the failure itself shows."""
        self.child.send("*exit\r")
        try:
            self.child.expect(pexpect.EOF, timeout=15)
        except pexpect.TIMEOUT:
            self.child.terminate(force=True)
