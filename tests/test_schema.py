"""sql/schema.sql is what the migrations build: a reader sees the whole schema in one file, and a change
that reaches the database without reaching the snapshot (or the other way round) fails here, with the diff."""

import difflib

import pytest

from schema_snapshot import SNAPSHOT, schema_of


def test_the_schema_snapshot_is_what_the_migrations_build(db, pg_server):
    if pg_server.version.split(".")[0] != "15":
        pytest.skip("sql/schema.sql is PostgreSQL 15's pg_dump output: the system-server pass checks it")
    built = schema_of(db.info.dsn)
    diff = "".join(difflib.unified_diff(SNAPSHOT.read_text().splitlines(keepends=True), built.splitlines(keepends=True),
                                        "sql/schema.sql", "migrated database"))
    assert not diff, f"sql/schema.sql differs from a migrated database; run ./scripts/schema\n{diff}"


def test_every_table_view_and_entry_function_says_what_it_is(db):
    undescribed = db.execute("""
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v') AND c.relname NOT LIKE '%yoyo%'
          AND obj_description(c.oid, 'pg_class') IS NULL
        UNION ALL
        SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND has_function_privilege('posledger_app', p.oid, 'EXECUTE')
          AND obj_description(p.oid, 'pg_proc') IS NULL""").fetchall()
    assert undescribed == []
