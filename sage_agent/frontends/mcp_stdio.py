"""`sage mcp`'s transport: MCP over stdio (JSON-RPC 2.0, one message per line), small enough to start fast.

The SDK's server imports pydantic models of the whole protocol before it can answer `initialize` (most of the
start-up of `sage mcp`); the stdio transport of the handshake protocol is five methods, so it lives here:
`initialize`, `ping`, `tools/list`, `tools/call` and, from server to client, `elicitation/create` (a person
confirms a plan, or answers the question an operation stopped at: NeedsInput). The tools themselves (McpSage in mcp_server.py, built from the registry) are imported on the
first call, and `tools/list` is answered from a cache of the tool list that is keyed by every source and
catalog file it depends on, so a changed task or operation rebuilds it.

Read tools run one at a time on the reading thread with pooled connections (sage_agent.db.pool); tools that may
confirm run on a worker thread, so the reader can take the client's answer to an elicitation meanwhile.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from sage_agent import __version__
from sage_agent.config import settings
from sage_agent.db.env import ConfigError, resolve_target

PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
INSTRUCTIONS = "DB Sage: PostgreSQL/Supabase DBA tools. Write tools return a plan and a confirmation token first."
ELICIT_TIMEOUT_S = 600  # a person reading a plan; after that the call ends as not confirmed


# --- the tool list, cached --------------------------------------------------------------------------------------
def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "db-sage"


def _source_key(read_only: bool) -> str:
    """A digest of everything the tool list is made of: the package's modules and the catalog's task files."""
    # lazy: tests replace catalog_root on its module (monkeypatch), which a top-level import would bypass
    from sage_agent.catalog.paths import PACKAGE_DIR, catalog_root

    digest = hashlib.sha256(f"{__version__}\0{read_only}\0{sys.version}".encode())
    roots = [PACKAGE_DIR, catalog_root() / "tasks", catalog_root() / "personas"]
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".md")):
                    st = os.stat(os.path.join(folder, name))
                    digest.update(f"{folder}/{name}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return digest.hexdigest()[:24]


def build_tool_list(sage: Any) -> list[dict[str, Any]]:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.frontends.mcp_server import FLEET_DESCRIPTION, FLEET_TOOL, tool_annotations

    tools = []
    for name, (task, op) in sage.tools().items():
        hints = tool_annotations(op)
        tools.append({"name": name, "description": sage.describe(task, op), "inputSchema": sage.schema(task, op),
                      "annotations": {"readOnlyHint": hints["read_only_hint"],
                                      "destructiveHint": hints["destructive_hint"]}})
    # the fleet tool may write (target by target, each confirmed); on a --read-only server it only reads
    tools.append({"name": FLEET_TOOL, "description": FLEET_DESCRIPTION, "inputSchema": sage.fleet_schema(),
                  "annotations": {"readOnlyHint": bool(sage.read_only), "destructiveHint": not sage.read_only}})
    return tools


# --- the server -------------------------------------------------------------------------------------------------
class StdioServer:
    def __init__(self, project: Path, target: Any, *, read_only: bool = False, stdin: IO[bytes] | None = None,
                 stdout: IO[bytes] | None = None) -> None:
        self.project, self.target, self.read_only = project, target, read_only
        self.stdin = stdin or sys.stdin.buffer
        self.stdout = stdout or sys.stdout.buffer
        self._write_lock = threading.Lock()
        self._sage: Any = None
        self._sage_lock = threading.Lock()
        self._tools: list[dict[str, Any]] | None = None
        self._read_tools: set[str] = set()
        self._pending: dict[str, Future] = {}
        self._next_id = 0
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sage-mcp")
        self.client_capabilities: dict[str, Any] = {}
        self.result_bytes = settings().mcp_result_bytes  # the cap on one tool result (mcp_server.bound_result)

    # --- wire ---------------------------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
        with self._write_lock:
            self.stdout.write(data)
            self.stdout.flush()

    def reply(self, msg_id: Any, result: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "id": msg_id, "result": result})

    def error(self, msg_id: Any, code: int, message: str) -> None:
        self.send({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})

    def request(self, method: str, params: dict[str, Any], timeout: float = ELICIT_TIMEOUT_S) -> dict[str, Any]:
        """A request to the client (from a worker thread); the reading thread delivers its answer."""
        with self._write_lock:
            self._next_id += 1
            msg_id = f"sage-{self._next_id}"
        future: Future = Future()
        self._pending[msg_id] = future
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        try:
            return future.result(timeout=timeout)
        finally:
            self._pending.pop(msg_id, None)

    # --- the tools ----------------------------------------------------------------------------------------
    @property
    def sage(self) -> Any:
        with self._sage_lock:
            if self._sage is None:
                # lazy: psycopg loads on the first database call
                from sage_agent.db.pool import ConnectionPool
                from sage_agent.frontends.mcp_server import McpSage

                self._sage = McpSage(self.project, self.target, read_only=self.read_only, pool=ConnectionPool())
            return self._sage

    def tool_list(self) -> list[dict[str, Any]]:
        if self._tools is None:
            path = None
            try:
                path = _cache_dir() / f"mcp-tools-{_source_key(self.read_only)}.json"
                self._tools = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._tools = build_tool_list(self.sage)
                if path is not None:
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        tmp = path.with_suffix(f".{os.getpid()}.tmp")
                        tmp.write_text(json.dumps(self._tools), encoding="utf-8")
                        tmp.replace(path)
                    except OSError:
                        pass  # an unwritable cache only costs the next start-up
            self._read_tools = {t["name"] for t in self._tools if t["annotations"]["readOnlyHint"]}
        return self._tools

    def warm_up(self) -> None:
        """Import the registry and the session while the client is idle, so the first call does not wait."""
        def run() -> None:
            try:
                self.sage.tools()
                # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
                import sage_agent.session.machine  # noqa: F401
            except Exception:  # noqa: BLE001 - the first call reports any real problem itself
                pass

        threading.Thread(target=run, name="sage-mcp-warm-up", daemon=True).start()

    def call_tool(self, msg_id: Any, params: dict[str, Any], *, inline: bool = False) -> None:
        """Answer one tools/call. `inline` (a read tool on the reading thread): a question for the person
        (NeedsInput) moves to a worker, so that this thread can read the client's answer meanwhile."""
        name = str(params.get("name") or "")
        args = params.get("arguments") or {}
        try:
            if not isinstance(args, dict):
                is_error, text, structured = True, f"{name}: arguments must be an object", {"error": "bad arguments"}
            else:
                first = self.sage.call(name, dict(args))
                if inline and self.can_elicit and first[2].get("status") == "needs_input":
                    self._workers.submit(self._finish_call, msg_id, name, dict(args), first)
                    return
                is_error, text, structured = self._call_with_elicitation(name, dict(args), first)
        except Exception as exc:  # noqa: BLE001 - a tool failure is a tool result, never a dead server
            is_error, text, structured = self._failure(exc)
        self._reply_tool(msg_id, name, args, is_error, text, structured)

    def _finish_call(self, msg_id: Any, name: str, args: dict[str, Any], first: tuple) -> None:
        try:
            is_error, text, structured = self._call_with_elicitation(name, args, first)
        except Exception as exc:  # noqa: BLE001 - a tool failure is a tool result, never a dead server
            is_error, text, structured = self._failure(exc)
        self._reply_tool(msg_id, name, args, is_error, text, structured)

    @staticmethod
    def _failure(exc: Exception) -> tuple[bool, str, dict[str, Any]]:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.redact import redact

        return True, redact(f"{type(exc).__name__}: {exc}"), {"error": "failed"}

    def _reply_tool(self, msg_id: Any, name: str, args: Any, is_error: bool, text: str,
                    structured: dict[str, Any]) -> None:
        """Every tool result leaves here: bounded (SAGE_MCP_RESULT_BYTES) and redacted."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.mcp_server import bound_result

        rerun = None
        if isinstance(args, dict):
            try:
                rerun = self.sage.rerun_line(name, args)
            except Exception:  # noqa: BLE001 - no line to suggest: the file still holds the whole result
                rerun = None
        text, structured = bound_result(name, text, structured, limit=self.result_bytes, project=self.project,
                                        rerun=rerun)
        self.reply(msg_id, {"content": [{"type": "text", "text": text}], "structuredContent": structured,
                            "isError": is_error})

    def _call_with_elicitation(self, name: str, args: dict[str, Any],
                               first: tuple | None = None) -> tuple[bool, str, dict[str, Any]]:
        """A client that supports MCP elicitation asks its person (1) each question an operation stops at
        (NeedsInput: the answer becomes that tool argument and the call runs again, so it can do only what an
        argument can) and (2) to confirm each exact plan instead of handing a token to the model; the server
        then continues with its own token. A typed word is only ever taken from a confirmation's own form."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.mcp_server import TOKEN_ARG

        sage = self.sage
        approved: tuple[str, ...] = ()
        elicited: dict[str, Any] = {}
        is_error, text, structured = first if first is not None else sage.call(name, dict(args))
        if "pending" in structured:
            return self._fleet_with_elicitation(name, args, is_error, text, structured)
        for _ in range(8):
            status = structured.get("status")
            if not self.can_elicit or status not in ("needs_input", "confirmation_required"):
                break
            if status == "needs_input":
                key = str(structured["key"])
                if key in elicited or key == TOKEN_ARG:  # asked already: the answer did not settle it
                    break
                answer = self._ask_input(structured)
                if answer is None:
                    return True, (f"Not answered by the person: nothing was done. {text}"), {
                        **structured, "status": "cancelled"}
                if answer is False:  # "no" to a yes/no question: the operation's own answer (the flag) stands
                    break
                elicited[key] = answer
                args = {k: v for k, v in args.items() if k != TOKEN_ARG}  # a new plan: confirmed afresh
                args[key] = answer
                is_error, text, structured = sage.call(name, dict(args), approved, tuple(elicited))
                continue
            if is_error:
                break
            word = structured.get("word")
            if not self._elicit_plan(text, word, name=name):
                return False, "Not confirmed by the person: nothing was done.", {"status": "cancelled"}
            if word:
                approved = (*approved, structured["plan_hash"])
            else:
                args = {**args, TOKEN_ARG: structured[TOKEN_ARG]}
            is_error, text, structured = sage.call(name, dict(args), approved, tuple(elicited))
        return is_error, text, structured

    def _elicit_plan(self, message: str, word: str | None, *, name: str = "plan") -> bool:
        """Ask the client's person to confirm one plan (and type `word`); anything but an exact yes is a no.
        A plan over SAGE_MCP_RESULT_BYTES is cut like a tool result, saying where the whole plan is."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.mcp_server import bound_plan

        message = bound_plan(name, message, limit=self.result_bytes, project=self.project)
        props: dict[str, Any] = {"confirm": {"type": "boolean", "title": "Run exactly this plan", "default": False}}
        if word:
            props["word"] = {"type": "string", "title": f"Type {word} to confirm"}
        try:
            answer = self.request("elicitation/create", {"mode": "form", "message": message, "requestedSchema": {
                "type": "object", "properties": props, "required": list(props)}})
        except Exception:  # noqa: BLE001 - no answer (timeout, client error): nothing runs
            answer = {}
        content = answer.get("content") or {}
        return answer.get("action") == "accept" and content.get("confirm") is True and (
            not word or content.get("word") == word)

    def _fleet_with_elicitation(self, name: str, args: dict[str, Any], is_error: bool, text: str,
                                structured: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        """A fleet write with a person at the client: each target's plan is one question; the targets the person
        confirms run (one at a time), the others do not. A target that asks for more (its exact migration plan,
        a typed word) is asked again. The answer is every target's last result."""
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.frontends.fleet import fleet_markdown
        from sage_agent.frontends.mcp_server import TOKEN_ARG

        if not self.can_elicit:
            return is_error, text, structured
        done: dict[str, dict[str, Any]] = {}  # target -> its result, from the call in which it last ran
        declined: list[str] = []
        last: dict[str, Any] = structured
        approved: tuple[str, ...] = ()
        for _ in range(4):
            for t in last.get("targets") or []:
                done[t["name"]] = t
            pending = last.get("pending") or []
            if is_error or not pending:
                break
            tokens, chosen = [], []
            for p in pending:
                message = f"Target {p['target']}:\n{p['plan']}"
                if not self._elicit_plan(message, p.get("word"), name=f"{name}-{p['target']}"):
                    declined.append(p["target"])
                    continue
                chosen.append(p["target"])
                if p.get("word"):
                    approved = (*approved, f"{p['target']}\0{p['plan_hash']}")
                    tokens.extend(t for t in str(p.get(TOKEN_ARG) or "").split(",") if t)
                else:
                    tokens.append(str(p[TOKEN_ARG]))
            for name_ in chosen:
                done.pop(name_, None)
            if not chosen:
                last = {**last, "pending": []}
                break
            is_error, text, last = self.sage.call(name, {**args, TOKEN_ARG: ",".join(tokens)}, approved)
        if not done and not last.get("pending"):
            return False, "Not confirmed by the person: nothing was done.", {"status": "cancelled",
                                                                             "declined": declined}
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.ops.fleet.runner import severity

        codes = [t["exit_code"] for t in done.values()] + ([3] if declined or last.get("pending") else [])
        code = min(codes, key=severity)
        doc = {"targets": list(done.values()), "declined": declined, "exit_code": code,
               "summary": {**(last.get("summary") or {}), "exit_code": code, "declined": declined}}
        text = fleet_markdown(_table_doc(doc))
        if declined:
            text += f"\nNot confirmed by the person (nothing ran on them): {', '.join(declined)}\n"
        return code not in (0, 3), text, doc

    def _ask_input(self, need: dict[str, Any]) -> Any:
        """One NeedsInput as an elicitation form with one field: a yes/no is a boolean, choices an enum. None when
        the person declines, cancels or does not answer."""
        key, choices, default = str(need["key"]), list(need.get("choices") or []), need.get("default")
        field_schema: dict[str, Any] = {"title": str(need.get("prompt") or key),
                                        "description": f"the tool argument {key} (flag {need.get('flag')})"}
        if choices == ["yes", "no"]:
            field_schema["type"] = "boolean"
            if default is not None:
                field_schema["default"] = default == "yes"
        else:
            field_schema["type"] = "string"
            if choices:
                field_schema["enum"] = choices
            if default is not None:
                field_schema["default"] = default
        message = "\n".join(x for x in (str(need.get("reason") or ""), str(need.get("prompt") or key)) if x)
        try:
            answer = self.request("elicitation/create", {"mode": "form", "message": message, "requestedSchema": {
                "type": "object", "properties": {key: field_schema}, "required": [key]}})
        except Exception:  # noqa: BLE001 - no answer (timeout, client error): nothing runs
            return None
        value = (answer.get("content") or {}).get(key) if answer.get("action") == "accept" else None
        if value is None or (field_schema["type"] == "boolean") != isinstance(value, bool):
            return None
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def can_elicit(self) -> bool:
        return isinstance(self.client_capabilities.get("elicitation"), dict)

    # --- dispatch -----------------------------------------------------------------------------------------
    def handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            return self.error(None, -32600, "invalid request: a JSON-RPC message is an object")
        method, msg_id = message.get("method"), message.get("id")
        if method is None:  # a response to one of our requests
            future = self._pending.get(str(msg_id))
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(RuntimeError(str(message["error"])))
                else:
                    future.set_result(message.get("result") or {})
            return None
        params = message.get("params") or {}
        if msg_id is None:  # notifications: initialized, cancelled, progress - nothing to answer
            return None
        if method == "initialize":
            asked = str(params.get("protocolVersion") or "")
            self.client_capabilities = params.get("capabilities") or {}
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent import __version__

            return self.reply(msg_id, {
                "protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1],
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "db-sage", "version": __version__}, "instructions": INSTRUCTIONS})
        if method == "ping":
            return self.reply(msg_id, {})
        if method == "tools/list":
            self.reply(msg_id, {"tools": self.tool_list()})
            if self._sage is None:
                self.warm_up()
            return None
        if method == "tools/call":
            self.tool_list()
            if str(params.get("name")) in self._read_tools:
                return self.call_tool(msg_id, params, inline=True)  # never confirms: runs here, in order
            self._workers.submit(self.call_tool, msg_id, params)
            return None
        return self.error(msg_id, -32601, f"method not found: {method}")

    def serve(self) -> None:
        for raw in self.stdin:
            if not raw.strip():
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                self.error(None, -32700, "parse error: each line must be one JSON-RPC message")
                continue
            try:
                self.handle(message)
            except Exception as exc:  # noqa: BLE001 - one bad message never ends the server
                if isinstance(message, dict) and message.get("id") is not None and message.get("method"):
                    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
                    from sage_agent.db.redact import redact

                    self.error(message["id"], -32603, redact(f"internal error: {type(exc).__name__}: {exc}"))
        self._workers.shutdown(wait=True)

    def close(self) -> None:
        if self._sage is not None and self._sage.pool is not None:
            self._sage.pool.close()


def _table_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields fleet_markdown reads, with defaults for a merged document."""
    summary = {"ok": 0, "drift": 0, "failed": 0, "invalid": 0, "skipped": 0, "worst_target": None, "parallel": 1,
               "duration_ms": 0.0, "commands": [], **doc.get("summary", {})}
    statuses = [t["status"] for t in doc["targets"]]
    for key in ("ok", "drift", "failed", "invalid", "skipped"):
        summary[key] = statuses.count(key)
    summary["targets"] = len(doc["targets"]) + len(doc.get("declined") or [])
    return {**doc, "summary": summary}


def main(argv: list[str], project: Path) -> int:
    parser = argparse.ArgumentParser(prog="sage mcp", description="serve DB Sage's operations over MCP (stdio)")
    parser.add_argument("--read-only", action="store_true", help="serve read operations only")
    parser.add_argument("--env", default=settings().env)
    parser.add_argument("--db-url", default=None)
    args = parser.parse_args(argv)

    try:
        target = resolve_target(project, args.env, args.db_url)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = StdioServer(project, target, read_only=args.read_only)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.embedded import stop_shadow_only_servers

        stop_shadow_only_servers()  # started only for a shadow during this session: not left behind
    return 0
