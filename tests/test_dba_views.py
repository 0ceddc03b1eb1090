"""The DBA views: reconciliation (empty on a healthy database, NULL-safe, no fan-out) and monitoring,
checked against what the functions did."""

import datetime

import pytest

from conftest import add_stock, item, new_store, receive, record_sale, sale_payload, shipment_line
from posledger import adjust_inventory, return_sale, set_batch_status

# The old runbook's discrepancy query, as it stands in shared/reference: it joins on (sku, batch_lot).
OLD_RUNBOOK_QUERY = """
    SELECT i.sku, i.batch_lot, i.quantity_on_hand AS current_quantity, COALESCE(SUM(t.quantity), 0) AS transaction_sum
    FROM ocs_inventory i
    LEFT JOIN ocs_inventory_transactions t ON i.sku = t.sku AND i.batch_lot = t.batch_lot
    GROUP BY i.sku, i.batch_lot, i.quantity_on_hand
    HAVING i.quantity_on_hand != COALESCE(SUM(t.quantity), 0)"""


def a_busy_day(db):
    """Two stores with the same skus and lots, unbatched stock, a FEFO split, a return, an adjustment."""
    stores = [new_store(db, name="north"), new_store(db, name="south")]
    for store in stores:
        add_stock(db, store, "SKU-1", 4)                       # legacy unbatched stock
        receive(db, store, shipment_line("SKU-1", 10, "LOT-A", "2025-01-01"),
                shipment_line("SKU-1", 10, "LOT-B", "2025-06-01"))
        order = record_sale(db, sale_payload(store, item("SKU-1", 16), total=50))
        return_sale(db, {"store_id": store, "reference": "R1", "order_id": order["id"],
                         "lines": [{"line_no": 1, "quantity": 2}]})
        adjust_inventory(db, {"store_id": store, "reference": "A1", "reason_code": "loss_theft", "note": "n",
                              "actor": "a", "lines": [{"sku": "SKU-1", "batch_lot": "LOT-B", "quantity": -1}]})
    return stores


@pytest.mark.whole_database
def test_inventory_discrepancies_is_empty_on_a_healthy_database_where_the_old_query_is_not(db):
    stores = a_busy_day(db)
    assert db.execute("SELECT * FROM inventory_discrepancies WHERE store_id = ANY(%s::uuid[])",
                      [stores]).fetchall() == []
    # Two stores share sku and lots: the old join fans out and reports healthy rows; NULL lots it cannot see.
    assert db.execute(OLD_RUNBOOK_QUERY).fetchall() != []


def test_inventory_discrepancies_shows_a_row_changed_behind_the_ledgers_back(db):
    store = a_busy_day(db)[0]
    db.execute("ALTER TABLE ocs_inventory DISABLE TRIGGER ocs_inventory_ledger_change")
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = quantity_on_hand + 5,"
               " quantity_available = quantity_available + 5 WHERE store_id = %s AND batch_lot IS NULL", [store])
    rows = db.execute("SELECT store_id::text, sku, batch_lot, difference FROM inventory_discrepancies"
                      " WHERE store_id = %s", [store]).fetchall()
    assert rows == [(store, "SKU-1", None, 5)]
    db.rollback()


def test_negative_inventory_is_empty_and_the_constraints_keep_it_so(db):
    stores = a_busy_day(db)
    assert db.execute("SELECT * FROM negative_inventory WHERE store_id = ANY(%s::uuid[])", [stores]).fetchall() == []
    with pytest.raises(Exception) as refused:  # noqa: B017 - asserted by its SQLSTATE
        db.execute("UPDATE ocs_inventory SET quantity_available = -1")
    assert refused.value.sqlstate == "23514"
    db.rollback()


def test_stock_by_batch_lists_batches_in_fefo_order_with_status_and_age(db):
    store = a_busy_day(db)[0]
    set_batch_status(db, {"reference": f"H1-{store}", "store_id": store, "batch_lot": "LOT-B", "status": "quarantined",
                          "reason": "r", "actor": "a"})
    rows = db.execute("SELECT batch_lot, fefo_rank, status, sellable, quantity_on_hand, age_days, last_sold IS NOT NULL"
                      " FROM stock_by_batch WHERE store_id = %s ORDER BY fefo_rank", [store]).fetchall()
    age = (datetime.date.today() - datetime.date(2025, 1, 1)).days
    # 16 sold FEFO: 4 unbatched, 10 of LOT-A, 2 of LOT-B; the return of 2 went back to LOT-B, the newest.
    assert rows == [(None, 1, "active", True, 0, None, True), ("LOT-A", 2, "active", True, 0, age, True),
                    ("LOT-B", 3, "quarantined", False, 9, age - 151, True)]


def test_sales_per_hour_counts_orders_units_and_totals(db):
    stores = a_busy_day(db)
    rows = db.execute("SELECT orders, voided, units, total FROM sales_per_hour WHERE store_id = ANY(%s::uuid[])",
                      [stores]).fetchall()
    assert rows == [(1, 0, 16, 50)] * 2


def test_recall_report_shows_where_a_lot_is_and_how_much_was_sold_and_returned(db):
    stores = a_busy_day(db)
    recall = f"RC-{stores[0]}"   # a recall's reference is global
    set_batch_status(db, {"reference": recall, "batch_lot": "LOT-A", "status": "recalled", "reason": "r", "actor": "a"})
    rows = db.execute("SELECT store_name, status, quantity_on_hand, received, sold, returned,"
                      " status_changed_at IS NOT NULL FROM recall_report WHERE batch_lot = 'LOT-A'"
                      " AND store_id = ANY(%s::uuid[]) ORDER BY store_name", [stores]).fetchall()
    assert rows == [("north", "recalled", 0, 10, 10, 0, True), ("south", "recalled", 0, 10, 10, 0, True)]
    # Only lots that are or were held, each with the latest status change's reference and reason.
    assert db.execute("SELECT DISTINCT batch_lot, reference, reason FROM recall_report"
                      " WHERE store_id = ANY(%s::uuid[])", [stores]).fetchall() == [("LOT-A", recall, "r")]


@pytest.mark.tampers
def test_monthly_movements_show_on_hand_beside_a_closing_the_ledger_alone_would_hide(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 6, "LOT-A")
    db.execute("ALTER TABLE ocs_inventory DISABLE TRIGGER ocs_inventory_ledger_change")
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 9, quantity_available = 9")
    db.execute("ALTER TABLE ocs_inventory ENABLE TRIGGER ocs_inventory_ledger_change")
    db.commit()
    assert db.execute("SELECT closing, on_hand_now FROM inventory_movements_monthly").fetchall() == [(6, 9)]


def test_monthly_movements_balance_and_each_month_opens_at_the_last_closing(db):
    store = a_busy_day(db)[0]
    rows = db.execute("SELECT opening, received, sold, returned, adjusted, destroyed, lost, manual, closing,"
                      " adjusted_by_reason FROM inventory_movements_monthly WHERE store_id = %s", [store]).fetchall()
    assert rows == [(0, 20, -16, 2, 0, 0, -1, 4, 9, {"loss_theft": -1})]


@pytest.mark.whole_database
def test_monthly_movements_over_several_months_of_imported_history(db):
    store = new_store(db)
    # History imported as it stood (the trigger is bypassed; the ledger rows carry their own dates).
    db.execute("ALTER TABLE ocs_inventory DISABLE TRIGGER ocs_inventory_ledger_opening")
    inventory_id = add_stock(db, store, "SKU-1", 6, "LOT-A")
    db.execute("ALTER TABLE ocs_inventory ENABLE TRIGGER ocs_inventory_ledger_opening")
    history = [("2026-01-15", "receipt", None, 10, 10), ("2026-01-20", "adjustment", "loss_theft", -3, 7),
               ("2026-03-02", "adjustment", "destruction", -2, 5), ("2026-03-09", "manual_adjustment", None, 1, 6)]
    for day, kind, reason, quantity, after in history:
        db.execute("INSERT INTO ocs_inventory_transactions (store_id, inventory_id, sku, batch_lot, transaction_type,"
                   " reason_code, quantity, quantity_after, created_at) VALUES (%s, %s, 'SKU-1', 'LOT-A', %s, %s, %s,"
                   " %s, %s::timestamptz)", [store, inventory_id, kind, reason, quantity, after, f"{day} 12:00Z"])
    db.commit()
    rows = db.execute("SELECT month::text, opening, received, lost, destroyed, manual, closing"
                      " FROM inventory_movements_monthly WHERE store_id = %s ORDER BY month", [store]).fetchall()
    assert rows == [("2026-01-01", 0, 10, -3, 0, 0, 7), ("2026-03-01", 7, 0, 0, -2, 1, 6)]
