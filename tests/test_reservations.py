"""Reservations and parked carts (issue 17): a sale recorded with status "reserved" or "parked" holds its units
by batch - available goes down, on hand does not, no ledger row - until complete_reservation sells them,
cancel_reservation gives them back, or release_expired_reservations releases them after the store's time.
The books balance after every test (conftest), the reservations' invariant among them."""

import threading
from decimal import Decimal

import psycopg
import pytest

from conftest import add_stock, catalogue, count_rows, item, ledger_of, new_store, record_sale, sale_payload, stock_of
from posledger import (
    BatchBlocked,
    IdempotencyConflict,
    InsufficientStock,
    InvalidSale,
    LimitExceeded,
    ReservationClosed,
    adjust_inventory,
    cancel_reservation,
    complete_reservation,
    count_inventory,
    release_expired_reservations,
    return_sale,
    set_batch_status,
)


def reserve(db, store, *items, status="reserved", **fields):
    return record_sale(db, sale_payload(store, *items, status=status, **fields))


def key(store, reservation):
    return {"store_id": store, "receipt_number": reservation["receipt_number"]}


def expire_now(db, store, receipt_number):
    """Move a reservation's end into the past, as time would."""
    db.execute("UPDATE pos_orders SET expires_at = now() - interval '1 second'"
               " WHERE store_id = %s AND receipt_number = %s", [store, receipt_number])
    db.commit()


def test_a_reservation_holds_units_by_batch_without_a_ledger_row(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 3, "LOT-OLD", "2026-01-01")
    add_stock(db, store, "SKU-1", 5, "LOT-NEW", "2026-06-01")
    ledger_before = count_rows(db, "ocs_inventory_transactions")
    result = reserve(db, store, item("SKU-1", 4), user_id="8a8e2d4e-6f4e-4a55-9d3c-0e8e5d3c1a11")
    assert result["status"] == "reserved" and result["loyalty"] is None
    assert [(h["batch"], h["quantity_held"], h["remaining"]) for h in result["held"]] == [
        ("LOT-OLD", 3, 0), ("LOT-NEW", 1, 4)]   # the same FEFO as a sale
    assert stock_of(db, store, "SKU-1") == {"LOT-OLD": (0, 3), "LOT-NEW": (4, 5)}
    assert count_rows(db, "ocs_inventory_transactions") == ledger_before
    row = db.execute("SELECT expires_at - created_at FROM pos_orders WHERE id = %s", [result["id"]]).fetchone()
    assert row is not None and row[0].total_seconds() == 24 * 3600   # the store's default reservation time
    view = db.execute("SELECT receipt_number, status, units, batches, overdue FROM open_reservations"
                      " WHERE store_id = %s", [store]).fetchall()
    assert view == [(result["receipt_number"], "reserved", 4, 2, False)]


def test_completing_sells_exactly_the_held_units_with_ledger_and_points(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    customer = "8a8e2d4e-6f4e-4a55-9d3c-0e8e5d3c1a11"
    reservation = reserve(db, store, item("SKU-1", 2), user_id=customer, total=20.0)
    record_sale(db, sale_payload(store, item("SKU-1", 3)))   # the rest sells meanwhile; the held two stay
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (0, 2)}
    sale = complete_reservation(db, key(store, reservation))
    assert sale["status"] == "completed" and sale["id"] == reservation["id"]
    assert sale["inventory_updates"]["successful"] == [
        {"sku": "SKU-1", "batch": "LOT-A", "quantity_deducted": 2, "remaining": 0}]
    assert sale["loyalty"]["points_earned"] == 20
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (0, 0)}
    assert [row[1:4] for row in ledger_of(db, store, "SKU-1")][-2:] == [("sale", None, -3), ("sale", None, -2)]
    again = complete_reservation(db, key(store, reservation))
    assert again == {**sale, "replayed": True}
    assert count_rows(db, "loyalty_transactions") == 1
    # A completed reservation is a sale like any other: it can be returned.
    back = return_sale(db, {"store_id": store, "reference": "RET-1", "order_id": sale["id"],
                            "lines": [{"line_no": 1, "quantity": 1}]})
    assert back["lines"][0]["quantity"] == 1


def test_cancelling_gives_the_units_back_once(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    reservation = reserve(db, store, item("SKU-1", 5), status="parked")
    with pytest.raises(InsufficientStock):
        record_sale(db, sale_payload(store, item("SKU-1", 1)))   # all five are promised
    cancellation = {**key(store, reservation), "cancelled_by": "cashier-7", "reason": "customer left"}
    result = cancel_reservation(db, cancellation)
    assert result["status"] == "cancelled"
    assert result["released"] == [{"sku": "SKU-1", "batch": "LOT-A", "quantity_released": 5}]
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (5, 5)}
    assert cancel_reservation(db, cancellation) == {**result, "replayed": True}
    with pytest.raises(IdempotencyConflict):
        cancel_reservation(db, {**cancellation, "cancelled_by": "someone else"})
    with pytest.raises(ReservationClosed) as closed:
        complete_reservation(db, key(store, reservation))
    assert closed.value.detail["status"] == "cancelled"
    assert record_sale(db, sale_payload(store, item("SKU-1", 5)))["status"] == "completed"


def test_a_parked_cart_has_its_own_shorter_time_set_by_the_store(db):
    store = new_store(db, parked_cart_minutes=10, reservation_minutes=120)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    parked = reserve(db, store, item("SKU-1", 1), status="parked")
    reserved = reserve(db, store, item("SKU-1", 1))
    minutes = dict(db.execute("SELECT status, extract(epoch FROM expires_at - created_at) / 60 FROM pos_orders"
                              " WHERE id = ANY(%s)", [[parked["id"], reserved["id"]]]).fetchall())
    assert minutes == {"parked": 10, "reserved": 120}


def test_expired_reservations_are_released_in_bulk_and_recorded(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    late = [reserve(db, store, item("SKU-1", 2)) for _ in range(3)]
    on_time = reserve(db, store, item("SKU-1", 1))
    for reservation in late:
        expire_now(db, store, reservation["receipt_number"])
    with pytest.raises(ReservationClosed) as closed:   # past its end, even before the scheduler ran
        complete_reservation(db, key(store, late[0]))
    assert closed.value.detail["status"] == "reserved"
    assert release_expired_reservations(db, store, max_orders=2) == {
        "store_id": store, "released": 2, "units": 4, "more": True}
    assert release_expired_reservations(db, store) == {"store_id": store, "released": 1, "units": 2, "more": False}
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (9, 10)}
    released = db.execute("SELECT DISTINCT h.released_as, o.status FROM reservation_holds h"
                          " JOIN pos_orders o ON o.store_id = h.store_id AND o.id = h.order_id"
                          " WHERE o.store_id = %s AND o.id = ANY(%s)",   # by store: on Citus, one shard
                          [store, [r["id"] for r in late]]).fetchall()
    assert released == [("expired", "expired")]
    # Replaying the reservation's own call tells what became of it; cancelling it answers with the expiry.
    replay = record_sale(db, db.execute("SELECT payload FROM pos_orders WHERE id = %s", [late[0]["id"]]).fetchone()[0])
    assert replay["status"] == "expired" and replay["replayed"]
    assert cancel_reservation(db, {**key(store, late[0]), "cancelled_by": "x"})["status"] == "expired"
    assert complete_reservation(db, key(store, on_time))["status"] == "completed"


def test_a_reservation_obeys_the_sale_rules_and_is_always_strict(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    with pytest.raises(InsufficientStock):
        reserve(db, store, item("SKU-1", 3))
    with pytest.raises(InvalidSale) as invalid:
        reserve(db, store, item("SKU-1", 1), policy="lenient", authorized_by="mgr",
                occurred_at="2026-11-30T10:00:00-05:00")
    assert {p["field"] for p in invalid.value.detail["problems"]} == {"policy", "occurred_at"}
    catalogue(db, "FLOWER-3.5G", "dried", net_content=Decimal("3.5"), net_unit="g")
    add_stock(db, store, "FLOWER-3.5G", 20, "LOT-F")
    with pytest.raises(LimitExceeded):
        reserve(db, store, item("FLOWER-3.5G", 9))   # 31.5 g: the law judges a promise as it judges a sale
    assert count_rows(db, "reservation_holds") == 0


def test_completing_a_reservation_whose_batch_was_recalled_is_refused_and_it_stays_open(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-BAD")
    reservation = reserve(db, store, item("SKU-1", 2))
    set_batch_status(db, {"reference": f"RECALL-{store}", "batch_lot": "LOT-BAD", "status": "recalled",
                          "reason": "recall", "actor": "compliance", "store_id": store})
    with pytest.raises(BatchBlocked) as blocked:
        complete_reservation(db, key(store, reservation))
    assert blocked.value.detail["blocked"] == [{"sku": "SKU-1", "batch": "LOT-BAD", "status": "recalled"}]
    assert db.execute("SELECT status FROM pos_orders WHERE id = %s", [reservation["id"]]).fetchone() == ("reserved",)
    cancel_reservation(db, {**key(store, reservation), "cancelled_by": "cashier"})
    # The recalled batch's units stay unavailable; the two held ones are simply no longer promised.
    assert stock_of(db, store, "SKU-1") == {"LOT-BAD": (0, 5)}


def test_adjustments_and_counts_cannot_take_promised_units(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    reserve(db, store, item("SKU-1", 4))
    with pytest.raises(InsufficientStock):
        adjust_inventory(db, {"store_id": store, "reference": "ADJ-1", "reason_code": "loss_theft", "note": "n",
                              "actor": "a", "lines": [{"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": -2}]})
    with pytest.raises(InsufficientStock):
        count_inventory(db, {"store_id": store, "reference": "CNT-1", "reason_code": "physical_count", "note": "n",
                             "actor": "a", "lines": [{"sku": "SKU-1", "batch_lot": "LOT-A", "counted": 3}]})
    count_inventory(db, {"store_id": store, "reference": "CNT-2", "reason_code": "physical_count", "note": "n",
                         "actor": "a", "lines": [{"sku": "SKU-1", "batch_lot": "LOT-A", "counted": 6}]})
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (2, 6)}


def test_a_reservation_and_a_sale_racing_for_the_last_units_never_both_win(db, posledger_dsn):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 3, "LOT-A")
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def attempt(status):
        with psycopg.connect(posledger_dsn) as conn:
            start.wait()
            try:
                record_sale(conn, sale_payload(store, item("SKU-1", 2), status=status))
                outcomes.append(status)
            except InsufficientStock:
                outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(status,)) for status in ("reserved", "completed")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) in (["completed", "refused"], ["refused", "reserved"])
    assert stock_of(db, store, "SKU-1") == ({"LOT-A": (1, 1)} if "completed" in outcomes else {"LOT-A": (1, 3)})


def test_two_schedulers_at_once_release_each_reservation_once(db, posledger_dsn):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 400, "LOT-A")
    add_stock(db, store, "SKU-2", 400, "LOT-B")
    receipts = [reserve(db, store, item("SKU-1", 1), item("SKU-2", 1))["receipt_number"] for _ in range(200)]
    db.execute("UPDATE pos_orders SET expires_at = now() - interval '1 second' WHERE store_id = %s", [store])
    db.commit()
    totals: list[dict] = []
    start = threading.Barrier(2)

    def scheduler():
        with psycopg.connect(posledger_dsn) as conn:
            start.wait()
            done = {"released": 0, "units": 0}
            while True:
                result = release_expired_reservations(conn, store, max_orders=25)
                done["released"] += result["released"]
                done["units"] += result["units"]
                if result["released"] == 0:
                    break
            totals.append(done)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(t["released"] for t in totals) == len(receipts)
    assert sum(t["units"] for t in totals) == 2 * len(receipts)
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (400, 400)}
    assert db.execute("SELECT count(*) FROM reservation_holds WHERE store_id = %s AND released_as = 'expired'",
                      [store]).fetchone() == (400,)
