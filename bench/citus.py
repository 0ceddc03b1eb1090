"""What Citus costs a sale, on this one machine (issue 16), run on demand: ./bench/run citus [--seconds N]
[--rounds N]. A coordinator and two workers of the system PostgreSQL with Citus (scripts/citus builds it)
run beside one plain server of the same binaries and settings; both get the same stores, stock and
customers, the Citus one through `posledger distribute`. Measured, rounds interleaved so that a drifting
machine moves every row alike, 8 clients each:
  one server       the 1-line sale through record_pos_sale(store_id, sale), with and without a customer;
  Citus, delegated the same call through the coordinator, which hands it whole to the worker of its store;
  Citus, not delegated  the one-argument form: it runs on the coordinator, each statement routed.
Every node shares the same two cores, so this measures overhead, not scale. After every run the books
must balance. Prints a Markdown table of median tps and the ratios the issue asks for."""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from posbench import Target, check_books, pgbench, tps  # noqa: E402
from workloads import CATALOGUE, GENERATE, STOCK_PER_BATCH  # noqa: E402

from posledger.distribution import distribute  # noqa: E402
from posledger.migrations import migrate  # noqa: E402
from posledger.pgserver import Server, running_citus_cluster, running_cluster  # noqa: E402

STORES, SKUS, CUSTOMERS, CLIENTS = 8, 2000, 2000, 8
# Store n is md5('store' || n) as a uuid, in Python and in pgbench (whose variables are integers).
STORE = "md5('store' || {n})::uuid"


@dataclass
class Coordinator:
    """pgbench's target on Citus: the coordinator, run by the same binaries as the single server."""

    server: Server
    bindir: Path


def load(dsn: str) -> int:
    """STORES stores of SKUS skus each, and CUSTOMERS customers with an account at every store (as in a
    chain that has been trading): a sale adds to a balance rather than opening one."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(1, STORES + 1):
            store = conn.execute(f"SELECT {STORE.format(n=n)}").fetchone()[0]  # type: ignore[index]
            conn.execute(GENERATE, {"store": store, "skus": SKUS, "stock": STOCK_PER_BATCH})
        conn.execute(CATALOGUE, {"skus": SKUS, "product_class": "dried"})
        conn.execute("INSERT INTO loyalty_accounts (store_id, user_id) SELECT id, md5(c::text)::uuid"
                     " FROM stores, generate_series(1, %s) c", [CUSTOMERS])
        conn.execute("ANALYZE")
        row = conn.execute("SELECT sum(quantity_on_hand) FROM ocs_inventory").fetchone()
    assert row is not None
    return int(row[0])


def script(customer: bool, delegated: bool = True) -> str:
    """One 1-line sale at a random store, by the two-argument form (delegated on Citus) or the one-argument
    form; with a random customer or none."""
    store = STORE.format(n=":st")
    user = "'user_id', md5(:customer::text)::uuid, " if customer else ""
    sale = (f"jsonb_build_object('store_id', {store}, 'receipt_number', gen_random_uuid()::text, {user}"
            f"'total', 25.00, 'items', jsonb_build_array(jsonb_build_object("
            f"'product', jsonb_build_object('sku', 'SKU-' || :s), 'quantity', 1)))")
    call = f"record_pos_sale({store}, {sale})" if delegated else f"record_pos_sale({sale})"
    return "\n".join([f"\\set st random(1, {STORES})", f"\\set s random(1, {SKUS})",
                      f"\\set customer random(1, {CUSTOMERS})", f"SELECT {call};"]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row, interleaved (default 3)")
    options = parser.parse_args()
    seconds = str(options.seconds)

    with running_cluster() as single, running_citus_cluster(workers=2) as citus:
        with psycopg.connect(single.server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE posledger")
        migrate(single.server.dsn("posledger"))
        migrate(citus.dsn())
        distribute(citus.dsn())
        one_server = single.server.dsn("posledger")
        targets: dict[str, tuple[Target, str, int]] = {
            "one server": (single, one_server, load(one_server)),
            "Citus": (Coordinator(citus.coordinator, single.bindir), citus.dsn(), load(citus.dsn()))}
        rows = {
            ("one server", "with a customer"): ("one server", script(True)),
            ("one server", "no customer"): ("one server", script(False)),
            ("Citus, delegated", "with a customer"): ("Citus", script(True)),
            ("Citus, delegated", "no customer"): ("Citus", script(False)),
            ("Citus, not delegated (one-argument form)", "with a customer"): ("Citus", script(True, False)),
        }
        runs: dict[tuple[str, str], list[float]] = {row: [] for row in rows}
        for _ in range(options.rounds):
            for row, (target, sale) in rows.items():
                cluster, dsn, initial = targets[target]
                run = pgbench(cluster, "posledger", "-c", str(CLIENTS), "-j", "2", "-T", seconds,
                              "--max-tries=10", script=sale)
                check_books(dsn, initial)
                runs[row].append(tps(run))

    median = {row: statistics.median(values) for row, values in runs.items()}
    print(f"| sale (1 line, {STORES} stores, {CLIENTS} clients) | customer | tps (median of {options.rounds}) |"
          " runs |")
    print("|---|---|---:|---|")
    for (where, customer), value in median.items():
        print(f"| {where} | {customer} | {value:.0f} | {', '.join(f'{v:.0f}' for v in runs[(where, customer)])} |")
    ratio = median[("Citus, delegated", "with a customer")] / median[("Citus, delegated", "no customer")]
    print(f"\ndelegated sale with a customer / without one: {ratio:.2f} (issue 16 asks at least 0.8)")
    for customer in ("with a customer", "no customer"):
        ratio = median[("Citus, delegated", customer)] / median[("one server", customer)]
        print(f"delegated sale / one-server sale, {customer}: {ratio:.2f}")


if __name__ == "__main__":
    main()
