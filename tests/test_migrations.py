"""Migrations are safe to run twice and twice at once, and the Python shell knows every error code
the SQL can raise."""

import logging
import re
import threading
import time

import psycopg

from conftest import holding_the_migrate_lock
from posledger import PosLedgerError
from posledger.errors import ERROR_CLASSES
from posledger.migrations import SQL_DIR, MigrateLockTimeout, migrate

SCHEMA_QUERY = """
    SELECT 'table ' || table_name || '.' || column_name || ' ' || data_type
    FROM information_schema.columns WHERE table_schema = 'public'
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' ' || md5(p.prosrc)
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    ORDER BY 1"""


def schema_of(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute(SCHEMA_QUERY).fetchall()


def test_migrating_twice_is_a_no_op(dsn):
    before = schema_of(dsn)
    assert migrate(dsn) == []
    assert schema_of(dsn) == before
    assert any(row[0].startswith("function record_pos_sale(jsonb)") for row in before)


def test_migrating_a_new_database_as_its_owner_logs_nothing(empty_dsn, caplog):
    # What migrate logs, the CLI prints: the server's routine notices are not for the DBA.
    with caplog.at_level(logging.WARNING, logger="posledger.migrations"):
        assert migrate(empty_dsn) != []
    assert caplog.messages == []


def migrate_at_once(dsn, times):
    """Run migrate(dsn) from `times` threads at once; return what each applied, and the errors."""
    start = threading.Barrier(times)
    applied, errors = [], []

    def run():
        start.wait()
        try:
            applied.append(migrate(dsn))
        except Exception as error:  # noqa: BLE001 - asserted by the callers
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return applied, errors


def test_migrates_at_once_on_a_new_database_apply_each_migration_once(empty_dsn):
    applied, errors = migrate_at_once(empty_dsn, 3)
    assert errors == []
    migration_files = sorted(path.stem for path in (SQL_DIR / "migrations").glob("*.sql"))
    assert sorted(applied, key=len) == [[], [], migration_files]
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regprocedure('record_pos_sale(jsonb)') IS NOT NULL").fetchone() == (True,)


def test_migrates_at_once_on_a_current_database_replace_the_functions_without_error(dsn):
    # Nothing is pending, so every migrate goes straight to CREATE OR REPLACE of the same functions.
    for _ in range(3):
        applied, errors = migrate_at_once(dsn, 4)
        assert errors == []
        assert applied == [[]] * 4


def test_migrate_blocked_by_a_session_holding_its_lock_gives_up_in_time_and_names_that_session(dsn):
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            migrate(dsn, lock_wait=1)
        except MigrateLockTimeout as error:
            outcome["error"] = error
        outcome["waited"] = time.monotonic() - started

    # In a thread, so that a migrate that still waits forever fails this test instead of hanging the suite.
    thread = threading.Thread(target=run, daemon=True)
    with holding_the_migrate_lock(dsn) as pid:
        thread.start()
        thread.join(timeout=30)
    assert not thread.is_alive(), "migrate was still waiting for the lock after 30 s"
    assert 1 <= outcome["waited"] < 10
    error = outcome["error"]
    assert error.sqlstate == "55P03"   # lock_not_available: what a lock_timeout raises too
    assert [(h["pid"], h["usename"], h["application_name"]) for h in error.holders] == [
        (pid, "posledger_app_test_login", "stuck till")]
    # The message is what the CLI prints: it must name the holder and how to end it.
    assert f"pid {pid}" in str(error) and f"pg_terminate_backend({pid})" in str(error)


def test_every_error_code_raised_in_sql_has_a_python_exception_class():
    raised = set()
    for path in SQL_DIR.rglob("*.sql"):
        raised |= set(re.findall(r"ERRCODE\s*=\s*'(IV\d{3})'", path.read_text()))
    assert raised >= {"IV400", "IV403", "IV404", "IV409", "IV412"}
    assert raised <= set(ERROR_CLASSES)
    assert all(issubclass(cls, PosLedgerError) and cls.__doc__ for cls in ERROR_CLASSES.values())


def test_the_suite_runs_on_the_server_it_started(db, pg_server):
    version = db.execute("SHOW server_version").fetchone()[0]
    assert version.split()[0] == pg_server.version
    assert int(version.split(".")[0]) >= 15
