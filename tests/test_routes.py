"""However a call reaches the database, its ledger rows say what it was (issue 16). A movement's label
travels on the stock row it writes (migration 0018), so it is right on one server, in a call Citus
delegates whole to the worker of its store, and in one it does not delegate: a one-argument form, or a
two-argument form inside the caller's transaction, runs on the coordinator with each statement routed to
a worker, where a label kept in the coordinator's session never arrived. In the distributed pass
(POSLEDGER_TEST_SERVER=citus) every route below goes through a coordinator; a label lost on the way
shows here as an 'opening' or 'manual_adjustment' row."""

import json
import subprocess
import sys

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import add_stock, catalogue, item, sale_payload, shipment_line
from posledger import record_sale
from posledger.pgserver import server_kind

CASHIER = "cashier-12"


def sale(store, receipt):
    return sale_payload(store, item("SKU", 1), receipt_number=receipt, cashier_id=CASHIER)


def test_every_route_of_a_call_ledgers_the_movement_it_made(db, dsn, store):
    catalogue(db, "SKU")
    done = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        # One-argument forms, each its own transaction: on Citus they run on the coordinator.
        done["receipt"] = conn.execute("SELECT receive_inventory(%s)", [Jsonb({
            "store_id": store, "shipment_id": "ASN-1", "received_by": "receiver-3",
            "lines": [shipment_line("SKU", 20, "LOT-1")]})]).fetchone()[0]
        done["one-argument sale"] = conn.execute("SELECT record_pos_sale(%s)", [Jsonb(sale(store, "R-1"))]
                                                 ).fetchone()[0]
        # Two-argument forms inside the caller's transaction: Citus does not delegate them.
        with conn.transaction():
            done["sale in a transaction"] = conn.execute("SELECT record_pos_sale(%s, %s)",
                                                         [store, Jsonb(sale(store, "R-2"))]).fetchone()[0]
            done["adjustment in a transaction"] = conn.execute("SELECT adjust_inventory(%s, %s)", [store, Jsonb({
                "store_id": store, "reference": "ADJ-1", "reason_code": "loss_theft", "note": "shelf count",
                "actor": "manager-7", "lines": [{"sku": "SKU", "batch_lot": "LOT-1", "quantity": -1}]})]
            ).fetchone()[0]
        # The shell's own call (delegated on Citus), and the CLI's, a process of its own.
        done["shell sale"] = record_sale(conn, sale(store, "R-3"))
    cli = subprocess.run([sys.executable, "-m", "posledger", "sale", "-", "--dsn", dsn, "--json"],
                         input=json.dumps(sale(store, "R-4")), capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    done["CLI sale"] = json.loads(cli.stdout)
    with psycopg.connect(dsn, autocommit=True) as conn:
        done["return"] = conn.execute("SELECT return_pos_sale(%s)", [Jsonb({
            "store_id": store, "reference": "RET-1", "order_id": done["CLI sale"]["id"], "cashier_id": "cashier-5",
            "lines": [{"line_no": 1, "quantity": 1}]})]).fetchone()[0]

    rows = db.execute("SELECT transaction_type, reason_code, quantity, reference_type, reference_id::text, notes,"
                      " actor FROM ocs_inventory_transactions WHERE store_id = %s ORDER BY id", [store]).fetchall()
    sold = [(name, receipt) for name, receipt in (("one-argument sale", "R-1"), ("sale in a transaction", "R-2"),
                                                  ("shell sale", "R-3"), ("CLI sale", "R-4"))]
    assert rows == [
        ("receipt", None, 20, "ocs_shipment", done["receipt"]["id"], "OCS shipment ASN-1", "receiver-3"),
        *[("sale", None, -1, "pos_order", done[name]["id"], f"POS sale - {receipt}", CASHIER)
          for name, receipt in sold[:2]],
        ("adjustment", "loss_theft", -1, "inventory_adjustment", done["adjustment in a transaction"]["id"],
         "shelf count", "manager-7"),
        *[("sale", None, -1, "pos_order", done[name]["id"], f"POS sale - {receipt}", CASHIER)
          for name, receipt in sold[2:]],
        ("return", None, 1, "pos_order", done["CLI sale"]["id"], "return RET-1 of receipt R-4", "cashier-5"),
    ]


def test_the_shell_calls_a_store_scoped_entry_so_that_citus_delegates_it(dsn, store):
    """Citus delegates a call of a distributed function outside a transaction block only, and says so at
    DEBUG1; the shell's call must be such a call, and a call inside the caller's transaction is not."""
    if server_kind() != "citus":
        pytest.skip("delegation is Citus's: the distributed pass checks it")
    notices = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        catalogue(conn, "SKU")
        conn.execute("INSERT INTO ocs_inventory (store_id, sku, quantity_on_hand, quantity_available)"
                     " VALUES (%s, 'SKU', 5, 5)", [store])
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        conn.execute("SET client_min_messages = debug1")
        record_sale(conn, sale(store, "D-1"))
        delegated = notices.count("pushing down the function call")
        with conn.transaction():
            record_sale(conn, sale(store, "D-2"))
    assert delegated == 1, notices
    assert notices.count("pushing down the function call") == 1, "a call inside a transaction was delegated"


def test_a_ledger_row_written_below_its_chains_last_id_is_refused(db, store):
    """The chain orders a stock row's movements by id. On Citus a row inserted into the ledger through the
    coordinator draws the coordinator's id, below the worker's; on one server only an explicit id can. Such a
    row is refused (IV403), never chained where verify_ledger() would read the chain as broken."""
    row = add_stock(db, store, "SKU", 5)
    explicit = server_kind() != "citus"
    with pytest.raises(psycopg.Error) as refused:
        db.execute("INSERT INTO ocs_inventory_transactions (store_id, inventory_id, sku, transaction_type, quantity,"
                   " quantity_after, notes" + (", id) OVERRIDING SYSTEM VALUE" if explicit else ")")
                   + " VALUES (%s, %s, 'SKU', 'manual_adjustment', 1, 6, 'found one'" + (", 0)" if explicit else ")"),
                   [store, row])
    db.rollback()
    assert refused.value.sqlstate == "IV403"
    assert json.loads(refused.value.diag.message_detail or "{}")["inventory_id"] == row
