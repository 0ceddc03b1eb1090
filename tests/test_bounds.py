"""Bounds: every payload's lines are bounded and validated in n log n, sums cannot overflow, a count names
each row once, a row opened by a bare INSERT can be counted, and an unusable setting is refused by name -
none of it ever escapes as a raw PostgreSQL error."""

import json
import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from conftest import (
    batches_of,
    catalogue,
    count_rows,
    item,
    new_store,
    receive,
    record_sale,
    sale_payload,
    shipment_line,
)
from posledger import InvalidSale, Misconfigured, adjust_inventory, count_inventory, receive_inventory, return_sale

MAX_LINES = 10000


def fields_of(refused):
    return [problem["field"] for problem in refused.value.detail["problems"]]


def a_count(store, *lines):
    return {"store_id": store, "reference": f"CNT-{uuid.uuid4().hex[:8]}", "reason_code": "cycle_count",
            "note": "shelf count", "actor": "manager-7", "lines": list(lines)}


def an_adjustment(store, *lines):
    return {**a_count(store, *lines), "reason_code": "receiving_error"}


def test_thousands_of_lines_of_one_batch_are_refused_by_their_sum_not_by_an_overflow(db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 1, "LOT-A"))
    lines = [shipment_line("SKU-1", 1000000, "LOT-A")] * 2200
    with pytest.raises(InvalidSale) as refused:
        receive(db, store, *lines)
    assert fields_of(refused) == ["lines[0]"]
    with pytest.raises(InvalidSale) as refused:
        adjust_inventory(db, an_adjustment(store, *[{"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": 10**6}] * 2200))
    assert fields_of(refused) == ["lines[0].quantity"]
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (1, 1, 0, "active")}


def test_lines_of_one_batch_within_the_bound_are_still_summed(db):
    store = new_store(db)
    result = receive(db, store, shipment_line("SKU-1", 600000, "LOT-A"), shipment_line("SKU-1", 400000, "LOT-A"))
    assert result["batches"][0]["quantity_on_hand"] == 1000000
    with pytest.raises(InvalidSale):
        receive(db, store, shipment_line("SKU-1", 600000, "LOT-A"), shipment_line("SKU-1", 400001, "LOT-A"))


@pytest.mark.parametrize("call, payload", [
    (receive_inventory, lambda store, n: {"store_id": store, "shipment_id": "S-1",
                                          "lines": [shipment_line(f"SKU-{i}", 1, "LOT") for i in range(n)]}),
    (adjust_inventory, lambda store, n: an_adjustment(store, *[{"sku": f"SKU-{i}", "quantity": 1} for i in range(n)])),
    (count_inventory, lambda store, n: a_count(store, *[{"sku": f"SKU-{i}", "counted": 1} for i in range(n)])),
    (return_sale, lambda store, n: {"store_id": store, "reference": "RET-1", "receipt_number": "R-1",
                                    "lines": [{"line_no": i + 1, "quantity": 1} for i in range(n)]}),
])
def test_a_payload_of_more_lines_than_the_bound_is_one_problem_and_changes_nothing(db, call, payload):
    store = new_store(db)
    with pytest.raises(InvalidSale) as refused:
        call(db, payload(store, MAX_LINES + 1))
    assert fields_of(refused) == ["lines"]
    assert str(MAX_LINES) in refused.value.detail["problems"][0]["problem"]
    assert count_rows(db, "ocs_inventory") == 0


def test_a_count_names_each_row_once_whether_its_batch_is_absent_or_null(db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 4, "LOT-A"))
    with pytest.raises(InvalidSale) as refused:
        count_inventory(db, a_count(store, {"sku": "SKU-1", "counted": 5},
                                    {"sku": "SKU-1", "batch_lot": None, "counted": 7}))
    assert fields_of(refused) == ["lines[0].batch_lot", "lines[1].batch_lot"]


def test_a_row_opened_by_a_bare_insert_with_nothing_available_is_repaired_by_a_count(db):
    store = new_store(db)
    db.execute("INSERT INTO ocs_inventory (store_id, sku, quantity_on_hand) VALUES (%s, 'U', 5)", [store])
    db.commit()
    assert batches_of(db, store, "U") == {None: (0, 5, 0, "active")}
    count_inventory(db, a_count(store, {"sku": "U", "counted": 5}))
    assert batches_of(db, store, "U") == {None: (5, 5, 0, "active")}
    db.execute("UPDATE ocs_inventory SET quantity_available = 0 WHERE sku = 'U'")
    db.commit()
    adjust_inventory(db, an_adjustment(store, {"sku": "U", "quantity": -2}))
    assert batches_of(db, store, "U") == {None: (3, 3, 0, "active")}
    catalogue(db, "U")
    assert record_sale(db, sale_payload(store, item("U", 3)))["inventory_updates"]["failed_count"] == 0


@pytest.mark.parametrize("setting", ["garbage", "-1", "0", "0ms", "2min", "1e3", "99999999999999999999s"])
def test_an_unusable_lock_timeout_setting_is_refused_by_name_and_changes_nothing(dsn, db, setting):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 4, "LOT-A"))
    with psycopg.connect(dsn, options=f"-c posledger.lock_timeout={setting}") as conn:
        with pytest.raises(Misconfigured) as refused:
            record_sale(conn, sale_payload(store, item("SKU-1", 1)))
    assert refused.value.detail["setting"] == "posledger.lock_timeout"
    assert refused.value.detail["value"] == setting
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (4, 4, 0, "active")}


@pytest.mark.parametrize("setting, applied", [("1ms", "1ms"), ("500", "500ms"), ("1.5s", "1500ms"), ("1min", "1min")])
def test_a_usable_lock_timeout_setting_is_applied(dsn, db, setting, applied):
    with psycopg.connect(dsn, options=f"-c posledger.lock_timeout={setting}") as conn:
        assert conn.execute("SELECT posledger_private.apply_lock_timeout()").fetchone()[0] == applied
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == applied


def test_a_call_longer_than_the_login_roles_statement_timeout_is_cut_off_and_changes_nothing(db, dsn):
    # A SET inside a function cannot bound its own call (PostgreSQL arms statement_timeout as the client's
    # statement starts), and a group role's settings are not inherited: the login role carries it.
    store = new_store(db)
    with psycopg.connect(dsn, autocommit=True) as owner:
        if owner.execute("SELECT FROM pg_roles WHERE rolname = 'till_bounded_test_login'").fetchone() is None:
            owner.execute("CREATE ROLE till_bounded_test_login LOGIN IN ROLE posledger_app")
        owner.execute("ALTER ROLE till_bounded_test_login SET statement_timeout = '50ms'")
    shipment = {"store_id": store, "shipment_id": "S-BIG",
                "lines": [shipment_line(f"SKU-{i}", 1, "LOT") for i in range(MAX_LINES)]}
    with psycopg.connect(make_conninfo(dsn, user="till_bounded_test_login")) as till:
        with pytest.raises(psycopg.errors.QueryCanceled):
            till.execute("SELECT receive_inventory(%s)", [Jsonb(shipment)])
    assert count_rows(db, "ocs_shipments") == 0 and count_rows(db, "ocs_inventory") == 0
    assert receive_inventory(db, shipment)["units_received"] == MAX_LINES   # the owner's session has no bound


def test_units_that_would_take_a_stock_row_past_its_integer_are_refused_not_overflowed(db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 10, "LOT-A"))
    order = record_sale(db, sale_payload(store, item("SKU-1", 5)))
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 2147483640, quantity_available = 2147483640")
    db.commit()
    calls = [
        lambda: receive(db, store, shipment_line("SKU-1", 10, "LOT-A")),
        lambda: adjust_inventory(db, an_adjustment(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": 10})),
        lambda: return_sale(db, {"store_id": store, "reference": "RET-1", "order_id": order["id"], "void": True}),
    ]
    receive(db, store, shipment_line("SKU-1", 7, "LOT-A"))   # to 2147483647, the most a row holds
    for call in calls:
        with pytest.raises(InvalidSale) as refused:
            call()
        assert fields_of(refused) == ["lines"]
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (2147483647, 2147483647, 0, "active")}


def test_keys_longer_than_an_index_row_holds_are_refused_by_name_not_by_a_raw_54000(db):
    # A receipt number, reference, sku or lot of 9,000 characters failed its unique index with 54000.
    store, long = new_store(db), "K" * 9000
    catalogue(db, "SKU")
    receive(db, store, shipment_line("SKU", 5, "LOT"))
    calls = [
        ("record_pos_sale", sale_payload(store, item("SKU", 1), receipt_number=long), "receipt_number"),
        ("record_pos_sale", sale_payload(store, item(long, 1)), "items[0].product.sku"),
        ("receive_inventory", {"store_id": store, "shipment_id": long, "lines": [shipment_line("SKU", 1, "LOT")]},
         "shipment_id"),
        ("receive_inventory", {"store_id": store, "shipment_id": "S-2", "lines": [shipment_line(long, 1, long)]},
         "lines[0].sku"),
        ("return_pos_sale", {"store_id": store, "reference": long, "receipt_number": "R-1",
                             "lines": [{"line_no": 1, "quantity": 1}]}, "reference"),
        ("adjust_inventory", {**an_adjustment(store, {"sku": "SKU", "batch_lot": "LOT", "quantity": 1}),
                              "reference": long}, "reference"),
        ("set_batch_status", {"reference": long, "batch_lot": "LOT", "status": "recalled", "reason": "r",
                              "actor": "a"}, "reference"),
        ("load_catalogue", {"rows": [{"sku": long, "name": "n", "category": "accessories", "gtins": []}]},
         "rows[0].sku"),
    ]
    for function, payload, field in calls:
        with pytest.raises(psycopg.Error) as refused:
            db.execute(f"SELECT {function}(%s)", [Jsonb(payload)])
        db.rollback()
        assert refused.value.sqlstate == "IV400", (function, refused.value.sqlstate)
        assert {"field": field, "problem": "must be at most 200 characters"} in json.loads(
            refused.value.diag.message_detail)["problems"], function
