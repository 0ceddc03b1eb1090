"""The command line, driven as a real subprocess against the per-test database."""

import json
import os
import subprocess
import sys

import pytest

from conftest import add_stock, item, new_store, sale_payload, stock_of

EMBEDDED_ENV = {k: v for k, v in os.environ.items() if k not in ("POSLEDGER_DSN", "DATABASE_URL")}


def posledger(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "posledger", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture
def store(db):
    store_id = new_store(db)
    add_stock(db, store_id, "SKU", 5)
    return store_id


def test_sale_from_a_file_prints_the_result(db, dsn, store, tmp_path):
    payload = tmp_path / "sale.json"
    payload.write_text(json.dumps(sale_payload(store, item("SKU", 2))))
    done = posledger("sale", str(payload), "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["inventory_updates"]["successful"][0]["remaining"] == 3
    assert stock_of(db, store, "SKU") == {None: (3, 3)}


def test_sale_from_stdin_with_the_dsn_from_the_environment(db, dsn, store):
    done = posledger("sale", "-", stdin=json.dumps(sale_payload(store, item("SKU", 1))),
                     env={**os.environ, "POSLEDGER_DSN": dsn})
    assert done.returncode == 0, done.stderr
    assert stock_of(db, store, "SKU") == {None: (4, 4)}


def test_a_refused_sale_prints_its_code_and_detail_and_exits_1(db, dsn, store):
    done = posledger("sale", "-", "--dsn", dsn, stdin=json.dumps(sale_payload(store, item("SKU", 9))))
    assert done.returncode == 1
    error = json.loads(done.stderr)
    assert (error["error"], error["sqlstate"]) == ("InsufficientStock", "IV409")
    assert error["detail"] == {"short_lines": [{"sku": "SKU", "batch": None, "requested": 9, "available": 5}]}
    assert "Traceback" not in done.stderr
    assert stock_of(db, store, "SKU") == {None: (5, 5)}


def test_a_payload_that_is_not_json_exits_1(dsn):
    done = posledger("sale", "-", "--dsn", dsn, stdin="{not json")
    assert done.returncode == 1
    assert json.loads(done.stderr)["error"] == "InvalidJSON"


def test_an_unreachable_database_exits_3_without_a_traceback():
    done = posledger("migrate", "--dsn", "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2")
    assert done.returncode == 3
    assert json.loads(done.stderr)["error"] == "OperationalError"
    assert "Traceback" not in done.stderr


def test_migrate_twice_applies_nothing_the_second_time(dsn):
    done = posledger("migrate", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"applied": []}


def test_demo_against_a_given_database_tells_its_three_steps(db, dsn):
    done = posledger("demo", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n== ") == 3
    orders = db.execute("SELECT count(*), sum(jsonb_array_length(result->'inventory_updates'->'successful'))"
                        " FROM pos_orders").fetchone()
    assert orders == (1, 3)  # the retry was replayed, the oversell refused


def test_demo_without_a_dsn_runs_on_an_embedded_postgresql(tmp_path_factory):
    env = {**EMBEDDED_ENV, "POSLEDGER_DATA_DIR": str(tmp_path_factory.mktemp("embedded") / "pgdata")}
    done = posledger("demo", env=env)
    assert done.returncode == 0, done.stderr
    assert '"replayed": true' in done.stdout
    assert '"sqlstate": "IV409"' in done.stdout
