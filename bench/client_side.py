"""The baseline of the old system's fix plan, written as it describes it: a Python client doing one
round trip per step and line inside a transaction - check the stock, update it, insert the ledger row -
then the order, its lines and the loyalty points. It runs on its own copy of the schema whose ledger
trigger is dropped, since this client writes its ledger rows itself, as the plan does."""

from __future__ import annotations

import random
import threading
import time
import uuid

import psycopg
from workloads import STORE_ID, customer_id

DROP_TRIGGER = "DROP TRIGGER ocs_inventory_ledger_change ON ocs_inventory"


def one_sale(conn: psycopg.Connection, skus: list[str], user_id: str) -> None:
    with conn.transaction():
        order_id = uuid.uuid4()
        conn.execute("INSERT INTO pos_orders (id, store_id, receipt_number, status, policy, user_id, total, payload,"
                     " result) VALUES (%s, %s, %s, 'completed', 'strict', %s, 25, '{}', '{}')",
                     [order_id, STORE_ID, str(order_id), user_id])
        for line_no, sku in enumerate(skus, start=1):
            row = conn.execute("SELECT id, batch_lot, quantity_available FROM ocs_inventory WHERE store_id = %s"
                               " AND sku = %s AND quantity_available >= 1 ORDER BY packaged_on_date LIMIT 1 FOR UPDATE",
                               [STORE_ID, sku]).fetchone()
            assert row is not None, sku
            inventory_id, batch_lot, _ = row
            after = conn.execute("UPDATE ocs_inventory SET quantity_available = quantity_available - 1,"
                                 " quantity_on_hand = quantity_on_hand - 1 WHERE store_id = %s AND id = %s"
                                 " RETURNING quantity_on_hand", [STORE_ID, inventory_id]).fetchone()
            assert after is not None
            conn.execute("INSERT INTO ocs_inventory_transactions (store_id, inventory_id, sku, batch_lot,"
                         " transaction_type, quantity, quantity_after, reference_type, reference_id)"
                         " VALUES (%s, %s, %s, %s, 'sale', -1, %s, 'pos_order', %s)",
                         [STORE_ID, inventory_id, sku, batch_lot, after[0], order_id])
            conn.execute("INSERT INTO pos_order_lines (store_id, order_id, line_no, sku, batch_lot, inventory_id,"
                         " quantity) VALUES (%s, %s, %s, %s, %s, %s, 1)",
                         [STORE_ID, order_id, line_no, sku, batch_lot, inventory_id])
        conn.execute("INSERT INTO loyalty_accounts AS p (store_id, user_id, points) VALUES (%s, %s, 25)"
                     " ON CONFLICT (store_id, user_id) DO UPDATE SET points = p.points + 25", [STORE_ID, user_id])


def run(dsn: str, clients: int, seconds: float, lines: int, skus: int, customers: int) -> dict[str, object]:
    """Closed loop: `clients` threads, each a connection selling `lines`-line carts of uniform skus."""
    latencies: list[float] = []
    failures = {"deadlock": 0, "serialization": 0}
    guard = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        mine, lost = [], {"deadlock": 0, "serialization": 0}
        with psycopg.connect(dsn) as conn:
            while time.monotonic() < deadline:
                cart = [f"SKU-{rng.randint(1, skus)}" for _ in range(lines)]
                user = customer_id(rng.randint(1, customers))
                started = time.perf_counter()
                try:
                    one_sale(conn, cart, user)
                except psycopg.errors.DeadlockDetected:
                    lost["deadlock"] += 1
                    continue
                except psycopg.errors.SerializationFailure:
                    lost["serialization"] += 1
                    continue
                mine.append(time.perf_counter() - started)
        with guard:
            latencies.extend(mine)
            for kind, count in lost.items():
                failures[kind] += count

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"transactions": len(latencies), "tps": len(latencies) / seconds, "latencies_ms":
            [latency * 1000 for latency in latencies], "failures": failures}
