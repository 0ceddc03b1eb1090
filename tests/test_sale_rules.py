"""The sale rules of DESIGN.md sections 3-5, through the public Python API, checked in the database."""

import json

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import add_stock, count_rows, item, new_store, record_sale, sale_payload, stock_of
from posledger import IdempotencyConflict, InsufficientStock, InvalidSale, NotFound

CUSTOMER = "0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"


def snapshot(db):
    """Everything a refused sale must leave as it was."""
    tables = ["ocs_inventory", "ocs_inventory_transactions", "pos_orders", "pos_order_lines",
              "inventory_exceptions", "loyalty_accounts", "loyalty_transactions"]
    state = {t: db.execute(f"SELECT to_jsonb(x) FROM {t} x ORDER BY to_jsonb(x)::text").fetchall() for t in tables}
    db.commit()
    return state


def batches_used(result):
    return [(u["batch"], u["quantity_deducted"]) for u in result["inventory_updates"]["successful"]]


# FEFO allocation

def test_sale_without_batch_takes_oldest_batch_first_and_splits(db, store):
    add_stock(db, store, "SKU", 10, "NEWER", "2025-10-01")
    add_stock(db, store, "SKU", 4, "OLDER", "2025-09-01")
    result = record_sale(db, sale_payload(store, item("SKU", 6)))
    assert sorted(batches_used(result)) == [("NEWER", 2), ("OLDER", 4)]
    assert stock_of(db, store, "SKU") == {"OLDER": (0, 0), "NEWER": (8, 8)}
    lines = db.execute("SELECT line_no, batch_lot, quantity FROM pos_order_lines ORDER BY batch_lot").fetchall()
    assert lines == [(1, "NEWER", 2), (1, "OLDER", 4)]


def test_sale_without_batch_takes_legacy_unbatched_stock_first(db, store):
    add_stock(db, store, "SKU", 5, "OLD", "2020-01-01")
    add_stock(db, store, "SKU", 3)
    result = record_sale(db, sale_payload(store, item("SKU", 4)))
    assert sorted(batches_used(result), key=str) == [("OLD", 1), (None, 3)]


def test_fefo_skips_empty_batches_wherever_they_stand(db, store):
    # Found by the stateful test: an empty batch between two others must not become a 0-unit line.
    add_stock(db, store, "SKU", 0, "EMPTY-OLDEST", "2020-01-01")
    add_stock(db, store, "SKU", 3, "OLD", "2021-01-01")
    add_stock(db, store, "SKU", 0, "EMPTY-MIDDLE", "2022-01-01")
    add_stock(db, store, "SKU", 5, "NEW", "2025-01-01")
    assert batches_used(record_sale(db, sale_payload(store, item("SKU", 4)))) == [("OLD", 3), ("NEW", 1)]
    assert db.execute("SELECT batch_lot, quantity FROM pos_order_lines ORDER BY id").fetchall() == [
        ("OLD", 3), ("NEW", 1)]


def test_named_batch_is_served_first_and_fefo_takes_the_rest(db, store):
    add_stock(db, store, "SKU", 5, "OLD", "2025-01-01")
    add_stock(db, store, "SKU", 5, "NEW", "2025-06-01")
    # The unbatched line comes first in the cart, yet NEW is reserved for the line that names it.
    result = record_sale(db, sale_payload(store, item("SKU", 7), item("SKU", 3, "NEW")))
    assert sorted(batches_used(result)) == [("NEW", 5), ("OLD", 5)]
    lines = db.execute("SELECT line_no, batch_lot, quantity FROM pos_order_lines"
                       " ORDER BY line_no, batch_lot").fetchall()
    assert lines == [(1, "NEW", 2), (1, "OLD", 5), (2, "NEW", 3)]


# Summing, atomicity, strict policy

def test_lines_for_the_same_sku_and_batch_are_summed_before_the_stock_check(db, store):
    add_stock(db, store, "SKU", 5, "B")
    before = snapshot(db)
    with pytest.raises(InsufficientStock) as refused:
        record_sale(db, sale_payload(store, item("SKU", 3, "B"), item("SKU", 3, "B")))
    assert refused.value.detail["short_lines"] == [{"sku": "SKU", "batch": "B", "requested": 6, "available": 5}]
    assert snapshot(db) == before


def test_one_short_line_changes_nothing_and_every_short_line_is_reported(db, store):
    add_stock(db, store, "OK", 10)
    add_stock(db, store, "SHORT1", 1, "L1")
    add_stock(db, store, "SHORT2", 2)
    before = snapshot(db)
    payload = sale_payload(store, item("OK", 2), item("SHORT1", 2, "L1"), item("SHORT2", 5), user_id=CUSTOMER)
    with pytest.raises(InsufficientStock) as refused:
        record_sale(db, payload)
    assert refused.value.detail["short_lines"] == [
        {"sku": "SHORT1", "batch": "L1", "requested": 2, "available": 1},
        {"sku": "SHORT2", "batch": None, "requested": 5, "available": 2}]
    assert refused.value.sqlstate == "IV409"
    assert snapshot(db) == before


def test_unbatched_shortfall_reports_what_named_lines_leave(db, store):
    add_stock(db, store, "SKU", 4, "A")
    with pytest.raises(InsufficientStock) as refused:
        record_sale(db, sale_payload(store, item("SKU", 3, "A"), item("SKU", 2)))
    assert refused.value.detail["short_lines"] == [{"sku": "SKU", "batch": None, "requested": 2, "available": 1}]


# Lenient policy

def test_lenient_sale_completes_records_the_shortfall_and_flags_the_result(db, store):
    add_stock(db, store, "SKU", 2)
    payload = sale_payload(store, item("SKU", 5), policy="lenient", authorized_by="manager-7")
    result = record_sale(db, payload)
    assert result["requires_manual_inventory_adjustment"] is True
    assert result["inventory_updates"]["failed"] == [{"sku": "SKU", "batch": None, "requested": 5, "available": 2}]
    assert result["inventory_updates"]["failed_count"] == 1
    assert stock_of(db, store, "SKU") == {None: (0, 0)}
    exceptions = db.execute("SELECT sku, quantity_short, authorized_by, status FROM inventory_exceptions").fetchall()
    assert exceptions == [("SKU", 3, "manager-7", "open")]
    assert db.execute("SELECT inventory_id IS NULL, quantity FROM pos_order_lines ORDER BY 1").fetchall() == [
        (False, 2), (True, 3)]


def test_lenient_sale_of_a_short_named_batch_records_that_batch_as_short(db, store):
    add_stock(db, store, "SKU", 1, "LOT")
    add_stock(db, store, "SKU", 9, "OTHER")
    result = record_sale(db, sale_payload(store, item("SKU", 4, "LOT"), policy="lenient", authorized_by="m-1"))
    assert batches_used(result) == [("LOT", 1)]  # a named batch is never swapped for another
    assert db.execute("SELECT batch_lot, quantity_short FROM inventory_exceptions").fetchall() == [("LOT", 3)]
    assert stock_of(db, store, "SKU") == {"LOT": (0, 0), "OTHER": (9, 9)}


def test_lenient_sale_needs_someone_who_authorised_it(db, store):
    add_stock(db, store, "SKU", 2)
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, sale_payload(store, item("SKU", 5), policy="lenient"))
    assert [p["field"] for p in refused.value.detail["problems"]] == ["authorized_by"]


# Idempotency

def test_retrying_the_same_sale_replays_the_first_result_and_changes_nothing(db, store):
    add_stock(db, store, "SKU", 10)
    payload = sale_payload(store, item("SKU", 3), user_id=CUSTOMER, total=30)
    first = record_sale(db, payload)
    before = snapshot(db)
    reordered = json.loads(json.dumps(dict(reversed(list(payload.items())))))
    again = record_sale(db, reordered)
    assert again == {**first, "replayed": True}
    assert first["replayed"] is False
    assert snapshot(db) == before
    assert stock_of(db, store, "SKU") == {None: (7, 7)}


def test_reusing_a_receipt_number_for_a_different_sale_is_a_conflict(db, store):
    add_stock(db, store, "SKU", 10)
    payload = sale_payload(store, item("SKU", 3))
    first = record_sale(db, payload)
    before = snapshot(db)
    with pytest.raises(IdempotencyConflict) as refused:
        record_sale(db, {**payload, "items": [item("SKU", 4)]})
    assert refused.value.detail == {"store_id": store, "receipt_number": payload["receipt_number"],
                                    "order_id": first["id"]}
    assert snapshot(db) == before


def test_the_same_receipt_number_in_another_store_is_another_sale(db, store):
    other = new_store(db)
    add_stock(db, store, "SKU", 10)
    add_stock(db, other, "SKU", 10)
    payload = sale_payload(store, item("SKU", 1))
    record_sale(db, payload)
    assert record_sale(db, {**payload, "store_id": other})["replayed"] is False


# Loyalty

def test_points_are_one_per_whole_unit_of_total_and_create_the_profile(db, store):
    add_stock(db, store, "SKU", 10)
    result = record_sale(db, sale_payload(store, item("SKU", 1), user_id=CUSTOMER, total=107.99))
    assert result["loyalty"] == {"user_id": CUSTOMER, "points_earned": 107, "balance": 107}
    result = record_sale(db, sale_payload(store, item("SKU", 1), user_id=CUSTOMER, total=20))
    assert result["loyalty"] == {"user_id": CUSTOMER, "points_earned": 20, "balance": 127}
    ledger = db.execute("SELECT points, balance_after, order_id::text FROM loyalty_transactions ORDER BY id").fetchall()
    assert ledger == [(107, 107, ledger[0][2]), (20, 127, result["id"])]


def test_the_points_rate_is_configurable_per_store(db):
    store = new_store(db, loyalty_points_per_unit=2.5)
    add_stock(db, store, "SKU", 10)
    result = record_sale(db, sale_payload(store, item("SKU", 1), user_id=CUSTOMER, total=10.99))
    assert result["loyalty"]["points_earned"] == 27


def test_no_points_without_a_customer_or_for_a_refused_sale(db, store):
    add_stock(db, store, "SKU", 1)
    assert record_sale(db, sale_payload(store, item("SKU", 1)))["loyalty"] is None
    with pytest.raises(InsufficientStock):
        record_sale(db, sale_payload(store, item("SKU", 1), user_id=CUSTOMER, total=50))
    assert count_rows(db, "profiles") == 0
    assert count_rows(db, "loyalty_transactions") == 0


# Bad input: IV400 / IV404 with every problem named, nothing changed, no raw PostgreSQL error

def test_every_problem_of_a_bad_payload_is_reported_at_once(db, store):
    add_stock(db, store, "SKU", 10)
    before = snapshot(db)
    bad = {"store_id": "not-a-uuid", "receipt_number": "", "user_id": "nope", "status": "pending",
           "total": "abc", "tax": -1,
           "items": [{"product": {"name": "no sku"}, "quantity": 0},
                     {"product": {"sku": "SKU"}, "quantity": 1.5, "batch": {"quantity_remaining": 3}},
                     {"product": {"sku": "SKU"}, "quantity": "2"},
                     {"product": {"sku": "SKU"}, "quantity": 10 ** 12}]}
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, bad)
    assert [p["field"] for p in refused.value.detail["problems"]] == [
        "store_id", "receipt_number", "user_id", "status", "total", "tax",
        "items[0].product.sku", "items[0].quantity",
        "items[1].quantity", "items[1].batch.batch_lot",
        "items[2].quantity", "items[3].quantity"]
    assert snapshot(db) == before


@pytest.mark.parametrize("payload", [
    None, [], "sale", 42, {}, {"items": []}, {"items": {"sku": "x"}}, {"items": [None, 1, "x"]},
    {"items": [{"product": "SKU", "quantity": 1, "batch": "B"}]},
])
def test_malformed_payloads_are_invalid_sale_never_a_raw_error(db, payload):
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, payload)
    assert refused.value.detail["problems"]


def test_errors_carry_the_iv_sqlstate_and_json_detail_in_sql(db):
    with pytest.raises(psycopg.Error) as raised:
        db.execute("SELECT record_pos_sale(%s)", [Jsonb({"items": []})])
    db.rollback()
    assert raised.value.diag.sqlstate == "IV400"
    problems = json.loads(raised.value.diag.message_detail)["problems"]
    assert {p["field"] for p in problems} >= {"store_id", "receipt_number", "total", "items"}


def test_unknown_store_is_not_found(db):
    with pytest.raises(NotFound) as refused:
        record_sale(db, sale_payload("9f0c7d4e-2f1a-4b7c-8d9e-0a1b2c3d4e5f", item("SKU", 1)))
    assert refused.value.detail == {"missing": [{"store_id": "9f0c7d4e-2f1a-4b7c-8d9e-0a1b2c3d4e5f"}]}
    assert "stores come from the back office" in refused.value.hint   # not the hint about stocking a sku


def test_unknown_batch_is_not_found_with_every_missing_one(db, store):
    add_stock(db, store, "SKU", 10, "KNOWN")
    with pytest.raises(NotFound) as refused:
        record_sale(db, sale_payload(store, item("SKU", 1, "UNKNOWN"), item("OTHER", 1), item("SKU", 1, "KNOWN")))
    assert refused.value.detail == {"missing": [{"sku": "OTHER", "batch": None}, {"sku": "SKU", "batch": "UNKNOWN"}]}
    assert count_rows(db, "pos_orders") == 0
