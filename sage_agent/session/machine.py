"""The session state machine every front door shares:
idle -> eliciting -> confirming -> executing -> reporting -> idle."""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from sage_agent.catalog.tasks import InputSpec, TaskSpec, close_commands, command_index
from sage_agent.db.env import ConfigError, Target
from sage_agent.db.redact import redact
from sage_agent.ops.registry import operation_for
from sage_agent.ops.result import NeedsInput, OpError, OpResult
from sage_agent.session import audit
from sage_agent.session.answers import AnswerSource, ConfirmationRequired, ConfirmRequest, Declined, MissingInput
from sage_agent.session.context import OpContext, Settings
from sage_agent.session.parse import CommandLineError, bind_values, split_command

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIRM, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
PRODUCTION_WORD = "PRODUCTION"
_TRUE = {"yes", "y", "true", "1", "on"}
_FALSE = {"no", "n", "false", "0", "off"}
_MAX_ROUNDS = 6  # NeedsInput questions one command may ask before it gives up


class State(enum.Enum):
    IDLE = "idle"
    ELICITING = "eliciting"
    CONFIRMING = "confirming"
    EXECUTING = "executing"
    REPORTING = "reporting"


@dataclass
class Outcome:
    exit_code: int
    result: OpResult | None = None
    error: str | None = None
    task_id: str | None = None
    exit_requested: bool = False
    plan: str | None = None  # a confirmation nobody could give (headless): the plan it would have confirmed

    def to_json_obj(self) -> dict[str, Any]:
        if self.result is not None:
            return self.result.model_dump(mode="json")
        return {"operation": self.task_id, "status": "failed" if self.exit_code else "ok", "error": self.error,
                "exit_code": self.exit_code}


@dataclass
class Session:
    project: Path
    target: Target
    answers: AnswerSource
    settings: Settings = field(default_factory=Settings)
    progress_sink: Callable[[str, float, float | None, str], None] = lambda *a: None
    message_sink: Callable[[str], None] = lambda text: None
    state: State = State.IDLE
    history: list[State] = field(default_factory=list)
    _production_confirmed: bool = False  # PRODUCTION typed during the current run
    last_context: OpContext | None = None
    front_door: str = "python"  # headless, repl, mcp, ask, handoff: recorded in .sage/audit.jsonl
    _confirmed_by: list[str] = field(default_factory=list)
    _risk: str | None = None
    connection_pool: Any = None  # sage mcp: read calls reuse connections (sage_agent.db.pool)
    # answers of the running command: the operation's own questions are replayed when it runs again after a
    # NeedsInput; every answer of a command that failed pre-fills the same question when it is run again
    _recorded: list[tuple[str, str]] = field(default_factory=list)
    _replay_pos: int = 0
    _elicited: dict[str, str] = field(default_factory=dict)
    _given: list[tuple[str, str]] = field(default_factory=list)
    _previous: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _prefill_seen: dict[str, int] = field(default_factory=dict)
    _task_id: str | None = None
    # inputs a person answered outside the command line (e.g. {"create": "elicitation"} from an MCP client), set
    # by the front door for one run_task: recorded in .sage/audit.jsonl as answered_by
    answered_by: dict[str, str] = field(default_factory=dict)
    last_need: NeedsInput | None = None  # the question a non-interactive run stopped at (MCP elicits it)
    said: set[str] = field(default_factory=set)  # keys of the notices said once per session (OpContext.notice)

    # --- catalog access (lazy: `sage --version` never pays for it) ---------------------------
    @property
    def tasks(self) -> dict[str, TaskSpec]:
        # lazy: tests replace load_tasks on its module (monkeypatch), which a top-level import would bypass
        from sage_agent.catalog.tasks import load_tasks

        return load_tasks()

    def resolve(self, name: str) -> TaskSpec | None:
        task_id = command_index(self.tasks).get(name.lstrip("*"))
        return self.tasks.get(task_id) if task_id else None

    @property
    def current_task_id(self) -> str | None:
        """The task of the command running (or last run)."""
        return self._task_id

    @property
    def last_risk(self) -> str | None:
        """The risk of the last command run ("read", "write", "destructive"; None before any)."""
        return self._risk

    def _goto(self, state: State) -> None:
        self.state = state
        self.history.append(state)

    # --- the machine ---------------------------------------------------------------------------
    def run_line(self, line: str, extra: dict[str, Any] | None = None, *, source: str = "--set") -> Outcome:
        """Run one `*command ...` line; `extra` inputs (from `--set`, a handoff...) fill what the line leaves out."""
        try:
            parsed = split_command(line)
            task = self.resolve(parsed.name)
            if task is None:
                return Outcome(EXIT_USAGE, error=self.unknown_command_message(parsed.name))
            values = bind_values(task, parsed)
        except CommandLineError as exc:
            return Outcome(EXIT_USAGE, error=str(exc))
        if extra:
            known = {i.key for i in task.user_inputs()}
            unknown = sorted(set(extra) - known)
            if unknown and "vars" in known:  # template variables of *create-doc: `--set operation=...`
                folded = ";".join(f"{k}={extra[k]}" for k in unknown)
                extra = {k: v for k, v in extra.items() if k not in unknown}
                extra["vars"] = ";".join(x for x in (str(extra.get("vars") or ""), folded) if x)
                unknown = []
            if unknown:
                return Outcome(EXIT_USAGE, task_id=task.id,
                               error=f"*{task.command} has no input {', '.join(unknown)} (given by {source}; inputs: "
                                     f"{', '.join(sorted(known)) or 'none'})")
            values = {**{k: v if isinstance(v, bool) else str(v) for k, v in extra.items()}, **values}
        return self.run_task(task, values)

    def unknown_command_message(self, name: str) -> str:
        close = close_commands(name, self.tasks)
        hint = f" Did you mean {', '.join('*' + c for c in close)}?" if close else ""
        return f"unknown command *{name.lstrip('*')}.{hint} Type *help for the list."

    def run_task(self, task: TaskSpec, values: dict[str, Any]) -> Outcome:
        """Run one operation, recorded in the project's audit trail: a started line, then a finished line."""
        entry_id = uuid.uuid4().hex[:16]
        self._confirmed_by, self._risk = [], None
        target = self.target.display_url
        audit.append(self.project, {"id": entry_id, "event": "started", "time": audit.now(),
                                    "front_door": self.front_door, "env": self.target.env,
                                    "target": target, "command": task.command, "task": task.id,
                                    "inputs": audit.redact_inputs(values)})
        start = time.monotonic()
        self._recorded, self._replay_pos, self._elicited, self._given, self._prefill_seen = [], 0, {}, [], {}
        self._task_id = task.id
        self.last_need = None
        outcome = self._run_task(task, values)
        if outcome.exit_code in (EXIT_OK, EXIT_CONFIRM) or not self._given:
            self._previous.pop(task.id, None)
        else:  # the answers survive the error: the same command asks again with each of them pre-filled
            self._previous[task.id] = list(self._given)
        result = outcome.result
        status = result.status if result is not None else ("failed" if outcome.exit_code else "ok")
        audit.append(self.project, {"id": entry_id, "event": "finished", "finished": audit.now(), "status": status,
                                    "exit_code": outcome.exit_code, "risk": self._risk,
                                    # the embedded server started during the command: its URL, not "not started"
                                    **({"target": self.target.display_url}
                                       if self.target.display_url != target else {}),
                                    "confirmed_by": list(self._confirmed_by),
                                    **({"answered_by": dict(self.answered_by)} if self.answered_by else {}),
                                    "duration_ms": round((time.monotonic() - start) * 1000),
                                    "error": outcome.error.split("\n")[0] if outcome.error else None,
                                    "artifacts": list(result.artifacts) if result is not None else []})
        return outcome

    def _run_task(self, task: TaskSpec, values: dict[str, Any]) -> Outcome:
        op = operation_for(task.id)
        if op is None:
            return Outcome(EXIT_FAILED, error=f"*{task.command} has no operation registered (task {task.id})",
                           task_id=task.id)
        try:
            inputs = self._elicit(task, dict(values), op.input_model)
        except MissingInput as exc:
            self._goto(State.IDLE)
            return Outcome(EXIT_USAGE, error=str(exc), task_id=task.id)
        except (CommandLineError, ValueError) as exc:
            self._goto(State.IDLE)
            return Outcome(EXIT_USAGE, error=redact(str(exc)), task_id=task.id)
        ctx = OpContext(project=self.project, target=self.target, task=task, confirm_fn=self._confirm,
                        progress_sink=self.progress_sink, message_sink=self.message_sink, settings=self.settings,
                        interactive=bool(getattr(self.answers, "interactive", False)), ask_fn=self._ask_op)
        self.last_context = ctx
        try:
            self._risk = op.risk_for(inputs)
        except Exception:  # noqa: BLE001 - the audit's risk column must never stop the command
            self._risk = None
        if self._risk == "read" and self.connection_pool is not None:
            ctx.pool = self.connection_pool  # a read call's transactions end with it: its connections can be reused
        try:
            self._production_confirmed = False
            if self.target.is_production and op.risk_for(inputs) != "read":
                if not self._confirm(ConfirmRequest(
                        prompt=f"*{task.command} will change PRODUCTION ({self.target.display_url}).",
                        word=PRODUCTION_WORD)):
                    raise Declined("not confirmed: PRODUCTION was not typed. Nothing was changed.")
            self._goto(State.EXECUTING)
            result = self._run_asking(op, task, values, inputs, ctx)
        except MissingInput as exc:
            return self._finish(Outcome(EXIT_USAGE, error=str(exc), task_id=task.id))
        except ConfirmationRequired as exc:  # its plan may name a connection string
            return self._finish(Outcome(EXIT_CONFIRM, error=redact(str(exc)), task_id=task.id,
                                        plan=redact(getattr(exc, "plan", "")) or None))
        except Declined as exc:
            return self._finish(Outcome(EXIT_CONFIRM, error=str(exc), task_id=task.id,
                                        result=OpResult(operation=task.id, status="cancelled", summary=str(exc))))
        except KeyboardInterrupt:
            n = ctx.cancel_running()
            # a connection already closed was cancelled by psycopg itself (it cancels the statement it waits on
            # when Ctrl-C arrives) and its transaction ended with it: the person is told the same, not a bare word
            msg = ("interrupted: the running statement was cancelled on the server and its transaction rolled back"
                   if n or ctx.connections_opened else "interrupted")
            return self._finish(Outcome(EXIT_INTERRUPTED, error=msg, task_id=task.id))
        except OpError as exc:
            if isinstance(exc, NeedsInput) and task.input(exc.key) is not None:
                self.last_need = exc
            return self._finish(Outcome(exc.exit_code, error=redact(str(exc)), task_id=task.id))
        except (ConfigError, ConnectionError) as exc:
            return self._finish(Outcome(EXIT_FAILED, error=redact(str(exc)), task_id=task.id))
        except Exception as exc:  # noqa: BLE001 - any failure ends in a clear message, never a traceback
            # lazy: psycopg loads on the first database call
            from sage_agent.db.connect import DbConnectError

            if isinstance(exc, DbConnectError):
                return self._finish(Outcome(EXIT_FAILED, error=str(exc), task_id=task.id))
            return self._finish(Outcome(EXIT_FAILED, error=redact(f"{type(exc).__name__}: {exc}"), task_id=task.id))
        finally:
            ctx.close_all()
        self._goto(State.REPORTING)
        for notice in ctx.notices:  # e.g. the PostgreSQL major a shadow or the local server runs
            if notice in ctx.once:
                if ctx.once[notice] in self.said:
                    continue
                self.said.add(ctx.once[notice])
            if notice not in result.notes and all(f.message != notice for f in result.findings):
                result.notes.append(redact(notice))
        if result.status == "failed":  # a failed result about bad input (*lint of an unreadable file) stays exit 2
            code = EXIT_USAGE if result.exit_code == EXIT_USAGE else EXIT_FAILED
        else:
            code = result.exit_code or EXIT_OK
        return self._finish(Outcome(code, result=result, task_id=task.id,
                                    exit_requested=bool(result.data.get("exit_requested"))))

    def _run_asking(self, op: Any, task: TaskSpec, values: dict[str, Any], inputs: Any, ctx: OpContext) -> OpResult:
        """Run the operation; a NeedsInput is asked of the person and the operation runs again with the answer (its
        own earlier questions replayed, not asked again). Headless, NeedsInput ends the run (exit 2, the flag)."""
        values = {**values, **self._elicited}
        tried: dict[str, set[str]] = {}
        for _ in range(_MAX_ROUNDS):
            self._replay_pos = 0
            try:
                return op.run(inputs, ctx)
            except NeedsInput as need:
                spec = task.input(need.key)
                if not getattr(self.answers, "interactive", False) or spec is None:
                    raise
                ctx.close_all()
                if need.reason:
                    self.message_sink(need.reason)
                yes_no = need.choices == ["yes", "no"]
                ask = InputSpec(key=need.key, label=need.prompt, kind="bool" if yes_no else
                                "choice" if need.choices else "text", required=need.default is None,
                                default=need.default, choices=[] if yes_no else need.choices, line=spec.line)
                self._goto(State.ELICITING)
                try:
                    answer = self._ask_until_valid(ask)
                except CommandLineError as exc:
                    raise OpError(str(exc), need.hint, exit_code=EXIT_USAGE) from None
                if yes_no and not coerce(ask, answer):
                    raise
                if answer in tried.setdefault(need.key, set()):
                    raise
                tried[need.key].add(answer)
                values[need.key] = answer
                try:
                    inputs = self._elicit(task, dict(values), op.input_model)
                except (CommandLineError, ValueError) as exc:
                    raise OpError(str(exc), need.hint, exit_code=EXIT_USAGE) from None
                self._goto(State.EXECUTING)
        raise OpError(f"*{task.command} still needs input after {_MAX_ROUNDS} answers", f"pass the inputs as flags "
                      f"(*help {task.command})", exit_code=EXIT_USAGE)

    def _ask_op(self, spec: InputSpec) -> str:
        """An operation's own question (ctx.ask): replayed from this command's earlier answers when it runs again."""
        if self._replay_pos < len(self._recorded):
            label, answer = self._recorded[self._replay_pos]
            if label == spec.label:
                self._replay_pos += 1
                return answer
            del self._recorded[self._replay_pos:]  # it took another path: ask from here on
        answer = self._ask_person(spec)
        self._recorded.append((spec.label, answer))
        self._replay_pos += 1
        return answer

    def _ask_person(self, spec: InputSpec) -> str:
        """Ask the answer source, pre-filled with the answer this question got when the command last failed."""
        n = self._prefill_seen.get(spec.label, 0)
        self._prefill_seen[spec.label] = n + 1
        earlier = [a for label, a in self._previous.get(self._task_id or "", []) if label == spec.label]
        prefill = earlier[n] if n < len(earlier) else ""
        ask_prefilled = getattr(self.answers, "ask_prefilled", None)
        answer = ask_prefilled(spec, prefill) if prefill and ask_prefilled else self.answers.ask(spec)
        self._given.append((spec.label, answer))
        return answer

    def _finish(self, outcome: Outcome) -> Outcome:
        self._goto(State.IDLE)
        return outcome

    def _confirm(self, request: ConfirmRequest) -> bool:
        """Every confirmation an operation asks for. On production the first one is preceded by the typed
        word PRODUCTION (whatever the operation's declared risk), so no operation has to remember it."""
        if self.target.is_production and not self._production_confirmed and request.word != PRODUCTION_WORD:
            if not self._ask_confirmation(ConfirmRequest(
                    prompt=f"PRODUCTION ({self.target.display_url}): {request.prompt}", plan=request.plan,
                    word=PRODUCTION_WORD)):
                return False
            self._production_confirmed = True
        confirmed = self._ask_confirmation(request)
        if confirmed and request.word == PRODUCTION_WORD:
            self._production_confirmed = True
        return confirmed

    def _ask_confirmation(self, request: ConfirmRequest) -> bool:
        previous = self.state
        self._goto(State.CONFIRMING)
        try:
            confirmed = self.answers.confirm(request)
            if confirmed:
                who = getattr(self.answers, "who", None)
                self._confirmed_by.append(who(request) if who else type(self.answers).__name__)
            return confirmed
        finally:
            self._goto(previous if previous != State.IDLE else State.EXECUTING)

    # --- elicitation -----------------------------------------------------------------------------
    def _elicit(self, task: TaskSpec, values: dict[str, Any], model: type) -> Any:
        """Ask for each missing required input, one at a time; coerce and check every value."""
        clean: dict[str, Any] = {}
        for spec in task.user_inputs():
            raw = values.pop(spec.key, None)
            if raw is None or raw == "":
                if spec.required:
                    self._goto(State.ELICITING)
                    raw = self._ask_until_valid(spec)
                    self._elicited[spec.key] = raw
                elif spec.default is not None:
                    raw = spec.default
                else:
                    continue
            clean[spec.key] = coerce(spec, raw)
        if values:
            raise CommandLineError(f"*{task.command} does not take {', '.join(sorted(values))}")
        try:
            return model(**clean)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise CommandLineError(f"invalid {key}: {err['msg']}") from None

    def _ask_until_valid(self, spec: InputSpec) -> str:
        for _ in range(3):
            raw = self._ask_person(spec)
            if raw == "":
                if spec.default is not None:
                    return spec.default
                continue
            try:
                coerce(spec, raw)
                return raw
            except CommandLineError as exc:
                self.message_sink(str(exc))
        raise CommandLineError(f"no valid value for {spec.key} ({spec.label})")


def coerce(spec: InputSpec, raw: Any) -> Any:
    """Turn a raw answer into the input's type, checking choices."""
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise CommandLineError(f"{spec.key}: answer yes or no (got {raw!r})")
    if spec.kind == "choice":
        text = str(raw).strip()
        if text not in spec.choices:
            raise CommandLineError(f"{spec.key}: choose one of {', '.join(spec.choices)} (got {text!r})")
        return text
    return raw
