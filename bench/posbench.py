"""posledger's benchmark suite, run on demand (never by the tests): ./bench/run [--seconds N] [--write-docs]

It starts a throwaway PostgreSQL (the system binaries, defaults, fsync and synchronous_commit on), loads
the schema and a store, and measures in the same run, on the same server:
  C            pgbench's built-in TPC-B at 8 clients: the machine's ceiling for a small write transaction,
               the mean of a run before and a run after the sales;
  workloads    record_pos_sale through pgbench: closed loop at 8 clients for throughput, then open loop
               (-R) at 70% of that for latency; a client sweep 1-16 for each;
  client-side  the old fix plan's approach (bench/client_side.py) at 8 clients, 5 lines;
  writes alone what a 1-line sale must write, as one client statement with none of the function's
               checks: the ceiling of any sale on this schema (workloads.WRITES_ONLY).
After every run the books must balance (stock removed = ledger = units on order lines, nothing negative,
no orphan rows). It prints a Markdown table of ratios to C and to the client-side baseline, and with
--write-docs puts it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import client_side  # noqa: E402
from workloads import (  # noqa: E402
    CATALOGUE,
    CUSTOMERS,
    GENERATE,
    NO_CUSTOMER,
    STOCK_PER_BATCH,
    STORE_ID,
    TARGETS,
    WORKLOADS,
    WRITES_ONLY,
    Workload,
)

from posledger.migrations import migrate  # noqa: E402
from posledger.pgserver import SystemCluster, running_cluster  # noqa: E402

TPCB_CLIENTS = 8
ASYNC = "-c synchronous_commit=off"   # a commit returns before its WAL is flushed: a crash may lose it
SWEEP = [1, 2, 4, 8, 16]

CONSERVATION = """
    SELECT %(initial)s - (SELECT sum(quantity_on_hand) FROM ocs_inventory) AS removed,
           (SELECT -coalesce(sum(quantity), 0) FROM ocs_inventory_transactions
            WHERE transaction_type = 'sale') AS ledger,
           (SELECT coalesce(sum(quantity), 0) FROM pos_order_lines) AS order_lines,
           (SELECT count(*) FROM negative_inventory) AS negative,
           (SELECT count(*) FROM inventory_discrepancies) AS discrepancies,
           (SELECT count(*) FROM pos_orders o WHERE o.result IS NULL
               OR NOT EXISTS (SELECT FROM pos_order_lines l WHERE l.store_id = o.store_id AND l.order_id = o.id))
               AS orphan_orders"""


def pgbench(cluster: SystemCluster, dbname: str, *args: str, script: str | None = None,
            settings: str = "") -> dict[str, object]:
    """Run pgbench, return tps, failures and the per-transaction latencies of its log. Every run starts
    just after a checkpoint, so none pays for another's dirty pages or full-page writes. settings (e.g.
    "-c synchronous_commit=off") apply to its sessions only, never to the server."""
    with psycopg.connect(cluster.server.dsn(dbname), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    with tempfile.TemporaryDirectory() as work:
        command = [str(cluster.bindir / "pgbench"), "-h", cluster.server.host, "-p", str(cluster.server.port),
                   "-U", "postgres", "-n", "-l", f"--log-prefix={work}/log", *args]
        if script is not None:
            Path(work, "sale.sql").write_text(script)
            command += ["-f", f"{work}/sale.sql"]
        done = subprocess.run([*command, dbname], capture_output=True, text=True,
                              env={**os.environ, "PGOPTIONS": settings})
        if done.returncode not in (0, 2):  # 2: some clients aborted; reported below
            raise RuntimeError(done.stderr)
        latencies = [int(line.split()[2]) / 1000 for log in Path(work).glob("log*")
                     for line in log.read_text().splitlines()
                     if line.split()[2] != "failed" and line.split()[2] != "skipped"]

    def figure(pattern: str) -> float:
        found = re.search(pattern, done.stdout)
        return float(found.group(1)) if found else 0.0

    return {"tps": figure(r"tps = ([\d.]+)"), "latencies_ms": latencies,
            "failures": {"serialization": int(figure(r"number of serialization failures: (\d+)")),
                         "deadlock": int(figure(r"number of deadlock failures: (\d+)")),
                         "retried": int(figure(r"number of transactions retried: (\d+)")),
                         "aborted clients": done.stderr.count("aborted")}}


def tps(run: dict[str, object]) -> float:
    """A run's transactions per second, from the dict pgbench() returns."""
    return float(run["tps"])  # type: ignore[arg-type]


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=1000)[int(fraction * 1000) - 1] if len(values) > 1 else float("nan")


def check_books(dsn: str, initial: int) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(CONSERVATION, {"initial": initial}).fetchone()
    assert row is not None
    removed, ledger, lines, negative, discrepancies, orphans = row
    if removed == ledger == lines and negative == discrepancies == orphans == 0:
        return f"ok ({removed} units)"
    raise SystemExit(f"BOOKS DO NOT BALANCE: removed {removed}, ledger {ledger}, order lines {lines}, "
                     f"negative {negative}, discrepancies {discrepancies}, orphan orders {orphans}")


def load(dsn: str, skus: int, customers: int) -> int:
    migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(GENERATE, {"store": STORE_ID, "skus": skus, "stock": STOCK_PER_BATCH})
        conn.execute(CATALOGUE, {"skus": skus, "product_class": "dried"})
        accounts = "loyalty_accounts" if conn.execute("SELECT to_regclass('loyalty_accounts')").fetchone() != (None,) \
            else "profiles"
        conn.execute(CUSTOMERS[accounts], {"store": STORE_ID, "customers": customers})
        conn.execute("VACUUM ANALYZE")
        row = conn.execute("SELECT sum(quantity_on_hand) FROM ocs_inventory").fetchone()
    assert row is not None
    return int(row[0])


def warm_up(cluster: SystemCluster, dbname: str, initial: int, seconds: str, skus: int, customers: int) -> None:
    """Make the store one that has been selling: warm-up sales (not reported), then statistics. Measured
    on a fresh database, every foreign-key check of a sale line scanned pos_orders with a plan cached
    while it was empty (docs/benchmarks.md)."""
    pgbench(cluster, dbname, "-c", "8", "-j", "2", "-T", seconds, script=WORKLOADS[0].script(skus, customers))
    check_books(cluster.server.dsn(dbname), initial)
    with psycopg.connect(cluster.server.dsn(dbname), autocommit=True) as conn:
        conn.execute("ANALYZE")


def sell(cluster: SystemCluster, dbname: str, initial: int, workload: Workload, clients: int, seconds: str,
         skus: int, customers: int, *extra: str, settings: str = "") -> dict[str, object]:
    """One run of a workload's sales, deadlocks and retries counted, then the books checked."""
    result = pgbench(cluster, dbname, "-c", str(clients), "-j", str(min(clients, 2)), "-T", seconds,
                     "--max-tries=10", "--failures-detailed", *extra, script=workload.script(skus, customers),
                     settings=settings)
    result["books"] = check_books(cluster.server.dsn(dbname), initial)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each run (default 10)")
    parser.add_argument("--skus", type=int, default=5000, help="skus in the store, 1-3 batches each (default 5000)")
    parser.add_argument("--customers", type=int, default=20000, help="loyalty customers (default 20000)")
    parser.add_argument("--write-docs", action="store_true", help="put the table into docs/benchmarks.md")
    options = parser.parse_args()
    seconds = str(options.seconds)

    with running_cluster(durable=True) as cluster:
        admin = cluster.server.dsn()
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in ("posledger", "client_side", "tpcb", "tpcb_hot"):
                conn.execute(f"CREATE DATABASE {name}")
        dsn, baseline_dsn = cluster.server.dsn("posledger"), cluster.server.dsn("client_side")
        initial = load(dsn, options.skus, options.customers)
        baseline_initial = load(baseline_dsn, options.skus, options.customers)
        with psycopg.connect(baseline_dsn, autocommit=True) as conn:
            conn.execute(client_side.DROP_TRIGGER)
        for name, scale in (("tpcb", TPCB_CLIENTS), ("tpcb_hot", 1)):
            subprocess.run([str(cluster.bindir / "pgbench"), "-i", "-q", "-s", str(scale), "-h",
                            cluster.server.host, "-p", str(cluster.server.port), "-U", "postgres", name],
                           check=True, capture_output=True)

        # Both sides as stores that have been selling (warm_up).
        warm_up(cluster, "posledger", initial, seconds, options.skus, options.customers)
        client_side.run(baseline_dsn, 8, options.seconds, 5, options.skus, options.customers)
        check_books(baseline_dsn, baseline_initial)
        with psycopg.connect(baseline_dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
        # C is measured before and after the sales and averaged: a shared machine drifts over the run,
        # and the two figures show by how much.
        rows: list[tuple[str, int, str, dict[str, object], object]] = []
        tpcb_before = pgbench(cluster, "tpcb", "-c", str(TPCB_CLIENTS), "-j", "2", "-T", seconds)
        rows.append(("TPC-B (pgbench built-in), before the sales", TPCB_CLIENTS, "closed", tpcb_before, "-"))
        # TPC-B's own hot row: at scale 1 every transaction updates the one branch row, as every sale of
        # the same-sku workload updates one batch. What more clients do to it is the server's, not ours.
        hot = {clients: pgbench(cluster, "tpcb_hot", "-c", str(clients), "-j", str(min(clients, 2)), "-T", seconds)
               for clients in (2, 8)}
        for clients, run in hot.items():
            rows.append(("TPC-B at scale 1 (one branch row in every transaction)", clients, "closed", run, "-"))

        def sale_run(workload: Workload, clients: int, *extra: str, settings: str = "") -> dict[str, object]:
            return sell(cluster, "posledger", initial, workload, clients, seconds, options.skus, options.customers,
                        *extra, settings=settings)

        # All runs of one workload follow each other, so its 8-against-2-client ratio compares runs a
        # minute apart, not minutes apart on a machine that drifts.
        closed: dict[tuple[str, int], dict[str, object]] = {}
        for workload in WORKLOADS:
            for clients in SWEEP:
                closed[(workload.name, clients)] = run = sale_run(workload, clients)
                rows.append((workload.name, clients, "closed", run, run["books"]))
                if clients == 8:
                    rate = max(1, int(0.7 * tps(run)))
                    closed[(workload.name, -8)] = open_run = sale_run(workload, 8, "-R", str(rate))
                    rows.append((workload.name, 8, f"open, -R {rate}", open_run, open_run["books"]))

        def writes_run(settings: str = "") -> dict[str, object]:
            run = pgbench(cluster, "posledger", "-c", "8", "-j", "2", "-T", seconds, settings=settings,
                          script=WRITES_ONLY.format(skus=options.skus, customers=options.customers))
            run["books"] = check_books(dsn, initial)
            return run

        # What planning could buy (not targets), each run beside what it changes, as the machine drifts:
        # weaker durability (for these sessions only) for the writes alone and for the 1-line sale, and
        # fewer writes (no loyalty customer); the 1-line sale as it is runs before and after them.
        writes, writes_async = writes_run(), writes_run(ASYNC)
        plain_before = sale_run(WORKLOADS[0], 8)
        no_customer = sale_run(NO_CUSTOMER, 8)
        sale_async = sale_run(WORKLOADS[0], 8, settings=ASYNC)
        plain_after = sale_run(WORKLOADS[0], 8)
        ceiling = "the writes of a 1-line sale alone, no function (ceiling)"
        for name, run in ((ceiling, writes), (f"{ceiling}, synchronous_commit off", writes_async),
                          (f"{WORKLOADS[0].name}, before the two below", plain_before), (NO_CUSTOMER.name, no_customer),
                          (f"{WORKLOADS[0].name}, synchronous_commit off", sale_async),
                          (f"{WORKLOADS[0].name}, after the two above", plain_after)):
            rows.append((name, 8, "closed", run, run["books"]))
        plain = (tps(plain_before) + tps(plain_after)) / 2
        planning = [
            ("synchronous_commit off, the writes alone", "the writes alone, synchronous_commit on",
             tps(writes_async) / tps(writes)),
            ("synchronous_commit off, the 1-line sale", "the 1-line sale before and after (mean)",
             tps(sale_async) / plain),
            ("no loyalty customer, the 1-line sale", "the 1-line sale before and after (mean)",
             tps(no_customer) / plain),
        ]

        client = client_side.run(baseline_dsn, 8, options.seconds, 5, options.skus, options.customers)
        client_books = check_books(baseline_dsn, baseline_initial)
        rows.append(("client-side baseline (fix plan), 5 lines, uniform", 8, "closed", client, client_books))
        tpcb_after = pgbench(cluster, "tpcb", "-c", str(TPCB_CLIENTS), "-j", "2", "-T", seconds)
        rows.append(("TPC-B (pgbench built-in), after the sales", TPCB_CLIENTS, "closed", tpcb_after, "-"))
        c = (tps(tpcb_before) + tps(tpcb_after)) / 2

        with psycopg.connect(dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            deadlocks = conn.execute("SELECT sum(deadlocks) FROM pg_stat_database").fetchone()[0]  # type: ignore[index]
        closed[("TPC-B at scale 1", 8)], closed[("TPC-B at scale 1", 2)] = hot[8], hot[2]
        report = render(rows, c, closed, client, planning, version, deadlocks, options)
    print(report)
    if options.write_docs:
        docs = ROOT / "docs" / "benchmarks.md"
        text = docs.read_text()
        start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
        docs.write_text(text[:text.index(start) + len(start)] + report + "\n" + text[text.index(end):])


def render(rows: list[tuple], c: float, closed: dict, client: dict, planning: list[tuple[str, str, float]],
           version: str, deadlocks: int, options: argparse.Namespace) -> str:
    """The Markdown report: the machine, the server, the command, one row per run, the targets."""
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "?")
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `./bench/run --seconds {options.seconds}"
        f" --skus {options.skus} --customers {options.customers}`; {platform.machine()}, {os.cpu_count()} cores,"
        f" {int(memory) // 1024 // 1024 if memory != '?' else '?'} GiB; PostgreSQL {version}, default settings"
        " (fsync and synchronous_commit on); pgbench and the server on the same machine."
        f" C = {c:.0f} transactions/s, the mean of TPC-B before and after the sales.",
        "",
        "| run | clients | loop | tps | p50 ms | p99 ms | failures (serialization / deadlock / retried / aborted)"
        " | ratio to C | books |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, clients, loop, run, books in rows:
        f = run["failures"]
        failures = " / ".join(str(f.get(k, 0)) for k in ("serialization", "deadlock", "retried", "aborted clients"))
        lat = run["latencies_ms"]
        lines.append(f"| {name} | {clients} | {loop} | {run['tps']:.0f} | {percentile(lat, 0.5):.2f} |"
                     f" {percentile(lat, 0.99):.2f} | {failures} | {run['tps'] / c:.2f} | {books} |")
    lines += ["", f"Deadlocks counted by the server over the whole run (pg_stat_database): {deadlocks}.", "",
              "| target (8 clients) | wanted | measured | met |", "|---|---|---|---|"]

    def target(what: str, wanted: str, measured: str, met: bool) -> None:
        lines.append(f"| {what} | {wanted} | {measured} | {'yes' if met else '**no**'} |")

    for name, (ratio, p99) in TARGETS.items():
        got = closed[(name, 8)]["tps"] / c
        target(f"{name}: throughput", f">= {ratio} C", f"{got:.2f} C", got >= ratio)
        if p99 is not None:
            measured = percentile(closed[(name, -8)]["latencies_ms"], 0.99)
            target(f"{name}: p99 at 70% load", f"<= {p99} ms", f"{measured:.2f} ms", measured <= p99)
    for name in (workload.name for workload in WORKLOADS):
        ratio = closed[(name, 8)]["tps"] / closed[(name, 2)]["tps"]
        target(f"{name}: 8 clients vs 2 (no collapse)", ">= 0.9", f"{ratio:.2f}", ratio >= 0.9)
    ratio = closed[("TPC-B at scale 1", 8)]["tps"] / closed[("TPC-B at scale 1", 2)]["tps"]
    lines.append(f"| for comparison, TPC-B at scale 1 (its hot row): 8 clients vs 2 | - | {ratio:.2f} | - |")
    ratio = closed[("5 lines, uniform", 8)]["tps"] / client["tps"]
    target("5 lines, uniform vs the client-side baseline", ">= 3x", f"{ratio:.2f}x", ratio >= 3)
    failed = sum(sum(run["failures"].get(k, 0) for k in ("serialization", "deadlock", "aborted clients"))
                 for name, _, _, run, _ in rows if not name.startswith(("TPC-B", "client-side")))
    target("posledger runs: deadlocks, failed transactions, aborted clients", "0", str(failed), failed == 0)
    lines += ["", "| what planning could buy (not a target), 8 clients | throughput against | ratio |", "|---|---|---|"]
    lines += [f"| {what} | {against} | {ratio:.2f} |" for what, against, ratio in planning]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
