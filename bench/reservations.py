"""What a reservation costs (issue 17), run on demand: ./bench/run reservations [--rounds N] [--carts N]
[--reservations N] [--batch N]

One throwaway server (the system binaries, defaults, fsync on), the suite's store (bench/workloads.py:
5,000 skus of 1-3 batches with stock that never runs out, 1 g of dried flower each, 20,000 loyalty
customers), loaded and analyzed, then warmed up. One connection, every call its own transaction, timed
from the call to its result. Each row against a baseline measured in the same run, round by round:
  A  a reserve-then-complete pair (record_pos_sale with status reserved, then complete_reservation of
     it) against a plain sale of the same cart: 5 distinct skus drawn uniformly, one unit each, a
     loyalty customer (the suite's "5 lines, uniform"). Each cart is sold once and reserved-and-completed
     once, which goes first alternating by cart. Per round: median pair / median sale.
  B  the release of N (10,000) expired reservations of such carts by release_expired_reservations: in
     one call (max_orders N), and in calls of --batch (1,000) until "more" is false, as a scheduler
     calls it. Baselines: cancelling N reservations, one cancel_reservation each - the same work (holds
     released, units back, the order closed) one order per call; and making N reservations, one
     record_pos_sale each. Each of the three sets is made, expired (expires_at moved to the past), then
     released; their order rotates by round.
After every round the books must balance (posledger.testing.INVARIANT_CHECKS), or the run stops. Prints
Markdown tables: medians over rounds, the spread (lowest-highest round) and the ratios.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from posbench import load  # noqa: E402
from workloads import STORE_ID, customer_id  # noqa: E402

from posledger.pgserver import running_cluster  # noqa: E402

SKUS, CUSTOMERS, LINES = 5000, 20000, 5
EXPIRE = ("UPDATE pos_orders SET expires_at = now() - interval '1 second'"
          " WHERE store_id = %s AND status = 'reserved' AND id = ANY (%s)")


def invariant_checks() -> dict[str, str]:
    """posledger.testing.INVARIANT_CHECKS, the one home of what healthy books are, read from its source:
    importing the module needs pytest, which the benchmarks' venv has not (scripts/bootstrap)."""
    tree = ast.parse((ROOT / "pyshell" / "posledger" / "testing.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "INVARIANT_CHECKS" for t in n.targets))
    return ast.literal_eval(node.value)


def check_books(conn: psycopg.Connection, checks: dict[str, str]) -> None:
    broken = {name: rows[:3] for name, query in checks.items() if (rows := conn.execute(query).fetchall())}
    if broken:
        raise SystemExit(f"BOOKS DO NOT BALANCE: {broken}")


class Till:
    """The calls, on one autocommit connection, each timed from the call to its result (seconds)."""

    def __init__(self, conn: psycopg.Connection, rng: random.Random) -> None:
        self.conn, self.rng = conn, rng

    def cart(self) -> dict[str, object]:
        skus = self.rng.sample(range(1, SKUS + 1), LINES)
        return {"store_id": STORE_ID, "user_id": customer_id(self.rng.randint(1, CUSTOMERS)), "total": 25.00,
                "items": [{"product": {"sku": f"SKU-{s}"}, "quantity": 1} for s in skus]}

    def call(self, function: str, payload: dict[str, object]) -> tuple[float, dict]:
        started = time.perf_counter()
        row = self.conn.execute(f"SELECT {function}(%s)", [Jsonb(payload)]).fetchone()
        elapsed = time.perf_counter() - started
        assert row is not None
        return elapsed, row[0]

    def sale(self, cart: dict[str, object]) -> float:
        elapsed, result = self.call("record_pos_sale", {**cart, "receipt_number": uuid.uuid4().hex})
        assert result["status"] == "completed", result
        return elapsed

    def reserve(self, cart: dict[str, object]) -> tuple[float, str, str]:
        receipt = uuid.uuid4().hex
        elapsed, result = self.call("record_pos_sale", {**cart, "receipt_number": receipt, "status": "reserved"})
        assert result["status"] == "reserved", result
        return elapsed, receipt, result["id"]

    def complete(self, receipt: str) -> float:
        elapsed, result = self.call("complete_reservation", {"store_id": STORE_ID, "receipt_number": receipt})
        assert result["status"] == "completed" and not result["replayed"], result
        return elapsed

    def cancel(self, receipt: str) -> float:
        elapsed, result = self.call("cancel_reservation", {"store_id": STORE_ID, "receipt_number": receipt,
                                                           "cancelled_by": "bench"})
        assert result["status"] == "cancelled", result
        return elapsed

    def release(self, max_orders: int) -> tuple[float, dict]:
        started = time.perf_counter()
        row = self.conn.execute("SELECT release_expired_reservations(%s, %s)", [STORE_ID, max_orders]).fetchone()
        assert row is not None
        return time.perf_counter() - started, row[0]


def pairs_and_sales(till: Till, carts: int) -> dict[str, list[float]]:
    """Row A: each cart sold once and reserved-then-completed once, the order alternating by cart."""
    times: dict[str, list[float]] = {"sale": [], "reserve": [], "complete": [], "pair": []}
    for n in range(carts):
        cart = till.cart()
        for step in (("sale", "pair") if n % 2 == 0 else ("pair", "sale")):
            if step == "sale":
                times["sale"].append(till.sale(cart))
            else:
                reserved, receipt, _ = till.reserve(cart)
                completed = till.complete(receipt)
                times["reserve"].append(reserved)
                times["complete"].append(completed)
                times["pair"].append(reserved + completed)
    return times


def make_expired(till: Till, count: int) -> tuple[float, list[str]]:
    """count reservations of fresh carts, then moved past their end; returns the time making them took
    (the expiry's UPDATE not counted) and their receipt numbers."""
    total, receipts, ids = 0.0, [], []
    for _ in range(count):
        elapsed, receipt, order_id = till.reserve(till.cart())
        total += elapsed
        receipts.append(receipt)
        ids.append(order_id)
    till.conn.execute(EXPIRE, [STORE_ID, ids])
    return total, receipts


def release_all(till: Till, batch: int, count: int) -> float:
    """Calls release_expired_reservations with max_orders batch until "more" is false, as a scheduler
    does; all count reservations must be released."""
    total, released, more = 0.0, 0, True
    while more:
        elapsed, result = till.release(batch)
        total += elapsed
        released += result["released"]
        more = result["more"]
    assert released == count, (released, count)
    return total


def cancel_all(till: Till, receipts: list[str]) -> float:
    """Open reservations cancelled one call each: the same release as the expiry's (holds, units back, the
    order closed), one order per call. Not expired first: cancel_reservation answers an expired one with
    its expiry and releases nothing."""
    return sum(till.cancel(receipt) for receipt in receipts)


def release_round(till: Till, count: int, batch: int, round_: int) -> dict[str, float]:
    """Row B, one round: three sets of count reservations, made, then released three ways, the order of
    the ways rotating by round. Returns seconds per reservation of each way, and of the making."""
    made: list[float] = []

    def one_call() -> float:
        made.append(make_expired(till, count)[0])
        return release_all(till, count, count)

    def batches() -> float:
        made.append(make_expired(till, count)[0])
        return release_all(till, batch, count)

    def cancels() -> float:
        total, receipts = 0.0, []
        for _ in range(count):
            elapsed, receipt, _ = till.reserve(till.cart())
            total += elapsed
            receipts.append(receipt)
        made.append(total)
        return cancel_all(till, receipts)

    ways: list[tuple[str, Callable[[], float]]] = [
        ("release, one call", one_call), (f"release, calls of {batch}", batches), ("cancel, one call each", cancels)]
    shift = round_ % len(ways)
    seconds = {name: way() / count for name, way in ways[shift:] + ways[:shift]}
    seconds["make (reserve, one call each)"] = statistics.median(made) / count
    return seconds


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both rows (default 3)")
    parser.add_argument("--carts", type=int, default=300, help="row A: carts per round (default 300)")
    parser.add_argument("--reservations", type=int, default=10000,
                        help="row B: expired reservations released at once (default 10000)")
    parser.add_argument("--batch", type=int, default=1000, help="row B: max_orders of the calls in batches")
    options = parser.parse_args()
    checks = invariant_checks()
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "sql"], capture_output=True,
                           text=True).stdout.strip()
    started, load_before = time.time(), os.getloadavg()
    rows_a: list[dict[str, float]] = []
    rows_b: list[dict[str, float]] = []
    with running_cluster(durable=True) as cluster:
        dsn = cluster.server.dsn()
        load(dsn, SKUS, CUSTOMERS)
        with psycopg.connect(dsn, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            till = Till(conn, random.Random(17))
            # Warm-up, not counted: the store's tables hold orders, holds and releases, then statistics,
            # so no plan is cached over an empty pos_orders or reservation_holds (docs/benchmarks.md).
            pairs_and_sales(till, options.carts)
            make_expired(till, options.batch)
            release_all(till, options.batch, options.batch)
            conn.execute("ANALYZE")
            for round_ in range(options.rounds):
                times = pairs_and_sales(till, options.carts)
                medians = {step: statistics.median(values) for step, values in times.items()}
                medians["ratio"] = medians["pair"] / medians["sale"]
                rows_a.append(medians)
                rows_b.append(release_round(till, options.reservations, options.batch, round_))
                check_books(conn, checks)
                print(f"round {round_ + 1}: A {medians['ratio']:.2f}x, B {rows_b[-1]}", file=sys.stderr)
    minutes, load_after = (time.time() - started) / 60, os.getloadavg()
    print(render(options, rows_a, rows_b, version, rev + (" (sql/ changed)" if dirty else ""), minutes,
                 (load_before, load_after)))


def render(options: argparse.Namespace, rows_a: list[dict[str, float]], rows_b: list[dict[str, float]],
           version: str, rev: str, minutes: float, loads: tuple[tuple[float, ...], ...]) -> str:
    """The Markdown report: the run, then a table per row, medians over rounds and their spread."""
    n, batch = options.reservations, options.batch
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, rev {rev}: `./bench/run reservations --rounds"
        f" {options.rounds} --carts {options.carts} --reservations {n} --batch {batch}`; {platform.machine()},"
        f" {os.cpu_count()} cores, PostgreSQL {version}, fsync on; {minutes:.0f} min; load average"
        f" {loads[0][0]:.1f} before, {loads[1][0]:.1f} after (1 min).",
        "",
        f"| row A, one connection, {options.carts} carts of {LINES} lines per round | median ms"
        f" (median of {options.rounds} rounds) | lowest-highest round |",
        "|---|---|---|",
    ]
    for step, label in (("sale", "plain sale (record_pos_sale)"), ("reserve", "reserve (record_pos_sale, reserved)"),
                        ("complete", "complete_reservation"), ("pair", "pair: reserve + complete")):
        values = [row[step] for row in rows_a]
        lines.append(f"| {label} | {statistics.median(values) * 1000:.2f} | {spread(values, 1000)} |")
    ratios = [row["ratio"] for row in rows_a]
    lines.append(f"| **pair / sale** | **{statistics.median(ratios):.2f}x** | {spread(ratios)}x |")
    lines += ["", f"| row B, {n} reservations of {LINES} lines | us per reservation (median of {options.rounds})"
              " | lowest-highest round | against cancel, one call each | against make |", "|---|---|---|---|---|"]
    cancel, make = "cancel, one call each", "make (reserve, one call each)"
    for way in rows_b[0]:
        values = [row[way] for row in rows_b]
        to_cancel = [row[way] / row[cancel] for row in rows_b]
        to_make = [row[way] / row[make] for row in rows_b]
        lines.append(f"| {way} | {statistics.median(values) * 1e6:.0f} | {spread(values, 1e6, 0)} |"
                     f" {statistics.median(to_cancel):.3f} ({spread(to_cancel, 1, 3)}) |"
                     f" {statistics.median(to_make):.3f} ({spread(to_make, 1, 3)}) |")
    one = [row["release, one call"] * n for row in rows_b]
    lines.append(f"\nrelease of {n} in one call: {statistics.median(one):.2f} s (rounds {spread(one)} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
