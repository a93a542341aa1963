"""Redaction of connection strings and secrets, applied to every output, file, log and model request."""

from __future__ import annotations

import os
import re
import threading
from urllib.parse import urlsplit

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<scheme>postgres(?:ql)?(?:\+\w+)?://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&\s]+")
# SQL's own spelling: CREATE/ALTER ROLE ... PASSWORD 'x' (pg_stat_statements, pg_stat_activity, a migration);
# a literal cut short (track_activity_query_size, a display width) is hidden to its end
_SQL_PASSWORD = re.compile(r"(?i)\b(password\s*)'(?:[^']|'')*(?:'|$)")
_SECRET_ENV_NAMES = (
    "PGPASSWORD",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_ANON_KEY",
    "SUPABASE_ACCESS_TOKEN",
    "ANTHROPIC_API_KEY",
    "SAGE_OPENAI_API_KEY",
    "OPENAI_API_KEY",
)
_URL_ENV_NAMES = ("SUPABASE_DB_URL", "SUPABASE_DB_URL_DIRECT", "SUPABASE_LOCAL_DB_URL", "DATABASE_URL")

# Well-known local defaults (Supabase local, the embedded server) are not secrets; hiding every
# occurrence of the word "postgres" would make output unreadable.
_NOT_SECRET = {"postgres"}

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so that every later redaction hides it, wherever it shows up."""
    if value and len(value) >= 4 and value not in _NOT_SECRET:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        import json

        escaped = json.dumps(value, ensure_ascii=False)[1:-1]  # how it looks inside a JSON document
        with _lock:
            _secrets.add(value)
            _secrets.add(escaped)


def register_url(url: str | None) -> None:
    """Remember the password inside a connection URL."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        register_secret(password)
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from urllib.parse import unquote

        register_secret(unquote(password))


def register_environment(environ: dict[str, str] | None = None) -> None:
    """Register the secrets the usual Supabase / libpq variables carry."""
    env = os.environ if environ is None else environ
    for name in _SECRET_ENV_NAMES:
        register_secret(env.get(name))
    for name in _URL_ENV_NAMES:
        register_url(env.get(name))
    for name, value in env.items():
        if name.startswith("SAGE_") and name.endswith("_DB_URL"):
            register_url(value)


def redact(text: str) -> str:
    """Hide passwords in URLs and key=value DSNs, and every registered secret."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _QUERY_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _SQL_PASSWORD.sub(lambda m: f"{m.group(1)}'{MASK}'", text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


# Anything in a serialized JSON document that a per-string redact() could change shows up as a hit of one of
# these: the URL pattern matches through JSON escapes, and "password = x" may have its whitespace escaped.
# The keyword is found first in the case-folded text: one case-insensitive regex over 5 MB costs 25 ms.
_KV_WORD = re.compile(r"passw(?:or)?d|pwd")
_KV_TAIL_IN_JSON = re.compile(r"(?:\s|\\[ntrfb]|\\u00[01][0-9a-fA-F])*[=']")


def json_may_need_redaction(document: str) -> bool:
    """Cheap check over a whole JSON text: False means redact_obj() would change nothing in it."""
    if _URL_PASSWORD.search(document):
        return True
    lower = document.casefold()  # what (?i) matches: also the long s and the Kelvin sign
    if any(_KV_TAIL_IN_JSON.match(lower, m.end()) for m in _KV_WORD.finditer(lower)):
        return True
    with _lock:
        secrets = list(_secrets)
    return any(secret in document for secret in secrets)


def redact_obj(value: object) -> object:
    """Redact every string inside a JSON-like structure."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v) for v in value]
    return value
