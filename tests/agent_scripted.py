"""A scripted Anthropic Messages API for agent tests: the REAL `anthropic` SDK over httpx2.MockTransport.

Each scripted step is a Message (content blocks, stop reason, usage) or an HTTP error; streaming requests get
server-sent events, non-streaming ones JSON. Every request body is captured (bytes and parsed JSON).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Callable

import httpx2

_ids = itertools.count(1)


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def tool(name: str, tool_input: dict | None = None, tool_id: str | None = None) -> dict:
    return {"type": "tool_use", "id": tool_id or f"toolu_{next(_ids):04d}", "name": name, "input": tool_input or {}}


def message(*blocks: dict, usage: dict | None = None, stop_reason: str | None = None) -> dict:
    stop = stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn")
    return {"id": f"msg_{next(_ids):04d}", "type": "message", "role": "assistant", "model": "claude-sonnet-5-5",
            "content": list(blocks), "stop_reason": stop, "stop_sequence": None,
            "usage": usage or {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 0}}


def error(status: int, kind: str = "api_error", msg: str = "scripted error", headers: dict | None = None) -> dict:
    return {"__error__": status, "type": kind, "message": msg, "headers": headers or {}}


def sse(msg: dict) -> bytes:
    start = {**msg, "content": [], "stop_reason": None,
             "usage": {**msg["usage"], "output_tokens": 1}}
    events: list[dict] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(msg["content"]):
        if block["type"] == "text":
            events.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
            words = block["text"].split(" ")
            for j, word in enumerate(words):  # several deltas: the answer streams
                events.append({"type": "content_block_delta", "index": i,
                               "delta": {"type": "text_delta", "text": word + (" " if j < len(words) - 1 else "")}})
        else:
            events.append({"type": "content_block_start", "index": i,
                           "content_block": {**block, "input": {}}})
            events.append({"type": "content_block_delta", "index": i,
                           "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": msg["usage"]["output_tokens"]}})
    events.append({"type": "message_stop"})
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


class ScriptedAPI:
    """Serves the scripted steps in order. A step may be a callable(request_json) -> step."""

    def __init__(self, steps: list[Any]) -> None:
        self.steps = list(steps)
        self.bodies: list[bytes] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        body = request.read()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        doc = json.loads(body) if body else {}
        self.requests.append(doc)
        if not self.steps:
            raise AssertionError("the script ran out of responses")
        step = self.steps.pop(0)
        if callable(step):
            step = step(doc)
        if isinstance(step, Exception):
            raise step
        if "__error__" in step:
            return httpx2.Response(step["__error__"], headers={"content-type": "application/json", **step["headers"]},
                                   json={"type": "error", "error": {"type": step["type"], "message": step["message"]}})
        if doc.get("stream"):
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse(step))
        return httpx2.Response(200, json=step)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handler))

    def all_bodies(self) -> str:
        return "\n".join(b.decode("utf-8", "replace") for b in self.bodies)

    def tool_results(self, index: int) -> list[dict]:
        """The tool_result blocks of the last user message of request `index`."""
        last = self.requests[index]["messages"][-1]
        return [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]


def result_text(block: dict) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content)
    return content or ""


def make_agent(session, api: ScriptedAPI, *, collect: list[str] | None = None, **config_overrides):
    from sage_agent.agent.config import AgentConfig
    from sage_agent.agent.loop import Agent

    config = AgentConfig(**{"api_key": "sk-ant-test-key-0000", "max_retries": 2, **config_overrides})
    sink: Callable[[str], None] = (collect.append if collect is not None else (lambda t: None))
    return Agent(session, config, http_client=api.client(), on_text=sink)


class LoopbackAPI:
    """The scripted Messages API on a real loopback socket (for subprocesses and the real REPL)."""

    def __init__(self, steps: list[dict]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.steps = list(steps)
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                payload = sse(outer.steps.pop(0))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "LoopbackAPI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
