"""Wiring the REPL's free text to the agent when a model is configured (lazily: nothing loads until used)."""

from __future__ import annotations

from typing import Any, Callable

from sage_agent.frontends.render import render_text


def agent_reply(repl: Any, http_client: Any = None) -> Callable[[str], None] | None:
    """A `free_text` handler for the REPL, or None when no model is configured (the REPL's own reply then)."""
    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.agent.config import load_config

    config = load_config()
    if not config.configured:
        return None
    state: dict[str, Any] = {}

    def get_agent():
        console = repl.console
        agent = state.get("agent")
        if agent is None:
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent.agent.loop import Agent

            def on_outcome(outcome) -> None:
                if outcome.result is not None:
                    render_text(outcome.result, console)
                if outcome.error and (outcome.result is None or outcome.result.status != "cancelled"):
                    console.print(f"error: {outcome.error}", style="red", markup=False, highlight=False)

            agent = state["agent"] = Agent(
                repl.session, config, http_client=http_client,
                on_text=lambda t: console.print(t, end="", markup=False, highlight=False, soft_wrap=True),
                on_tool=lambda name, inp: console.print(f"\n  → {name}", style="dim", markup=False),
                on_outcome=on_outcome)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.agent.loop import set_current_agent

        set_current_agent(agent)
        return agent

    def reply(text: str) -> None:
        console = repl.console
        agent = get_agent()
        try:
            answer = agent.ask(text)
        except KeyboardInterrupt:
            console.print("\ninterrupted", markup=False)
            return
        console.print("")
        if answer.error:
            console.print(f"error: {answer.error}", style="red", markup=False, highlight=False)

    # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
    from sage_agent.agent.loop import set_agent_factory

    set_agent_factory(get_agent)  # *resume before the first question still has a conversation to continue
    return reply
