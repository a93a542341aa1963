"""Which model DB Sage talks to, from the environment. No key: every *command still works."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sage_agent.config import settings

# The current Sonnet in the installed SDK's model list (claude-sonnet-4-5 is deprecated there).
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = settings({}).max_tokens


@dataclass
class AgentConfig:
    provider: str = "anthropic"  # anthropic | openai (any OpenAI-compatible server: Ollama, vLLM, LM Studio)
    model: str = DEFAULT_MODEL
    api_key: str | None = None
    base_url: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_retries: int = 3
    timeout_s: float = 120.0
    tool_result_chars: int = 8000
    on_demand_tasks: bool = True  # hand a task's full markdown to the model only when it starts that task
    prompt_caching: bool = True

    @property
    def configured(self) -> bool:
        if self.provider == "openai":
            return bool(self.base_url and self.model)
        return bool(self.api_key)

    @property
    def missing_reason(self) -> str:
        if self.provider == "openai":
            return "set SAGE_OPENAI_BASE_URL and SAGE_OPENAI_MODEL for the OpenAI-compatible provider"
        return "set ANTHROPIC_API_KEY (or SAGE_PROVIDER=openai with SAGE_OPENAI_BASE_URL for a self-hosted model)"


def no_model_message(text: str, reason: str) -> str:
    """What a plain-language question gets without a model: why, and the commands it is most likely about
    (the same words at the REPL and from `sage ask`)."""
    # lazy: the catalog is read only for a question without a model
    from sage_agent.catalog.tasks import suggest_commands

    close = suggest_commands(text)
    hint = f" Closest commands: {', '.join(close)}." if close else ""
    return f"Plain-language requests need a model: {reason}.{hint} Every *command works without one; type *help."


def load_config(environ: dict[str, str] | None = None) -> AgentConfig:
    env = dict(os.environ if environ is None else environ)
    s = settings(env)
    provider = s.provider.strip().lower() or "anthropic"
    common = dict(max_tokens=s.max_tokens, max_retries=s.max_retries, tool_result_chars=s.tool_result_chars,
                  prompt_caching=s.prompt_caching)
    if provider in ("openai", "openai-compatible", "ollama", "vllm", "lmstudio"):
        return AgentConfig(provider="openai", model=s.openai_model or s.model, api_key=s.openai_api_key or None,
                           base_url=s.openai_base_url.rstrip("/") or None, **common)
    return AgentConfig(provider="anthropic", model=s.model or DEFAULT_MODEL,
                       api_key=env.get("ANTHROPIC_API_KEY") or None,
                       base_url=env.get("ANTHROPIC_BASE_URL") or None, **common)
