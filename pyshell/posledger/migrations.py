"""Brings a database to the current schema: yoyo applies sql/migrations, then every file of
sql/functions is re-applied (CREATE OR REPLACE), since yoyo runs no hook when nothing is pending."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import yoyo
from psycopg.conninfo import conninfo_to_dict

# In a checkout a link to sql/; in an installed wheel, the files themselves (package data).
SQL_DIR = Path(__file__).parent / "sql"

# Held for the whole migrate: two migrates at once would race on yoyo's own tables and on
# CREATE OR REPLACE FUNCTION ("tuple concurrently updated"); the second waits and finds nothing to do.
# It waits by polling, between statements: a session blocked inside pg_advisory_lock() holds a snapshot,
# and CREATE INDEX CONCURRENTLY in the first migrate would wait for that snapshot forever.
_MIGRATE_LOCK_KEY = 0x706F736C  # "posl"
_MIGRATE_LOCK_POLL = 0.2  # seconds


# A migration waits at most this long for a lock, so it fails instead of queueing every sale behind it.
MIGRATION_LOCK_TIMEOUT = "5s"


def yoyo_uri(dsn: str) -> str:
    """The yoyo URI for a libpq DSN or URI: every connection parameter travels as a query argument,
    which yoyo hands to psycopg 3 as is (the +psycopg scheme; plain postgresql:// means psycopg2)."""
    params = {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
    params["options"] = f"{params.get('options', '')} -c lock_timeout={MIGRATION_LOCK_TIMEOUT}".strip()
    return "postgresql+psycopg://?" + urlencode(params)


def _migrations() -> Any:
    return yoyo.read_migrations(str(SQL_DIR / "migrations"))


def pending_migrations(dsn: str) -> list[str]:
    """The ids of the migrations this posledger has and the database has not applied yet."""
    backend = yoyo.get_backend(yoyo_uri(dsn))
    try:
        return [migration.id for migration in backend.to_apply(_migrations())]
    finally:
        backend.connection.close()


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations and (re)create all functions; return the ids of the migrations applied."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute("SELECT pg_try_advisory_lock(%s)", [_MIGRATE_LOCK_KEY]).fetchone() != (True,):
            time.sleep(_MIGRATE_LOCK_POLL)
        backend = yoyo.get_backend(yoyo_uri(dsn))
        try:
            with backend.lock():
                pending = backend.to_apply(_migrations())
                backend.apply_migrations(pending)
        finally:
            backend.connection.close()
        with conn.transaction():
            for function_file in sorted((SQL_DIR / "functions").glob("*.sql")):
                conn.execute(function_file.read_text())
        return [migration.id for migration in pending]
