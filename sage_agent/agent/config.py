"""Which model DB Sage talks to, from the environment. No key: every *command still works."""

from __future__ import annotations

import os
from dataclasses import dataclass

# The current Sonnet in the installed SDK's model list (claude-sonnet-4-5 is deprecated there).
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 4096


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


def _int(env: dict[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        return default


def load_config(environ: dict[str, str] | None = None) -> AgentConfig:
    env = dict(os.environ if environ is None else environ)
    provider = env.get("SAGE_PROVIDER", "anthropic").strip().lower() or "anthropic"
    common = dict(max_tokens=_int(env, "SAGE_MAX_TOKENS", DEFAULT_MAX_TOKENS),
                  max_retries=_int(env, "SAGE_MAX_RETRIES", 3),
                  tool_result_chars=_int(env, "SAGE_TOOL_RESULT_CHARS", 8000),
                  prompt_caching=env.get("SAGE_PROMPT_CACHING", "1") not in ("0", "no", "false"))
    if provider in ("openai", "openai-compatible", "ollama", "vllm", "lmstudio"):
        return AgentConfig(provider="openai", model=env.get("SAGE_OPENAI_MODEL", "") or env.get("SAGE_MODEL", ""),
                           api_key=env.get("SAGE_OPENAI_API_KEY") or None,
                           base_url=(env.get("SAGE_OPENAI_BASE_URL") or "").rstrip("/") or None, **common)
    return AgentConfig(provider="anthropic", model=env.get("SAGE_MODEL") or DEFAULT_MODEL,
                       api_key=env.get("ANTHROPIC_API_KEY") or None,
                       base_url=env.get("ANTHROPIC_BASE_URL") or None, **common)
