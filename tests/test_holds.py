"""set_batch_status: holds and recalls. Only an active batch is sellable: a sale naming a held batch is
refused (IV423), FEFO passes it by, and a release makes its units available again."""

import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import add_stock, batches_of, count_rows, item, new_store, quarantine_by_return, record_sale, sale_payload
from posledger import BatchBlocked, InvalidSale, NotFound, set_batch_status


def status_change(batch_lot, status, reference="RECALL-1", **fields):
    payload = {"reference": reference, "batch_lot": batch_lot, "status": status,
               "reason": "Health Canada recall 2026-11", "actor": "compliance-1"}
    payload.update(fields)
    return payload


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
    result = set_batch_status(db, status_change("LOT-A", "active", reference="RELEASE-1", reason="lab retest passed"))
    assert result["changed"][0]["from"] == "quarantined"
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (4, 5, 1, "active")}


def test_a_status_change_reference_counts_once_and_a_no_change_is_recorded_as_none(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    first = set_batch_status(db, status_change("LOT-A", "recalled"))
    assert set_batch_status(db, status_change("LOT-A", "recalled")) == {**first, "replayed": True}
    again = set_batch_status(db, status_change("LOT-A", "recalled", reference="RECALL-2"))
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
