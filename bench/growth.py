"""Does a sale stay fast as the data grows? ./bench/run growth [--stores N] [--sizes 1e3,1e5,1e7]

One database with 10^6 inventory rows (100 stores of 5,000 skus x 2 batches). The selling store's first
500 skus have stock, each from one receipt; every other row is empty. The ledger then grows to each
size in turn with bulk-loaded history (a receipt and its reversal on empty rows, so the books still
balance). At each size it measures 5-line sales on one connection (p50, p99), the DBA views
(inventory_discrepancies for one store and for the whole database), and it checks each statement's plan
inside one call of each store-scoped entry function for scans of many rows. Finally it times a recall
across every store (and checks its plans too) and measures the ledger's bytes per sale line.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from workloads import CATALOGUE

from posledger.migrations import migrate
from posledger.pgserver import running_cluster

SELLING = "c0000000-0000-4000-8000-000000000001"
STOCKED_SKUS = 500

INVENTORY = """
    WITH store AS (
        INSERT INTO stores (id, name)
        SELECT CASE n WHEN 1 THEN %(selling)s::uuid ELSE gen_random_uuid() END, 'store ' || n
        FROM generate_series(1, %(stores)s) n RETURNING id
    )
    INSERT INTO ocs_inventory (store_id, sku, batch_lot, packaged_on_date, quantity_on_hand, quantity_available)
    SELECT store.id, 'SKU-' || s, 'LOT-' || s || '-' || b, date '2025-01-01' + (s + b * 40) %% 365,
           CASE WHEN store.id = %(selling)s AND s <= %(stocked)s THEN 100000000 ELSE 0 END,
           CASE WHEN store.id = %(selling)s AND s <= %(stocked)s THEN 100000000 ELSE 0 END
    FROM store, generate_series(1, 5000) s, generate_series(1, 2) b"""

# Net-zero history on empty rows: a receipt of 5, then its reversal, in id order.
HISTORY = """
    WITH empty AS (
        SELECT i.store_id, i.id, i.sku, i.batch_lot, row_number() OVER (ORDER BY i.id) - 1 AS r
        FROM ocs_inventory i WHERE i.quantity_on_hand = 0
    )
    INSERT INTO ocs_inventory_transactions (store_id, inventory_id, sku, batch_lot, transaction_type, reason_code,
                                            quantity, quantity_after, created_at)
    SELECT e.store_id, e.id, e.sku, e.batch_lot, CASE k WHEN 1 THEN 'receipt' ELSE 'adjustment' END,
           CASE k WHEN 2 THEN 'receiving_error' END, CASE k WHEN 1 THEN 5 ELSE -5 END, CASE k WHEN 1 THEN 5 ELSE 0 END,
           now() - interval '400 days' + g * interval '1 second'
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
    JOIN empty e ON e.r = g %% %(empty_rows)s, generate_series(1, 2) k
    ORDER BY g, k"""


LEDGER_ROWS = "SELECT count(*) FROM ocs_inventory_transactions"


def sale() -> dict:
    return {"store_id": SELLING, "receipt_number": uuid.uuid4().hex, "total": 25, "user_id": str(uuid.uuid4()),
            "items": [{"product": {"sku": f"SKU-{random.randint(1, STOCKED_SKUS)}"}, "quantity": 1} for _ in range(5)]}


def value(conn: psycopg.Connection, query: str, *args: object) -> Any:
    """The one value a query returns."""
    row = conn.execute(query, args or None).fetchone()
    assert row is not None, query
    return row[0]


def timed(conn: psycopg.Connection, query: str, *args: object) -> float:
    started = time.perf_counter()
    conn.execute(query, args or None).fetchall()
    return (time.perf_counter() - started) * 1000


def scans_of_many_rows(conn: psycopg.Connection, call: str, payload: dict) -> list[str]:
    """Plans of every statement inside one call (auto_explain): sequential scans of big tables, and
    index scans that throw away more than 100 rows (a condition the index does not serve)."""
    plans: list[str] = []
    conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_analyze = on", "log_timing = off"):
        conn.execute(f"SET auto_explain.{setting}")
    conn.execute("SET client_min_messages = log")
    conn.execute(call, [Jsonb(payload)])
    conn.execute("SET client_min_messages = notice")
    conn.execute("SET auto_explain.log_min_duration = -1")
    big = ("ocs_inventory", "ocs_inventory_transactions", "pos_orders", "pos_order_lines", "loyalty_transactions")
    found, node = set(), ""
    for line in (line.strip() for plan in plans for line in plan.splitlines()):
        if "->" in line or " on " in line and "(cost=" in line:
            node = line.removeprefix("->").strip()   # the plan node the next detail lines belong to
        table = node.split(" on ")[1].split()[0] if " on " in node and "Scan" in node else ""
        if table in big and (node.startswith("Seq Scan") or
                             line.startswith("Rows Removed by Filter:") and int(line.split()[-1]) > 100):
            found.add(node.split("  (cost")[0] + (f" ({line})" if line.startswith("Rows Removed") else ""))
    return sorted(found)


def measure(conn: psycopg.Connection, sales: int) -> dict[str, Any]:
    for _ in range(200):   # a store that has been selling, then its statistics
        conn.execute("SELECT record_pos_sale(%s)", [Jsonb(sale())])
    conn.execute("ANALYZE")
    latencies = []
    for _ in range(sales):
        started = time.perf_counter()
        conn.execute("SELECT record_pos_sale(%s)", [Jsonb(sale())])
        latencies.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50": cuts[49], "p99": cuts[98],
            "one store": timed(conn, "SELECT * FROM inventory_discrepancies WHERE store_id = %s", SELLING),
            "whole database": timed(conn, "SELECT * FROM inventory_discrepancies"),
            "seq scans": [f"{function}: {scan}" for function, payload in every_other_call(conn)
                          for scan in scans_of_many_rows(conn, f"SELECT {function}(%s)", payload)]}


def every_other_call(conn: psycopg.Connection) -> list[tuple[str, dict]]:
    """One call of each store-scoped entry function in the selling store, each valid when it runs."""
    sold = value(conn, "SELECT record_pos_sale(%s)", Jsonb(sale()))
    movement = {"store_id": SELLING, "note": "growth", "actor": "bench"}
    return [
        ("record_pos_sale", sale()),
        ("receive_inventory", {"store_id": SELLING, "shipment_id": uuid.uuid4().hex, "lines": [
            {"sku": "SKU-1", "batch_lot": "LOT-1-1", "quantity_shipped": 1, "quantity_received": 1}]}),
        ("return_pos_sale", {"store_id": SELLING, "reference": uuid.uuid4().hex, "order_id": sold["id"],
                             "lines": [{"line_no": 1, "quantity": 1}]}),
        ("adjust_inventory", {**movement, "reference": uuid.uuid4().hex, "reason_code": "data_entry_error",
                              "lines": [{"sku": "SKU-2", "batch_lot": "LOT-2-1", "quantity": 1}]}),
        ("count_inventory", {**movement, "reference": uuid.uuid4().hex, "reason_code": "cycle_count",
                             "lines": [{"sku": "SKU-600", "batch_lot": "LOT-600-1", "counted": 5}]}),
    ]


def recall(conn: psycopg.Connection) -> tuple[float, list[str]]:
    """A status change without store_id finds its lot's rows in every store: the median ms of 20 (10 lots
    recalled and released), and the scans of many rows in one more."""
    changes = [{"reference": f"GROWTH-{n}-{status}", "batch_lot": f"LOT-{n}-1", "status": status,
                "reason": "growth", "actor": "bench"} for n in range(1, 12) for status in ("recalled", "active")]
    median = statistics.median(timed(conn, "SELECT set_batch_status(%s)", Jsonb(change)) for change in changes[:20])
    return median, scans_of_many_rows(conn, "SELECT set_batch_status(%s)", changes[20])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=100, help="stores of 10,000 rows each (default 100: 10^6)")
    parser.add_argument("--sizes", default="1e3,1e5,1e7", help="ledger sizes to measure at")
    parser.add_argument("--sales", type=int, default=500)
    options = parser.parse_args()

    with running_cluster(durable=True) as cluster:
        dsn = cluster.server.dsn()
        migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(INVENTORY, {"selling": SELLING, "stores": options.stores, "stocked": STOCKED_SKUS})
            conn.execute(CATALOGUE, {"skus": 5000, "product_class": "dried"})
            conn.execute("VACUUM ANALYZE")
            empty_rows = value(conn, "SELECT count(*) FROM ocs_inventory WHERE quantity_on_hand = 0")
            inventory_rows = value(conn, "SELECT count(*) FROM ocs_inventory")
            print(f"{inventory_rows} inventory rows; one client, 5-line sales, {options.sales} per size\n")
            print("| ledger rows (before the sales) | sale p50 ms | sale p99 ms |"
                  " inventory_discrepancies, one store ms | whole database ms | scans of many rows in any call |")
            print("|---|---|---|---|---|---|")
            for size in (int(float(s)) for s in options.sizes.split(",")):
                have = value(conn, LEDGER_ROWS)
                if size > have:
                    conn.execute(HISTORY, {"first": have, "last": have + (size - have) // 2 - 1,
                                           "empty_rows": empty_rows})
                    conn.execute("VACUUM ANALYZE ocs_inventory_transactions")
                ledger = value(conn, LEDGER_ROWS)
                m = measure(conn, options.sales)
                print(f"| {ledger:,} | {m['p50']:.2f} | {m['p99']:.2f} | {m['one store']:.1f} |"
                      f" {m['whole database']:.0f} | {', '.join(m['seq scans']) or 'none'} |", flush=True)
            recall_ms, recall_scans = recall(conn)
            print(f"\nA recall of one lot in all {options.stores} stores, then its release (set_batch_status without"
                  f" store_id): {recall_ms:.1f} ms a call (median of 20); scans of many rows in it:"
                  f" {', '.join(recall_scans) or 'none'}.")
            ledger_size = "SELECT pg_total_relation_size('ocs_inventory_transactions')"
            bytes_before, rows_before = value(conn, ledger_size), value(conn, LEDGER_ROWS)
            for _ in range(2000):
                conn.execute("SELECT record_pos_sale(%s)", [Jsonb(sale())])
            rows, grown = value(conn, LEDGER_ROWS) - rows_before, value(conn, ledger_size) - bytes_before
            print(f"\nLedger growth: {grown / rows:.0f} bytes per sale line (table and its indexes; {rows} lines"
                  " of 2,000 sales).")


if __name__ == "__main__":
    main()
