"""`sage mcp`'s tools: DB Sage's operations as MCP tools (the stdio transport is mcp_stdio.py).

- one tool per registered operation: name = the task's command, description = the task's Purpose,
  input schema = the operation's pydantic input model;
- read operations run;
- write/destructive operations never run on the first call. Every confirmation the run needs (the call
  itself, then each exact plan/SQL the operation confirms) is returned as the plan text with a token
  bound to an HMAC of that plan's hash (ConfirmRequest.plan_hash) and of this server's secret. Calling
  again with `confirmation_token` (comma-separated when several are needed) runs it; a forged or stale
  token (plan changed, other server process) is refused and nothing runs;
- a typed confirmation word (DROP/TRUNCATE/RESTORE/ROLLBACK... work) never gets a token: only the client's
  person, through MCP elicitation, or the person's own `sage run ... --confirm WORD` supplies it;
- a client that declares MCP elicitation gets each plan as an elicitation (form: confirm, plus the typed
  word for destructive work) for its person to answer; accept runs it, anything else does nothing;
- an operation that needs a decision (NeedsInput: a missing table to create, an owner column to pick) returns
  `status: needs_input` with the input's key, prompt, choices and the flag to pass; a client that declares MCP
  elicitation gets the question asked of its person (mcp_stdio.py) and the call runs again with the answer as
  that tool argument, so the answer can do only what an argument can: every confirmation above still applies;
- `--read-only` lists and serves read operations only;
- one more tool, `fleet`: commands on every database of a targets file (`sage run --targets`), one JSON
  document back. Reads run at once. A write is confirmed target by target, with the same rule: the first
  call returns each target's plan with its own token (bound to that target's name, URL and plan); a target
  runs only in a call that carries its token, so one token never stands for N databases; typed words only
  through elicitation (the person, per target). The stdio transport asks a person per target when the
  client has elicitation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sage_agent.db.redact import redact, redact_obj
from sage_agent.ops.registry import input_schema, load_operations
from sage_agent.session.answers import ConfirmationRequired, ConfirmRequest, FlagAnswers, MissingInput
from sage_agent.session.context import Settings

TOKEN_ARG = "confirmation_token"
# a pooled connection that died while idle: what psycopg and the server say then
_LOST = re.compile(r"server closed the connection|terminating connection|connection is closed|"
                   r"consuming input failed|connection (was )?lost|SSL SYSCALL error: EOF", re.I)
FLEET_TOOL = "fleet"
FLEET_DESCRIPTION = ("Run commands (e.g. *rls-audit, *schema-audit, *env-check, *apply) on every database of a "
                     "targets file (YAML: name + url or env, tags); one JSON document with each target's exit code "
                     "and results, and a summary. Reads run in parallel. Writes run one target at a time: the first "
                     f"call returns each target's plan and its own {TOKEN_ARG}; a target runs only in a call that "
                     "carries its token (typed words: only the person, through elicitation).")


class FleetArgs(BaseModel):
    """The `fleet` tool's input."""

    model_config = ConfigDict(extra="forbid")

    commands: list[str] = Field(min_length=1, description='command lines, e.g. ["*rls-audit", "*schema-audit"]')
    targets_file: str = Field(description="the targets file (YAML), relative to the project folder")
    only: list[str] = Field(default_factory=list, description="only the targets with one of these tags (or names)")
    parallel: int | None = Field(default=None, ge=1, le=64, description="targets at once (default: cores)")
    stop_on_failure: bool | None = Field(default=None, description="writes: stop before the next target after a "
                                                                   "failure (default: yes for writes)")
    confirmation_token: str | None = Field(default=None, description="writes: the tokens of the targets to run "
                                                                     "(comma-separated), as returned with their plans")


class NeedsConfirmation(ConfirmationRequired):
    """The MCP client has to confirm this exact plan: carries the plan, its hash and the token to send back."""

    def __init__(self, request: ConfirmRequest, token: str) -> None:
        super().__init__(request)
        self.token = token
        self.plan = request.plan
        self.plan_hash = request.plan_hash


class ReadOnlyRefusal(ConfirmationRequired):
    """The server runs --read-only: anything that needs a confirmation (it would change something) is refused."""

    def __init__(self, request: ConfirmRequest) -> None:
        super().__init__(request)
        self.args = (f"refused: this MCP server runs --read-only and this step would change the database "
                     f"({request.prompt}). Nothing was done.",)


class BadToken(ConfirmationRequired):
    """A confirmation token was given but matches no plan of this run: forged or stale."""


@dataclass
class McpAnswers:
    """AnswerSource for MCP: never prompts; confirmations are tokens bound to the exact plan."""

    secret: bytes
    tool: str
    tokens: tuple[str, ...] = ()
    interactive: bool = False
    pending: NeedsConfirmation | None = None
    bad_token: bool = False
    used: list[str] = field(default_factory=list)
    person_approved: tuple[str, ...] = ()  # plan hashes a person confirmed through MCP elicitation
    read_only: bool = False  # a --read-only server confirms nothing: a "read" tool that would write stops here
    shared_tokens: bool = False  # a fleet call carries other targets' tokens too: those are not forgeries here

    def token_for(self, request: ConfirmRequest) -> str:
        return hmac.new(self.secret, f"{self.tool}\0{request.plan_hash}".encode(), hashlib.sha256).hexdigest()[:32]

    def ask(self, spec):
        raise MissingInput(spec)

    def who(self, request: ConfirmRequest) -> str:
        """A typed word only ever comes from the person (elicitation); yes/no from the plan-bound token."""
        return "elicitation" if request.word else "mcp confirmation token"

    def confirm(self, request: ConfirmRequest) -> bool:
        if self.read_only:
            raise ReadOnlyRefusal(request)
        if request.word:
            # A typed word is a person's decision: only MCP elicitation (the client asks its person) or the
            # person's own `sage run ... --confirm WORD` supplies it. No token a model could echo back.
            if request.plan_hash in self.person_approved:
                return True
            self.pending = NeedsConfirmation(request, "")
            raise self.pending
        token = self.token_for(request)
        if any(hmac.compare_digest(token, t) for t in self.tokens):
            self.used.append(token)
            return True
        if not self.shared_tokens and [t for t in self.tokens if t not in self.used]:  # forged or stale
            self.bad_token = True
            raise BadToken(request)
        self.pending = NeedsConfirmation(request, token)
        raise self.pending


class McpSage:
    """The tools: built from the catalog and the registry, run through a Session per call."""

    def __init__(self, project: Path, target, *, read_only: bool = False, pool: Any = None) -> None:
        self.project = project
        self.target = target
        self.read_only = read_only
        self.secret = secrets.token_bytes(32)
        self.pool = pool  # a ConnectionPool: read calls of this MCP session reuse their connections

        self.settings = Settings()  # read once: the environment does not change while the server runs
        self._tools: dict[str, tuple[Any, Any]] | None = None

    def tools(self) -> dict[str, tuple[Any, Any]]:
        """The tools, built once per server (the catalog and the registry do not change while it runs)."""
        if self._tools is None:
            self._tools = self._build_tools()
        return self._tools

    def _build_tools(self) -> dict[str, tuple[Any, Any]]:
        # lazy: tests replace load_tasks on its module (monkeypatch), which a top-level import would bypass
        from sage_agent.catalog.tasks import load_tasks

        ops = load_operations()
        out = {}
        for task in load_tasks().values():
            op = ops.get(task.id)
            if op is None or task.id in ("exit",):
                continue
            if self.read_only and op.risk != "read":  # a read tool stays; its raising inputs are refused
                continue
            out[task.command] = (task, op)
        return dict(sorted(out.items()))

    def schema(self, task, op) -> dict[str, Any]:
        schema = input_schema(task, op.input_model, closed=True)
        if op.max_risk != "read":
            schema["properties"][TOKEN_ARG] = {
                "type": "string", "description": "token(s) returned with the plan; send back to run that exact plan"}
        return schema

    def describe(self, task, op) -> str:
        text = task.purpose.strip()
        if op.risk != "read":
            text += (f" [{op.risk}: the first call returns the exact plan and a {TOKEN_ARG}; call again with it to run]")
        for key, risk in op.raised_by:
            text += f" [--{key}: {risk}" + (", refused: the server runs --read-only]" if self.read_only else
                                             f"; the first call returns the plan and a {TOKEN_ARG}]")
        return text

    def call(self, name: str, arguments: dict[str, Any] | None, person_approved: tuple[str, ...] = (),
             elicited: tuple[str, ...] = ()) -> tuple[bool, str, dict[str, Any]]:
        """(is_error, text, structured) for one tool call. `person_approved`: plan hashes a person confirmed
        through elicitation (never a tool argument, so a model cannot supply it). `elicited`: the argument keys
        the person answered through elicitation (recorded in the audit trail as answered_by)."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.render import render_markdown
        from sage_agent.session.machine import Session

        if name == FLEET_TOOL:
            return self.fleet(arguments or {}, person_approved)
        tools = self.tools()
        if name not in tools:
            hidden = " (write tools are hidden: the server runs --read-only)" if self.read_only else ""
            return True, f"unknown tool {name!r}{hidden}", {"error": "unknown tool"}
        task, op = tools[name]
        args = dict(arguments or {})
        raw_token = args.pop(TOKEN_ARG, None)
        if raw_token is not None and op.max_risk == "read":
            return True, f"{name} is a read tool: it takes no {TOKEN_ARG}", {"error": "bad arguments"}
        known = {s.key for s in task.user_inputs()}
        unknown = sorted(set(args) - known)
        if unknown:
            return True, (f"{name}: unknown argument(s) {', '.join(unknown)} (arguments: "
                          f"{', '.join(sorted(known)) or 'none'}). Nothing was done."), {"error": "bad arguments"}
        tokens = tuple(t.strip() for t in str(raw_token or "").split(",") if t.strip())
        answers = McpAnswers(self.secret, name, tokens, person_approved=person_approved, read_only=self.read_only)
        session = Session(project=self.project, target=self.target, answers=answers, front_door="mcp",
                          connection_pool=self.pool, settings=self.settings,
                          answered_by={k: "elicitation" for k in elicited if k in known})
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.session.parse import CommandLineError

        try:  # check every argument before anything else (clear error, nothing done)
            checked = session._elicit(task, dict(args), op.input_model)
        except (MissingInput, CommandLineError, ValueError) as exc:
            return True, f"{name}: {redact(str(exc))}. Nothing was done.", {"error": "bad arguments"}
        risk = op.risk_for(checked)
        if self.read_only and risk != "read":
            raised = ", ".join(f"--{k}" for k, r in op.raised_by if op.risk_for({k: True}) == risk)
            return True, (f"{name} with {raised} is {risk}: refused, the server runs --read-only. "
                          "Nothing was done."), {"error": "read-only"}
        if risk != "read":
            gate = ConfirmRequest(
                prompt=f"Run {name} ({risk}) on {self.target.env} {self.target.display_url}?",
                plan=f"*{task.command} " + json.dumps(checked.model_dump(mode="json"), sort_keys=True, default=str)
                     + f"\nrisk: {risk}\ntarget: {self.target.env} {self.target.display_url}")
            try:
                answers.confirm(gate)
            except BadToken:
                return True, f"{TOKEN_ARG} refused: it does not match this plan (forged or stale). Nothing was done.", \
                    {"error": "bad token"}
            except NeedsConfirmation as need:
                return False, self._needs(name, need), self._needs_doc(need)
        outcome = session.run_task(task, args)
        if outcome.exit_code != 0 and self.pool is not None:
            self.pool.discard_idle()  # after a failure the next call starts on a fresh connection
            if risk == "read" and _LOST.search(outcome.error or ""):
                # the session's idle connection was gone (server restart, idle timeout, terminated): a read
                # is safe to run again, once, on a new connection
                session = Session(project=self.project, target=self.target, answers=answers, front_door="mcp",
                                  connection_pool=self.pool, settings=self.settings,
                                  answered_by={k: "elicitation" for k in elicited if k in known})
                outcome = session.run_task(task, args)
        if answers.bad_token:
            return True, f"{TOKEN_ARG} refused: it does not match this plan (forged or stale). Nothing was done.", \
                {"error": "bad token"}
        if answers.pending is not None:
            need = answers.pending
            need.token = ",".join([*answers.used, need.token])
            return False, self._needs(name, need), self._needs_doc(need)
        if outcome.result is None and session.last_need is not None and session.last_need.key != TOKEN_ARG:
            need_in = session.last_need
            return True, redact(outcome.error or "failed"), {
                "status": "needs_input", "error": redact(outcome.error or "failed"), "exit_code": outcome.exit_code,
                "key": need_in.key, "flag": "--" + need_in.key.replace("_", "-"), "prompt": need_in.prompt,
                "reason": redact(need_in.reason), "choices": need_in.choices, "default": need_in.default}
        if outcome.result is None:
            return True, redact(outcome.error or "failed"), {"error": redact(outcome.error or "failed"),
                                                              "exit_code": outcome.exit_code}
        doc = outcome.result.model_dump(mode="json")
        doc["exit_code"] = outcome.exit_code
        # each string redacted on its own: redacting the JSON text could run a match past a closing quote
        return outcome.exit_code != 0, redact(render_markdown(outcome.result)), redact_obj(doc)  # type: ignore[return-value]

    def rerun_line(self, name: str, arguments: dict[str, Any]) -> str | None:
        """The `sage run ... --json` line that prints a read tool's whole result; None for a tool that may write
        (running it again from a shell is a decision of its own)."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        import shlex

        tools = self.tools()
        if name not in tools or tools[name][1].max_risk != "read":
            return None
        words = [f"*{name}"]
        for key, value in sorted(arguments.items()):
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                words += [flag] if value else [flag, "no"]
            elif value is not None:
                words += [flag, shlex.quote(str(value))]
        where = f" --env {self.target.env}" + (" --db-url URL" if self.target.source == "--db-url" else "")
        return f"sage run {shlex.quote(' '.join(words))} --json{where}"

    def fleet(self, arguments: dict[str, Any], person_approved: tuple[str, ...] = ()) -> tuple[bool, str, dict[str, Any]]:
        """Commands on every target of a targets file; the same document as `sage run --targets --json`. Reads run
        in parallel. Writes: each target has its own plan and token (first call: nothing runs, every plan comes
        back); a call runs only the targets whose token it carries, one at a time, and a target whose operation
        asks for more (its exact migration plan, a typed word) comes back with that plan and its next token.
        `person_approved`: "target\0plan hash" pairs a person confirmed through elicitation."""
        # lazy: the thread pool loads only for parallel work
        from sage_agent.frontends.fleet import fleet_document, fleet_markdown, load_fleet
        from sage_agent.ops.fleet.runner import TargetRun, _failed, plan_lines, run_fleet
        from sage_agent.ops.fleet.targets import TargetsFileError, default_parallel
        from sage_agent.session.machine import EXIT_FAILED
        from sage_agent.session.parse import CommandLineError

        try:
            args = FleetArgs(**arguments)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "arguments"
            return True, f"{FLEET_TOOL}: {where}: {err['msg']}. Nothing was done.", {"error": "bad arguments"}

        path = (self.project / args.targets_file).resolve()
        if not path.is_relative_to(self.project.resolve()):
            return True, (f"{FLEET_TOOL}: targets_file must be inside the project folder ({self.project}). "
                          "Nothing was done."), {"error": "bad arguments"}
        try:
            entries = load_fleet(path, args.only, self.project)
            plans = plan_lines(args.commands, {}, self.project)
        except (TargetsFileError, CommandLineError) as exc:
            return True, redact(f"{FLEET_TOOL}: {exc}"), {"error": "bad arguments"}
        writes = [p for p in plans if p.writes]
        tokens = tuple(t.strip() for t in str(args.confirmation_token or "").split(",") if t.strip())
        if not writes and tokens:
            return True, f"{FLEET_TOOL}: read commands take no {TOKEN_ARG}. Nothing was done.", {"error": "bad arguments"}
        if writes and self.read_only:
            return True, (f"{FLEET_TOOL}: {', '.join(f'*{p.task.command}' for p in writes)} would change each target: "
                          "refused, the server runs --read-only. Nothing was done."), {"error": "read-only"}
        workers = args.parallel or default_parallel()
        start = time.monotonic()
        if not writes:
            runs = run_fleet(entries, plans, project=self.project, answers_for=lambda e: FlagAnswers(),
                             parallel=workers)
            doc = fleet_document(runs, plans, duration_ms=(time.monotonic() - start) * 1000,
                                 parallel=min(workers, max(1, len(entries))), stop_on_failure=False)
            return doc["exit_code"] != 0, fleet_markdown(doc), redact_obj(doc)  # type: ignore[return-value]

        risk = max((p.risk for p in writes), key=("read", "write", "destructive").index)
        usable = [e for e in entries if e.target is not None]
        gates = {e.name: ConfirmRequest(
            prompt=f"Run {', '.join(args.commands)} ({risk}) on target {e.name} ({e.display_url})?",
            plan="\n".join(args.commands) + f"\nrisk: {risk}\ntarget: {e.name} {e.display_url}") for e in usable}
        answers = {e.name: McpAnswers(self.secret, f"{FLEET_TOOL}\0{e.name}", tokens, shared_tokens=True,
                                      person_approved=tuple(a.split("\0", 1)[1] for a in person_approved
                                                            if a.startswith(e.name + "\0")))
                   for e in usable}
        chosen = []
        for e in usable:
            try:
                answers[e.name].confirm(gates[e.name])
                chosen.append(e)
            except NeedsConfirmation:
                answers[e.name].pending = None  # not chosen in this call: listed with its plan and token below
        if tokens and not chosen:
            return True, (f"{TOKEN_ARG} refused: it matches no target's plan (forged or stale; a plan changes with "
                          "the commands and the targets file). Nothing was done."), {"error": "bad token"}
        pending: list[dict[str, Any]] = []
        if not chosen:  # the first call: every target's plan, nothing runs
            for e in usable:
                need = NeedsConfirmation(gates[e.name], answers[e.name].token_for(gates[e.name]))
                pending.append(self._target_needs(e.name, need))
            doc = {"status": "confirmation_required", "targets": [], "pending": pending,
                   "summary": {"targets": len(entries), "writes": True, "commands": list(args.commands),
                               "not_usable": {e.name: redact(e.problem or "") for e in entries if e.target is None}}}
            return False, self._fleet_needs_text(pending, ran=False), redact_obj(doc)  # type: ignore[return-value]
        stop = True if args.stop_on_failure is None else args.stop_on_failure
        runs: list[TargetRun] = []
        for e in chosen:  # one at a time; a target waiting for its next confirmation does not stop the others
            if stop and any(_failed(r) and answers[r.entry.name].pending is None for r in runs):
                runs.append(TargetRun(e, skipped=[p.line for p in plans], status="skipped", exit_code=EXIT_FAILED,
                                      error="not started: an earlier target failed (stop on failure); nothing "
                                            "was run on it"))
                continue
            runs += run_fleet([e], plans, project=self.project, answers_for=lambda e: answers[e.name], parallel=1)
        doc = fleet_document(runs, plans, duration_ms=(time.monotonic() - start) * 1000, parallel=1,
                             stop_on_failure=stop)
        for run in runs:
            a = answers[run.entry.name]
            if a.pending is not None:
                a.pending.token = ",".join(t for t in [*a.used, a.pending.token] if t)
                pending.append(self._target_needs(run.entry.name, a.pending))
        doc["not_chosen"] = [e.name for e in usable if e not in chosen]
        text = fleet_markdown(doc)
        if pending:
            doc["status"] = "confirmation_required"
            doc["pending"] = pending
            text += "\n" + self._fleet_needs_text(pending, ran=True)
        return doc["exit_code"] != 0 and not pending, redact(text), redact_obj(doc)  # type: ignore[return-value]

    @staticmethod
    def _target_needs(name: str, need: NeedsConfirmation) -> dict[str, Any]:
        doc = {"target": name, **McpSage._needs_doc(need)}
        doc.pop("status", None)
        # a typed word is the person's (elicitation); the token only brings this target back to that question
        doc[TOKEN_ARG] = need.token
        return doc

    @staticmethod
    def _fleet_needs_text(pending: list[dict[str, Any]], *, ran: bool) -> str:
        out = [("Some targets need a confirmation before they go on." if ran else
                "CONFIRMATION REQUIRED, target by target. Nothing has been done.")]
        for p in pending:
            out.append(f"\n## {p['target']}\n\nPlan:\n{p['plan']}\n")
            if p["word"]:
                out.append(f"This step needs the person to type {p['word']}: in a client with MCP elicitation they "
                           f"are asked directly; otherwise they run it with `sage run ... --targets FILE --confirm "
                           f"{p['word']}`. A model cannot confirm it.")
            else:
                out.append(f"To run this target, call {FLEET_TOOL} again with the same arguments and "
                           f"{TOKEN_ARG}=\"{p[TOKEN_ARG]}\" (several targets: their tokens, comma-separated).")
        return redact("\n".join(out))

    def fleet_schema(self) -> dict[str, Any]:
        schema = FleetArgs.model_json_schema()
        schema.pop("title", None)
        schema["additionalProperties"] = False
        return schema

    @staticmethod
    def _needs(name: str, need: NeedsConfirmation) -> str:
        if need.request.word:
            return redact(f"PERSON CONFIRMATION REQUIRED (typed word {need.request.word}): {need.request.prompt}"
                          f"\n\nPlan:\n{need.plan}\n\nNothing has been done. This step needs the person to type "
                          f"{need.request.word}: in a client with MCP elicitation they are asked directly; otherwise "
                          f"they run it themselves with `sage run \"*...\" --confirm {need.request.word}`. "
                          "A model cannot confirm it.")
        return redact(f"CONFIRMATION REQUIRED: {need.request.prompt}\n\nPlan:\n{need.plan}\n\n"
                      f"Nothing has been done. To run exactly this plan, call {name} again with the same "
                      f"arguments and {TOKEN_ARG}=\"{need.token}\".")

    @staticmethod
    def _needs_doc(need: NeedsConfirmation) -> dict[str, Any]:
        doc = {"status": "confirmation_required", "plan": redact(need.plan), "plan_hash": need.plan_hash,
               "word": need.request.word}
        if not need.request.word:
            doc[TOKEN_ARG] = need.token
        return doc


def tool_annotations(op) -> dict[str, bool]:
    """MCP hints from the operation's declared risk: read-only only when no input can raise it."""
    return {"read_only_hint": op.max_risk == "read", "destructive_hint": op.max_risk == "destructive"}


# --- one tool result, bounded -----------------------------------------------------------------------------------
_RANK = {"error": 0, "warning": 1, "info": 2}
_NEVER_CUT = 10  # an object, or a list of plain values, of at most this many items is never cut (a row's cells)


def _severity(item: Any) -> int:
    """error, warning, info (a finding's severity, a lint's level), then anything else."""
    if not isinstance(item, dict):
        return 3
    return _RANK.get(str(item.get("severity") or item.get("level") or "").lower(), 3)


def _size(doc: Any) -> int:
    return len(json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":")).encode())


def _cap(value: Any, k: int, path: str, cut: dict[str, list[int]], depth: int = 0, chars: int = 0) -> Any:
    """`value` with every list and object below the top cut to its first `k` items (and, with `chars`, every
    string to that many characters); what was left out is counted in `cut` by path (indexes as [])."""
    if isinstance(value, str):
        return value if not chars or len(value) <= chars else value[:chars] + "…"
    if isinstance(value, dict):
        items = list(value.items())
        if depth and len(items) > max(k, _NEVER_CUT):
            shown, total = cut.setdefault(path, [0, 0])
            cut[path] = [shown + k, total + len(items)]
            items = items[:k]
        return {key: _cap(v, k, f"{path}.{key}" if path else str(key), cut, depth + 1, chars) for key, v in items}
    if isinstance(value, list):
        # a list of records (findings, rows) is cut to k; a short list of values (a row's cells) never
        if depth and len(value) > k and (len(value) > _NEVER_CUT or any(isinstance(v, (dict, list)) for v in value)):
            shown, total = cut.setdefault(path, [0, 0])
            cut[path] = [shown + k, total + len(value)]
            value = sorted(value, key=_severity)[:k]  # the most severe first (stable: else in their order)
        return [_cap(v, k, f"{path}[]", cut, depth + 1, chars) for v in value]
    return value


def _fit(doc: dict[str, Any], budget: int) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The largest cut of `doc` (the same cap on every list) that is at most `budget` bytes. The cap doubles
    from 1 until a cut is too big, then halves in between: each try costs the items it keeps, not the document."""
    for chars in (0, 2000, 300):
        def attempt(k: int, chars: int = chars) -> tuple[dict[str, Any], dict[str, list[int]]] | None:
            cut: dict[str, list[int]] = {}
            capped = _cap(doc, k, "", cut, chars=chars)
            return (capped, cut) if _size(capped) <= budget else None

        best = attempt(0)
        if best is None:
            continue  # long texts: shorten them too
        lo, hi = 0, 1
        while True:
            got = attempt(hi)
            if got is None:
                break
            best, lo = got, hi
            if not got[1]:  # nothing cut any more: the lists fit, only the text was too long
                return best
            hi *= 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            got = attempt(mid)
            if got is None:
                hi = mid
            else:
                best, lo = got, mid
        return best
    # still too big: the top-level facts only (status, summary, exit code...), each short
    small = {k: (v[:300] if isinstance(v, str) else v) for k, v in doc.items() if not isinstance(v, (dict, list))}
    return small, {k: [0, len(v)] for k, v in doc.items() if isinstance(v, (dict, list)) and v}


def _save_whole(project: Path, name: str, suffix: str, text: Callable[[], str]) -> str | None:
    """What a bounded reply left out, whole, in .sage/mcp/NAME+suffix (written to a temporary file, then moved):
    its path in the project, or None when the project cannot be written."""
    try:
        folder = project / ".sage" / "mcp"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (re.sub(r"[^\w.-]", "_", name) + suffix)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text(), encoding="utf-8")
        tmp.replace(path)
        return str(path.relative_to(project))
    except OSError:
        return None


def bound_plan(name: str, message: str, *, limit: int, project: Path) -> str:
    """A plan a person is asked to confirm (MCP elicitation), at most `limit` bytes like a tool result: over it, its
    start and its end stay (the prompt, the first steps; the target and what confirming does), the middle is cut,
    and a note says how much was left out and the file with the whole plan (.sage/mcp/NAME.plan.txt)."""
    data = message.encode()
    if len(data) <= limit:
        return message
    saved = _save_whole(project, name, ".plan.txt", lambda: redact(message))  # None: the note says so
    room = max(limit - 600, 200)  # less the note and the marker
    head = data[: room * 2 // 3].decode("utf-8", "ignore")
    tail = data[len(data) - room // 3:].decode("utf-8", "ignore")
    if "\n" in head[len(head) // 2:]:  # whole lines where the text has them
        head = head[: head.rfind("\n") + 1]
    if "\n" in tail[: len(tail) // 2]:
        tail = tail[tail.find("\n") + 1:]
    left = len(data) - len(head.encode()) - len(tail.encode())
    lines = message.count("\n") - head.count("\n") - tail.count("\n")
    where = f"the whole plan is in {saved}" if saved else "the whole plan could not be saved under .sage/mcp/"
    note = (f"PLAN CUT to {limit // 1000} KB (the whole plan is {len(data) // 1000} KB; SAGE_MCP_RESULT_BYTES sets "
            f"the limit): {left // 1000} KB{f' ({lines} lines)' if lines > 0 else ''} left out where it says so; "
            f"{where}. "
            "Confirming runs the whole plan.")
    marker = f"\n[... {left // 1000} KB of the plan cut here: {where} ...]\n"
    return redact(head.rstrip("\n") + marker + tail + "\n\n" + note)


def bound_result(name: str, text: str, structured: dict[str, Any], *, limit: int, project: Path,
                 rerun: str | None = None) -> tuple[str, dict[str, Any]]:
    """Every MCP tool result goes through here: at most `limit` bytes of text and structured content together.
    Over it, the summary and the most severe findings stay (a list that is cut keeps its errors, then warnings,
    then infos), every list is cut to the same number of items, and both say how many were left out and where the whole result is: a file
    .sage/mcp/NAME.json (the full text and document) and, for a read tool, the `sage run ... --json` line."""
    full_size = _size(structured) + len(text.encode())
    if full_size <= limit:
        return text, structured
    def whole() -> str:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.render import to_json

        return to_json({"tool": name, "text": text, "structured": structured}, pretty=False)

    saved = _save_whole(project, name, ".json", whole)  # None: the command line below still gets everything
    budget = limit // 2 - 1000  # each half, less the note
    cut_doc, cut = _fit(structured, budget)
    left = [f"{total - shown} of {total} {path}" for path, (shown, total) in sorted(cut.items(), key=lambda x: -x[1][1])
            if total > shown]
    where = [f"the whole result is in {saved}"] if saved else []
    if rerun:
        where.append(f"run `{rerun}`")
    note = (f"RESULT CUT to {limit // 1000} KB (the whole result is {full_size // 1000} KB; SAGE_MCP_RESULT_BYTES "
            f"sets the limit). Left out: {'; '.join(left[:8]) or 'long texts shortened'}"
            f"{'; ...' if len(left) > 8 else ''}. To get all: {' or '.join(where) or 'rerun with a narrower scope'}.")
    cut_doc["truncated"] = {"limit_bytes": limit, "full_bytes": full_size,
                            "left_out": {path: total - shown for path, (shown, total) in cut.items() if total > shown},
                            "full_result": saved, "rerun": rerun}
    body = None
    if "operation" in cut_doc and "summary" in cut_doc:  # an OpResult: render the cut one (severe findings first)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.render import render_markdown
        from sage_agent.ops.result import OpResult

        try:
            fields = {k: v for k, v in cut_doc.items() if k in OpResult.model_fields}
            fields["tables"] = [{**t, "truncated": True} if isinstance(t, dict) and "tables[].rows" in cut else t
                                for t in fields.get("tables", [])]
            body = render_markdown(OpResult.model_validate(fields))
        except (ValidationError, TypeError, ValueError):
            body = None
    body = body if body is not None else text
    room = limit // 2 - len(note.encode()) - 2
    if len(body.encode()) > room:
        body = body.encode()[:room].decode("utf-8", "ignore")
        body = body[: body.rfind("\n") + 1] if "\n" in body else body
    return redact(body + "\n" + note), redact_obj(cut_doc)  # type: ignore[return-value]
