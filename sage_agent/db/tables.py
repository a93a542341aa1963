"""Which tables a database has and how many rows each holds: one implementation for snapshots, rollbacks,
backups and restores (each passes what it covers)."""

from __future__ import annotations

from psycopg import pq, sql

_TABLES_SQL = """
select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind::text = any(%(kinds)s)
   and case when %(schemas)s::text[] is null
            then n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
                 and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                                 and d.objid = c.oid and d.deptype = 'e')
            else n.nspname = any(%(schemas)s) end
 order by 1, 2
"""

_KINDS_SQL = """
select n.nspname, c.relname, c.relkind::text,
       c.relkind = 'r' and c.relpages > 8 and c.relallvisible >= 0.95 * c.relpages
       and exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisvalid and i.indpred is null)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[]))
"""


def list_tables(conn, schemas: list[str] | None = None) -> list[tuple[str, str]]:
    """(schema, name) in name order. In `schemas`: ordinary and partitioned tables (relkind r/p), what a snapshot
    covers. Without: every ordinary table pg_dump dumps the data of (not in a system schema, not an extension's
    member), what a backup counts."""
    if schemas is not None and not schemas:
        return []
    kinds = ["r"] if schemas is None else ["r", "p"]
    rows = conn.execute(_TABLES_SQL, {"kinds": kinds, "schemas": schemas}).fetchall()
    return [(r[0], r[1]) for r in rows]


def count_rows(conn, tables: list[tuple[str, str]], *, inherited: bool = False) -> dict[str, int]:
    """Exact count(*) per "schema.name", 100 tables to a query. A plain table counts only its own rows unless
    `inherited` (a backup counts inheritance children too, as its restore check does); a partitioned table
    counts its partitions. Inside a transaction, a table whose pages are (nearly) all visible is counted through
    an index, which reads far less than the heap; the count is exact either way."""
    if not tables:
        return {}
    facts = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(
        _KINDS_SQL, ([s for s, _ in tables], [t for _, t in tables])).fetchall()}
    in_transaction = conn.info.transaction_status != pq.TransactionStatus.IDLE  # SET LOCAL needs one
    by_index = [t for t in tables if in_transaction and facts.get(t, ("", False))[1]]
    by_heap = [t for t in tables if t not in set(by_index)]
    counts: dict[str, int] = {}
    for group, seqscan in ((by_heap, None), (by_index, "off")):
        if seqscan:
            conn.execute("set local enable_seqscan = off")
        for i in range(0, len(group), 100):
            chunk = group[i:i + 100]
            parts = [sql.SQL("select {}::int, count(*) from {}{}").format(
                sql.Literal(j),
                sql.SQL("") if inherited or facts.get(t, ("",))[0] == "p" else sql.SQL("only "),
                sql.Identifier(*t)) for j, t in enumerate(chunk)]
            for j, n in conn.execute(sql.SQL(" union all ").join(parts)).fetchall():
                counts["{}.{}".format(*chunk[j])] = int(n)
        if seqscan:
            conn.execute("set local enable_seqscan = on")
    return {f"{s}.{t}": counts[f"{s}.{t}"] for s, t in tables}
