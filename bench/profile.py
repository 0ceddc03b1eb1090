"""Where a sale's time goes: ./bench/run profile [--sales N] [--lines N] [--analyze] [--perf]

Runs N sales of one workload on one connection against a throwaway server with pg_stat_statements
(track = all, so the statements inside the functions count) and track_functions = all, then prints the
mean time per call of each function (self and total) and of the costliest nested statements. For the
plan of each statement, add auto_explain (log_nested_statements, log_analyze) to the server's settings.

--perf also samples the server process of that connection with Linux perf (call graphs by DWARF; the
machine needs `perf`, Debian's linux-perf) and prints the share of its CPU time spent inside each stage
of PostgreSQL's work that the pg_stat views cannot separate: starting and ending each statement's
executor, CHECK constraints, triggers and foreign-key checks, index inserts, WAL, the commit.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from posbench import load  # noqa: E402
from workloads import Workload  # noqa: E402

from posledger.pgserver import running_cluster  # noqa: E402

CUSTOMERS = 20000

FUNCTIONS = """
    SELECT funcname, calls, round((self_time / calls)::numeric, 3), round((total_time / calls)::numeric, 3)
    FROM pg_stat_user_functions WHERE calls > 0 ORDER BY self_time DESC LIMIT %s"""
STATEMENTS = """
    SELECT calls, round((total_exec_time / calls)::numeric, 3), round((total_plan_time / calls)::numeric, 3),
           regexp_replace(left(query, 110), '\\s+', ' ', 'g')
    FROM pg_stat_statements WHERE toplevel = false ORDER BY total_exec_time DESC LIMIT %s"""

# Stages of a statement's life in PostgreSQL, by the exported function that contains each; a sample
# counts for every stage on its stack, so the shares overlap (a trigger's statements run inside the
# executor of the statement that fired it).
STAGES = [
    ("plpgsql_exec_function", "all PL/pgSQL functions (the sale, below the client's statement)"),
    ("standard_ExecutorStart", "starting an executor: each statement's plan tree set up"),
    ("ExecInitAgg", "  of which aggregates set up (jsonb_agg, sum, window frames)"),
    ("ExecSetParamPlan", "sub-selects run as init plans (ARRAY(SELECT ...))"),
    ("ExecConstraints", "CHECK constraints: read from the catalog text, prepared and run per statement"),
    ("AfterTriggerEndQuery", "after-row triggers: the ledger trigger and the foreign-key checks"),
    ("plpgsql_exec_trigger", "  of which the ledger trigger"),
    ("SPI_execute_snapshot", "  of which the foreign-key checks"),
    ("ExecInsertIndexTuples", "index inserts"),
    ("heap_insert", "heap inserts"),
    ("heap_update", "heap updates"),
    ("XLogInsert", "WAL records written"),
    ("standard_ExecutorEnd", "ending an executor"),
    ("CommitTransactionCommand", "the commit, its WAL flush included"),
    ("raw_parser", "parsing the client's statement"),
    ("pg_plan_queries", "planning the client's statement"),
]


def perf_profile(pid: int, sales: Callable[[], None]) -> str:
    """Run sales() while Linux perf samples process pid; the share of its samples inside each stage."""
    with tempfile.TemporaryDirectory() as work:
        data = f"{work}/perf.data"
        record = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999",
                                   "--call-graph", "dwarf,65528", "-p", str(pid), "-o", data],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1)   # perf attaches before the first sale
        sales()
        record.send_signal(signal.SIGINT)
        if record.wait() not in (0, -signal.SIGINT):   # perf ends by the signal it was stopped with
            raise SystemExit(f"perf record failed: {record.stderr.read() if record.stderr else ''}")
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "--sort", "sym",
                                 "-g", "none"], capture_output=True, text=True, check=True).stdout
    share: dict[str, float] = {}
    for found in re.finditer(r"^\s*([\d.]+)%\s+[\d.]+%\s+\[\.\] (\S+)\s*$", report, re.M):
        # perf may list a symbol twice (a library mapped twice); the larger entry is the one with its calls
        share[found.group(2)] = max(share.get(found.group(2), 0.0), float(found.group(1)))
    lines = ["share of CPU | stage (inclusive; stages overlap)", "---|---"]
    lines += [f"{share.get(symbol, 0.0):.1f}% | {label}" for symbol, label in STAGES]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--analyze", action="store_true", help="ANALYZE after the warm-up sales")
    parser.add_argument("--perf", action="store_true", help="also sample the server's CPU with Linux perf")
    options = parser.parse_args()

    with running_cluster(durable=True, settings="-c shared_preload_libraries=pg_stat_statements"
                         " -c pg_stat_statements.track=all -c pg_stat_statements.track_planning=on"
                         " -c track_functions=all") as cluster:
        dsn = cluster.server.dsn()
        load(dsn, options.skus, CUSTOMERS)
        sale = Workload("profile", options.lines, "uniform").script(options.skus, CUSTOMERS)
        draws = [line for line in sale.splitlines() if line.startswith("\\set")]
        query = sale.splitlines()[-1]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")

            def one() -> None:
                values = {d.split()[1]: random.randint(1, options.skus) for d in draws}
                conn.execute(re.sub(r"(?<!:):(\w+)", lambda m: str(values[m.group(1)]), query))
            for _ in range(200):   # warm the session's plan caches
                one()
            if options.analyze:
                conn.execute("ANALYZE")
            conn.execute("SELECT pg_stat_statements_reset(), pg_stat_reset()")
            started = time.perf_counter()
            for _ in range(options.sales):
                one()
            elapsed = (time.perf_counter() - started) / options.sales * 1000
            time.sleep(0.6)   # function statistics reach the views after a short delay
            nested = conn.execute("SELECT sum(calls) FROM pg_stat_statements WHERE NOT toplevel").fetchone()[0]  # type: ignore[index]
            print(f"{options.sales} sales of {options.lines} lines, one client: {elapsed:.3f} ms per sale,"
                  f" {nested / options.sales:.1f} statements inside each (foreign-key checks included)\n")
            print("calls | self ms | total ms | function")
            for name, calls, self_ms, total_ms in conn.execute(FUNCTIONS, [options.top]):
                print(f"{calls} | {self_ms} | {total_ms} | {name}")
            print("\ncalls | exec ms | plan ms | nested statement")
            for calls, exec_ms, plan_ms, text in conn.execute(STATEMENTS, [options.top]):
                print(f"{calls} | {exec_ms} | {plan_ms} | {text}")
            if options.perf:   # more sales after the statistics were read: sampling slows the sales it watches
                pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]

                def sales() -> None:
                    for _ in range(options.sales):
                        one()
                stages = perf_profile(pid, sales)
                print(f"\nperf, {options.sales} more sales: where the server process spent its CPU\n\n{stages}")


if __name__ == "__main__":
    main()
