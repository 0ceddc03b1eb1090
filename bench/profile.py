"""Where a sale's time goes: ./bench/run profile [--sales N] [--lines N] [--analyze]

Runs N sales of one workload on one connection against a throwaway server with pg_stat_statements
(track = all, so the statements inside the functions count) and track_functions = all, then prints the
mean time per call of each function (self and total) and of the costliest nested statements. For the
plan of each statement, add auto_explain (log_nested_statements, log_analyze) to the server's settings.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from posbench import load  # noqa: E402
from workloads import Workload  # noqa: E402

from pgserver import running_cluster  # noqa: E402

CUSTOMERS = 20000

FUNCTIONS = """
    SELECT funcname, calls, round((self_time / calls)::numeric, 3), round((total_time / calls)::numeric, 3)
    FROM pg_stat_user_functions WHERE calls > 0 ORDER BY self_time DESC LIMIT %s"""
STATEMENTS = """
    SELECT calls, round((total_exec_time / calls)::numeric, 3), round((total_plan_time / calls)::numeric, 3),
           regexp_replace(left(query, 110), '\\s+', ' ', 'g')
    FROM pg_stat_statements WHERE toplevel = false ORDER BY total_exec_time DESC LIMIT %s"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--analyze", action="store_true", help="ANALYZE after the warm-up sales")
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
            print(f"{options.sales} sales of {options.lines} lines, one client: {elapsed:.3f} ms per sale\n")
            print("calls | self ms | total ms | function")
            for name, calls, self_ms, total_ms in conn.execute(FUNCTIONS, [options.top]):
                print(f"{calls} | {self_ms} | {total_ms} | {name}")
            print("\ncalls | exec ms | plan ms | nested statement")
            for calls, exec_ms, plan_ms, text in conn.execute(STATEMENTS, [options.top]):
                print(f"{calls} | {exec_ms} | {plan_ms} | {text}")


if __name__ == "__main__":
    main()
