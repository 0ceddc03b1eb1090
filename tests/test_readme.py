"""The README as a newcomer reads it: it opens with the two commands, CI runs the second, and every other
shell block and the Python block of a backend run as written, and its SQL blocks run in order after the tour, on
the tour's database, as a newcomer runs them. (Its backend test runs in tests/test_packaging.py against the
installed wheel.)"""

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import add_stock, item, new_store, readme_block, sale_payload, stock_of
from posledger.testing import INVARIANT_CHECKS

ROOT = Path(__file__).resolve().parents[1]


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def commands(block):
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def bash(script, env):
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_tests_one():
    assert commands(blocks("sh")[0]) == ["./scripts/demo", "./scripts/test"]
    assert commands((ROOT / ".ci" / "run").read_text())[-1] == "./scripts/test"


def test_the_demo_command_tells_the_day_on_a_fresh_embedded_server(embedded_env):
    done = bash(blocks("sh")[0].splitlines()[0], embedded_env)
    assert done.returncode == 0, done.stderr
    for told in ("IV409 InsufficientStock", "IV422 LimitExceeded", "replayed: recorded before", "IV423 BatchBlocked",
                 "books balance: 0 discrepancies", "was stopped"):
        assert told in done.stdout


def psql(block, env):
    """A SQL block as a reader runs it after the tour: in `posledger psql`, on the tour's database."""
    return subprocess.run([sys.executable, "-m", "posledger", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"],
                          input=block, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_tour_and_then_every_sql_block_run_as_written_in_order_on_one_database(embedded_env):
    assert len(blocks("sh")) == 2, "a shell block no test runs"
    done = bash(blocks("sh")[1], embedded_env)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert '"replayed": true' in done.stdout and "books balance: 0 discrepancies" in done.stdout
    printed = []
    for block in blocks("sql"):
        done = psql(block, embedded_env)
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
        printed.append(done.stdout)
    the_day = next(n for n, block in enumerate(blocks("sql")) if block.startswith("-- a store's day"))
    sold, day = ([json.loads(line) for line in printed[n].splitlines()] for n in (0, the_day))
    shown = json.loads(blocks("json")[0])   # the README's result is this sale's
    assert sold[0]["inventory_updates"] == shown["inventory_updates"]
    assert [sold[0]["loyalty"][key] for key in ("points_earned", "balance")] == [
        shown["loyalty"][key] for key in ("points_earned", "balance")]
    the_stores_day_is_as_the_readme_tells_it(*day)
    promised = next(n for n, block in enumerate(blocks("sql")) if block.startswith("-- a reservation's life"))
    reserved, listed, completed = printed[promised].splitlines()
    assert json.loads(reserved)["held"] == [{"sku": "OCS-GUMMIES-10", "batch": "LOT-G-0820", "quantity_held": 2,
                                             "remaining": 18}]
    assert listed == "WEB-0042|reserved|2|1 day"
    assert json.loads(completed)["inventory_updates"]["successful"][0]["quantity_deducted"] == 2
    assert psql("SELECT * FROM inventory_discrepancies", embedded_env).stdout == ""


def the_stores_day_is_as_the_readme_tells_it(received, sold, returned, adjusted, counted, recalled):
    assert received["variances"][0]["variance"] == -2 and received["units_received"] == 20
    assert {u["batch"]: u["quantity_deducted"] for u in sold["inventory_updates"]["successful"]} == {"LOT-A": 10,
                                                                                                    "LOT-B": 2}
    assert returned["restocked"][0]["quantity_quarantined"] == 2
    assert adjusted["adjustments"][0]["quantity_quarantined"] == 0
    assert counted["adjustments"] == [{"sku": "OCS-PREROLL-3PK", "batch": "LOT-B", "quantity": -1,
                                       "quantity_on_hand": 7, "quantity_available": 7, "quantity_quarantined": 0}]
    assert recalled["changed_count"] == 1


def test_the_python_block_records_a_sale_and_reports_a_refusal(db, dsn, capsys):
    assert len(blocks("python")) == 2, "a Python block no test runs"   # the other: tests/test_packaging.py
    block = readme_block("import psycopg, posledger", "python")
    store = new_store(db)
    add_stock(db, store, "SKU", 5)
    served = {"dsn": dsn, "sale": sale_payload(store, item("SKU", 2))}
    exec(block, served)
    assert served["result"]["inventory_updates"]["successful"][0]["remaining"] == 3
    exec(block, {"dsn": dsn, "sale": sale_payload(store, item("SKU", 9))})
    assert "'available': 3, 'requested': 9" in capsys.readouterr().out
    assert stock_of(db, store, "SKU") == {None: (3, 3)}


def test_the_docs_say_each_fact_in_one_place():
    readme = (ROOT / "README.md").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):   # the list of docs: "More", once
        entries = re.findall(rf"^(?:- \[|\| `)docs/{doc.name}", readme, re.M)
        assert len(entries) == 1, f"the README describes docs/{doc.name} {len(entries)} times"
    reliability = (ROOT / "docs" / "reliability.md").read_text()
    for invariant in INVARIANT_CHECKS:   # the invariants: listed in docs/reliability.md only
        assert invariant in reliability and invariant not in readme, invariant
    assert "FROM ocs_inventory i LEFT JOIN" not in readme   # the reconciliation query: the view only
