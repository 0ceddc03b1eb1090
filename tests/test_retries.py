"""Bounded lock waits and safe retries: a sale that cannot get its locks in time is IV503 (busy) and
changes nothing; the Python shell retries busy and serialization failures, and the sale is recorded once."""

import threading

import psycopg
import pytest

from conftest import add_stock, count_rows, item, record_sale, sale_payload, stock_of
from posledger import Busy

SHORT_WAIT = "-c posledger.lock_timeout=200ms"


@pytest.fixture
def store(store, db):
    """The shared new store, with 10 unbatched units of HOT."""
    add_stock(db, store, "HOT", 10)
    return store


@pytest.fixture
def holder(dsn, store):
    """Another connection holding the HOT row's lock until it commits."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT FROM ocs_inventory WHERE sku = 'HOT' FOR UPDATE")
        yield conn


def release_after(conn, seconds, statement=None):
    def release():
        if statement:
            conn.execute(statement)
        conn.commit()
    timer = threading.Timer(seconds, release)
    timer.start()
    return timer


def test_a_sale_that_waits_too_long_for_its_locks_is_busy_and_changes_nothing(db, dsn, store, holder):
    with psycopg.connect(dsn, options=SHORT_WAIT) as till:
        with pytest.raises(Busy) as refused:
            record_sale(till, sale_payload(store, item("HOT", 1)), attempts=1)
    assert refused.value.sqlstate == "IV503"
    assert refused.value.detail["lock_timeout"] == "200ms"
    holder.commit()
    assert count_rows(db, "pos_orders") == 0
    assert stock_of(db, store, "HOT") == {None: (10, 10)}


def test_the_lock_timeout_is_scoped_to_the_call(db, store):
    with db.transaction():
        db.execute("SELECT record_pos_sale(%s)", [psycopg.types.json.Jsonb(sale_payload(store, item("HOT", 1)))])
        assert db.execute("SHOW lock_timeout").fetchone() == ("0",)


def test_busy_is_retried_and_the_sale_recorded_once(db, dsn, store, holder):
    timer = release_after(holder, 0.5)
    with psycopg.connect(dsn, options=SHORT_WAIT) as till:
        result = record_sale(till, sale_payload(store, item("HOT", 2)), attempts=10, backoff=0.1)
    timer.join()
    assert result["replayed"] is False
    assert count_rows(db, "pos_orders") == 1
    assert stock_of(db, store, "HOT") == {None: (8, 8)}


def test_busy_is_not_retried_inside_the_callers_transaction(db, dsn, store, holder):
    # The lock is released after 1 s: ten attempts outside a transaction would get it (see above),
    # so Busy here shows the caller's transaction was left to the caller to retry whole.
    timer = release_after(holder, 1.0)
    with psycopg.connect(dsn, options=SHORT_WAIT) as till:
        with pytest.raises(Busy), till.transaction():
            record_sale(till, sale_payload(store, item("HOT", 1)), attempts=10, backoff=0.1)
    timer.join()
    assert count_rows(db, "pos_orders") == 0


def test_a_serialization_failure_is_retried_with_a_fresh_snapshot(db, dsn, store, holder):
    # The holder changes the row the sale is waiting for: under REPEATABLE READ the sale's snapshot is
    # then too old to lock it (40001), and the retry, with a new snapshot, succeeds.
    timer = release_after(holder, 0.3, "UPDATE ocs_inventory SET quantity_on_hand = 6, quantity_available = 6")
    with psycopg.connect(dsn) as till:
        till.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        result = record_sale(till, sale_payload(store, item("HOT", 2)), attempts=3)
    timer.join()
    assert result["inventory_updates"]["successful"][0]["remaining"] == 4
    assert count_rows(db, "pos_orders") == 1
