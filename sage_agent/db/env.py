"""Which database an environment name means: flags, .env, Supabase and libpq variables, else embedded."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from sage_agent.db.redact import redact, register_environment, register_url

EnvName = Literal["local", "dev", "staging", "prod"]
ENV_NAMES: tuple[str, ...] = ("local", "dev", "staging", "prod")


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message says how."""

FLEET_SOURCE = "targets file"  # Target.source of a fleet entry with its own url: "targets file NAME:LINE"


@dataclass
class Target:
    """A resolved database target. `url` holds the password; never show it: use `display_url`."""

    env: str
    url: str | None
    source: str
    embedded: bool = False
    direct_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def display_url(self) -> str:
        return redact(self.url or "(embedded, not started)")

    @property
    def redacted_direct_url(self) -> str:
        return redact(self.direct_url) if self.direct_url else "not set"

    @property
    def is_project_local(self) -> bool:
        """The project's own local database, which supabase/config.toml describes (a fleet entry that names its
        own URL is another database, whatever its env)."""
        return self.env == "local" and not self.source.startswith(FLEET_SOURCE)

    @property
    def is_production(self) -> bool:
        return self.env == "prod"

    @property
    def migration_url(self) -> str | None:
        """Migrations use the direct connection where one is configured (poolers break DDL sessions)."""
        return self.direct_url or self.url

    @property
    def direct_variable(self) -> str:
        """Where a direct (session) URL for this target would be configured, to name it in messages."""
        if self.source == "--db-url":
            return "--direct-url"
        if self.source.startswith("SAGE_") and self.source.endswith("_DB_URL"):
            return self.source + "_DIRECT"
        return "SUPABASE_DB_URL_DIRECT"


def load_dotenv(project: Path) -> dict[str, str]:
    """Read `.env` in the project with python-dotenv (inline `# comments`, quotes, escapes, `export`,
    multi-line values as docker compose and the Supabase CLI read them). Process env wins (merged_environ)."""
    path = project / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # lazy: only runs that resolve a database read .env

    return {k: v for k, v in dotenv_values(path, interpolate=False, encoding="utf-8").items() if v is not None}


def merged_environ(project: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(load_dotenv(project))
    env.update(os.environ if environ is None else environ)
    register_environment(env)
    return env


def check_url(url: str) -> str:
    """Reject URLs that cannot be a PostgreSQL connection before trying to connect."""
    if "://" in url:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ConfigError(f"bad database URL {redact(url)!r}: {exc}. Expected postgresql://user:password@host:5432/dbname") from None
        if parts.scheme not in ("postgres", "postgresql"):
            raise ConfigError(
                f"bad database URL {redact(url)!r}: scheme must be postgresql://, not {parts.scheme}://"
            )
    elif "=" not in url:
        raise ConfigError(
            f"bad database URL {redact(url)!r}: expected postgresql://user:password@host:5432/dbname "
            "or a libpq 'host=... dbname=...' string"
        )
    register_url(url)
    return url


def _libpq_url(env: dict[str, str]) -> str | None:
    if not env.get("PGHOST") and not env.get("PGDATABASE"):
        return None
    parts = []
    for var, key in (("PGHOST", "host"), ("PGPORT", "port"), ("PGUSER", "user"), ("PGDATABASE", "dbname"),
                     ("PGSSLMODE", "sslmode")):
        if env.get(var):
            parts.append(f"{key}={env[var]}")
    return " ".join(parts)


def resolve_target(project: Path, env_name: str = "local", db_url: str | None = None,
                   environ: dict[str, str] | None = None, direct_url: str | None = None) -> Target:
    """Resolve the target database for an environment, in the documented order (README: Environments).
    `direct_url` (--direct-url) is the session-capable URL beside a pooler URL; it wins over the variables."""
    if env_name not in ENV_NAMES:
        raise ConfigError(f"unknown environment {env_name!r}: choose one of {', '.join(ENV_NAMES)}")
    env = merged_environ(project, environ)
    target = _resolve(env, env_name, db_url)
    if direct_url:
        if target.embedded:
            raise ConfigError("--direct-url needs a database URL beside it (--db-url or the environment's variables); "
                              "the embedded server is always direct")
        target.direct_url = check_url(direct_url)
    return target


def _resolve(env: dict[str, str], env_name: str, db_url: str | None) -> Target:
    if db_url:
        return Target(env_name, check_url(db_url), "--db-url")
    specific = env.get(f"SAGE_{env_name.upper()}_DB_URL")
    if specific:
        direct = env.get(f"SAGE_{env_name.upper()}_DB_URL_DIRECT")
        return Target(env_name, check_url(specific), f"SAGE_{env_name.upper()}_DB_URL",
                      direct_url=check_url(direct) if direct else None)
    if env_name == "local":
        if env.get("SUPABASE_LOCAL_DB_URL"):
            return Target("local", check_url(env["SUPABASE_LOCAL_DB_URL"]), "SUPABASE_LOCAL_DB_URL")
        if env.get("DATABASE_URL"):
            return Target("local", check_url(env["DATABASE_URL"]), "DATABASE_URL")
        libpq = _libpq_url(env)
        if libpq:
            return Target("local", libpq, "PG* variables")
        return Target("local", None, "embedded", embedded=True)
    pooled = env.get("SUPABASE_DB_URL")
    direct = env.get("SUPABASE_DB_URL_DIRECT")
    if pooled or direct:
        url = check_url(pooled or direct)  # type: ignore[arg-type]
        return Target(env_name, url, "SUPABASE_DB_URL" if pooled else "SUPABASE_DB_URL_DIRECT",
                      direct_url=check_url(direct) if direct else None)
    if env.get("DATABASE_URL"):
        return Target(env_name, check_url(env["DATABASE_URL"]), "DATABASE_URL")
    raise ConfigError(
        f"no database configured for environment {env_name!r}. Set SAGE_{env_name.upper()}_DB_URL or "
        "SUPABASE_DB_URL (pooler) / SUPABASE_DB_URL_DIRECT in the environment or .env, or pass --db-url"
    )
