"""Webhook alerts: one JSON POST (stdlib urllib) with a bounded timeout. A webhook that is down or slow never
stops a round: the round is recorded and says what happened to its alert."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sage_agent.db.redact import json_may_need_redaction, redact_obj


def check_webhook_url(url: str) -> str:
    """The URL, or ValueError saying what a webhook URL looks like."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--webhook must be an http:// or https:// URL with a host, got {shown_url(url)!r}")
    return url


def shown_url(url: str) -> str:
    """scheme://host[:port]/... : webhook paths often carry a secret token (Slack, Discord), so never the path."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "(not a URL)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}" + ("/…" if parts.path not in ("", "/") or parts.query else "")


@dataclass
class WebhookResult:
    url: str
    ok: bool
    status: int | None
    error: str | None
    elapsed_ms: float

    def describe(self) -> str:
        where = shown_url(self.url)
        if self.ok:
            return f"POST {where} -> {self.status} in {self.elapsed_ms:.0f} ms"
        return f"POST {where} failed: {self.error} (the round is recorded; the alert lines above still stand)"

    def to_json(self) -> dict[str, Any]:
        return {"url": shown_url(self.url), "ok": self.ok, "status": self.status, "error": self.error,
                "elapsed_ms": round(self.elapsed_ms, 1)}


def post_webhook(url: str, payload: dict[str, Any], timeout_s: float) -> WebhookResult:
    """POST `payload`, redacted right before it leaves (a check's text can hold what a session showed it: an
    application_name or a query with a connection string)."""
    body = json.dumps(payload, default=str)
    if json_may_need_redaction(body):
        body = json.dumps(redact_obj(payload), default=str)
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "db-sage-watch"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - the user's own URL
            status = response.status
        return WebhookResult(url, 200 <= status < 300, status, None if 200 <= status < 300 else f"HTTP {status}",
                             (time.perf_counter() - t0) * 1000)
    except urllib.error.HTTPError as exc:
        return WebhookResult(url, False, exc.code, f"HTTP {exc.code} {exc.reason}", (time.perf_counter() - t0) * 1000)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        text = "no answer within the timeout" if isinstance(reason, TimeoutError) or "timed out" in str(reason) \
            else str(reason)
        return WebhookResult(url, False, None, f"{text} (timeout {timeout_s:g} s)", (time.perf_counter() - t0) * 1000)
