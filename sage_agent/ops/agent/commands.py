"""*usage and *resume: the plain-language session's counters and saved transcripts.

Operations reach the agent through `sage_agent.agent.loop.current_agent()` (the conversation of this
process); they never prompt or print.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel

from sage_agent.ops.registry import operation
from sage_agent.ops.result import OpError, OpResult, Table


class UsageInput(BaseModel):
    turns: bool = True


@operation("agent-usage", risk="read")
def usage(inputs: UsageInput, ctx) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.agent.loop import current_agent

    agent = current_agent()
    if agent is None:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.agent.config import load_config

        config = load_config()
        how = "ask a question in plain language" if config.configured else config.missing_reason
        return OpResult(operation="agent-usage", summary="No model usage in this session yet",
                        facts={"requests": 0, "cost_usd": 0.0}, notes=[f"To start: {how}."])
    totals = agent.ledger.totals()
    cost = totals["cost_usd"]
    facts = {"provider": agent.config.provider, "model": agent.config.model, "session": agent.id,
             "requests": totals["requests"], "input_tokens": totals["input_tokens"],
             "cache_write_tokens": totals["cache_creation_input_tokens"],
             "cache_read_tokens": totals["cache_read_input_tokens"], "output_tokens": totals["output_tokens"],
             "cache_hit_share": f"{100 * totals['cache_hit_share']:.1f}%",
             "cost_usd": f"{cost:.4f} (estimate)" if cost is not None else "unknown (no price for this model)"}
    tables = []
    if inputs.turns and agent.ledger.turns:
        tables.append(Table(title="Requests", columns=["#", "input", "cache write", "cache read", "output",
                                                        "request KB", "tools", "cost USD"],
                            rows=[[t.turn, t.input_tokens, t.cache_creation_input_tokens, t.cache_read_input_tokens,
                                   t.output_tokens, round(t.request_bytes / 1024, 1), t.tool_calls,
                                   None if t.cost_usd is None else round(t.cost_usd, 5)]
                                  for t in agent.ledger.turns]))
    return OpResult(operation="agent-usage",
                    summary=f"{totals['requests']} model request(s), "
                            f"{totals['input_tokens'] + totals['cache_creation_input_tokens'] + totals['cache_read_input_tokens']:,}"
                            f" input and {totals['output_tokens']:,} output tokens",
                    facts=facts, tables=tables, data={"totals": totals,
                                                      "turns": [t.to_dict() for t in agent.ledger.turns]})


class ResumeInput(BaseModel):
    id: str | None = None
    list: bool = False


@operation("agent-resume", risk="read")
def resume(inputs: ResumeInput, ctx) -> OpResult:
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.agent.loop import current_agent
    from sage_agent.agent.transcript import list_sessions, load_messages

    sessions = list_sessions(ctx.project)
    agent = current_agent(create=not inputs.list)
    if agent is not None:
        sessions = [s for s in sessions if s["id"] != agent.id or s["messages"]]
    table = Table(title="Saved sessions", columns=["id", "messages", "first question", "saved"],
                  rows=[[s["id"], s["messages"], s["first"],
                         datetime.fromtimestamp(s["mtime"], timezone.utc).strftime("%Y-%m-%d %H:%M")]
                        for s in sessions[:20]], truncated=len(sessions) > 20, total_rows=len(sessions))
    if inputs.list:
        return OpResult(operation="agent-resume", summary=f"{len(sessions)} saved session(s)", tables=[table],
                        next_steps=["*resume ID"])
    candidates = [s for s in sessions if s["messages"]]
    if not candidates:
        raise OpError("no saved conversations in .sage/sessions/", "ask a question in plain language to start one")
    wanted = inputs.id or candidates[0]["id"]
    if wanted not in {s["id"] for s in sessions}:
        raise OpError(f"no saved session {wanted!r}", "*resume --list shows the saved sessions", exit_code=2)
    first = next(s["first"] for s in sessions if s["id"] == wanted)
    if agent is None:
        count = len(load_messages(ctx.project, wanted))
        return OpResult(operation="agent-resume", status="warning",
                        summary=f"Session {wanted} has {count} message(s); continuing it needs a model",
                        facts={"session": wanted, "first_question": first},
                        notes=["Set ANTHROPIC_API_KEY (or a provider), then *resume again."])
    count = agent.resume(wanted)
    return OpResult(operation="agent-resume", summary=f"Resumed session {wanted} ({count} messages)",
                    facts={"session": wanted, "first_question": first, "messages": count},
                    next_steps=["ask your next question", "*usage"])
