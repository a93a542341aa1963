"""The bad-input corpus: (id, line, options, allowed exit codes). Options: db_url ("bad URL" replaces the target),
sets, yes, confirm, env, files (project files written before the case, removed after)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


@dataclass
class Case:
    id: str
    line: str
    codes: tuple[int, ...]
    db_url: str | None = None          # None: the corpus database
    sets: list[str] = field(default_factory=list)
    yes: bool = True
    confirm: list[str] = field(default_factory=list)
    env: str = "local"
    files: dict[str, bytes] = field(default_factory=dict)
    op: str | None = None              # operation needed (skip until merged)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_urls(good_url: str) -> dict[str, str]:
    from sage_agent.db.urls import replace_dbname

    port = free_port()
    return {
        "not-a-url": "not a url at all",
        "empty-scheme": "postgresql://",
        "refused": f"postgresql://postgres:pw@127.0.0.1:{port}/postgres",
        "port-out-of-range": "postgresql://postgres@127.0.0.1:99999/postgres",
        "port-not-number": "postgresql://postgres@127.0.0.1:abc/postgres",
        "bad-ipv6": "postgresql://postgres@[::1:bad/postgres",
        "wrong-scheme": f"mysql://root@127.0.0.1:{port}/db",
        "bad-sslmode": f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=bogus",
        "bad-option": f"postgresql://postgres@127.0.0.1:{port}/postgres?nonsense_option=1",
        "missing-database": replace_dbname(good_url, "no_such_database_here"),
    }


URL_COMMANDS = ["*env-check", "*migrations", "*run-sql \"select 1\"", "*snapshot urlsnap", "*apply", "*hotpaths",
                "*locks", "*monitor", "*vacuum", "*schema-audit", "*rls-audit", "*explain \"select 1\"",
                "*seed", "*smoke-test v1", "*dry-run supabase/migrations/20240101000000_init.sql"]

BAD_SQL: dict[str, bytes] = {
    "binary": bytes(range(256)) * 8,
    "nul-byte": b"create table public.nul (id int);\x00\ncreate table public.nul2 (id int);\n",
    "latin1": "insert into public.items (name) values ('caf\xe9');\n".encode("latin-1"),
    "utf16": "create table public.u16 (id int);\n".encode("utf-16"),
    "enormous-line": b"select " + b"1 + " * 500_000 + b"x y z;\n",
    "enormous-garbage": b"\xff\xfe" + b"z" * 2_000_000,
    "unterminated-string": b"insert into public.items (name) values ('oops);\n",
    "unterminated-dollar": b"create function public.f() returns int language sql as $$ select 1;\n",
    "unterminated-comment": b"/* never closed\ncreate table public.c (id int);\n",
    "syntax": b"create tabel public.x (id int);\n",
    "runtime-error": b"create table public.half (id int);\ninsert into public.nope values (1);\n",
    "only-comment": b"-- nothing here\n",
    "empty": b"",
}

NASTY_NAMES = {
    "dotdot": "../evil",
    "deep-dotdot": "../../../../tmp/evil",
    "absolute": "/tmp/evil_abs",
    "semicolon-rm": "x;rm -rf .",
    "subshell": "$(touch pwned)",
    "backticks": "`touch pwned`",
    "pipe": "a|touch pwned",
    "ampersand": "a&&touch pwned",
    "newline": "a\ntouch pwned",
    "dash-option": "--help",
    "too-long": "n" * 300,
    "dots": "..",
}


def corpus(good_url: str) -> list[Case]:
    cases: list[Case] = []
    for key, url in bad_urls(good_url).items():
        for line in URL_COMMANDS:
            cases.append(Case(f"url:{key}:{line.split()[0]}", line, (1, 2), db_url=url))
    for key, data in BAD_SQL.items():
        path = f"supabase/migrations/20990101000000_{key.replace('-', '_')}.sql"
        if key not in ("only-comment", "empty"):  # migrations recorded as applied, as by the Supabase CLI
            cases.append(Case(f"sql:{key}:*apply", "*apply --snapshot=no", (1, 2), files={path: data}))
            cases.append(Case(f"sql:{key}:*dry-run", f"*dry-run {path}", (1, 2), files={path: data}))
        cases.append(Case(f"sql:{key}:*seed", "*seed bad.sql --snapshot=no", (1, 2), files={"bad.sql": data}))
        text = data.decode("utf-8", "replace").replace("\x00", "\\0")[:200_000]
        if key not in ("only-comment", "empty", "runtime-error", "latin1"):  # inline text has no encoding
            cases.append(Case(f"sql:{key}:*run-sql", "*run-sql", (1, 2), sets=[f"sql={text}"]))
            cases.append(Case(f"sql:{key}:*explain", "*explain", (1, 2), sets=[f"query={text}"]))
    for key, name in NASTY_NAMES.items():
        for line, field_name in [("*snapshot", "name"), ("*rollback", "snapshot"), ("*migration-new", "name"),
                                 ("*smoke-test", "version"), ("*create-doc", "template"),
                                 ("*execute-checklist", "name"), ("*apply", "file"), ("*seed", "file"),
                                 ("*dry-run", "file"), ("*policy-apply", "table")]:
            if line == "*dry-run" and key == "dash-option":
                continue
            cases.append(Case(f"name:{key}:{line}", line, (1, 2), sets=[f"{field_name}={name}"],
                              confirm=["ROLLBACK"]))
    csv_bad = {
        "binary": bytes(range(256)) * 4,
        "latin1": "id,name\n1,caf\xe9\n".encode("latin-1"),
        "wrong-columns": b"id,name\n1,a,extra,columns\n",
        "bad-int": b"id,name\nnot-a-number,a\n",
        "duplicate-key": b"id,name\n1,dup\n",
        "enormous-line": b"id,name\n2," + b"x" * 3_000_000 + b"\n3,\"unterminated\n",
        "empty": b"",
        "header-only-wrong": b"nope,nada\n1,2\n",
    }
    for key, data in csv_bad.items():
        cases.append(Case(f"csv:{key}:*load-csv", "*load-csv bad.csv public.items", (1, 2), files={"bad.csv": data},
                          op="db-load-csv"))
    for key, line in [("missing-file", "*load-csv nope.csv public.items"),
                      ("dotdot-file", "*load-csv ../../../etc/passwd public.items"),
                      ("unknown-table", "*load-csv data.csv public.no_such_table"),
                      ("shell-table", "*load-csv data.csv 'public.x;drop table public.items'"),
                      ("subshell-table", "*load-csv data.csv '$(touch pwned)'"),
                      ("bad-delimiter", "*load-csv data.csv public.items --delimiter ab"),
                      ("bad-encoding", "*load-csv data.csv public.items --encoding klingon")]:
        cases.append(Case(f"csv:{key}", line, (1, 2), files={"data.csv": b"id,name\n5,e\n"}, op="db-load-csv"))
    for key, name in NASTY_NAMES.items():
        cases.append(Case(f"name:{key}:*backup", "*backup", (1, 2), sets=[f"name={name}"], op="db-backup"))
        cases.append(Case(f"name:{key}:*restore", "*restore", (1, 2), sets=[f"backup={name}"], confirm=["RESTORE"],
                          op="db-restore"))
    cases.append(Case("usage:backup-bad-format", "*backup b --format zip", (2,), op="db-backup"))
    cases.append(Case("usage:backup-bad-jobs", "*backup b --jobs many", (2,), op="db-backup"))
    cases.append(Case("usage:restore-no-word", "*restore base_backup", (3,), op="db-restore"))
    cases.append(Case("usage:restore-into-bad-url", "*restore base_backup --into 'postgresql://x@127.0.0.1:1/'",
                      (1, 2), confirm=["RESTORE"], op="db-restore"))
    usage = [
        ("unknown-command", "*frobnicate", (2,)),
        ("unknown-option", "*migrations --bogus", (2,)),
        ("unknown-option-value", "*snapshot s --colour=red", (2,)),
        ("bad-choice", "*snapshot s --mode everything", (2,)),
        ("bad-bool", "*apply --snapshot=maybe", (2,)),
        ("unbalanced-quote", "*run-sql \"select 1", (2,)),
        ("too-many-args", "*env-check a b c", (2,)),
        ("missing-required", "*rollback", (2,)),
        ("missing-required-2", "*repair", (2,)),
        ("repair-bad-version", "*repair abc applied", (1, 2)),
        ("repair-bad-status", "*repair 20240101000000 maybe", (2,)),
        ("repair-shell-version", "*repair '$(touch pwned)' applied", (1, 2)),
        ("rollback-no-word", "*rollback base", (3,)),
        ("rollback-wrong-word", "*rollback base", (3,)),
        ("write-no-yes", "*run-sql \"create table public.nope (id int)\" --write", (3,)),
        ("compare-bad-source", "*compare-schemas nope migrations", (1, 2)),
        ("compare-dotdot", "*compare-schemas ../../etc/passwd migrations", (1, 2)),
        ("compare-snapshot-dotdot", "*compare-schemas snapshot:../../x migrations", (1, 2)),
        ("explain-not-a-query", "*explain \"drop table public.items\"", (1, 2)),
        ("runsql-write-readonly", "*run-sql \"drop table public.items\"", (1, 2)),
        ("runsql-multi-write", "*run-sql \"select 1; delete from public.items\"", (1, 2)),
        ("checklist-unknown", "*execute-checklist no-such-checklist", (1, 2)),
        ("doc-unknown", "*create-doc no-such-template", (1, 2)),
        ("resume-unknown", "*resume no-such-session", (1, 2)),
        ("resume-dotdot", "*resume ../../etc/passwd", (1, 2)),
        ("smoke-bad-suite", "*smoke-test v1 extreme", (2,)),
        ("policy-unknown-table", "*policy-apply public.no_such_table", (1, 2)),
        ("policy-bad-mode", "*policy-apply public.items paranoid", (2,)),
        ("prod-no-word", "*run-sql \"create table public.prod (id int)\" --write", (3,)),
        ("test-suite-bad-bool", "*test-suite --generate=perhaps", (2,)),
    ]
    for key, line, codes in usage:
        case = Case(f"usage:{key}", line, codes, yes=key != "write-no-yes")
        if key == "rollback-wrong-word":
            case.confirm = ["rollback"]
        if key == "prod-no-word":
            case.env = "prod"
        cases.append(case)
    return cases
