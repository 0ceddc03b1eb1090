"""Brings a database to the current schema: yoyo applies sql/migrations, then every file of
sql/functions is re-applied (CREATE OR REPLACE), since yoyo runs no hook when nothing is pending."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import yoyo
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri
from yoyo.migrations import default_migration_table

# In a checkout a link to sql/; in an installed wheel, the files themselves (package data).
SQL_DIR = Path(__file__).parent / "sql"

# Held for the whole migrate: two migrates at once would race on yoyo's own tables and on
# CREATE OR REPLACE FUNCTION ("tuple concurrently updated"); the second waits and finds nothing to do.
# It waits by polling, between statements: a session blocked inside pg_advisory_lock() holds a snapshot,
# and CREATE INDEX CONCURRENTLY in the first migrate would wait for that snapshot forever.
# Any role may take this key (pg_advisory_lock() is executable by PUBLIC), so the wait is bounded.
MIGRATE_LOCK_KEY = 0x706F736C  # "posl"
MIGRATE_LOCK_WAIT = 60.0  # seconds; longer than any migrate of ours takes
_MIGRATE_LOCK_POLL = 0.2  # seconds
RETIRE_WAIT = 30.0  # seconds a migrate waits for older transactions before it drops retired functions

# Who holds the key. pg_locks shows a bigint advisory key split in two: the high 32 bits in classid, the
# low 32 in objid, and objsubid 1 (2 is the two-int4 form). Keys are per database.
_LOCK_HOLDERS = """
    SELECT a.pid, a.usename, a.application_name, a.backend_start, a.state
    FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND l.classid::bigint = %s AND l.objid::bigint = %s
    ORDER BY a.pid"""


# A migration waits at most this long for a lock, so it fails instead of queueing every sale behind it.
MIGRATION_LOCK_TIMEOUT = "5s"


class MigrateLockTimeout(psycopg.errors.LockNotAvailable):
    """migrate waited longer than its lock_wait for its advisory lock; ``holders`` are the sessions holding it.

    A LockNotAvailable (55P03), as when a statement's lock_timeout runs out: the database refused in time.
    """

    def __init__(self, message: str, holders: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.holders = holders


def _lock_timeout(conn: psycopg.Connection, waited: float) -> MigrateLockTimeout:
    """The error naming each session that holds the lock, and how to end it. pg_stat_activity hides a
    session's backend_start and state from a role that is not its own or pg_read_all_stats: left out then."""
    cursor = conn.cursor(row_factory=dict_row)
    holders = cursor.execute(_LOCK_HOLDERS, [(MIGRATE_LOCK_KEY >> 32) & 0xFFFFFFFF, MIGRATE_LOCK_KEY & 0xFFFFFFFF]
                             ).fetchall()
    named = "; ".join(
        f"pid {h['pid']} ("
        + ", ".join(f"{label} {value}" for label, value in [
            ("user", h["usename"]), ("application_name", repr(h["application_name"])),
            ("backend started", h["backend_start"]), ("state", h["state"])] if value is not None)
        + f"): if it is no migrate of ours, end it with SELECT pg_terminate_backend({h['pid']});"
        for h in holders)
    return MigrateLockTimeout(
        f"migrate waited {waited:g} s for its advisory lock {MIGRATE_LOCK_KEY} in this database; "
        f"held by {named or 'a session that has just released it: run migrate again'}", holders)


def yoyo_uri(dsn: str) -> str:
    """The yoyo URI for a libpq DSN or URI: every connection parameter travels as a query argument,
    which yoyo hands to psycopg 3 as is (the +psycopg scheme; plain postgresql:// means psycopg2)."""
    params = {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
    params["options"] = f"{params.get('options', '')} -c lock_timeout={MIGRATION_LOCK_TIMEOUT}".strip()
    return "postgresql+psycopg://?" + urlencode(params)


_log = logging.getLogger(__name__)


def _log_notice(diag: psycopg.errors.Diagnostic) -> None:
    # A migration RAISEs a NOTICE or WARNING only to tell the DBA something: a warning, which the CLI
    # prints. The server's own (yoyo's COMMIT outside a transaction, an index renamed) are debug chatter.
    raised = diag.source_function == "exec_stmt_raise"
    _log.log(logging.WARNING if raised else logging.DEBUG, "%s: %s", diag.severity, diag.message_primary)


class _Backend(PostgresqlPsycopgBackend):
    """yoyo's psycopg 3 backend, with the server's notices logged (psycopg drops notices no handler takes).
    Hooked into connect(), since yoyo applies each migration on a new connection."""

    def connect(self, dburi: Any) -> Any:
        connection = super().connect(dburi)
        connection.add_notice_handler(_log_notice)
        return connection


def _backend(dsn: str) -> Any:
    """What yoyo.get_backend() returns, with our backend class."""
    backend = _Backend(parse_uri(yoyo_uri(dsn)), default_migration_table)
    backend.init_database()
    return backend


def _migrations() -> Any:
    return yoyo.read_migrations(str(SQL_DIR / "migrations"))


def pending_migrations(dsn: str) -> list[str]:
    """The ids of the migrations this posledger has and the database has not applied yet."""
    backend = _backend(dsn)
    try:
        return [migration.id for migration in backend.to_apply(_migrations())]
    finally:
        backend.connection.close()


def database_status(dsn: str) -> dict[str, Any]:
    """The database's server version ("PostgreSQL 15.18") and the migrations it has not applied yet."""
    with psycopg.connect(dsn) as conn:
        version = conn.info.server_version
    return {"server": f"PostgreSQL {version // 10000}.{version % 10000}", "migrations_pending": pending_migrations(dsn)}


def migrate(dsn: str, *, lock_wait: float = MIGRATE_LOCK_WAIT) -> list[str]:
    """Apply pending migrations and (re)create all functions; return the ids of the migrations applied.

    Waits at most lock_wait seconds for another migrate (or any session holding its lock), then raises
    MigrateLockTimeout naming the sessions that hold it.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + lock_wait
        while conn.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATE_LOCK_KEY]).fetchone() != (True,):
            if time.monotonic() >= deadline:
                raise _lock_timeout(conn, lock_wait)
            time.sleep(_MIGRATE_LOCK_POLL)
        backend = _backend(dsn)
        try:
            with backend.lock():
                pending = backend.to_apply(_migrations())
                backend.apply_migrations(pending)
        finally:
            backend.connection.close()
        with conn.transaction():
            for function_file in sorted((SQL_DIR / "functions").glob("*.sql")):
                conn.execute(function_file.read_text())
            # A no-op without Citus. An older release's sql/ (bench/compare.py runs one) has no such step.
            if (plan_cache := SQL_DIR / "citus" / "plan_cache.sql").exists():
                conn.execute(plan_cache.read_text())
        retire(conn)
        return [migration.id for migration in pending]


# The transactions of this database running now: each holds a lock on its own virtual transaction id
# until it ends. pg_locks shows every session's, whatever role runs migrate (pg_stat_activity would hide
# other roles' transaction times).
_RUNNING = """
    SELECT coalesce(array_agg(l.virtualxid), '{}') FROM pg_catalog.pg_locks l
    JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'virtualxid' AND a.datname = current_database() AND l.pid <> pg_backend_pid()"""
_STILL_RUNNING = "SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY(%s)"


def retire(conn: psycopg.Connection, wait: float = RETIRE_WAIT) -> bool:
    """Drop what sql/retired.sql names, once every transaction that was running when the new functions
    committed has ended: one of them may be inside an old body that still calls a retired helper.
    Waits at most `wait` seconds; past that the drops are left for the next migrate (logged). True when
    they ran."""
    older = conn.execute(_RUNNING).fetchone()
    deadline = time.monotonic() + wait
    while conn.execute(_STILL_RUNNING, [older[0] if older else []]).fetchone() != (0,):
        if time.monotonic() >= deadline:
            _log.warning("transactions older than the new functions still run after %g s: the retired "
                         "functions stay until the next posledger migrate", wait)
            return False
        time.sleep(_MIGRATE_LOCK_POLL)
    with conn.transaction():
        conn.execute((SQL_DIR / "retired.sql").read_text())
    return True
