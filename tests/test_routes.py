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
import time
import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from conftest import add_stock, catalogue, item, new_store, sale_payload, shipment_line, stock_of
from posledger import (
    cancel_reservation,
    cancel_transfer,
    complete_reservation,
    record_sale,
    release_expired_reservations,
    resolve_exception,
    transfer_in,
    transfer_out,
)
from posledger.calls import call
from posledger.pgserver import server_kind

CASHIER = "cashier-12"
CUSTOMER = "8a8e2d4e-6f4e-4a55-9d3c-0e8e5d3c1a11"


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
    DEBUG1; the shell's call must be such a call, for every store-scoped entry, and a call inside the
    caller's transaction is not. Delegated whole, a call is a single-shard transaction on the store's
    worker: the coordinator prepares nothing (no two-phase commit)."""
    if server_kind() != "citus":
        pytest.skip("delegation is Citus's: the distributed pass checks it")
    notices = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        catalogue(conn, "SKU")
        catalogue(conn, "SCARCE")
        conn.execute("INSERT INTO ocs_inventory (store_id, sku, quantity_on_hand, quantity_available)"
                     " VALUES (%s, 'SKU', 5, 5), (%s, 'SCARCE', 1, 1)", [store, store])
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        conn.execute("SET client_min_messages = debug1")
        conn.execute("SET citus.log_remote_commands = on")
        shortfall = {}
        calls = {
            "record_pos_sale": lambda: record_sale(conn, sale(store, "D-1")),
            "record_pos_sale, reserved": lambda: record_sale(conn, {**sale(store, "D-R1"), "status": "reserved"}),
            "complete_reservation": lambda: complete_reservation(conn, {"store_id": store, "receipt_number": "D-R1"}),
            "record_pos_sale, parked": lambda: record_sale(conn, {**sale(store, "D-R2"), "status": "parked"}),
            "cancel_reservation": lambda: cancel_reservation(conn, {"store_id": store, "receipt_number": "D-R2",
                                                                    "cancelled_by": CASHIER}),
            "release_expired_reservations": lambda: release_expired_reservations(conn, store),
            "record_pos_sale, lenient and short": lambda: shortfall.update(record_sale(conn, {
                **sale_payload(store, item("SCARCE", 2), receipt_number="D-L1"), "policy": "lenient",
                "authorized_by": "manager-7"})),
            "resolve_inventory_exception": lambda: resolve_exception(conn, {
                "store_id": store, "exception_id": exception_of(conn, store, shortfall["id"]),
                "resolved_by": "manager-7", "reason": "shelf counted",
                "count": {"reference": "D-C1", "reason_code": "cycle_count", "note": "n", "actor": "manager-7",
                          "lines": [{"sku": "SCARCE", "counted": 0}]}}),
        }
        delegated = {}
        for name, run in calls.items():
            notices.clear()
            run()
            delegated[name] = (notices.count("pushing down the function call"),
                               any(n.startswith("issuing PREPARE TRANSACTION") for n in notices))
        notices.clear()
        with conn.transaction():
            record_sale(conn, sale(store, "D-2"))
    assert delegated == {name: (1, False) for name in calls}, notices
    assert notices.count("pushing down the function call") == 0, "a call inside a transaction was delegated"
    # Not delegated, a sale is a two-phase commit: Citus writes its order lines (INSERT ... SELECT) by COPY,
    # which always prepares. So the check above can see one.
    assert any(n.startswith("issuing PREPARE TRANSACTION") for n in notices)


def test_a_transfer_out_and_its_cancel_are_delegated_and_a_transfer_receipt_runs_on_the_coordinator(dsn):
    """transfer_out and cancel_transfer read and write their own store only: delegated, no two-phase commit.
    transfer_in locks and marks the sender's transfer, on another store's shard: Citus must not delegate it
    (sql/citus/distribute.sql), and it runs on the coordinator, where both shards can be reached."""
    if server_kind() != "citus":
        pytest.skip("delegation is Citus's: the distributed pass checks it")
    notices = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        tag = uuid.uuid4().hex[:8]
        sender, receiver = (new_store(conn, crsa=f"CRSA-{side}-{tag}", crol="CROL-R") for side in "SR")
        add_stock(conn, sender, "SKU", 5, "LOT-T")
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        conn.execute("SET client_min_messages = debug1")
        conn.execute("SET citus.log_remote_commands = on")
        lines = [{"sku": "SKU", "batch_lot": "LOT-T", "quantity": 1}]
        calls = {
            "transfer_out": lambda: transfer_out(conn, {"store_id": sender, "reference": "T-1", "to_store_id": receiver,
                                                        "actor": "a", "lines": lines}),
            "cancel_transfer": lambda: cancel_transfer(conn, {"store_id": sender, "reference": "T-1", "actor": "a"}),
            "transfer_out again": lambda: transfer_out(conn, {"store_id": sender, "reference": "T-2",
                                                              "to_store_id": receiver, "actor": "a", "lines": lines}),
            "transfer_in": lambda: transfer_in(conn, {"store_id": receiver, "reference": "T-2", "from_store_id": sender,
                                                      "actor": "a", "lines": [{"sku": "SKU", "batch_lot": "LOT-T",
                                                                               "sent": 1, "received": 1}]}),
        }
        routes = {}
        for name, run in calls.items():
            notices.clear()
            run()
            routes[name] = (notices.count("pushing down the function call"),
                            any(n.startswith("issuing PREPARE TRANSACTION") for n in notices))
    assert routes["transfer_out"] == routes["cancel_transfer"] == routes["transfer_out again"] == (1, False), notices
    assert routes["transfer_in"][0] == 0


def test_a_store_scoped_call_on_its_stores_worker_sends_nothing_to_another_node(db, dsn, store):
    """What a delegated call does: the two-argument form run on the worker holding the store. Every statement
    of it must run there (Citus says "executing the command locally"), none sent to another node ("issuing"):
    a single-shard transaction on one worker. Not yet a return (docs/scaling.md, "Known limits")."""
    if server_kind() != "citus":
        pytest.skip("the nodes are Citus's: the distributed pass checks them")
    add_stock(db, store, "SKU", 10, "LOT-1")
    add_stock(db, store, "SCARCE", 0, "LOT-S")
    worker = nodes_of(db, dsn)[worker_of(db, store)]
    db.commit()
    offline = {"policy": "offline", "occurred_at": "2026-11-30T10:00:00-05:00", "terminal_id": "T-1"}
    calls = [
        ("record_pos_sale", sale(store, "W-1")),
        ("record_pos_sale", {**sale(store, "W-2"), "status": "reserved", "user_id": CUSTOMER}),
        ("complete_reservation", {"store_id": store, "receipt_number": "W-2"}),
        ("record_pos_sale", {**sale(store, "W-3"), "status": "parked"}),
        ("cancel_reservation", {"store_id": store, "receipt_number": "W-3", "cancelled_by": CASHIER}),
        ("record_pos_sale", sale_payload(store, item("SCARCE", 2), receipt_number="W-4", policy="lenient",
                                         authorized_by="manager-7")),
        ("record_pos_sale", sale_payload(store, item("SCARCE", 1), item("UNKNOWN", 1), receipt_number="W-5",
                                         terminal_sequence=1, **offline)),
        ("adjust_inventory", {"store_id": store, "reference": "W-ADJ", "reason_code": "data_entry_error", "note": "n",
                              "actor": "a", "lines": [{"sku": "SKU", "batch_lot": "LOT-1", "quantity": 1}]}),
        ("resolve_inventory_exception", lambda conn: {
            "store_id": store, "exception_id": exception_of(conn, store, sold["W-4"]), "resolved_by": "manager-7",
            "reason": "counted", "count": {
                "reference": "W-COUNT", "reason_code": "cycle_count", "note": "n", "actor": "a",
                "lines": [{"sku": "SCARCE", "batch_lot": "LOT-S", "counted": 0}]}}),
        ("return_pos_sale", {"store_id": store, "reference": "W-RET", "receipt_number": "W-1",
                             "lines": [{"line_no": 1, "quantity": 1}]}),
    ]
    sold, sent = {}, {}
    notices = []
    with psycopg.connect(worker, autocommit=True) as conn:
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        conn.execute("SET citus.log_remote_commands = on")
        conn.execute("SET client_min_messages = debug1")
        for function, payload in calls:
            payload = payload(conn) if callable(payload) else payload
            notices.clear()
            result = conn.execute(f"SELECT {function}(%s, %s)", [store, Jsonb(payload)]).fetchone()[0]
            sold[payload.get("receipt_number")] = result.get("id")
            sent[f"{function} {payload.get('reference') or payload.get('receipt_number') or ''}"] = [
                notice for notice in notices if notice.startswith("issuing")]
        # The scheduler's call, of a reservation made past its end.
        conn.execute("SELECT record_pos_sale(%s, %s)", [store, Jsonb({**sale(store, "W-6"), "status": "reserved"})])
        conn.execute("UPDATE pos_orders SET expires_at = now() - interval '1 second'"
                     " WHERE store_id = %s AND receipt_number = 'W-6'", [store])
        notices.clear()
        assert conn.execute("SELECT release_expired_reservations(%s, 10)", [store]).fetchone()[0]["released"] == 1
        sent["release_expired_reservations"] = [notice for notice in notices if notice.startswith("issuing")]
    # A return still reads its order's lines from every shard (docs/scaling.md, "Known limits"); which also
    # shows that this test sees a statement sent to another node.
    assert sent.pop("return_pos_sale W-RET") != []
    assert sent == {name: [] for name in sent}


def exception_of(conn, store, order_id):
    """The id of the one exception a sale raised."""
    [(exception_id,)] = conn.execute("SELECT id FROM inventory_exceptions WHERE store_id = %s AND order_id = %s",
                                     [store, order_id]).fetchall()
    return exception_id


# The routes a store-scoped call can take. On Citus the first two run on the coordinator, each statement routed
# to the store's worker; the shell's call is delegated whole to that worker. On one server they are one route.
def _one_argument(conn, store, function, payload):
    return conn.execute(f"SELECT {function}(%s)", [Jsonb(payload)]).fetchone()[0]


def _in_a_transaction(conn, store, function, payload):
    with conn.transaction():
        return conn.execute(f"SELECT {function}(%s, %s)", [store, Jsonb(payload)]).fetchone()[0]


def _the_shell(conn, store, function, payload):
    return call(conn, function, payload)


ROUTES = {"one-argument form": _one_argument, "two-argument form in a transaction": _in_a_transaction,
          "the shell's call": _the_shell}


@pytest.mark.parametrize("route", ROUTES)
def test_reservations_and_the_exception_queue_work_by_every_route(db, dsn, store, route):
    """Issue 17's calls by each route: a reservation completed, a parked cart cancelled, a reservation expired
    and released by the scheduler's call, a lenient sale short and its exception resolved by a count. The
    scheduler's call has no jsonb form: in a transaction on the coordinator routes, the shell's otherwise."""
    add_stock(db, store, "SKU", 10, "LOT-1")
    add_stock(db, store, "SCARCE", 1, "LOT-S")
    with psycopg.connect(dsn, autocommit=True) as conn:
        def run(function, payload):
            return ROUTES[route](conn, store, function, payload)

        reserved = run("record_pos_sale", {**sale(store, "RES-1"), "status": "reserved"})
        completed = run("complete_reservation", {"store_id": store, "receipt_number": "RES-1"})
        run("record_pos_sale", {**sale(store, "PARK-1"), "status": "parked"})
        cancelled = run("cancel_reservation", {"store_id": store, "receipt_number": "PARK-1", "cancelled_by": CASHIER})
        run("record_pos_sale", {**sale(store, "RES-2"), "status": "reserved"})
        conn.execute("UPDATE pos_orders SET expires_at = now() - interval '1 second'"
                     " WHERE store_id = %s AND receipt_number = 'RES-2'", [store])
        if route == "the shell's call":
            released = release_expired_reservations(conn, store)
        else:
            with conn.transaction():
                released = conn.execute("SELECT release_expired_reservations(%s, 100)", [store]).fetchone()[0]
        short = run("record_pos_sale", sale_payload(store, item("SCARCE", 3), receipt_number="LEN-1",
                                                    cashier_id=CASHIER, policy="lenient", authorized_by="manager-7"))
        resolved = run("resolve_inventory_exception", {
            "store_id": store, "exception_id": exception_of(conn, store, short["id"]), "resolved_by": "manager-7",
            "reason": "the shelf is empty, as the books say", "count": {
                "reference": "COUNT-1", "reason_code": "cycle_count", "note": "after LEN-1", "actor": "manager-7",
                "lines": [{"sku": "SCARCE", "batch_lot": "LOT-S", "counted": 0}]}})

    assert (reserved["status"], completed["status"], completed["id"]) == ("reserved", "completed", reserved["id"])
    assert completed["inventory_updates"]["successful"] == [
        {"sku": "SKU", "batch": "LOT-1", "quantity_deducted": 1, "remaining": 9}]
    assert cancelled["released"] == [{"sku": "SKU", "batch": "LOT-1", "quantity_released": 1}]
    assert released == {"store_id": store, "released": 1, "units": 1, "more": False}
    assert short["inventory_updates"]["failed"] == [{"sku": "SCARCE", "batch": None, "requested": 3, "available": 1}]
    assert (resolved["status"], resolved["kind"]) == ("resolved", "shortfall")
    assert stock_of(db, store, "SKU") == {"LOT-1": (9, 9)} and stock_of(db, store, "SCARCE") == {"LOT-S": (0, 0)}
    rows = db.execute("SELECT sku, transaction_type, quantity, reference_id::text, notes, actor"
                      " FROM ocs_inventory_transactions WHERE store_id = %s AND transaction_type = 'sale' ORDER BY id",
                      [store]).fetchall()
    assert rows == [("SKU", "sale", -1, reserved["id"], "POS sale - RES-1", CASHIER),
                    ("SCARCE", "sale", -1, short["id"], "POS sale - LEN-1", CASHIER)]
    assert db.execute("SELECT status FROM inventory_exceptions WHERE store_id = %s", [store]).fetchall() == [
        ("resolved",)]
    db.commit()


def nodes_of(conn, dsn):
    """{name: DSN} of every node a LISTEN can be on: on Citus the coordinator and each worker (pg_dist_node),
    named by the store-scoped role they play; on one server, the server."""
    if server_kind() != "citus":
        return {"the server": dsn}
    rows = conn.execute("SELECT groupid, nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary'"
                        " ORDER BY groupid").fetchall()
    return {("coordinator" if group == 0 else f"worker {group}"): make_conninfo(dsn, host=host, port=port)
            for group, host, port in rows}


def worker_of(conn, store):
    """The name (as nodes_of names it) of the node holding the store's rows of inventory_exceptions."""
    if server_kind() != "citus":
        return "the server"
    [(group,)] = conn.execute(
        "SELECT groupid FROM pg_dist_placement"
        " WHERE shardid = get_shard_id_for_distribution_column('inventory_exceptions', %s::uuid)", [store]).fetchall()
    return f"worker {group}"


def test_a_new_exception_is_announced_once_by_the_node_that_ran_the_call(db, dsn, store):
    """The exception queue's channel (posledger_inventory_exceptions) on every node, for a lenient sale short
    by each route. On one server the server announces it. On Citus the trigger fires where the row is
    written, on the store's worker: a call delegated there (the shell's) is that worker's own transaction,
    and the worker announces it - a LISTEN on the coordinator hears nothing. A call the coordinator runs
    itself makes the worker's part a prepared transaction, which PostgreSQL forbids to NOTIFY (the sale
    failed with 0A000 until the coordinator announced it instead): the coordinator announces it."""
    add_stock(db, store, "SCARCE", 0, "LOT-S")
    nodes, holder = nodes_of(db, dsn), worker_of(db, store)
    db.commit()

    def announcer(route):
        if server_kind() != "citus":
            return "the server"
        return holder if route == "the shell's call" else "coordinator"

    listeners = {name: psycopg.connect(node, autocommit=True) for name, node in nodes.items()}
    heard = {name: [] for name in nodes}
    try:
        for listener in listeners.values():
            listener.execute("LISTEN posledger_inventory_exceptions")
        sold = {}
        with psycopg.connect(dsn, autocommit=True) as conn:
            for n, (route, run) in enumerate(ROUTES.items()):
                sold[route] = run(conn, store, "record_pos_sale", sale_payload(
                    store, item("SCARCE", 2), receipt_number=f"LEN-{n}", policy="lenient", authorized_by="manager-7"))
                sold[route]["exception"] = exception_of(conn, store, sold[route]["id"])
        # Until each sale's announcement has come, then a moment more for any that should not.
        deadline = time.monotonic() + 10
        while sum(map(len, heard.values())) < len(sold) and time.monotonic() < deadline:
            for name, listener in listeners.items():
                heard[name] += [json.loads(n.payload) for n in listener.notifies(timeout=0.1)]
        for name, listener in listeners.items():
            heard[name] += [json.loads(n.payload) for n in listener.notifies(timeout=0.3)]
    finally:
        for listener in listeners.values():
            listener.close()
    expected = {name: [] for name in nodes}
    for route, result in sold.items():
        expected[announcer(route)].append({
            "id": result["exception"], "store_id": store, "kind": "shortfall", "order_id": result["id"],
            "sku": "SCARCE", "batch": None, "quantity_short": 2})
    assert {name: [{key: value for key, value in note.items() if key != "created_at"}
                   for note in notes if note["store_id"] == store] for name, notes in heard.items()} == expected


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

