"""Model providers. Messages are kept in the Anthropic Messages format; other providers translate.

- AnthropicProvider: the `anthropic` SDK (HTTP through httpx2), streaming, SDK retries with backoff on
  429/529/5xx and connection errors.
- OpenAIProvider: any OpenAI-compatible /chat/completions server (Ollama, vLLM, LM Studio) over httpx.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from sage_agent.agent.config import AgentConfig


@dataclass
class Reply:
    content: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int] = field(default_factory=dict)


class ProviderError(Exception):
    """A failure the person can act on. kind: auth | network | model | rate | overloaded | server | request."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _no_key_hint() -> str:
    return "Every *command still works without the model; type *help."


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, config: AgentConfig, http_client: Any = None) -> None:
        # lazy: the model client loads only when the agent runs
        import anthropic

        self.config = config
        kwargs: dict[str, Any] = {"api_key": config.api_key, "max_retries": config.max_retries,
                                  "timeout": config.timeout_s}
        if config.base_url:
            kwargs["base_url"] = config.base_url
        if http_client is not None:
            kwargs["http_client"] = http_client
        self.client = anthropic.Anthropic(**kwargs)

    def send(self, *, system: list[dict], tools: list[dict], messages: list[dict],
             on_text: Callable[[str], None]) -> Reply:
        # lazy: the model client loads only when the agent runs
        import anthropic

        model = self.config.model
        try:
            with self.client.messages.stream(model=model, max_tokens=self.config.max_tokens, system=system,
                                             tools=tools, messages=messages) as stream:
                for event in stream:
                    if event.type == "content_block_delta" and getattr(event.delta, "type", "") == "text_delta":
                        on_text(event.delta.text)
                final = stream.get_final_message()
        except anthropic.AuthenticationError:
            raise ProviderError("auth", "the Anthropic API refused the key (401): check ANTHROPIC_API_KEY. "
                                + _no_key_hint()) from None
        except anthropic.PermissionDeniedError:
            raise ProviderError("auth", "the key may not use this model or API (403): check the key's "
                                        "workspace and permissions. " + _no_key_hint()) from None
        except anthropic.NotFoundError:
            raise ProviderError("model", f"unknown model {model!r} (404): set SAGE_MODEL to a current model, "
                                         f"e.g. claude-sonnet-5-5. " + _no_key_hint()) from None
        except anthropic.RateLimitError:
            raise ProviderError("rate", f"rate limited (429) after {self.config.max_retries} retries: wait a "
                                        "minute and ask again. " + _no_key_hint()) from None
        except anthropic.APIConnectionError as exc:
            what = "timed out" if isinstance(exc, anthropic.APITimeoutError) else "cannot reach the Anthropic API"
            raise ProviderError("network", f"{what} (no network, proxy or firewall?) after "
                                           f"{self.config.max_retries} retries. " + _no_key_hint()) from None
        except anthropic.APIStatusError as exc:
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent.db.redact import redact

            if exc.status_code == 529:
                raise ProviderError("overloaded", f"the API is overloaded (529) after {self.config.max_retries} "
                                                  "retries: try again shortly. " + _no_key_hint()) from None
            kind = "server" if exc.status_code >= 500 else "request"
            raise ProviderError(kind, redact(f"the API answered {exc.status_code}: {_api_message(exc)}")) from None
        content = [_clean_block(b.model_dump(exclude_none=True)) for b in final.content]
        usage = final.usage.model_dump(exclude_none=True) if final.usage else {}
        return Reply(content=content, stop_reason=final.stop_reason or "end_turn",
                     usage={k: v for k, v in usage.items() if isinstance(v, int)})


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))


def _clean_block(block: dict[str, Any]) -> dict[str, Any]:
    """Keep what the API accepts back in a later request."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": block.get("input") or {}}
    return block


class OpenAIProvider:
    """OpenAI-compatible chat completions (Ollama, vLLM, LM Studio) over plain httpx."""

    name = "openai"

    def __init__(self, config: AgentConfig, http_client: Any = None) -> None:
        # lazy: the HTTP client loads only when it is used
        import httpx

        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = http_client or httpx.Client(timeout=config.timeout_s, headers=headers)
        if http_client is not None and headers:
            self.client.headers.update(headers)

    def send(self, *, system: list[dict], tools: list[dict], messages: list[dict],
             on_text: Callable[[str], None]) -> Reply:
        # lazy: the HTTP client loads only when it is used
        import httpx

        body = {"model": self.config.model, "max_tokens": self.config.max_tokens,
                "messages": to_openai_messages(system, messages),
                "tools": [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                                            "parameters": t["input_schema"]}} for t in tools]}
        url = f"{self.config.base_url}/chat/completions"
        delay = 0.5
        for attempt in range(self.config.max_retries + 1):
            try:
                resp = self.client.post(url, json=body)
            except httpx.TransportError:
                if attempt < self.config.max_retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise ProviderError("network", f"cannot reach {self.config.base_url} (is the server running?). "
                                    + _no_key_hint()) from None
            if resp.status_code in (408, 409, 429) or resp.status_code >= 500:
                if attempt < self.config.max_retries:
                    wait = _retry_after(resp) or delay * (1 + random.random() / 4)
                    time.sleep(min(wait, 30))
                    delay *= 2
                    continue
            break
        if resp.status_code in (401, 403):
            raise ProviderError("auth", f"{self.config.base_url} refused the key ({resp.status_code}): check "
                                        "SAGE_OPENAI_API_KEY. " + _no_key_hint())
        if resp.status_code == 404:
            raise ProviderError("model", f"unknown model {self.config.model!r} or wrong base URL (404): check "
                                         "SAGE_OPENAI_MODEL and SAGE_OPENAI_BASE_URL (…/v1). " + _no_key_hint())
        if resp.status_code == 429:
            raise ProviderError("rate", "rate limited (429) after retries: try again shortly.")
        if resp.status_code >= 400:
            # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
            from sage_agent.db.redact import redact

            raise ProviderError("server" if resp.status_code >= 500 else "request",
                                redact(f"{self.config.base_url} answered {resp.status_code}: {resp.text[:300]}"))
        data = resp.json()
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content: list[dict[str, Any]] = []
        if message.get("content"):
            on_text(message["content"])
            content.append({"type": "text", "text": message["content"]})
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {"_unparsed": fn.get("arguments")}
            content.append({"type": "tool_use", "id": call.get("id") or f"call_{len(content)}",
                            "name": fn.get("name", ""), "input": args if isinstance(args, dict) else {}})
        usage = data.get("usage") or {}
        cached = ((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
        stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        return Reply(content=content, stop_reason=stop,
                     usage={"input_tokens": int(usage.get("prompt_tokens") or 0) - int(cached),
                            "output_tokens": int(usage.get("completion_tokens") or 0),
                            "cache_read_input_tokens": int(cached)})


def _retry_after(resp) -> float | None:
    try:
        return float(resp.headers.get("retry-after", ""))
    except ValueError:
        return None


def to_openai_messages(system: list[dict], messages: list[dict]) -> list[dict]:
    out: list[dict] = [{"role": "system", "content": "\n\n".join(b["text"] for b in system)}]
    for msg in messages:
        content = msg["content"]
        if isinstance(content, str):
            out.append({"role": msg["role"], "content": content})
            continue
        if msg["role"] == "assistant":
            text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
            calls = [{"id": b["id"], "type": "function",
                      "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})}}
                     for b in content if b.get("type") == "tool_use"]
            item: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                item["tool_calls"] = calls
            out.append(item)
            continue
        texts = []
        for block in content:
            if block.get("type") == "tool_result":
                body = block.get("content")
                if isinstance(body, list):
                    body = "\n".join(b.get("text", "") for b in body)
                out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": body or ""})
            elif block.get("type") == "text":
                texts.append(block["text"])
        if texts:
            out.append({"role": "user", "content": "\n".join(texts)})
    return out


def make_provider(config: AgentConfig, http_client: Any = None):
    if config.provider == "openai":
        return OpenAIProvider(config, http_client)
    return AnthropicProvider(config, http_client)
