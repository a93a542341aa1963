"""Connection-string helpers: parse either URL or key=value form, swap the database, build a URL."""

from __future__ import annotations

from urllib.parse import quote


def conninfo_params(url: str) -> dict[str, str]:
    # lazy: psycopg loads on the first database call
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}


def to_url(params: dict[str, str]) -> str:
    """A postgresql:// URL from libpq parameters (the Supabase CLI accepts URLs only)."""
    user = quote(params.get("user", "postgres"), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = params.get("host", "127.0.0.1")
    port = params.get("port", "5432")
    dbname = quote(params.get("dbname", "postgres"), safe="")
    extras = {k: v for k, v in params.items() if k not in ("user", "password", "host", "port", "dbname")}
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(extras.items()))
    return f"postgresql://{auth}{host}:{port}/{dbname}" + (f"?{query}" if query else "")


def replace_dbname(url: str, dbname: str) -> str:
    params = conninfo_params(url)
    params["dbname"] = dbname
    return to_url(params)


def describe(url: str) -> dict[str, str]:
    """Host, port, database, user and sslmode, never the password."""
    params = conninfo_params(url)
    return {
        "host": params.get("host", "localhost (socket)"),
        "port": params.get("port", "5432"),
        "database": params.get("dbname", params.get("user", "")),
        "user": params.get("user", ""),
        "sslmode": params.get("sslmode", "prefer"),
    }
