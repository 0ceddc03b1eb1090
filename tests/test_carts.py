"""Carts of any size, within bounds: a sale of thousands of lines allocates like a small one, a store
bounds its lines (stores.max_sale_lines), and a refusal names at most 100 problems with their total."""

import pytest

from conftest import count_rows, item, new_store, receive, record_sale, sale_payload, shipment_line
from posledger import InvalidSale


def test_a_sale_of_two_thousand_lines_takes_every_line_from_its_batches(db):
    store = new_store(db, max_sale_lines=2000)
    receive(db, store, *(shipment_line(f"SKU-{n}", 3, "LOT-A", "2025-01-01") for n in range(1000)),
            *(shipment_line(f"SKU-{n}", 3, "LOT-B", "2025-06-01") for n in range(1000)))
    # Two lines per sku: the first takes LOT-A's 3 and one of LOT-B's, the second two more of LOT-B.
    lines = [item(f"SKU-{n}", quantity) for n in range(1000) for quantity in (4, 2)]
    result = record_sale(db, sale_payload(store, *lines))
    updates = result["inventory_updates"]
    assert (updates["total_items"], updates["failed_count"]) == (2000, 0)
    assert {(u["batch"], u["quantity_deducted"], u["remaining"]) for u in updates["successful"]} == {
        ("LOT-A", 3, 0), ("LOT-B", 3, 0)}
    assert count_rows(db, "pos_order_lines") == 3000   # each sku's first line split over two batches


def test_a_sale_longer_than_its_stores_bound_is_refused_naming_the_bound(db):
    store = new_store(db, max_sale_lines=3)
    receive(db, store, shipment_line("SKU-1", 10, "LOT-A"))
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, sale_payload(store, *[item("SKU-1", 1)] * 4))
    assert refused.value.detail["problems"] == [
        {"field": "items", "problem": "has 4 lines: at most 3 in one sale at this store (stores.max_sale_lines)"}]
    assert count_rows(db, "pos_orders") == 0
    assert record_sale(db, sale_payload(store, *[item("SKU-1", 1)] * 3))["inventory_updates"]["failed_count"] == 0


def test_no_payload_has_more_than_ten_thousand_lines_whatever_its_store_allows(db):
    store = new_store(db, max_sale_lines=10000)
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, sale_payload(store, *[item("SKU-1", 1)] * 10001))
    assert [p["field"] for p in refused.value.detail["problems"]] == ["items"]
    with pytest.raises(Exception):  # noqa: B017 - the database's CHECK, as a DBA would meet it
        db.execute("UPDATE stores SET max_sale_lines = 10001")
    db.rollback()


def test_a_refusal_names_the_first_hundred_problems_and_their_total(db):
    store = new_store(db)
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, sale_payload(store, *[item("SKU-1", 0)] * 300))
    problems = refused.value.detail["problems"]
    assert refused.value.detail["total"] == 300
    assert [p["field"] for p in problems] == [f"items[{n}].quantity" for n in range(100)]
