"""The command line, driven as a real subprocess against the per-test database."""

import json
import os
import subprocess
import sys

import pytest

from conftest import add_stock, batches_of, count_rows, item, new_store, sale_payload, stock_of
from posledger.migrations import SQL_DIR

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


SAMPLE_ASN = SQL_DIR / "demo" / "ocs_asn_sample.csv"


def test_receive_reads_the_sample_ocs_asn_and_prints_a_summary_table(db, dsn):
    store = new_store(db)
    done = posledger("receive", str(SAMPLE_ASN), "--store-id", store, "--received-by", "receiver-1", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert "9001234" in done.stdout and "Received" in done.stdout
    assert batches_of(db, store, "OCS-PREROLL-1G") == {"LOT-2025-09-A": (5, 5, 0, "active"),
                                                       "LOT-2025-10-B": (10, 10, 0, "active")}
    assert batches_of(db, store, "OCS-GUMMIES-10") == {"LOT-G-0820": (24, 24, 0, "active")}   # 2 cases of 12
    row = db.execute("SELECT each_gtin, packaged_on_date::text FROM ocs_inventory WHERE batch_lot = 'LOT-G-0820'"
                     ).fetchone()
    assert row == ("00627701000025", "2025-08-20")
    again = posledger("receive", str(SAMPLE_ASN), "--store-id", store, "--received-by", "receiver-1", "--json",
                      "--dsn", dsn)
    assert again.returncode == 0, again.stderr
    assert [result["replayed"] for result in json.loads(again.stdout)] == [True]
    assert count_rows(db, "ocs_inventory_transactions") == 4


def test_receive_splits_a_file_by_shipment_and_reports_a_bad_line_with_its_code(db, dsn, tmp_path):
    store = new_store(db)
    lines = SAMPLE_ASN.read_text().splitlines()
    second = lines[1].replace("9001234", "9001235").replace("0627701000018,5,EA", "0627701000019,5,EA")
    asn = tmp_path / "asn.csv"
    asn.write_text("\n".join([lines[0], *lines[1:], second]) + "\n")
    done = posledger("receive", str(asn), "--store-id", store, "--json", "--dsn", dsn)
    assert done.returncode == 1
    error = json.loads(done.stderr)
    assert (error["sqlstate"], error["detail"]["problems"][0]["field"]) == ("IV400", "lines[0].each_gtin")
    assert count_rows(db, "ocs_shipments") == 1   # the first shipment was received whole


def test_receive_refuses_a_file_that_is_not_an_asn(db, dsn, tmp_path):
    not_asn = tmp_path / "sale.csv"
    not_asn.write_text("sku,quantity\nA,1\n")
    done = posledger("receive", str(not_asn), "--store-id", new_store(db), "--dsn", dsn)
    assert done.returncode == 1
    assert json.loads(done.stderr)["error"] == "AsnFormatError"
