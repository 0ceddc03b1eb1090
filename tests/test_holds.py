"""set_batch_status: holds and recalls. Only an active batch is sellable: a sale naming a held batch is
refused (IV423), FEFO passes it by, and a release makes its units available again."""

import threading
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import (
    add_stock,
    batches_of,
    count_rows,
    item,
    new_store,
    quarantine_by_return,
    receive,
    record_sale,
    sale_payload,
    shipment_line,
)
from posledger import BatchBlocked, InsufficientStock, InvalidSale, NotFound, set_batch_status

# A status change's reference is global (a recall spans stores), and the distributed pass shares one
# database: each test has references of its own.
REF: dict[str, str] = {}


@pytest.fixture(autouse=True)
def fresh_references():
    token = uuid.uuid4().hex[:8]
    REF.update({name: f"{name}-{token}" for name in ("RECALL-1", "RELEASE-1", "RECALL-2")})


def status_change(batch_lot, status, reference=None, **fields):
    payload = {"reference": reference or REF["RECALL-1"], "batch_lot": batch_lot, "status": status,
               "reason": "Health Canada recall 2026-11", "actor": "compliance-1"}
    payload.update(fields)
    return payload


@pytest.mark.whole_database
def test_a_recall_holds_the_lot_in_every_store_and_records_who_and_why(db):
    stores = [new_store(db), new_store(db)]
    for store in stores:
        add_stock(db, store, "SKU-1", 5, "LOT-BAD")
        add_stock(db, store, "SKU-1", 5, "LOT-OK")
    result = set_batch_status(db, status_change("LOT-BAD", "recalled"))
    assert result["changed_count"] == 2
    for store in stores:
        assert batches_of(db, store, "SKU-1") == {"LOT-BAD": (0, 5, 0, "recalled"), "LOT-OK": (5, 5, 0, "active")}
    rows = db.execute("SELECT from_status, to_status, quantity_on_hand, reason, actor FROM batch_status_changes"
                      ).fetchall()
    assert rows == [("active", "recalled", 5, "Health Canada recall 2026-11", "compliance-1")] * 2
    assert count_rows(db, "ocs_inventory_transactions") == 4   # a status is not a stock movement


def test_a_sale_naming_a_held_batch_is_refused_and_fefo_skips_it(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "OLDEST", "2025-01-01")
    add_stock(db, store, "SKU-1", 5, "NEWER", "2025-06-01")
    set_batch_status(db, status_change("OLDEST", "quarantined", store_id=store))
    with pytest.raises(BatchBlocked) as refused:
        record_sale(db, sale_payload(store, item("SKU-1", 1, "OLDEST"), item("SKU-1", 1, "NEWER")))
    assert refused.value.sqlstate == "IV423"
    assert refused.value.detail == {"blocked": [{"sku": "SKU-1", "batch": "OLDEST", "status": "quarantined"}]}
    result = record_sale(db, sale_payload(store, item("SKU-1", 2)))
    assert [(u["batch"], u["quantity_deducted"]) for u in result["inventory_updates"]["successful"]] == [("NEWER", 2)]


def test_a_lenient_sale_does_not_sell_a_held_batch_either(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    set_batch_status(db, status_change("LOT-A", "recalled"))
    with pytest.raises(BatchBlocked):
        record_sale(db, sale_payload(store, item("SKU-1", 1, "LOT-A"), policy="lenient", authorized_by="mgr"))


def test_a_release_makes_the_units_available_again_but_not_the_quarantined_ones(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    quarantine_by_return(db, store, "SKU-1", 1)
    set_batch_status(db, status_change("LOT-A", "quarantined"))
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (0, 5, 1, "quarantined")}
    result = set_batch_status(db, status_change("LOT-A", "active", reference=REF["RELEASE-1"],
                                                reason="lab retest passed"))
    assert result["changed"][0]["from"] == "quarantined"
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (4, 5, 1, "active")}


@pytest.mark.whole_database
def test_a_status_change_reference_counts_once_and_a_no_change_is_recorded_as_none(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    first = set_batch_status(db, status_change("LOT-A", "recalled"))
    assert set_batch_status(db, status_change("LOT-A", "recalled")) == {**first, "replayed": True}
    again = set_batch_status(db, status_change("LOT-A", "recalled", reference=REF["RECALL-2"]))
    assert again["changed_count"] == 0
    assert count_rows(db, "batch_status_changes") == 1


def test_unknown_lots_are_not_found_and_malformed_changes_name_every_problem(db):
    with pytest.raises(NotFound) as unknown:
        set_batch_status(db, status_change("LOT-NONE", "recalled", sku="SKU-1"))
    assert unknown.value.detail["missing"] == [{"sku": "SKU-1", "batch": "LOT-NONE"}]
    with pytest.raises(InvalidSale) as refused:
        set_batch_status(db, {"batch_lot": "", "status": "destroyed", "store_id": 7})
    assert [p["field"] for p in refused.value.detail["problems"]] == [
        "reference", "batch_lot", "status", "reason", "actor", "store_id"]
    assert count_rows(db, "batch_status_requests") == 0


def test_a_recall_committed_while_a_sale_waits_for_its_lock_refuses_that_sale(dsn, db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    outcome = []
    with psycopg.connect(dsn) as recall:
        recall.execute("SELECT set_batch_status(%s)", [Jsonb(status_change("LOT-A", "recalled"))])

        def till():
            with psycopg.connect(dsn) as conn:
                try:
                    record_sale(conn, sale_payload(store, item("SKU-1", 1, "LOT-A")), attempts=1)
                except BatchBlocked as refused:
                    outcome.append(refused.sqlstate)

        thread = threading.Thread(target=till)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()   # waiting for the recall's row lock
        recall.commit()
        thread.join()
    assert outcome == ["IV423"]


@pytest.mark.whole_database
def test_a_recalled_lot_received_later_anywhere_is_received_held_and_cannot_be_sold(db):
    first, later = new_store(db), new_store(db)
    receive(db, first, shipment_line("SKU-1", 5, "LOT-BAD"))
    set_batch_status(db, status_change("LOT-BAD", "recalled"))
    other_store = receive(db, later, shipment_line("SKU-1", 4, "LOT-BAD"), shipment_line("SKU-1", 6, "LOT-OK"))
    other_sku = receive(db, first, shipment_line("SKU-2", 3, "LOT-BAD"))
    assert other_store["batches"] == [
        {"sku": "SKU-1", "batch": "LOT-BAD", "status": "recalled", "quantity_on_hand": 4, "quantity_available": 0,
         "held_by": REF["RECALL-1"]},
        {"sku": "SKU-1", "batch": "LOT-OK", "status": "active", "quantity_on_hand": 6, "quantity_available": 6}]
    assert other_sku["batches"][0]["status"] == "recalled"
    with pytest.raises(BatchBlocked):
        record_sale(db, sale_payload(later, item("SKU-1", 1, "LOT-BAD")))
    with pytest.raises(InsufficientStock):
        record_sale(db, sale_payload(first, item("SKU-2", 1)))   # FEFO passes the held row by
    history = db.execute("SELECT from_status, to_status, reference, quantity_on_hand FROM batch_status_changes"
                         " WHERE store_id = %s", [later]).fetchall()
    assert history == [("active", "recalled", REF["RECALL-1"], 4)]

    released = set_batch_status(db, status_change("LOT-BAD", "active", reference=REF["RELEASE-1"], reason="lab retest"))
    assert released["changed_count"] == 3
    assert batches_of(db, later, "SKU-1")["LOT-BAD"] == (4, 4, 0, "active")
    assert receive(db, later, shipment_line("SKU-1", 1, "LOT-BAD"))["batches"][0]["status"] == "active"
    receive(db, first, shipment_line("SKU-3", 1, "LOT-BAD"))
    assert batches_of(db, first, "SKU-3") == {"LOT-BAD": (1, 1, 0, "active")}


def test_a_hold_in_one_store_follows_the_lot_in_that_store_only(db):
    held, elsewhere = new_store(db), new_store(db)
    receive(db, held, shipment_line("SKU-1", 5, "LOT-A"))
    set_batch_status(db, status_change("LOT-A", "quarantined", store_id=held))
    receive(db, held, shipment_line("SKU-2", 2, "LOT-A"))
    receive(db, elsewhere, shipment_line("SKU-1", 2, "LOT-A"))
    assert batches_of(db, held, "SKU-2") == {"LOT-A": (0, 2, 0, "quarantined")}
    assert batches_of(db, elsewhere, "SKU-1") == {"LOT-A": (2, 2, 0, "active")}


def test_a_release_in_one_store_leaves_the_lots_recall_in_force_for_new_stock(db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 5, "LOT-A"))
    set_batch_status(db, status_change("LOT-A", "recalled"))
    set_batch_status(db, status_change("LOT-A", "active", reference=REF["RELEASE-1"], store_id=store))
    receive(db, store, shipment_line("SKU-1", 1, "LOT-A"), shipment_line("SKU-2", 1, "LOT-A"))
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (6, 6, 0, "active")}   # released on purpose, topped up
    assert batches_of(db, store, "SKU-2") == {"LOT-A": (0, 1, 0, "recalled")}  # new stock of the lot: recalled


def test_a_receipt_racing_a_recall_of_its_lot_is_received_held(dsn, db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 5, "LOT-A"))
    with psycopg.connect(dsn) as recall:
        recall.execute("SELECT set_batch_status(%s)", [Jsonb(status_change("LOT-A", "recalled"))])

        def receiving():
            with psycopg.connect(dsn) as conn:
                receive(conn, store, shipment_line("SKU-2", 3, "LOT-A"))

        thread = threading.Thread(target=receiving)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()   # waiting for the recall of its lot to end
        recall.commit()
        thread.join()
    assert batches_of(db, store, "SKU-2") == {"LOT-A": (0, 3, 0, "recalled")}
