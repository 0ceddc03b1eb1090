"""A database migrated while its tills sell: the helpers leave public for posledger_private (issue 14) with
sales running, and no sale ever finds the helper it calls gone. The old copies are dropped only once every
transaction that began before the new functions committed has ended (migrations.retire)."""

import threading
import time
from collections import Counter

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import migrate_as_released
from posledger.migrations import migrate

BEFORE_THE_MOVE = "d73310a"   # the last commit whose helpers live in public


@pytest.fixture
def released_before_the_move(empty_dsn, tmp_path, monkeypatch):
    """empty_dsn migrated by the posledger of BEFORE_THE_MOVE (its sql/ from git), with one stocked store."""
    migrate_as_released(empty_dsn, BEFORE_THE_MOVE, tmp_path, monkeypatch)
    with psycopg.connect(empty_dsn) as conn:
        store = conn.execute("INSERT INTO stores DEFAULT VALUES RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO ocs_inventory (store_id, sku, batch_lot, quantity_on_hand, quantity_available)"
                     " SELECT %s, 'SKU-' || n, 'LOT', 1000000, 1000000 FROM generate_series(1, 5) n", [store])
        assert conn.execute("SELECT to_regprocedure('public.pos_sale_record(jsonb)') IS NOT NULL").fetchone() == (True,)
    return empty_dsn, str(store)


def test_sales_running_while_migrate_moves_the_helpers_never_find_one_gone(released_before_the_move):
    dsn, store = released_before_the_move
    stop, outcomes = threading.Event(), Counter()

    def till(n):
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                sale = {"store_id": store, "receipt_number": f"T{n}-{time.monotonic_ns()}", "total": 1,
                        "items": [{"product": {"sku": f"SKU-{k}"}, "quantity": 1} for k in range(1, 6)]}
                try:
                    conn.execute("SELECT record_pos_sale(%s)", [Jsonb(sale)])
                    outcomes["recorded"] += 1
                except psycopg.Error as error:
                    outcomes[error.sqlstate] += 1

    tills = [threading.Thread(target=till, args=(n,)) for n in range(4)]
    for thread in tills:
        thread.start()
    time.sleep(0.5)
    before = outcomes["recorded"]
    migrate(dsn)
    time.sleep(0.5)
    stop.set()
    for thread in tills:
        thread.join()
    assert set(outcomes) == {"recorded"}, outcomes
    assert before > 0 and outcomes["recorded"] > before
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regprocedure('public.pos_sale_record(jsonb)'),"
                            " to_regprocedure('posledger_private.pos_sale_record(jsonb)') IS NOT NULL").fetchone() == (
            None, True)
