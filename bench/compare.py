"""Did a change to the SQL make sales faster? ./bench/run compare REV [--seconds N] [--rounds N] [--only RUN]

Loads two databases on one throwaway server (the suite's settings and store): A with the sql/ of git
revision REV, B with the working tree's. Then runs each workload of the plan on A and B in turn, the
order alternating by round, so both see the same machine at nearly the same moment, and prints the
mean throughput of each, the ratio B/A of the means and the ratio of each round. The books must
balance after every run, as in the suite. A and B each apply their own sql/migrations, so REV may be a
revision before a migration (a new table, a trigger): A is then the schema without it.
On a shared 2-core machine one run of 10 s moves by up to a fifth: a mean ratio inside 0.9-1.1
is noise, and so is one that does not hold in every round.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import posbench  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

import posledger.migrations  # noqa: E402
from posledger.pgserver import running_cluster  # noqa: E402

SKUS, CUSTOMERS = 5000, 20000
# The runs that decide most: plain sales, and the hot rows at 2 and 8 clients (the collapse ratio).
PLAN = [("1 line, uniform", 8), ("5 lines, uniform", 8), ("5 lines, Zipf 1.1", 2), ("5 lines, Zipf 1.1", 8),
        ("1 line, same SKU every sale", 2), ("1 line, same SKU every sale", 8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev", help="the git revision to compare the working tree with, e.g. HEAD")
    parser.add_argument("--seconds", type=int, default=10, help="length of each run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each workload on each side (default 3)")
    parser.add_argument("--only", choices=sorted({name for name, _ in PLAN}),
                        help="run this workload of the plan alone")
    options = parser.parse_args()
    plan = [(name, clients) for name, clients in PLAN if options.only in (None, name)]
    seconds = str(options.seconds)
    workloads = {workload.name: workload for workload in WORKLOADS}

    with tempfile.TemporaryDirectory() as old, running_cluster(durable=True) as cluster:
        subprocess.run(f"git -C {ROOT} archive {options.rev} sql | tar -x -C {old}", shell=True, check=True)
        initial = {}
        for side, sql in (("a", Path(old, "sql")), ("b", ROOT / "sql")):
            with psycopg.connect(cluster.server.dsn(), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {side}")
            posledger.migrations.SQL_DIR = sql   # migrate() reads the functions from here
            initial[side] = posbench.load(cluster.server.dsn(side), SKUS, CUSTOMERS)
            posbench.warm_up(cluster, side, initial[side], seconds, SKUS, CUSTOMERS)

        tps: dict[tuple[str, int, str], list[float]] = {}
        for round_ in range(options.rounds):
            for name, clients in plan:
                for side in ("a", "b") if round_ % 2 == 0 else ("b", "a"):
                    run = posbench.sell(cluster, side, initial[side], workloads[name], clients, seconds, SKUS,
                                        CUSTOMERS)
                    tps.setdefault((name, clients, side), []).append(posbench.tps(run))
                    print(f"round {round_ + 1}: {name}, {clients} clients, {side}: {run['tps']:.0f} tps,"
                          f" failures {run['failures']}, books {run['books']}", file=sys.stderr)

    # Per round too: the two runs of a round are seconds apart, so a round's ratio is the fairest single
    # figure, and a mean that does not hold in most rounds is the machine, not the SQL.
    print(f"| run | clients | A ({options.rev}) tps | B (working tree) tps | B / A | B / A per round |\n"
          "|---|---|---|---|---|---|")
    for name, clients in plan:
        a, b = (sum(tps[(name, clients, side)]) / options.rounds for side in ("a", "b"))
        pairs = zip(tps[(name, clients, "a")], tps[(name, clients, "b")], strict=True)
        rounds = ", ".join(f"{rb / ra:.2f}" for ra, rb in pairs)
        print(f"| {name} | {clients} | {a:.0f} | {b:.0f} | {b / a:.2f} | {rounds} |")


if __name__ == "__main__":
    main()
