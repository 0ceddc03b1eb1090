"""adjust_inventory and count_inventory: signed corrections with a reason code, a note and who did it,
never below zero, and counts posted as the differences, all ledgered as 'adjustment' rows."""

import pytest

from conftest import (
    add_stock,
    batches_of,
    count_rows,
    item,
    ledger_of,
    new_store,
    quarantine_by_return,
    record_sale,
    sale_payload,
)
from posledger import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidSale,
    NotFound,
    adjust_inventory,
    count_inventory,
)

REASONS = ["physical_count", "cycle_count", "internal_audit", "data_entry_error", "sold_product_handling_error",
           "receiving_error", "destruction", "loss_theft", "return_to_supplier"]


def adjustment(store, *lines, reason_code="loss_theft", **fields):
    payload = {"store_id": store, "reference": f"ADJ-{len(lines)}-{reason_code}", "reason_code": reason_code,
               "note": "found short on the shelf", "actor": "manager-7", "lines": list(lines)}
    payload.update(fields)
    return payload


def test_the_reason_codes_are_the_ones_ontario_retailers_report(db):
    assert [row[0] for row in db.execute("SELECT code FROM adjustment_reasons ORDER BY code")] == sorted(REASONS)


def test_an_adjustment_is_ledgered_with_its_reason_note_and_actor(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    add_stock(db, store, "SKU-1", 4)
    result = adjust_inventory(db, adjustment(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": -3},
                                             {"sku": "SKU-1", "quantity": 2}, reason_code="data_entry_error"))
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (7, 7, 0, "active"), None: (6, 6, 0, "active")}
    assert [(a["batch"], a["quantity"]) for a in result["adjustments"]] == [("LOT-A", -3), (None, 2)]
    rows = db.execute("SELECT transaction_type, reason_code, quantity, notes, actor, reference_type, reference_id"
                      " FROM ocs_inventory_transactions WHERE transaction_type = 'adjustment' ORDER BY id").fetchall()
    assert [(t, r, q, n, a, rt, str(rid)) for t, r, q, n, a, rt, rid in rows] == [
        ("adjustment", "data_entry_error", -3, "found short on the shelf", "manager-7", "inventory_adjustment",
         result["id"]),
        ("adjustment", "data_entry_error", 2, "found short on the shelf", "manager-7", "inventory_adjustment",
         result["id"])]


def test_an_adjustment_can_never_take_a_quantity_below_zero_and_names_every_short_line(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    add_stock(db, store, "SKU-2", 1, "LOT-B")
    with pytest.raises(InsufficientStock) as refused:
        adjust_inventory(db, adjustment(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": -3},
                                        {"sku": "SKU-2", "batch_lot": "LOT-B", "quantity": -2}))
    assert refused.value.detail["short_lines"] == [
        {"sku": "SKU-1", "batch": "LOT-A", "stock": "sellable", "requested": -3, "available": 2},
        {"sku": "SKU-2", "batch": "LOT-B", "stock": "sellable", "requested": -2, "available": 1}]
    assert count_rows(db, "inventory_adjustments") == 0
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (2, 2, 0, "active")}


def test_lines_for_the_same_batch_are_summed_before_the_zero_check(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    with pytest.raises(InsufficientStock):
        adjust_inventory(db, adjustment(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": -2},
                                        {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": -1}))


def test_destroying_quarantined_units_leaves_the_sellable_ones(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    quarantine_by_return(db, store, "SKU-1", 3)
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (7, 10, 3, "active")}
    adjust_inventory(db, adjustment(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": -3, "quarantined": True},
                                    reason_code="destruction"))
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (7, 7, 0, "active")}
    assert ledger_of(db, store, "SKU-1")[-1] == ("LOT-A", "adjustment", "destruction", -3, 7)
    with pytest.raises(InsufficientStock) as refused:
        adjust_inventory(db, adjustment(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": -1,
                                                "quarantined": True}, reference="ADJ-again"))
    assert refused.value.detail["short_lines"][0]["stock"] == "quarantined"


def test_malformed_adjustments_name_every_problem_and_unknown_batches_are_not_found(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    with pytest.raises(InvalidSale) as refused:
        adjust_inventory(db, {"store_id": store, "reference": "A1", "reason_code": "shrinkage",
                              "lines": [{"sku": "SKU-1", "quantity": 0}, {"quantity": "2", "quarantined": 1}]})
    assert [p["field"] for p in refused.value.detail["problems"]] == [
        "reason_code", "note", "actor", "lines[0].quantity", "lines[1].sku", "lines[1].quantity",
        "lines[1].quarantined"]
    with pytest.raises(NotFound) as unknown:
        adjust_inventory(db, adjustment(store, {"sku": "SKU-1", "batch_lot": "LOT-X", "quantity": 1},
                                        {"sku": "SKU-9", "quantity": 1}))
    assert unknown.value.detail["missing"] == [{"sku": "SKU-1", "batch": "LOT-X"}, {"sku": "SKU-9", "batch": None}]
    assert count_rows(db, "inventory_adjustments") == 0


def test_an_adjustment_reference_counts_once(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    payload = adjustment(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": -1})
    first = adjust_inventory(db, payload)
    assert adjust_inventory(db, payload) == {**first, "replayed": True}
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (4, 4, 0, "active")}
    with pytest.raises(IdempotencyConflict):
        adjust_inventory(db, {**payload, "note": "another note"})


def count(store, *lines, **fields):
    payload = {"store_id": store, "reference": "COUNT-1", "reason_code": "cycle_count", "note": "aisle 3",
               "actor": "clerk-1", "lines": list(lines)}
    payload.update(fields)
    return payload


def test_a_count_posts_the_differences_as_adjustments_in_one_transaction(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    add_stock(db, store, "SKU-1", 4, "LOT-B")
    add_stock(db, store, "SKU-2", 3)
    result = count_inventory(db, count(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "counted": 8},
                                       {"sku": "SKU-1", "batch_lot": "LOT-B", "counted": 4},
                                       {"sku": "SKU-2", "counted": 5}))
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (8, 8, 0, "active"), "LOT-B": (4, 4, 0, "active")}
    assert batches_of(db, store, "SKU-2") == {None: (5, 5, 0, "active")}
    assert [(a["sku"], a["quantity"]) for a in result["adjustments"]] == [("SKU-1", -2), ("SKU-2", 2)]
    assert ledger_of(db, store, "SKU-1")[-1] == ("LOT-A", "adjustment", "cycle_count", -2, 8)
    assert result["kind"] == "count"


def test_a_count_below_the_quarantined_units_is_refused(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    quarantine_by_return(db, store, "SKU-1", 2)
    with pytest.raises(InsufficientStock):
        count_inventory(db, count(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "counted": 1}))
    count_inventory(db, count(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "counted": 2}))
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (0, 2, 2, "active")}


def test_a_count_settles_the_lenient_shortfalls_of_what_it_counted(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 1, "LOT-A")
    add_stock(db, store, "SKU-2", 1, "LOT-B")
    record_sale(db, sale_payload(store, item("SKU-1", 3), item("SKU-2", 2), policy="lenient", authorized_by="mgr"))
    result = count_inventory(db, count(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "counted": 0}))
    assert result["exceptions_resolved"] == 1
    rows = db.execute("SELECT sku, status, resolved_by::text FROM inventory_exceptions ORDER BY sku").fetchall()
    assert rows == [("SKU-1", "resolved", result["id"]), ("SKU-2", "open", None)]


def test_a_count_takes_only_count_reasons_and_each_batch_once(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 1, "LOT-A")
    with pytest.raises(InvalidSale) as refused:
        count_inventory(db, count(store, {"sku": "SKU-1", "batch_lot": "LOT-A", "counted": 1},
                                  {"sku": "SKU-1", "batch_lot": "LOT-A", "counted": -1, "quantity": 1},
                                  reason_code="loss_theft"))
    assert [p["field"] for p in refused.value.detail["problems"]] == [
        "reason_code", "lines[0].batch_lot", "lines[1].counted", "lines[1].batch_lot"]
