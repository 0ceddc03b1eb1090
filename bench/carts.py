"""Does a sale's cost stay linear in its lines? ./bench/run carts [--rounds N]

One store of 8,000 skus, each in one batch with ample stock, on a throwaway server (fsync on). Sales of
20, 2,000 and 8,000 distinct skus (one unit each) run in turn on one connection, interleaved round by
round, and each is timed from the call to its result. It prints the time per line of each size and its
ratio to the 20-line sale's, in the same run (issue 14's row: 2,000 lines against 20). A quadratic step
shows as a ratio far above 1 (issue 14 measured 4.7-7.0 s for 8,000 lines against 0.18 s for 1,000); a
linear sale stays at or below 1, since a 20-line sale spreads the call's fixed cost over fewer lines.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg
from psycopg.types.json import Jsonb
from workloads import CATALOGUE

from posledger.migrations import migrate
from posledger.pgserver import running_cluster

SKUS = 8000
SIZES = (20, 2000, SKUS)
STORE = """
    WITH store AS (INSERT INTO stores (name, max_sale_lines) VALUES ('carts', %(skus)s) RETURNING id)
    INSERT INTO ocs_inventory (store_id, sku, batch_lot, packaged_on_date, quantity_on_hand, quantity_available)
    SELECT store.id, 'SKU-' || s, 'LOT-' || s, date '2025-01-01', 100000000, 100000000
    FROM store, generate_series(1, %(skus)s) s
    RETURNING store_id"""


def sale(store: str, lines: int) -> Jsonb:
    return Jsonb({"store_id": store, "receipt_number": uuid.uuid4().hex, "total": 1.0,
                  "items": [{"product": {"sku": f"SKU-{n}"}, "quantity": 1} for n in range(1, lines + 1)]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the two sizes (default 5)")
    options = parser.parse_args()
    seconds: dict[int, list[float]] = {size: [] for size in SIZES}
    with running_cluster(durable=True) as cluster:
        dsn = cluster.server.dsn()
        migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(STORE, {"skus": SKUS}).fetchone()
            conn.execute(CATALOGUE, {"skus": SKUS, "product_class": "accessory"})   # 8,000 lines of 1 g: over 30 g
            assert row is not None
            store = str(row[0])
            conn.execute("ANALYZE")
            for round_ in range(options.rounds + 1):   # the first round warms up and is not counted
                for size in SIZES:
                    repeats = max(1, 200 // size)
                    started = time.perf_counter()
                    for _ in range(repeats):
                        conn.execute("SELECT record_pos_sale(%s)", [sale(store, size)])
                    if round_:
                        seconds[size].append((time.perf_counter() - started) / repeats)
    per_line = {size: statistics.median(seconds[size]) / size for size in SIZES}
    print(f"| sale | median ms per sale | ms per line | per line, against {SIZES[0]} lines |\n|---|---|---|---|")
    for size in SIZES:
        print(f"| {size} lines | {statistics.median(seconds[size]) * 1000:.1f} | {per_line[size] * 1000:.3f} |"
              f" {per_line[size] / per_line[SIZES[0]]:.2f}x |")
    print("\nissue 14: 2000 lines at most 1.5x the 20-line sale's time per line")


if __name__ == "__main__":
    main()
