"""The old fix plan's eight test cases (shared/reference/pos-inventory-fix-plan.md), each checked in the
database afterwards as the plan's verify queries do. Stock is set up as the plan does, with bare INSERTs."""

import pytest

from conftest import add_stock, count_rows, item, record_sale, sale_payload, stock_of
from posledger import InsufficientStock, NotFound


def last_ledger_row(db, sku):
    return db.execute("SELECT transaction_type, quantity, batch_lot, reference_type, notes"
                      " FROM ocs_inventory_transactions WHERE sku = %s ORDER BY id DESC LIMIT 1", [sku]).fetchone()


def test_1_sale_without_batch_deducts_available_and_on_hand(db, store):
    add_stock(db, store, "TEST_SKU_001", 100)
    result = record_sale(db, sale_payload(store, item("TEST_SKU_001", 5), total=25.00))
    assert stock_of(db, store, "TEST_SKU_001") == {None: (95, 95)}
    assert last_ledger_row(db, "TEST_SKU_001")[:2] == ("sale", -5)
    assert result["inventory_updates"]["successful"] == [
        {"sku": "TEST_SKU_001", "batch": None, "quantity_deducted": 5, "remaining": 95}]


def test_2_sale_with_batch_deducts_that_batch(db, store):
    add_stock(db, store, "TEST_SKU_002", 50, "BATCH_A")
    line = item("TEST_SKU_002", 10, "BATCH_A")
    line["batch"]["quantity_remaining"] = 50
    record_sale(db, sale_payload(store, line, total=100.00))
    assert stock_of(db, store, "TEST_SKU_002") == {"BATCH_A": (40, 40)}
    assert last_ledger_row(db, "TEST_SKU_002")[2] == "BATCH_A"


def test_3_insufficient_stock_is_refused_and_changes_nothing(db, store):
    add_stock(db, store, "TEST_SKU_003", 2)
    payload = sale_payload(store, item("TEST_SKU_003", 5))
    with pytest.raises(InsufficientStock) as refused:
        record_sale(db, payload)
    assert refused.value.detail == {"short_lines": [
        {"sku": "TEST_SKU_003", "batch": None, "requested": 5, "available": 2}]}
    assert stock_of(db, store, "TEST_SKU_003") == {None: (2, 2)}
    assert count_rows(db, "pos_orders") == 0


def test_4_multi_batch_sale_deducts_each_named_batch(db, store):
    add_stock(db, store, "TEST_SKU_004", 30, "BATCH_X")
    add_stock(db, store, "TEST_SKU_004", 40, "BATCH_Y")
    record_sale(db, sale_payload(store, item("TEST_SKU_004", 5, "BATCH_X"), item("TEST_SKU_004", 10, "BATCH_Y")))
    assert stock_of(db, store, "TEST_SKU_004") == {"BATCH_X": (25, 25), "BATCH_Y": (30, 30)}
    sales = db.execute("SELECT batch_lot, quantity FROM ocs_inventory_transactions"
                       " WHERE sku = 'TEST_SKU_004' AND transaction_type = 'sale' ORDER BY batch_lot").fetchall()
    assert sales == [("BATCH_X", -5), ("BATCH_Y", -10)]


def test_5_mixed_batch_and_unbatched_lines_in_one_sale(db, store):
    add_stock(db, store, "TEST_SKU_005", 20, "BATCH_M")
    add_stock(db, store, "TEST_SKU_006", 20)
    result = record_sale(db, sale_payload(store, item("TEST_SKU_005", 3, "BATCH_M"), item("TEST_SKU_006", 4)))
    assert stock_of(db, store, "TEST_SKU_005") == {"BATCH_M": (17, 17)}
    assert stock_of(db, store, "TEST_SKU_006") == {None: (16, 16)}
    assert result["inventory_updates"]["updated_count"] == 2


def test_6_ledger_rows_reference_the_order_and_receipt(db, store):
    add_stock(db, store, "TEST_SKU_007", 10)
    payload = sale_payload(store, item("TEST_SKU_007", 2), cashier_id="cashier-9")
    result = record_sale(db, payload)
    row = db.execute("SELECT transaction_type, quantity, quantity_after, reference_type, reference_id::text,"
                     " notes, actor FROM ocs_inventory_transactions WHERE sku = 'TEST_SKU_007' ORDER BY id").fetchall()
    assert row == [("opening", 10, 10, None, None, None, row[0][6]),
                   ("sale", -2, 8, "pos_order", result["id"], f"POS sale - {payload['receipt_number']}", "cashier-9")]


def test_7_last_sold_and_updated_at_are_set(db, store):
    add_stock(db, store, "TEST_SKU_008", 10)
    assert db.execute("SELECT last_sold FROM ocs_inventory WHERE store_id = %s AND sku = 'TEST_SKU_008'",
                      [store]).fetchone() == (None,)
    db.commit()
    record_sale(db, sale_payload(store, item("TEST_SKU_008", 1)))
    last_sold, updated_at, order_time = db.execute(
        "SELECT i.last_sold, i.updated_at, o.created_at FROM ocs_inventory i JOIN pos_orders o USING (store_id)"
        " WHERE i.store_id = %s AND i.sku = 'TEST_SKU_008'", [store]).fetchone()
    assert last_sold == updated_at == order_time


def test_8_missing_sku_is_not_found_and_changes_nothing(db, store):
    add_stock(db, store, "TEST_SKU_009", 10)
    with pytest.raises(NotFound) as refused:
        record_sale(db, sale_payload(store, item("TEST_SKU_009", 1), item("NO_SUCH_SKU", 1)))
    assert refused.value.detail == {"missing": [{"sku": "NO_SUCH_SKU", "batch": None}]}
    assert stock_of(db, store, "TEST_SKU_009") == {None: (10, 10)}
    assert count_rows(db, "pos_orders") == 0
