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
_WORD = re.compile(r"[\w.\"$]+$")


@dataclass
class CatalogNames:
    """Names in the target database: schemas, relations (schema.table), their columns, functions."""

    schemas: list[str] = field(default_factory=list)
    tables: dict[str, list[str]] = field(default_factory=dict)  # "schema.table" -> columns
    functions: list[str] = field(default_factory=list)  # "schema.function"
    # the sorted lists each keystroke needs, made once: a catalog is never changed after it is read (a refresh
    # reads a new one)
    _memo: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def _once(self, key: str, make: Callable[[], list[str]]) -> list[str]:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def table_names(self) -> list[str]:
        """Tables of `public` by their bare name, every table by schema.table."""
        def make() -> list[str]:
            bare = [t.split(".", 1)[1] for t in self.tables if t.startswith("public.")]
            return sorted(set(bare) | set(self.tables))

        return self._once("tables", make)

    def completion_tables(self) -> list[str]:
        """What follows FROM: `public` tables by their bare name, the others schema-qualified."""
        return self._once("from", lambda: sorted(t.split(".", 1)[1] if t.startswith("public.") else t
                                                 for t in self.tables))

    def function_names(self) -> list[str]:
        return self._once("functions", lambda: sorted({f.split(".", 1)[1] for f in self.functions}))

    def columns(self, table: str | None = None) -> list[str]:
        if table:
            key = table if "." in table else f"public.{table}"
            return self.tables.get(key, [])
        return self._once("columns", lambda: sorted({c for cols in self.tables.values() for c in cols}))


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


# --- SQL in context (pgcli's idea, small): what the keyword before the cursor asks for -------------------------
_TABLE_KEYWORDS = {"from", "join", "update", "into", "table", "truncate", "only"}
_COLUMN_KEYWORDS = {"select", "where", "on", "set", "by", "and", "or", "having", "distinct", "returning", "when",
                    "then", "else", "not", "using", "partition"}
_ALL_KEYWORDS = set(SQL_KEYWORDS) | _TABLE_KEYWORDS | _COLUMN_KEYWORDS
_TOKEN = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|[\w$]+|[^\s\w]")
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_TABLE_REF = re.compile(rf"(?:\b(?:from|join|update|into|table|only)|,)\s+({_IDENT}(?:\s*\.\s*{_IDENT})?)"
                        rf"(?:\s+(?:as\s+)?({_IDENT}))?", re.I)
_STRINGS = re.compile(r"'(?:[^']|'')*'")


def _unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1].replace('""', '"') if name.startswith('"') and name.endswith('"') else name.lower()


@dataclass
class SqlContext:
    """What the cursor's place in the statement asks for: "tables", "columns", "keywords" (right after a name:
    the next clause) or "any"; the tables the statement names (alias -> schema.table); `inside_string`."""

    wants: str
    tables: dict[str, str]
    inside_string: bool = False


def _statement_around(before: str, after: str) -> tuple[str, str]:
    """The statement the cursor is in: from the last `;` before it to the first `;` after it (outside strings)."""
    def cut_before(text: str) -> str:
        start, quote = 0, False
        for i, ch in enumerate(text):
            if ch == "'":
                quote = not quote
            elif ch == ";" and not quote:
                start = i + 1
        return text[start:]

    head = cut_before(before)
    quote = head.count("'") % 2 == 1
    for i, ch in enumerate(after):
        if ch == "'":
            quote = not quote
        elif ch == ";" and not quote:
            return head, after[:i]
    return head, after


def sql_context(before: str, after: str, names: CatalogNames) -> SqlContext:
    """Read the statement around the cursor (`before` ends with the word being typed, which is left out)."""
    head, tail = _statement_around(before, after)
    if head.count("'") % 2 == 1:
        return SqlContext("none", {}, inside_string=True)
    tables = _named_tables(_STRINGS.sub("''", head + " " + tail), names)
    match = _WORD.search(head)
    tokens = _TOKEN.findall(head[: match.start()] if match else head)
    if not tokens:
        return SqlContext("any", tables)
    last = tokens[-1].lower()
    keyword = next((t.lower() for t in reversed(tokens) if t.lower() in _ALL_KEYWORDS and not t.startswith('"')),
                   None)
    if keyword in _TABLE_KEYWORDS:
        if last in _TABLE_KEYWORDS or last == ",":
            return SqlContext("tables", tables)
        if last == "(" and keyword == "into":  # insert into t ( -> its columns
            return SqlContext("columns", tables)
        return SqlContext("keywords", tables)
    if keyword in _COLUMN_KEYWORDS or keyword in ("in", "is", "like", "ilike", "between", "case"):
        if last in _ALL_KEYWORDS or not (last[:1].isalnum() or last[:1] in "_\"'"):
            return SqlContext("columns", tables)  # after the keyword, a comma, an operator or a parenthesis
        return SqlContext("keywords", tables)
    return SqlContext("any", tables)


def _named_tables(statement: str, names: CatalogNames) -> dict[str, str]:
    """alias (or the table's own name) -> "schema.table", for every relation of the catalog the statement names."""
    out: dict[str, str] = {}
    for ref, alias in _TABLE_REF.findall(statement):
        parts = [_unquote(p) for p in re.split(r"\s*\.\s*", ref, maxsplit=1)] if "." in ref else [_unquote(ref)]
        key = f"{parts[0]}.{parts[1]}" if len(parts) == 2 else f"public.{parts[0]}"
        if key not in names.tables:
            continue
        out[parts[-1]] = key
        if alias and alias.lower() not in _ALL_KEYWORDS:
            out[_unquote(alias)] = key
    return out


class SqlCompleter(Completer):
    """SQL completion from the catalog, by context: after FROM/JOIN/UPDATE/INTO the tables (public ones bare,
    others schema-qualified) and schemas; after SELECT/WHERE/ON/SET/BY the columns of the tables the statement
    names (aliases resolved), then functions and keywords; right after a name the keywords; after `alias.` or
    `table.` its columns, after `schema.` that schema's tables and functions. Nothing inside a string literal."""

    def __init__(self, catalog: CatalogCache) -> None:
        self.catalog = catalog

    def get_completions(self, document: Document, complete_event):
        before = document.text_before_cursor
        match = _WORD.search(before)
        typed = match.group(0) if match else ""
        names = self.catalog.get()
        ctx = sql_context(before, document.text_after_cursor, names)
        if ctx.inside_string:
            return
        if "." in typed:
            head, _, tail = typed.rpartition(".")
            key = _unquote(head)
            if key in ctx.tables:
                words, meta = names.tables.get(ctx.tables[key], []), "column"
            elif key in names.schemas:
                words = [t.split(".", 1)[1] for t in names.tables if t.startswith(key + ".")]
                words += [f.split(".", 1)[1] for f in names.functions if f.startswith(key + ".")]
                words, meta = sorted(set(words)), ""
            else:
                words, meta = names.columns(key), "column"
            yield from _prefix_words(words, tail, meta)
            return
        upper = typed[:1].isupper()
        keywords = [k.upper() if upper else k for k in SQL_KEYWORDS]
        if ctx.wants == "tables":
            yield from _prefix_words(names.completion_tables(), typed, "table")
            yield from _prefix_words(names.schemas, typed, "schema")
            return
        if ctx.wants == "keywords":
            yield from _prefix_words(keywords, typed, "keyword")
            return
        if ctx.wants == "columns":
            named = list(dict.fromkeys(ctx.tables.values()))
            if named:
                cols = list(dict.fromkeys(c for t in named for c in names.tables.get(t, [])))
                yield from _prefix_words(cols, typed, "column")
                aliases = sorted(a for a in ctx.tables if a not in cols)
                yield from _prefix_words(aliases, typed, "table")
            else:
                yield from _prefix_words(names.columns(), typed, "column")
            yield from _prefix_words(names.function_names(), typed, "function")
            if typed:  # with nothing typed yet the list is the statement's columns, not every keyword
                yield from _prefix_words(keywords, typed, "keyword")
            return
        yield from _prefix_words(keywords, typed, "keyword")
        yield from _prefix_words(names.table_names(), typed, "table")
        yield from _prefix_words(names.columns(), typed, "column")
        yield from _prefix_words(names.function_names(), typed, "function")
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
            after = document.text_after_cursor
            yield from self.inputs.sql.get_completions(Document(sub + after, len(sub)), complete_event)
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
