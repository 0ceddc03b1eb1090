"""Distributes a migrated posledger database on a Citus coordinator: sql/citus/distribute.sql is the one
home of the calls (docs/scaling.md shows that file), and migrate() runs again afterwards, because Citus
propagates to the workers only the functions whose types it already knows there (a helper taking a table's
row type reaches them once that table is distributed)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from posledger.migrations import SQL_DIR, migrate

DISTRIBUTE_SQL = SQL_DIR / "citus" / "distribute.sql"

_LAYOUT = """
    SELECT (SELECT count(*) FROM pg_catalog.pg_dist_partition WHERE partmethod = 'n'),
           (SELECT count(*) FROM pg_catalog.pg_dist_partition WHERE partmethod = 'h'),
           (SELECT count(*) FROM pg_catalog.pg_dist_object WHERE distribution_argument_index IS NOT NULL),
           (SELECT count(*) FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND groupid <> 0)"""


def distribute(dsn: str, *, shard_count: int | None = None) -> dict[str, Any]:
    """Distribute the database at `dsn` (a Citus coordinator's, migrated) and return its layout. Safe to run
    again: what is distributed already stays as it is. `shard_count` sets the shards of the store-scoped
    tables when they are first distributed (Citus's citus.shard_count, 32, otherwise)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus'").fetchone() is None:
            raise psycopg.errors.UndefinedObject(
                "this database has no citus extension: distribute runs on a Citus coordinator (docs/scaling.md)")
        if shard_count is not None:
            conn.execute(sql.SQL("SET citus.shard_count = {}").format(sql.Literal(shard_count)))
        # Sent as one query: the file runs as one implicit transaction, all of it or nothing.
        conn.execute(DISTRIBUTE_SQL.read_text())
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(_LAYOUT).fetchone()
    assert row is not None
    return dict(zip(["reference_tables", "distributed_tables", "distributed_functions", "workers"], row, strict=True))
