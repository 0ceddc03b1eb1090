"""return_pos_sale: partial returns and voids put units back into the batches they were sold from, never
more than sold minus already returned, quarantine defective units, and take loyalty points back."""

import json
import threading
import uuid
from collections import Counter

import psycopg
import pytest

from conftest import (
    add_stock,
    batches_of,
    count_rows,
    item,
    ledger_of,
    new_store,
    record_sale,
    sale_payload,
)
from posledger import IdempotencyConflict, InsufficientStock, InvalidSale, NotFound, ReturnExceedsSale, return_sale

CUSTOMER = "0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"


def fefo_split_sale(db, **fields):
    """A store with OLD (3 units) and NEW (10 units) of SKU-1; a sale of 8 takes 3 OLD + 5 NEW."""
    store = new_store(db)
    add_stock(db, store, "SKU-1", 3, "OLD", "2025-01-01")
    add_stock(db, store, "SKU-1", 10, "NEW", "2025-06-01")
    return store, record_sale(db, sale_payload(store, item("SKU-1", 8), **fields))


def a_return(store, order, *lines, **fields):
    payload = {"store_id": store, "reference": f"RET-{uuid.uuid4().hex[:8]}", "order_id": order["id"],
               "lines": list(lines)}
    payload.update(fields)
    return payload


def test_a_partial_return_goes_back_to_the_newest_batch_of_a_fefo_split_first(db):
    store, order = fefo_split_sale(db)
    result = return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 6}, cashier_id="cashier-2"))
    assert batches_of(db, store, "SKU-1") == {"OLD": (1, 1, 0, "active"), "NEW": (10, 10, 0, "active")}
    assert sorted((line["batch"], line["quantity"]) for line in result["lines"]) == [("NEW", 5), ("OLD", 1)]
    rows = db.execute("SELECT transaction_type, quantity, reference_type, reference_id, actor FROM"
                      " ocs_inventory_transactions WHERE store_id = %s AND transaction_type = 'return' ORDER BY id",
                      [store]).fetchall()
    assert {(t, q, rt, str(rid), a) for t, q, rt, rid, a in rows} == {
        ("return", 5, "pos_order", order["id"], "cashier-2"), ("return", 1, "pos_order", order["id"], "cashier-2")}


def test_newest_first_means_by_packaged_date_not_by_which_row_was_stocked_first(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 3, "NEWER", "2025-06-01")
    add_stock(db, store, "SKU-1", 3, "OLDER", "2025-01-01")
    add_stock(db, store, "SKU-1", 3)   # legacy unbatched stock: sold first, so returned last
    order = record_sale(db, sale_payload(store, item("SKU-1", 8)))
    return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 4}))
    # sold: 3 unbatched, 3 OLDER, 2 NEWER; back: 2 NEWER, then 2 OLDER
    assert batches_of(db, store, "SKU-1") == {"NEWER": (3, 3, 0, "active"), "OLDER": (2, 2, 0, "active"),
                                              None: (0, 0, 0, "active")}


def test_a_return_naming_a_batch_takes_only_from_that_batch(db):
    store, order = fefo_split_sale(db)
    return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 2, "batch_lot": "OLD"}))
    assert batches_of(db, store, "SKU-1") == {"OLD": (2, 2, 0, "active"), "NEW": (5, 5, 0, "active")}
    with pytest.raises(ReturnExceedsSale) as refused:
        return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 2, "batch_lot": "OLD"}))
    assert refused.value.detail["over_returned"] == [{"line_no": 1, "batch": "OLD", "requested": 2, "returnable": 1}]


def test_returns_are_capped_at_what_was_sold_minus_already_returned_and_a_refusal_changes_nothing(db):
    store, order = fefo_split_sale(db)
    return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 5}))
    before = (batches_of(db, store, "SKU-1"), count_rows(db, "ocs_inventory_transactions"))
    with pytest.raises(ReturnExceedsSale) as refused:
        return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 4}))
    assert refused.value.sqlstate == "IV410"
    assert refused.value.detail["over_returned"] == [{"line_no": 1, "batch": None, "requested": 4, "returnable": 3}]
    assert (batches_of(db, store, "SKU-1"), count_rows(db, "ocs_inventory_transactions")) == before
    assert count_rows(db, "pos_returns") == 1
    return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 3}))
    assert batches_of(db, store, "SKU-1") == {"OLD": (3, 3, 0, "active"), "NEW": (10, 10, 0, "active")}


def test_a_void_returns_everything_left_marks_the_order_and_cannot_be_repeated(db):
    store, order = fefo_split_sale(db)
    return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 2}))
    result = return_sale(db, a_return(store, order, void=True, reason="customer changed mind"))
    assert result["kind"] == "void" and sum(line["quantity"] for line in result["lines"]) == 6
    assert batches_of(db, store, "SKU-1") == {"OLD": (3, 3, 0, "active"), "NEW": (10, 10, 0, "active")}
    assert db.execute("SELECT status FROM pos_orders WHERE store_id = %s", [store]).fetchone() == ("voided",)
    assert [row[1] for row in ledger_of(db, store, "SKU-1")][-2:] == ["void", "void"]
    with pytest.raises(ReturnExceedsSale):
        return_sale(db, a_return(store, order, void=True))


def test_a_defective_return_goes_to_quarantine_not_back_on_sale(db):
    store, order = fefo_split_sale(db)
    return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 2, "batch_lot": "NEW", "defective": True}))
    assert batches_of(db, store, "SKU-1")["NEW"] == (5, 7, 2, "active")
    assert ledger_of(db, store, "SKU-1")[-1] == ("NEW", "return", None, 2, 7)
    with pytest.raises(InsufficientStock) as refused:
        record_sale(db, sale_payload(store, item("SKU-1", 6, "NEW")))
    assert refused.value.detail["short_lines"][0]["available"] == 5


def test_an_order_is_found_by_receipt_number_and_unknown_orders_and_lines_are_not_found(db):
    store, order = fefo_split_sale(db)
    by_receipt = a_return(store, order, {"line_no": 1, "quantity": 1}, receipt_number=order["receipt_number"])
    del by_receipt["order_id"]
    assert return_sale(db, by_receipt)["order_id"] == order["id"]
    with pytest.raises(NotFound) as unknown_order:
        return_sale(db, {**by_receipt, "reference": "R2", "receipt_number": "NO-SUCH"})
    assert unknown_order.value.detail["missing"] == [{"store_id": store, "receipt_number": "NO-SUCH"}]
    with pytest.raises(NotFound) as unknown_line:
        return_sale(db, a_return(store, order, {"line_no": 2, "quantity": 1}))
    assert unknown_line.value.detail["missing"] == [{"order_id": order["id"], "line_no": 2, "batch": None}]
    assert count_rows(db, "pos_returns") == 1


def test_a_return_reference_counts_once(db):
    store, order = fefo_split_sale(db)
    payload = a_return(store, order, {"line_no": 1, "quantity": 1})
    first = return_sale(db, payload)
    assert return_sale(db, payload) == {**first, "replayed": True}
    assert sum(available for available, *_ in batches_of(db, store, "SKU-1").values()) == 6
    with pytest.raises(IdempotencyConflict):
        return_sale(db, {**payload, "lines": [{"line_no": 1, "quantity": 2}]})


def test_malformed_returns_name_every_problem_and_change_nothing(db):
    store, order = fefo_split_sale(db)
    with pytest.raises(InvalidSale) as refused:
        return_sale(db, {"store_id": "nope", "order_id": order["id"], "receipt_number": "R",
                         "lines": [{"line_no": 0, "quantity": 1.5, "defective": "yes"}, {"line_no": 0, "quantity": 1}]})
    assert [p["field"] for p in refused.value.detail["problems"]] == [
        "store_id", "reference", "order_id", "lines[0].line_no", "lines[0].quantity", "lines[0].defective",
        "lines[1].line_no"]
    with pytest.raises(InvalidSale) as void_with_lines:
        return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 1}, void=True))
    assert [p["field"] for p in void_with_lines.value.detail["problems"]] == ["lines"]
    assert count_rows(db, "pos_returns") == 0


def test_loyalty_points_come_back_in_proportion_and_a_void_takes_the_rest(db):
    store, order = fefo_split_sale(db, user_id=CUSTOMER, total=99.0)   # 8 units, 99 points
    first = return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 3}))
    assert first["loyalty"] == {"user_id": CUSTOMER, "points_due": 37, "points_reversed": 37, "shortfall": 0,
                                "balance": 62}   # floor(99 * 3 / 8)
    second = return_sale(db, a_return(store, order, {"line_no": 1, "quantity": 1}))
    assert second["loyalty"]["points_reversed"] == 12   # floor(99 * 4 / 8) - 37: no rounding drift
    void = return_sale(db, a_return(store, order, void=True))
    assert void["loyalty"]["points_reversed"] == 50 and void["loyalty"]["balance"] == 0
    kinds = db.execute("SELECT transaction_type, points FROM loyalty_transactions WHERE store_id = %s ORDER BY id",
                       [store]).fetchall()
    assert kinds == [("earn", 99), ("reversal", -37), ("reversal", -12), ("reversal", -50)]


def test_points_already_spent_are_never_taken_below_zero_and_the_shortfall_is_reported(db):
    store, order = fefo_split_sale(db, user_id=CUSTOMER, total=80.0)
    with db.transaction():   # the customer spends 70 of these points (a redemption, as a loyalty system records it)
        db.execute("UPDATE loyalty_accounts SET points = points - 70 WHERE store_id = %s AND user_id = %s",
                   [store, CUSTOMER])
        db.execute("INSERT INTO loyalty_transactions (user_id, store_id, order_id, transaction_type, points,"
                   " balance_after) VALUES (%s, %s, %s, 'redemption', -70, 10)", [CUSTOMER, store, order["id"]])
    result = return_sale(db, a_return(store, order, void=True))
    assert result["loyalty"] == {"user_id": CUSTOMER, "points_due": 80, "points_reversed": 10, "shortfall": 70,
                                 "balance": 0}


def test_a_return_racing_sales_of_the_same_batch_keeps_the_books(dsn, db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 200, "LOT-A")
    orders = [record_sale(db, sale_payload(store, item("SKU-1", 5))) for _ in range(10)]
    start = threading.Barrier(20)
    outcomes = []

    def till(work):
        with psycopg.connect(dsn) as conn:
            start.wait()
            outcomes.append(work(conn))

    works = [lambda conn, order=order: return_sale(conn, a_return(store, order, void=True)) for order in orders]
    works += [lambda conn: record_sale(conn, sale_payload(store, item("SKU-1", 3))) for _ in range(10)]
    threads = [threading.Thread(target=till, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 20
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (170, 170, 0, "active")}


def test_two_returns_of_the_same_units_at_once_cannot_both_succeed(dsn, db):
    store, order = fefo_split_sale(db)
    start = threading.Barrier(2)
    outcomes = []

    def clerk():
        with psycopg.connect(dsn) as conn:
            start.wait()
            try:
                outcomes.append(return_sale(conn, a_return(store, order, {"line_no": 1, "quantity": 8}))["kind"])
            except ReturnExceedsSale as refused:
                outcomes.append(refused.sqlstate)

    threads = [threading.Thread(target=clerk) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["IV410", "return"]
    assert batches_of(db, store, "SKU-1") == {"OLD": (3, 3, 0, "active"), "NEW": (10, 10, 0, "active")}


def test_clerks_returning_and_voiding_one_order_at_once_never_deadlock(dsn, db):
    # Through SQL, as a backend calls it, with no retry: the Python shell retries 40P01, SQL callers do not.
    store = new_store(db)
    add_stock(db, store, "SKU-1", 1000, "LOT-A")
    add_stock(db, store, "SKU-2", 1000, "LOT-B")
    rounds, clerks = 6, 8
    orders = [record_sale(db, sale_payload(store, item("SKU-1", 8), item("SKU-2", 8), user_id=CUSTOMER))
              for _ in range(rounds)]
    start = threading.Barrier(clerks)
    outcomes = []

    def clerk(n):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for order in orders:
                start.wait()
                payload = (a_return(store, order, void=True) if n % 4 == 0 else
                           a_return(store, order, {"line_no": 1 + n % 2, "quantity": 1 + n % 3}))
                try:
                    conn.execute("SELECT return_pos_sale(%s::jsonb)", [json.dumps(payload)])
                    outcomes.append("ok")
                except psycopg.Error as error:
                    outcomes.append(error.sqlstate)

    threads = [threading.Thread(target=clerk, args=(n,)) for n in range(clerks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == rounds * clerks
    assert set(outcomes) <= {"ok", "IV410"}, Counter(outcomes)
    # every order was voided by one of the two voiding clerks, so every unit is back
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (1000, 1000, 0, "active")}
    assert batches_of(db, store, "SKU-2") == {"LOT-B": (1000, 1000, 0, "active")}
