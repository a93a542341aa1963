"""Completion in the REPL, like pgcli: per input, from what the input holds.

Choices and yes/no complete their words; files complete paths; snapshot, backup and migration inputs complete
the names in the project; table, column and schema inputs (and SQL) complete from a catalog of the target read
once and cached (dropped after any command that may change the schema); SQL also completes keywords. At the
start of the line: the *commands; after a command: its --flags, and for each argument what it holds."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from prompt_toolkit.completion import Completer, Completion, DummyCompleter, PathCompleter, WordCompleter
from prompt_toolkit.document import Document

from sage_agent.catalog.tasks import InputSpec, TaskSpec, command_index

SQL_KEYWORDS = (
    "select from where and or not in is null like ilike between exists distinct as on join left right full inner "
    "outer cross lateral using group by order having limit offset union all intersect except with recursive "
    "insert into values update set delete returning create alter drop table index view materialized schema "
    "function trigger policy extension sequence type column constraint primary key foreign references unique "
    "check default grant revoke to enable disable row level security concurrently if cascade restrict truncate "
    "vacuum analyze explain begin commit rollback case when then else end cast coalesce count sum avg min max now "
    "true false asc desc nulls first last for share nowait skip locked"
).split()
_WORD = re.compile(r"[\w.\"]+$")


@dataclass
class CatalogNames:
    """Names in the target database: schemas, relations (schema.table), their columns, functions."""

    schemas: list[str] = field(default_factory=list)
    tables: dict[str, list[str]] = field(default_factory=dict)  # "schema.table" -> columns
    functions: list[str] = field(default_factory=list)  # "schema.function"

    def table_names(self) -> list[str]:
        """Tables of `public` by their bare name, every table by schema.table."""
        bare = [t.split(".", 1)[1] for t in self.tables if t.startswith("public.")]
        return sorted(set(bare) | set(self.tables))

    def columns(self, table: str | None = None) -> list[str]:
        if table:
            key = table if "." in table else f"public.{table}"
            return self.tables.get(key, [])
        return sorted({c for cols in self.tables.values() for c in cols})


_SKIP = "n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%%' " \
        "and n.nspname not like 'pg\\_temp%%'"


def read_catalog(url: str) -> CatalogNames:
    """One short read-only look at the catalog (three queries)."""
    # lazy: psycopg loads on the first database call
    from sage_agent.db.connect import connect

    names = CatalogNames()
    with connect(url, autocommit=True, statement_timeout_ms=3000, lock_timeout_ms=1000) as conn:
        names.schemas = [r[0] for r in conn.execute(
            f"select n.nspname from pg_namespace n where {_SKIP} order by 1").fetchall()]
        for schema, table in conn.execute(
                "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                f"where c.relkind in ('r', 'p', 'v', 'm', 'f') and {_SKIP} order by 1, 2").fetchall():
            names.tables[f"{schema}.{table}"] = []
        for schema, table, column in conn.execute(
                "select n.nspname, c.relname, a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid "
                "join pg_namespace n on n.oid = c.relnamespace where a.attnum > 0 and not a.attisdropped "
                f"and c.relkind in ('r', 'p', 'v', 'm', 'f') and {_SKIP} order by 1, 2, a.attnum").fetchall():
            names.tables.setdefault(f"{schema}.{table}", []).append(column)
        names.functions = sorted({f"{s}.{f}" for s, f in conn.execute(
            "select n.nspname, p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            f"where {_SKIP}").fetchall()})
    return names


class CatalogCache:
    """The catalog, read on first use and kept until `invalidate()` (after a command that may run DDL)."""

    def __init__(self, url: Callable[[], str | None], reader: Callable[[str], CatalogNames] = read_catalog) -> None:
        self._url = url
        self._reader = reader
        self._names: CatalogNames | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._names = None

    def get(self) -> CatalogNames:
        with self._lock:
            if self._names is None:
                url = self._url()
                try:
                    self._names = self._reader(url) if url else CatalogNames()
                except Exception:  # noqa: BLE001 - completion must never break the prompt; retried next time
                    return CatalogNames()
            return self._names


def _prefix_words(words: Iterable[str], typed: str, meta: str = "") -> Iterable[Completion]:
    low = typed.lower()
    for word in words:
        if word.lower().startswith(low) and word != typed:
            yield Completion(word, start_position=-len(typed), display_meta=meta or None)


class NamesCompleter(Completer):
    """Words from a function called at completion time (names change while the REPL runs)."""

    def __init__(self, words: Callable[[], Iterable[str]], meta: str = "") -> None:
        self.words = words
        self.meta = meta

    def get_completions(self, document: Document, complete_event):
        typed = document.text_before_cursor.split(" ")[-1]
        yield from _prefix_words(self.words(), typed, self.meta)


class SqlCompleter(Completer):
    """SQL keywords and the catalog's names; after `table.` that table's columns, after `schema.` its tables."""

    def __init__(self, catalog: CatalogCache) -> None:
        self.catalog = catalog

    def get_completions(self, document: Document, complete_event):
        match = _WORD.search(document.text_before_cursor)
        typed = match.group(0) if match else ""
        names = self.catalog.get()
        if "." in typed:
            head, _, tail = typed.rpartition(".")
            if head in names.schemas:
                words = [t.split(".", 1)[1] for t in names.tables if t.startswith(head + ".")]
                words += [f.split(".", 1)[1] for f in names.functions if f.startswith(head + ".")]
            else:
                words = names.columns(head)
            for c in _prefix_words(sorted(set(words)), tail, "column" if head not in names.schemas else ""):
                yield c
            return
        upper = typed[:1].isupper()
        yield from _prefix_words([k.upper() if upper else k for k in SQL_KEYWORDS], typed, "keyword")
        yield from _prefix_words(names.table_names(), typed, "table")
        yield from _prefix_words(names.columns(), typed, "column")
        yield from _prefix_words(sorted({f.split(".", 1)[1] for f in names.functions}), typed, "function")
        yield from _prefix_words(names.schemas, typed, "schema")


def _files(folder: Path, pattern: str, strip: str = "") -> list[str]:
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.glob(pattern)):
        if p.name.startswith("."):
            continue
        out.append(p.name[: -len(strip)] if strip and p.name.endswith(strip) else p.name)
    return out


class InputCompleters:
    """The completer for each input of each task, from what the input holds (its choices, its key)."""

    def __init__(self, project: Path, catalog: CatalogCache) -> None:
        self.project = project
        self.catalog = catalog
        self.paths = PathCompleter(expanduser=True)
        self.sql = SqlCompleter(catalog)

    def snapshots(self) -> list[str]:
        return list(reversed(_files(self.project / "supabase" / "snapshots", "*.json", ".json")))

    def backups(self) -> list[str]:
        return list(reversed(_files(self.project / "supabase" / "backups", "*.json", ".json")))

    def migrations(self) -> list[str]:
        files = _files(self.project / "supabase" / "migrations", "*.sql")
        return files + [f[15:-4] for f in files if len(f) > 19 and f[:14].isdigit()]  # also by name

    def versions(self) -> list[str]:
        return [f[:14] for f in _files(self.project / "supabase" / "migrations", "*.sql") if f[:14].isdigit()]

    def for_input(self, task: TaskSpec | None, spec: InputSpec) -> Completer:
        # lazy: not needed to start `sage --version`, `*help` or `sage mcp`
        from sage_agent.catalog.checklists import list_checklists
        from sage_agent.catalog.templates import list_templates

        key = spec.key
        task_id = task.id if task else ""
        if spec.kind == "bool":
            return WordCompleter(["yes", "no"])
        if spec.choices:
            return WordCompleter(list(spec.choices))
        if key in ("sql", "query"):
            return self.sql
        if key in ("snapshot",) or (task_id == "db-snapshot" and key == "name"):
            return NamesCompleter(self.snapshots, "snapshot")
        if key in ("backup", "into_backup") or (task_id == "db-backup" and key == "name"):
            return NamesCompleter(self.backups, "backup")
        if key == "file" and task_id in ("db-apply-migration", "db-dry-run"):
            return NamesCompleter(self.migrations, "migration")
        if key == "version" and task_id == "db-repair":
            return NamesCompleter(self.versions, "version")
        if key in ("source", "target") and task_id == "db-compare-schemas":
            return NamesCompleter(lambda: ["local", "dev", "staging", "prod", "migrations", *self.snapshots()])
        if key == "table" or key.endswith("_table"):
            return NamesCompleter(lambda: self.catalog.get().table_names(), "table")
        if key.endswith("_column") or key in ("column", "columns"):
            return NamesCompleter(lambda: self.catalog.get().columns(), "column")
        if key in ("schema", "schemas"):
            return NamesCompleter(lambda: self.catalog.get().schemas, "schema")
        if key == "template":
            return NamesCompleter(lambda: sorted(list_templates()), "template")
        if task_id == "execute-checklist" and key == "name":
            return NamesCompleter(lambda: sorted(list_checklists()), "checklist")
        if key == "command":
            # lazy: tests replace load_tasks on its module (monkeypatch), which a top-level import would bypass
            from sage_agent.catalog.tasks import command_index, load_tasks

            return NamesCompleter(lambda: sorted(command_index(load_tasks())), "command")
        if key in ("file", "spec", "design", "paths", "path", "output_file", "reject_file"):
            return self.paths
        return DummyCompleter()


class LineCompleter(Completer):
    """The `sage>` line: *commands at the start; then the command's --flags and, per argument, what it holds."""

    def __init__(self, names: list[str], tasks: Callable[[], dict[str, TaskSpec]],
                 inputs: InputCompleters | None = None) -> None:
        self.names = sorted(names)
        self.tasks = tasks
        self.inputs = inputs

    def _task(self, name: str) -> TaskSpec | None:
        tasks = self.tasks()
        task_id = command_index(tasks).get(name.lstrip("*").lower())
        return tasks.get(task_id) if task_id else None

    def get_completions(self, document: Document, complete_event):
        text = document.text_before_cursor
        if " " not in text.lstrip():
            word = text.lstrip()
            if word.startswith("*") or not word:
                for name in self.names:
                    if ("*" + name).startswith(word or "*"):
                        yield Completion("*" + name, start_position=-len(word))
            return
        if not text.lstrip().startswith("*") or self.inputs is None:
            return
        head, _, rest = text.lstrip().partition(" ")
        task = self._task(head)
        if task is None:
            return
        words = rest.split(" ")
        current, before = words[-1], [w for w in words[:-1] if w]
        known = {i.key: i for i in task.user_inputs()}
        if current.startswith("--") or current == "-":
            flags = sorted({i.flag for i in known.values()} | {"--set"})
            yield from _prefix_words(flags, current, "")
            return
        if before and before[-1].startswith("--") and before[-1] != "--":
            spec = known.get(before[-1][2:].replace("-", "_"))
            if spec is not None and spec.kind != "bool":
                yield from self.inputs.for_input(task, spec).get_completions(Document(current), complete_event)
            return
        free = [k for k in task.positional_keys if k in ("sql", "query")]
        if free:  # the rest of the line is SQL
            sub = rest.split(" -- ", 1)[-1] if " -- " in rest else rest
            yield from self.inputs.sql.get_completions(Document(sub), complete_event)
            return
        positionals, skip = [], False
        for word in before:
            if skip:
                skip = False
                continue
            if word.startswith("--"):
                spec = known.get(word[2:].partition("=")[0].replace("-", "_"))
                skip = "=" not in word and spec is not None and spec.kind != "bool"
                continue
            positionals.append(word)
        keys = task.positional_keys
        if len(positionals) < len(keys):
            spec = known.get(keys[len(positionals)])
            if spec is not None:
                yield from self.inputs.for_input(task, spec).get_completions(Document(current), complete_event)

    async def get_completions_async(self, document, complete_event):
        for completion in self.get_completions(document, complete_event):
            yield completion
