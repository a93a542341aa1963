"""Where answers and confirmations come from: a person, command-line flags, or a script.

A model's tool call may supply input values, but never a confirmation: confirmations always go to
the session's AnswerSource, which is a person (REPL) or explicit flags (`--yes`, `--confirm WORD`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Protocol

from sage_agent.catalog.tasks import InputSpec


UNSAFE_WORD = "UNSAFE"  # typed to apply migrations with error-level lint findings; `sage run --allow-unsafe`


@dataclass(frozen=True)
class ConfirmRequest:
    """A confirmation tied to the exact plan that will run (its hash), not a generic yes."""

    prompt: str
    plan: str = ""
    word: str | None = None  # a typed word for destructive work; None means yes/no
    reasons: tuple[str, ...] = ()  # why it is asked (e.g. each lint finding): listed when it cannot be asked

    @property
    def plan_hash(self) -> str:
        return hashlib.sha256(f"{self.word or 'yes'}\0{self.plan}".encode()).hexdigest()[:16]


class MissingInput(Exception):
    """A required input has no value and nobody can be asked (headless): exit code 2."""

    def __init__(self, spec: InputSpec, usage: str = "") -> None:
        self.spec = spec
        super().__init__(
            f"missing required input '{spec.key}' ({spec.label}): pass it as an argument"
            + (f" ({usage})" if usage else "") + f" or with --set {spec.key}=VALUE"
        )


class ConfirmationRequired(Exception):
    """A confirmation is needed and none was given (headless): exit code 3."""

    def __init__(self, request: ConfirmRequest, *, show_plan: bool = False) -> None:
        self.request = request
        how = "--allow-unsafe" if request.word == UNSAFE_WORD else \
            f"--confirm {request.word}" if request.word else "--yes"
        reasons = "".join(f"\n  {r}" for r in request.reasons)
        # headless: the plan the REPL would show (steps, locks, bounds) is printed before this one-line error
        self.plan = request.plan if show_plan and request.plan and not request.reasons else ""
        if self.plan:
            super().__init__(f"confirmation required: {request.prompt} Nothing was changed. Re-run with {how} to "
                             "proceed, or run it in the REPL (sage) and answer there.")
            return
        super().__init__(f"confirmation required: {request.prompt} Re-run with {how} to proceed.{reasons}")


class Declined(Exception):
    """The person said no (or typed the wrong word): nothing was done."""


class AnswerSource(Protocol):
    interactive: bool

    def ask(self, spec: InputSpec) -> str: ...

    def confirm(self, request: ConfirmRequest) -> bool: ...


@dataclass
class FlagAnswers:
    """Headless: never prompts. `--yes` answers yes/no confirmations; typed words need `--confirm WORD`."""

    yes: bool = False
    confirm_words: tuple[str, ...] = ()
    usage: str = ""
    interactive: bool = False

    def ask(self, spec: InputSpec) -> str:
        raise MissingInput(spec, self.usage)

    def who(self, request: ConfirmRequest) -> str:
        """Who confirmed, for the audit trail: the person's own flag."""
        return f"flag --confirm {request.word}" if request.word else "flag --yes"

    def confirm(self, request: ConfirmRequest) -> bool:
        if request.word:
            if request.word in self.confirm_words:
                return True
            raise ConfirmationRequired(request, show_plan=True)
        if self.yes:
            return True
        raise ConfirmationRequired(request, show_plan=True)


@dataclass
class PromptAnswers:
    """A person at a prompt. `prompt` is any `str -> str` (prompt-toolkit in the REPL, a script in tests)."""

    prompt: Callable[[str], str]
    show: Callable[[str], None] = lambda text: None
    interactive: bool = True
    asked: list[str] = field(default_factory=list)
    prompt_prefilled: Callable[[str, str], str] | None = None  # (message, text already typed) -> answer

    def ask(self, spec: InputSpec) -> str:
        self.asked.append(spec.key)
        return self.prompt(spec.prompt_text()).strip()

    def ask_prefilled(self, spec: InputSpec, text: str) -> str:
        """The same question with an earlier answer already typed in (Enter keeps it)."""
        if self.prompt_prefilled is None:
            return self.ask(spec)
        self.asked.append(spec.key)
        return self.prompt_prefilled(spec.prompt_text(), text).strip()

    def who(self, request: ConfirmRequest) -> str:
        return "person"

    def confirm(self, request: ConfirmRequest) -> bool:
        if request.plan:
            self.show(request.plan)
        if request.word:
            typed = self.prompt(f"{request.prompt} Type {request.word} to confirm: ").strip()
            return typed == request.word
        answer = self.prompt(f"{request.prompt} [y/N]: ").strip().lower()
        return answer in ("y", "yes")
