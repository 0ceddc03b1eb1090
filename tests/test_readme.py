"""The README as a newcomer reads it: it opens with the two commands, CI runs the second, and every other
shell block and the Python block of a backend run as written. (Its SQL blocks are run where their subject is
tested; its backend test, by tests/test_packaging.py against the installed wheel.)"""

import re
import subprocess
from pathlib import Path

from conftest import add_stock, item, new_store, readme_block, sale_payload, stock_of

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
    for told in ("IV409 InsufficientStock", "replayed: recorded before", "IV423 BatchBlocked",
                 "books balance: 0 discrepancies", "was stopped"):
        assert told in done.stdout


def test_every_other_shell_block_runs_as_written(embedded_env):
    later = blocks("sh")[1:]
    assert later, "the README shows no command beyond the two"
    for block in later:
        done = bash(block, embedded_env)
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
    assert '"replayed": true' in done.stdout and "books balance: 0 discrepancies" in done.stdout


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
