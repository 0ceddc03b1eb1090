"""The command line, driven as a real subprocess against the per-test database (or, where the embedded
server is the point, against one in a temporary data folder)."""

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from importlib.metadata import version

import pytest

from conftest import (
    add_stock,
    batches_of,
    count_rows,
    holding_the_migrate_lock,
    item,
    new_store,
    posledger_cli,
    sale_payload,
    stock_of,
)
from posledger.cli import main
from posledger.migrations import SQL_DIR

DEMO = SQL_DIR / "demo"
README_STORE = "5071d685-00dc-4e56-bb11-36e31b305c50"   # the store of sql/demo's payloads


def ok_json(*args, **kwargs):
    done = posledger_cli(*args, "--json", **kwargs)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def store(store, db):
    """The shared new store, with 5 unbatched units of SKU."""
    add_stock(db, store, "SKU", 5)
    return store


def test_sale_from_a_file_prints_a_table_of_what_it_took(db, dsn, store, tmp_path):
    payload = tmp_path / "sale.json"
    payload.write_text(json.dumps(sale_payload(store, item("SKU", 2), receipt_number="R-42")))
    done = posledger_cli("sale", str(payload), "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert "sale R-42: completed" in done.stdout
    assert re.search(r"SKU\s+│\s+-\s+│\s+2\s+│\s+3", done.stdout)   # sku, batch, deducted, remaining
    assert stock_of(db, store, "SKU") == {None: (3, 3)}


def test_sale_from_stdin_with_the_dsn_from_the_environment_prints_json(db, dsn, store):
    result = ok_json("sale", "-", stdin=json.dumps(sale_payload(store, item("SKU", 1))),
                     env={**os.environ, "POSLEDGER_DSN": dsn})
    assert result["inventory_updates"]["successful"][0]["remaining"] == 4
    assert stock_of(db, store, "SKU") == {None: (4, 4)}


def test_a_refused_sale_names_its_code_and_every_problem_and_exits_1(db, dsn, store):
    done = posledger_cli("sale", "-", "--dsn", dsn, stdin=json.dumps({"store_id": store, "items": []}))
    assert done.returncode == 1
    assert "IV400 InvalidSale" in done.stderr
    for field in ("receipt_number", "total", "items"):
        assert f"field={field}," in done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_sale_with_json_prints_the_detail_as_json(db, dsn, store):
    done = posledger_cli("sale", "-", "--dsn", dsn, "--json", stdin=json.dumps(sale_payload(store, item("SKU", 9))))
    assert done.returncode == 1
    error = json.loads(done.stderr)
    assert (error["error"], error["sqlstate"]) == ("InsufficientStock", "IV409")
    assert error["detail"] == {"short_lines": [{"sku": "SKU", "batch": None, "requested": 9, "available": 5}]}
    assert stock_of(db, store, "SKU") == {None: (5, 5)}


def test_a_payload_that_is_not_json_exits_1_naming_the_file(dsn, tmp_path):
    done = posledger_cli("sale", "-", "--dsn", dsn, "--json", stdin="{not json")
    assert done.returncode == 1
    assert json.loads(done.stderr)["error"] == "InvalidJSON"
    not_json = tmp_path / "sale.json"
    not_json.write_text("{not json")
    done = posledger_cli("sale", str(not_json), "--dsn", dsn)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error InvalidJSON: {not_json} is not JSON: ")
    not_text = tmp_path / "sale.json"
    not_text.write_bytes(b"\xff\xfe\x00{")
    done = posledger_cli("sale", str(not_text), "--dsn", dsn)
    assert (done.returncode, done.stderr.split(":")[0]) == (1, "error UnicodeDecodeError")


@pytest.mark.parametrize("as_json", [False, True])
def test_an_unreachable_database_exits_3_without_a_traceback(as_json):
    done = posledger_cli("migrate", "--dsn", "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2",
                         *(["--json"] if as_json else []))
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert (json.loads(done.stderr)["error"] if as_json else done.stderr.split(":")[0]) in (
        "OperationalError", "error OperationalError")


def test_a_database_that_was_never_migrated_says_so(pg_server):
    done = posledger_cli("stock", "--store-id", README_STORE, "--dsn", pg_server.dsn())
    assert done.returncode == 3
    assert "UndefinedTable" in done.stderr and "posledger migrate" in done.stderr


def test_wrong_usage_exits_2_with_the_usage(dsn):
    done = posledger_cli("stock", "--store-id", "not-a-uuid", "--dsn", dsn)
    assert done.returncode == 2
    assert "is not a valid UUID" in done.stderr


@pytest.mark.parametrize("malformed", ["not a dsn", "postgresql+psycopg://localhost/posledger"])
def test_a_malformed_dsn_is_wrong_usage_not_an_unreachable_database(malformed):
    done = posledger_cli("migrate", "--dsn", malformed)
    assert done.returncode == 2
    assert "Invalid value for '--dsn': not a PostgreSQL DSN or URI" in done.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_migrate_blocked_by_a_held_lock_exits_3_naming_the_holder(dsn, as_json):
    with holding_the_migrate_lock(dsn) as pid:
        done = posledger_cli("migrate", "--dsn", dsn, "--lock-wait", "1", *(["--json"] if as_json else []))
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    if as_json:
        error = json.loads(done.stderr)
        assert (error["error"], error["sqlstate"]) == ("MigrateLockTimeout", "55P03")
        message = error["message"]
    else:
        message = done.stderr
        assert message.startswith("error 55P03 MigrateLockTimeout:")
    assert f"pid {pid}" in message and f"pg_terminate_backend({pid})" in message


def test_migrate_twice_applies_nothing_the_second_time(dsn):
    assert ok_json("migrate", "--dsn", dsn) == {"applied": []}
    done = posledger_cli("migrate", "--dsn", dsn)
    assert done.stdout.startswith("applied 0 migration(s)")


def test_every_command_has_help_with_an_example_that_works_from_any_folder():
    commands = sorted(main.commands)
    assert commands == ["adjust", "batch-status", "catalogue", "count", "demo", "digest", "distribute", "example",
                        "exceptions", "ledger", "migrate", "psql", "receive", "reconcile", "report", "return", "sale",
                        "send", "stock", "stop", "transfer", "verify", "version"]
    for command in commands:
        done = posledger_cli(command, "--help")
        assert done.returncode == 0, command
        assert "Example" in done.stdout or command == "stop", command
        assert "sql/" not in done.stdout, f"{command}'s help names a file of the checkout"


def test_example_prints_each_commands_sample_input_as_shipped_and_its_help_lists_them():
    names = {"sale": "sale.json", "return": "return.json", "adjust": "adjustment.json", "count": "count.json",
             "batch-status": "recall.json", "receive": "ocs_asn_sample.csv", "catalogue": "ocs_catalogue_sample.csv"}
    for name, file in names.items():
        assert posledger_cli("example", name).stdout == (DEMO / file).read_text(), name
    listed = " ".join(posledger_cli("example", "--help").stdout.split())
    assert "NAME is one of: adjust, batch-status, catalogue, count, receive, return, sale." in listed
    assert posledger_cli("example", "nope").returncode == 2


def test_the_samples_piped_into_their_commands_from_another_folder_stock_and_sell(db, dsn, tmp_path):
    new_store(db, id=README_STORE)
    env = {**os.environ, "POSLEDGER_DSN": dsn}
    catalogue = posledger_cli("example", "catalogue", cwd=tmp_path).stdout
    assert posledger_cli("catalogue", "load", "-", stdin=catalogue, env=env, cwd=tmp_path).returncode == 0
    for name, *args in (("receive", "--store-id", README_STORE), ("sale",)):
        sample = posledger_cli("example", name, cwd=tmp_path).stdout
        done = posledger_cli(name, "-", *args, "--json", stdin=sample, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["inventory_updates"]["updated_count"] == 3


def test_version_is_the_packages_and_names_the_server(dsn, pg_server, embedded_env):
    assert posledger_cli("--version").stdout.startswith(f"posledger: {version('posledger')}\n")
    assert posledger_cli("--version", env=embedded_env).stdout == posledger_cli("version", env=embedded_env).stdout
    found = ok_json("version", "--dsn", dsn)
    assert found["posledger"] == version("posledger")
    assert found["server"] == f"PostgreSQL {pg_server.version}"
    assert found["migrations_pending"] == []


def test_a_stores_day_through_the_cli_with_the_sample_payloads(db, dsn):
    new_store(db, id=README_STORE)
    assert ok_json("catalogue", "load", str(DEMO / "ocs_catalogue_sample.csv"), "--dsn", dsn)["inserted"] == 9
    ok_json("receive", str(DEMO / "ocs_asn_sample.csv"), "--store-id", README_STORE, "--dsn", dsn)
    sale = ok_json("sale", str(DEMO / "sale.json"), "--dsn", dsn)
    assert [(line["batch"], line["quantity_deducted"]) for line in sale["inventory_updates"]["successful"]] == [
        ("LOT-G-0820", 2), ("LOT-2025-09-A", 5), ("LOT-2025-10-B", 3)]
    assert ok_json("sale", str(DEMO / "sale.json"), "--dsn", dsn)["replayed"] is True
    returned = ok_json("return", str(DEMO / "return.json"), "--dsn", dsn)
    assert [(line["batch"], line["defective"]) for line in returned["lines"]] == [
        ("LOT-2025-10-B", False), ("LOT-G-0820", True)]
    ok_json("adjust", str(DEMO / "adjustment.json"), "--dsn", dsn)
    counted = ok_json("count", str(DEMO / "count.json"), "--dsn", dsn)
    assert [line["quantity"] for line in counted["adjustments"]] == [-1]
    assert ok_json("batch-status", str(DEMO / "recall.json"), "--dsn", dsn)["changed_count"] == 1
    assert batches_of(db, README_STORE, "OCS-GUMMIES-10") == {"LOT-G-0820": (22, 22, 0, "active")}
    assert batches_of(db, README_STORE, "OCS-PREROLL-1G") == {"LOT-2025-09-A": (0, 0, 0, "active"),
                                                             "LOT-2025-10-B": (7, 7, 0, "active")}

    stock = ok_json("stock", "--store-id", README_STORE, "--sku", "OCS-PREROLL-1G", "--dsn", dsn)
    assert [(row["batch_lot"], row["fefo_rank"], row["quantity_on_hand"]) for row in stock] == [
        ("LOT-2025-09-A", 1, 0), ("LOT-2025-10-B", 2, 7)]
    ledger = ok_json("ledger", "--store-id", README_STORE, "--limit", "2", "--dsn", dsn)
    assert [(row["transaction_type"], row["reason_code"], row["quantity"]) for row in ledger] == [
        ("adjustment", "destruction", -1), ("adjustment", "cycle_count", -1)]
    table = posledger_cli("stock", "--store-id", README_STORE, "--dsn", dsn)
    assert re.search(r"OCS-VAPE-05\s+│\s+LOT-V-0701\s+│\s+recalled", table.stdout), table.stdout


@contextmanager
def behind_the_ledgers_back(db, store):
    """The store's 5 units of SKU set to 7 with the ledger's trigger out of the way (a discrepancy of 2), and put
    back the same way afterwards, for the invariant checks."""
    def set_on_hand(quantity):
        db.execute("ALTER TABLE ocs_inventory DISABLE TRIGGER ocs_inventory_ledger_change")
        db.execute("UPDATE ocs_inventory SET quantity_on_hand = %s, quantity_available = %s WHERE store_id = %s",
                   [quantity, quantity, store])
        db.execute("ALTER TABLE ocs_inventory ENABLE TRIGGER ocs_inventory_ledger_change")
        db.commit()

    set_on_hand(7)
    try:
        yield
    finally:
        set_on_hand(5)


def test_reconcile_says_the_books_balance_and_exits_4_when_they_do_not(db, dsn, store):
    done = posledger_cli("reconcile", "--dsn", dsn)
    assert (done.returncode, done.stdout.strip()) == (0, "books balance: 0 discrepancies")
    with behind_the_ledgers_back(db, store):
        done = posledger_cli("reconcile", "--store-id", store, "--dsn", dsn)
        assert done.returncode == 4
        assert "books do not balance: 1 row differs from its ledger, 0 rows below zero" in done.stdout
        assert "below zero (negative_inventory)" not in done.stdout   # no table of nothing beside the count
        report = json.loads(posledger_cli("reconcile", "--dsn", dsn, "--json").stdout)
        assert [(row["sku"], row["difference"]) for row in report["discrepancies"]] == [("SKU", 2)]
        assert ok_json("reconcile", "--store-id", new_store(db), "--dsn", dsn)["balanced"] is True


def test_the_demo_tells_a_stores_day_against_a_given_database(db, dsn):
    day = ok_json("demo", "--dsn", dsn)
    steps = day["steps"]
    assert [step["refused"] for step in steps] == [
        False, False, False, False, False, True, True, False, False, False, False, True, False, False, False]
    (loaded, _, _, named, fefo, short, over, retry, scanned, returned, recall, blocked, reserved, collected,
     offline) = (step["outcome"] for step in steps)
    assert loaded["rows"] == 9
    assert [(line["batch"], line["quantity_deducted"]) for line in named["inventory_updates"]["successful"]] == [
        ("LOT-V-0701", 2)]
    assert [(line["batch"], line["quantity_deducted"]) for line in fefo["inventory_updates"]["successful"]] == [
        ("LOT-2025-09-A", 5), ("LOT-2025-10-B", 2)]
    assert (short["sqlstate"], short["detail"]["short_lines"][0]["available"]) == ("IV409", 24)
    assert (over["sqlstate"], over["detail"]["dried_grams"], over["detail"]["limit_grams"]) == ("IV422", 31, 30)
    assert (retry["replayed"], retry["id"]) == (True, fefo["id"])
    assert [(line["sku"], line["batch"]) for line in scanned["inventory_updates"]["successful"]] == [
        ("OCS-PREROLL-1G", "LOT-2025-10-B")]
    assert [line["batch"] for line in returned["lines"]] == ["LOT-2025-10-B"]
    assert returned["loyalty"]["points_reversed"] == 45 * 1 // 7
    assert recall["changed_count"] == 1
    assert (blocked["sqlstate"], blocked["detail"]["blocked"][0]["status"]) == ("IV423", "recalled")
    assert reserved["held"] == [{"sku": "OCS-PREROLL-1G", "batch": "LOT-2025-10-B", "quantity_held": 3, "remaining": 5}]
    assert (collected["status"], collected["id"]) == ("completed", reserved["id"])
    assert offline["inventory_updates"]["failed"] == [
        {"sku": "OCS-GUMMIES-10", "batch": None, "requested": 26, "available": 24}]
    assert day["reconciliation"]["balanced"] is True
    assert [(row["batch_lot"], row["quantity_on_hand"]) for row in day["stock"]] == [
        ("LOT-G-0820", 0), ("LOT-2025-09-A", 0), ("LOT-2025-10-B", 5), ("LOT-V-0701", 6)]
    assert len(day["ledger"]) == 11   # 4 receipts, 6 sale rows, 1 return: refusals, holds and the replay wrote none
    assert count_rows(db, "pos_orders") == 5


def test_the_demo_for_people_runs_twice_on_one_database_each_time_with_a_store_of_its_own_name(db, dsn):
    for _ in range(2):
        done = posledger_cli("demo", "--dsn", dsn)
        assert done.returncode == 0, done.stderr
        assert "refused, as it should be IV409 InsufficientStock" in done.stdout
        assert "refused, as it should be IV422 LimitExceeded" in done.stdout
        assert "refused, as it should be IV423 BatchBlocked" in done.stdout
        assert "replayed: recorded before" in done.stdout
        assert done.stdout.rstrip().endswith("books balance: 0 discrepancies")
    names = [name for (name,) in db.execute("SELECT name FROM stores ORDER BY name").fetchall()]
    assert names == ["posledger demo store 1", "posledger demo store 2"]
    db.commit()


def test_the_demos_books_are_the_whole_databases(db, dsn, store):
    with behind_the_ledgers_back(db, store):
        day = ok_json("demo", "--dsn", dsn)
        assert [row["store_id"] for row in day["reconciliation"]["discrepancies"]] == [store]
        done = posledger_cli("demo", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert "books balance" not in done.stdout and "books do not balance: 1 row differs" in done.stdout


def test_the_demo_without_a_dsn_runs_on_an_embedded_server_kept_for_psql(embedded_env):
    done = posledger_cli("demo", "--keep", env=embedded_env)
    assert done.returncode == 0, done.stderr
    assert "is still running: posledger psql opens it" in done.stdout
    query = posledger_cli("psql", "-At", "-c", "SELECT count(*) FROM pos_orders", env=embedded_env)
    assert (query.returncode, query.stdout.strip()) == (0, "5")
    assert ok_json("version", env=embedded_env)["server"].startswith("PostgreSQL 18.")
    assert posledger_cli("stop", env=embedded_env).stdout.endswith("stopped\n")
    assert "server" not in ok_json("version", env=embedded_env)   # nothing running to ask


def test_a_command_without_a_dsn_stops_the_embedded_server_it_started(embedded_env):
    done = posledger_cli("migrate", env=embedded_env)
    assert done.returncode == 0, done.stderr
    assert posledger_cli("stop", env=embedded_env).stdout.endswith("was not running\n")


SAMPLE_ASN = DEMO / "ocs_asn_sample.csv"


def test_receive_reads_the_sample_ocs_asn_and_prints_a_summary_table(db, dsn):
    store = new_store(db)
    done = posledger_cli("receive", str(SAMPLE_ASN), "--store-id", store, "--received-by", "receiver-1", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert re.search(r"9001234\s+│\s+4\s+│\s+47", done.stdout), done.stdout
    assert batches_of(db, store, "OCS-PREROLL-1G") == {"LOT-2025-09-A": (5, 5, 0, "active"),
                                                       "LOT-2025-10-B": (10, 10, 0, "active")}
    assert batches_of(db, store, "OCS-GUMMIES-10") == {"LOT-G-0820": (24, 24, 0, "active")}   # 2 cases of 12
    row = db.execute("SELECT each_gtin, packaged_on_date::text FROM ocs_inventory WHERE batch_lot = 'LOT-G-0820'"
                     ).fetchone()
    assert row == ("00627701000025", "2025-08-20")
    again = ok_json("receive", str(SAMPLE_ASN), "--store-id", store, "--received-by", "receiver-1", "--dsn", dsn)
    assert [result["replayed"] for result in again] == [True]
    assert count_rows(db, "ocs_inventory_transactions") == 4


def test_receive_splits_a_file_by_shipment_and_reports_a_bad_line_with_its_code(db, dsn, tmp_path):
    store = new_store(db)
    lines = SAMPLE_ASN.read_text().splitlines()
    second = lines[1].replace("9001234", "9001235").replace("0627701000018,5,EA", "0627701000019,5,EA")
    asn = tmp_path / "asn.csv"
    asn.write_text("\n".join([lines[0], *lines[1:], second]) + "\n")
    done = posledger_cli("receive", str(asn), "--store-id", store, "--json", "--dsn", dsn)
    assert done.returncode == 1
    error = json.loads(done.stderr)
    assert (error["sqlstate"], error["detail"]["problems"][0]["field"]) == ("IV400", "lines[0].each_gtin")
    assert count_rows(db, "ocs_shipments") == 1   # the first shipment was received whole


def test_receive_refuses_a_file_that_is_not_an_asn(db, dsn, tmp_path):
    not_asn = tmp_path / "sale.csv"
    not_asn.write_text("sku,quantity\nA,1\n")
    done = posledger_cli("receive", str(not_asn), "--store-id", new_store(db), "--dsn", dsn)
    assert done.returncode == 1
    assert done.stderr.startswith("error AsnFormatError: not an OCS ASN export: missing columns ShipmentID")


def test_python_dash_m_and_the_console_script_are_the_same_cli():
    script = os.path.join(os.path.dirname(sys.executable), "posledger")
    assert subprocess.run([script, "--help"], capture_output=True, text=True).stdout == posledger_cli("--help").stdout


def test_psql_passes_its_arguments_and_exit_code_through(dsn):
    done = posledger_cli("psql", "--dsn", dsn, "-v", "ON_ERROR_STOP=1", "-c", "SELECT no_such_column FROM stores")
    assert done.returncode != 0 and "no_such_column" in done.stderr
    assert posledger_cli("psql", "--dsn", dsn, "-At", "-c", "SELECT 6 * 7").stdout.strip() == "42"

