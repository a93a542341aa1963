"""sqlkit.destroys: which tables and columns a migration destroys, from the parse tree."""

from sage_agent.sqlkit.destroys import destroyed_objects
from sage_agent.sqlkit.split import split_sql


def found(text: str) -> list[tuple]:
    return [(d.kind, d.schema, d.name, d.column, d.action, d.renamed_to)
            for d in destroyed_objects(split_sql(text))]


def test_files_that_only_add_destroy_nothing():
    assert found("create table public.t (id int primary key); alter table t add column c int default 0;"
                 "alter table t add constraint c_pos check (c > 0); create index on t (c);"
                 "alter type mood add value 'x'; create policy p on t using (true); insert into t values (1);"
                 "drop index t_c_idx; drop view v; drop policy p on t; comment on table t is 'drop table t';") == []


def test_drops_truncates_and_dml():
    assert found("drop table if exists a, s.b cascade; truncate c; delete from d where id = 1; update s.e set x = 1;") == [
        ("table", "public", "a", None, "DROP TABLE", None), ("table", "s", "b", None, "DROP TABLE", None),
        ("table", "public", "c", None, "TRUNCATE", None), ("table", "public", "d", None, "DELETE", None),
        ("table", "s", "e", None, "UPDATE", None)]


def test_columns_dropped_or_rewritten():
    assert found("alter table s.t drop column a, alter column b type bigint, add column c int;") == [
        ("column", "s", "t", "a", "DROP COLUMN", None), ("column", "s", "t", "b", "ALTER COLUMN TYPE", None)]


def test_renames_and_set_schema_carry_the_new_name():
    assert found("alter table t rename to u; alter table u rename column a to b; alter table u set schema x;") == [
        ("table", "public", "t", None, "RENAME TABLE", "public.u"),
        ("column", "public", "u", "a", "RENAME COLUMN", "b"),
        ("table", "public", "u", None, "SET SCHEMA", "x.u")]


def test_cascades_and_opaque_statements():
    assert found("drop schema app cascade; drop type public.mood cascade; drop type other; do $$ begin end $$;") == [
        ("schema", "app", "app", None, "DROP SCHEMA", None), ("type", "public", "mood", None, "DROP TYPE CASCADE", None),
        ("opaque", "", "", None, "DO", None)]
