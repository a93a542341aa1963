"""Identifiers in SQL text DB Sage writes or shows: one implementation, through psycopg.sql.

`quoted` always quotes (SQL that runs later, where the exact name matters); `readable` quotes only where
PostgreSQL needs it, as its quote_ident() does (not a plain lower-case name, or a keyword that is not
unreserved), so that suggestions such as `create index ... on public.orders (customer_id)` stay readable.
"""

from __future__ import annotations

import re
from functools import lru_cache

from psycopg import sql

_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")  # what quote_ident() leaves bare (no $)


def quoted(*parts: str) -> str:
    """`"schema"."name"`: every part quoted."""
    return sql.Identifier(*parts).as_string(None)


@lru_cache(maxsize=1)
def _keywords() -> frozenset[str]:
    from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS  # lazy: start-up time

    return frozenset(RESERVED_KEYWORDS | COL_NAME_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS)


def readable(*parts: str) -> str:
    """`public.orders`, `public."Order Lines"`, `public."user"`: each part quoted only when it must be."""
    return ".".join(p if _PLAIN.fullmatch(p) and p not in _keywords() else quoted(p) for p in parts)
