"""The workloads of the benchmark suite: pgbench scripts that call record_pos_sale with generated
payloads, and the data they need. One store (a sale touches one store), `skus` skus of 1-3 batches
each with stock that never runs out during a run, and `customers` loyalty customers."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

STORE_ID = "b0000000-0000-4000-8000-000000000001"
STOCK_PER_BATCH = 100_000_000

GENERATE = """
WITH store AS (INSERT INTO stores (id, name) VALUES (%(store)s, 'bench store') RETURNING id)
INSERT INTO ocs_inventory (store_id, sku, batch_lot, packaged_on_date, quantity_on_hand, quantity_available)
SELECT store.id, 'SKU-' || s, 'LOT-' || s || '-' || b, date '2025-01-01' + (s * 7 + b * 30) %% 365,
       %(stock)s, %(stock)s
FROM store, generate_series(1, %(skus)s) s, generate_series(1, 1 + s %% 3) b
"""

# The catalogue of the skus SKU-1 to SKU-n, as 1 g of dried flower each, so every sale is judged by the
# 30 g limit as a real one is (5 lines of 1 unit: 5 g). A revision older than the catalogue (bench/compare.py)
# has no products table and gets none.
CATALOGUE = """
INSERT INTO products (sku, name, product_class, net_content, net_unit)
SELECT 'SKU-' || s, 'Bench flower ' || s, %(product_class)s, 1, 'g' FROM generate_series(1, %(skus)s) s
WHERE to_regclass('products') IS NOT NULL
"""

# The store's loyalty customers, each with an account, as in a store that has been trading: a sale adds
# to a balance rather than opening one. Customer n is md5(n) as a uuid, in pgbench and in Python. A
# revision older than migration 0018 (bench/compare.py) keeps balances in the table profiles instead.
CUSTOMERS = {
    "loyalty_accounts": "INSERT INTO loyalty_accounts (store_id, user_id)"
                        " SELECT %(store)s, md5(n::text)::uuid FROM generate_series(1, %(customers)s) n",
    "profiles": "INSERT INTO profiles (user_id) SELECT md5(n::text)::uuid FROM generate_series(1, %(customers)s) n",
}


def customer_id(n: int) -> str:
    return str(uuid.UUID(hashlib.md5(str(n).encode()).hexdigest()))


@dataclass(frozen=True)
class Workload:
    name: str
    lines: int
    skus: str                  # "uniform", "zipf 1.1", "zipf 1.5" or "hot"
    customer: bool = True      # a loyalty customer on the sale, so it earns points

    def script(self, skus: int, customers: int) -> str:
        """The pgbench script of one sale: each line a sku drawn by the workload's distribution."""
        draws = []
        for n in range(1, self.lines + 1):
            if self.skus == "uniform":
                draws.append(f"\\set s{n} random(1, {skus})")
            elif self.skus == "hot":
                draws.append(f"\\set s{n} 1")
            else:
                draws.append(f"\\set s{n} random_zipfian(1, {skus}, {self.skus.split()[1]})")
        customer = [f"\\set customer random(1, {customers})"] if self.customer else []
        user_id = "'user_id', md5(:customer::text)::uuid, " if self.customer else ""
        items = ", ".join(f"jsonb_build_object('product', jsonb_build_object('sku', 'SKU-' || :s{n}), 'quantity', 1)"
                          for n in range(1, self.lines + 1))
        return "\n".join([
            *draws,
            *customer,
            "SELECT record_pos_sale(jsonb_build_object("
            f"'store_id', '{STORE_ID}', 'receipt_number', gen_random_uuid()::text, "
            f"{user_id}'total', 25.00, "
            f"'items', jsonb_build_array({items})));",
        ]) + "\n"


WORKLOADS = [
    Workload("1 line, uniform", 1, "uniform"),
    Workload("5 lines, uniform", 5, "uniform"),
    Workload("20 lines, uniform", 20, "uniform"),
    Workload("5 lines, Zipf 1.1", 5, "zipf 1.1"),
    Workload("5 lines, Zipf 1.5", 5, "zipf 1.5"),
    Workload("1 line, same SKU every sale", 1, "hot"),
]

# Not a target: the 1-line sale with no loyalty customer (no balance, no loyalty row), run beside the
# same sale with one, to show planning what fewer writes would buy.
NO_CUSTOMER = Workload("1 line, uniform, no loyalty customer", 1, "uniform", customer=False)

# The targets at 8 clients: throughput as a ratio to C (TPC-B), p99 in ms of the open-loop run.
TARGETS = {
    "1 line, uniform": (1.5, 5),
    "5 lines, uniform": (1.2, 8),
    "20 lines, uniform": (0.5, 20),
    "5 lines, Zipf 1.1": (0.6, 30),
    "1 line, same SKU every sale": (0.8, None),
}

# What a 1-line sale with a customer must write, and nothing else: the order (with a result), the stock
# (its ledger row by the trigger, labelled a sale), the order line, the balance and its loyalty row - as
# one round trip from the client (one statement, as one call of record_pos_sale is one transaction),
# with none of its checks, idempotency or lock order. Its ratio to C is the
# ceiling any sale on this schema can reach at this durability; the books balance after it.
WRITES_ONLY = f"""\\set s random(1, {{skus}})
\\set customer random(1, {{customers}})
WITH o AS (
    INSERT INTO pos_orders (store_id, receipt_number, status, policy, user_id, total, payload, result)
    VALUES ('{STORE_ID}', gen_random_uuid()::text, 'completed', 'strict', md5(:customer::text)::uuid, 25.00,
            '{{{{}}}}', '{{{{}}}}')
    RETURNING store_id, id, user_id
), i AS (
    UPDATE ocs_inventory SET quantity_available = quantity_available - 1, quantity_on_hand = quantity_on_hand - 1,
                             movement = jsonb_build_object('type', 'sale', 'reference_id', (SELECT id FROM o))
    WHERE store_id = '{STORE_ID}'
      AND id = (SELECT min(id) FROM ocs_inventory WHERE store_id = '{STORE_ID}' AND sku = 'SKU-' || :s)
    RETURNING id, sku
), line AS (
    INSERT INTO pos_order_lines (store_id, order_id, line_no, sku, inventory_id, quantity)
    SELECT o.store_id, o.id, 1, i.sku, i.id, 1 FROM o, i
), p AS (
    INSERT INTO loyalty_accounts AS p (store_id, user_id, points) SELECT store_id, user_id, 25 FROM o
    ON CONFLICT (store_id, user_id) DO UPDATE SET points = p.points + 25
    RETURNING user_id, points
)
INSERT INTO loyalty_transactions (user_id, store_id, order_id, transaction_type, points, balance_after)
SELECT p.user_id, o.store_id, o.id, 'earn', 25, p.points FROM o, p;
"""
