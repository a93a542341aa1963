"""`sage ask "..."`: one plain-language request, headless. Confirmations come only from the person's flags
(--yes, --confirm WORD), exactly as for `sage run`; the model can never supply them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from sage_agent.config import settings
from sage_agent.db.env import ConfigError, resolve_target
from sage_agent.db.redact import redact
from sage_agent.session.answers import FlagAnswers
from sage_agent.session.machine import EXIT_USAGE, Session

# Tests inject an httpx2/httpx client here (the real SDK over a MockTransport).
HTTP_CLIENT_FACTORY: Callable[[], Any] | None = None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sage ask", description="Ask DB Sage in plain language (headless).")
    p.add_argument("question", nargs="+", help='e.g. "why is the orders query slow?"')
    p.add_argument("--env", default=settings().env, help="local | dev | staging | prod")
    p.add_argument("--db-url", default=None, help="database URL (overrides the environment's settings)")
    p.add_argument("--yes", action="store_true", help="answer yes to yes/no confirmations (the person's choice)")
    p.add_argument("--confirm", action="append", default=[], metavar="WORD",
                   help="a typed confirmation word the person gives (ROLLBACK, PRODUCTION...)")
    p.add_argument("--resume", default=None, metavar="ID", help="continue a saved conversation")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    return p


def ask_main(argv: list[str], *, project: Path) -> int:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.agent.config import load_config, no_model_message

    args = build_parser().parse_args(argv)
    question = " ".join(args.question).strip()
    config = load_config()

    def fail(code: int, message: str) -> int:
        if args.json:
            sys.stdout.write(json.dumps({"answer": None, "exit_code": code, "error": redact(message)}) + "\n")
        else:
            print(f"error: {redact(message)}", file=sys.stderr)
        return code

    try:
        target = resolve_target(project, args.env, args.db_url)
    except ConfigError as exc:
        return fail(EXIT_USAGE, str(exc))
    if not config.configured:
        return fail(EXIT_USAGE, no_model_message(question, config.missing_reason))
    err = sys.stderr
    session = Session(project=project, target=target, front_door="ask",
                      answers=FlagAnswers(yes=args.yes, confirm_words=tuple(args.confirm)),
                      message_sink=(lambda t: print(redact(t), file=err)) if not args.json else (lambda t: None))
    streamed: list[str] = []

    def on_text(delta: str) -> None:
        streamed.append(delta)
        if not args.json:
            sys.stdout.write(redact(delta))
            sys.stdout.flush()

    def on_tool(name: str, tool_input: dict) -> None:
        if not args.json:
            print(f"\n  → {name} {redact(json.dumps(tool_input, ensure_ascii=False))[:200]}", file=err)

    def on_outcome(outcome) -> None:
        if args.json:
            return
        if outcome.result is not None:
            print(f"    {outcome.result.status}: {redact(outcome.result.summary)}", file=err)
        if outcome.error:
            print(f"    {redact(outcome.error)}", file=err)

    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.agent.loop import Agent

    http_client = HTTP_CLIENT_FACTORY() if HTTP_CLIENT_FACTORY else None
    try:
        agent = Agent(session, config, http_client=http_client, on_text=on_text, on_tool=on_tool,
                      on_outcome=on_outcome)
    except ImportError as exc:
        return fail(1, f"the model client is not installed ({exc.name}): pip install anthropic")
    if args.resume:
        try:
            agent.resume(args.resume)
        except FileNotFoundError:
            return fail(EXIT_USAGE, f"no saved session {args.resume!r}: *resume --list shows them")
    try:
        answer = agent.ask(question)
    except KeyboardInterrupt:
        return fail(130, "interrupted")
    if args.json:
        doc = {"answer": answer.text, "exit_code": answer.exit_code, "error": answer.error,
               "session": agent.id, "tool_calls": answer.tool_calls, "usage": agent.ledger.totals()}
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.db.redact import redact_obj

        sys.stdout.write(json.dumps(redact_obj(doc), default=str, ensure_ascii=False) + "\n")
    else:
        if streamed:
            sys.stdout.write("\n")
        if answer.error:
            print(f"error: {redact(answer.error)}", file=err)
    return answer.exit_code
