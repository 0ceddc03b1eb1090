"""Faults against a real server: a backend killed while it holds a sale's locks, and the server stopped
with `pg_ctl stop -m immediate` in the middle of a stream of concurrent sales. Nothing acknowledged is
lost, nothing unacknowledged is half there, and a retry of every sale records it exactly once."""

import os
import threading
import time
import uuid

import psycopg
import pytest

from conftest import (
    FIGURES,
    add_stock,
    check_invariants,
    count_rows,
    item,
    new_store,
    record_sale,
    sale_payload,
    stock_of,
)
from posledger.migrations import migrate
from posledger.pgserver import running_cluster


def wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_a_sale_killed_while_holding_its_locks_leaves_nothing_and_its_retry_succeeds_once(db, dsn):
    store = new_store(db)
    add_stock(db, store, "FIRST", 10)   # lower id: the sale locks it first ...
    add_stock(db, store, "SECOND", 10)  # ... then waits here, held by another till
    payload = sale_payload(store, item("FIRST", 2), item("SECOND", 3))
    holder = psycopg.connect(dsn)
    holder.execute("SELECT FROM ocs_inventory WHERE sku = 'SECOND' FOR UPDATE")
    till = psycopg.connect(dsn)
    till_pid = till.info.backend_pid
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(_attempt(till, payload)))
    thread.start()
    wait_until(lambda: db.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                                  [till_pid]).fetchone() == (True,))
    # It has claimed the receipt and locked FIRST: it holds a transaction id of its own.
    assert db.execute("SELECT count(*) > 0 FROM pg_locks WHERE pid = %s AND locktype = 'transactionid'"
                      " AND granted", [till_pid]).fetchone() == (True,)
    db.execute("SELECT pg_terminate_backend(%s)", [till_pid])
    db.commit()
    FIGURES["faults injected: backend terminated mid-sale"] += 1
    thread.join()
    holder.commit()
    holder.close()
    assert outcome == ["OperationalError"]
    assert count_rows(db, "pos_orders") == 0
    assert stock_of(db, store, "FIRST") == {None: (10, 10)}
    with psycopg.connect(dsn) as retry:
        assert record_sale(retry, payload)["replayed"] is False
    assert stock_of(db, store, "FIRST") == {None: (8, 8)}
    assert count_rows(db, "pos_orders") == 1


def _attempt(conn, payload):
    try:
        record_sale(conn, payload)
        return "recorded"
    except psycopg.OperationalError:
        return "OperationalError"


@pytest.fixture
def durable_cluster():
    if os.environ.get("POSLEDGER_TEST_SERVER", "system") != "system":
        pytest.skip("the crash test runs in the system-server pass, on a cluster of its own")
    with running_cluster(durable=True) as cluster:
        yield cluster


def test_an_immediate_stop_during_concurrent_sales_loses_nothing_acknowledged(durable_cluster):
    dsn = durable_cluster.server.dsn()
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        store = new_store(conn)
        for sku in ("A", "B", "C"):
            add_stock(conn, store, sku, 100000, f"{sku}-1", "2025-01-01")
            add_stock(conn, store, sku, 100000, f"{sku}-2", "2025-02-01")
    acknowledged, in_doubt = [], []

    def till(number):
        with psycopg.connect(dsn) as conn:
            while True:
                payload = sale_payload(store, item("ABC"[number % 3], 2), item("ABC"[(number + 1) % 3], 1),
                                       receipt_number=f"T{number}-{uuid.uuid4().hex[:8]}")
                try:
                    record_sale(conn, payload)
                except psycopg.OperationalError:
                    in_doubt.append(payload)  # sent, never answered: it may or may not have committed
                    return
                acknowledged.append(payload)

    threads = [threading.Thread(target=till, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acknowledged) >= 200, seconds=60)
    durable_cluster.stop("immediate")
    FIGURES["faults injected: immediate server stop"] += 1
    for thread in threads:
        thread.join()
    durable_cluster.start()

    with psycopg.connect(dsn) as conn:
        recorded = {row[0] for row in conn.execute("SELECT receipt_number FROM pos_orders")}
    assert {p["receipt_number"] for p in acknowledged} <= recorded
    assert recorded <= {p["receipt_number"] for p in acknowledged + in_doubt}
    check_invariants(dsn)  # what was in flight is wholly there or wholly absent
    with psycopg.connect(dsn) as conn:
        for payload in in_doubt:  # the till's retry after the outage
            assert record_sale(conn, payload)["replayed"] is (payload["receipt_number"] in recorded)
        assert count_rows(conn, "pos_orders") == len(acknowledged) + len(in_doubt)
        sold = conn.execute("SELECT -sum(quantity) FROM ocs_inventory_transactions"
                            " WHERE transaction_type = 'sale'").fetchone()[0]
    assert sold == 3 * (len(acknowledged) + len(in_doubt))
    check_invariants(dsn)
    FIGURES["sales attempted"] += len(acknowledged) + len(in_doubt)
    FIGURES["sales committed"] += len(acknowledged) + len(in_doubt)  # each exactly once, retries included
    FIGURES["sales in flight at the immediate stop, then retried"] += len(in_doubt)
