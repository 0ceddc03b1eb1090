"""The ledger invariant holds whatever path stock takes, and the ledger's past cannot be rewritten."""

import json
import uuid

import psycopg
import pytest

from conftest import add_stock, item, new_store, record_sale, sale_payload


def ledger(db, inventory_id):
    rows = db.execute("SELECT transaction_type, quantity, quantity_after FROM ocs_inventory_transactions"
                      " WHERE inventory_id = %s ORDER BY id", [inventory_id]).fetchall()
    db.commit()
    return rows


def test_a_bare_insert_is_ledgered_as_an_opening_balance(db, store):
    row = add_stock(db, store, "SKU", 12)
    assert ledger(db, row) == [("opening", 12, 12)]


def test_a_row_inserted_empty_has_no_ledger_row(db, store):
    assert ledger(db, add_stock(db, store, "SKU", 0)) == []


def test_a_manual_update_of_on_hand_is_ledgered_as_an_adjustment(db, store):
    row = add_stock(db, store, "SKU", 12)
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 9, quantity_available = 9 WHERE id = %s", [row])
    db.execute("UPDATE ocs_inventory SET quantity_available = 7, quantity_quarantined = 2 WHERE id = %s",
               [row])  # a hold, not a movement
    db.commit()
    assert ledger(db, row) == [("opening", 12, 12), ("manual_adjustment", -3, 9)]
    actor = db.execute("SELECT actor, db_user FROM ocs_inventory_transactions ORDER BY id DESC LIMIT 1").fetchone()
    assert actor == ("postgres", "postgres")


def test_a_manual_update_after_a_sale_in_the_same_transaction_is_still_an_adjustment(db, store):
    row = add_stock(db, store, "SKU", 10)
    with db.transaction():
        db.execute("SELECT record_pos_sale(%s)", [psycopg.types.json.Jsonb(sale_payload(store, item("SKU", 2)))])
        db.execute("UPDATE ocs_inventory SET quantity_on_hand = 7, quantity_available = 7 WHERE id = %s", [row])
    assert ledger(db, row) == [("opening", 10, 10), ("sale", -2, 8), ("manual_adjustment", -1, 7)]


@pytest.mark.parametrize("statement", [
    "UPDATE ocs_inventory_transactions SET quantity = 100",
    "DELETE FROM ocs_inventory_transactions",
    "TRUNCATE ocs_inventory_transactions CASCADE",
    "UPDATE loyalty_transactions SET points = 1",
    "DELETE FROM loyalty_transactions",
])
def test_the_ledgers_are_append_only(db, store, statement):
    add_stock(db, store, "SKU", 10)
    record_sale(db, sale_payload(store, item("SKU", 1), user_id="0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"))
    with pytest.raises(psycopg.Error) as refused:
        db.execute(statement)
    db.rollback()
    assert refused.value.diag.sqlstate == "IV403"
    assert json.loads(refused.value.diag.message_detail)["operation"] in {"UPDATE", "DELETE", "TRUNCATE"}


@pytest.mark.parametrize("statement", [
    "UPDATE ocs_inventory SET batch_lot = 'OTHER-LOT'",
    "UPDATE ocs_inventory SET sku = 'OTHER-SKU'",
    "UPDATE ocs_inventory SET store_id = (SELECT s.id FROM stores s WHERE s.id <> ocs_inventory.store_id LIMIT 1)",
    "UPDATE ocs_inventory SET id = DEFAULT",
])
def test_a_stock_rows_identity_never_changes(db, store, statement):
    new_store(db)
    row = add_stock(db, store, "SKU", 10, "LOT-A")
    with pytest.raises(psycopg.Error) as refused:
        db.execute(statement)
    db.rollback()
    assert refused.value.diag.sqlstate == "IV403"
    assert json.loads(refused.value.diag.message_detail)["id"] == row
    db.execute("UPDATE ocs_inventory SET location_code = 'SHELF-2', batch_lot = batch_lot")  # the rest may change
    db.commit()


@pytest.mark.parametrize("statement, sqlstate", [
    ("UPDATE ocs_inventory SET quantity_on_hand = -1, quantity_available = 0", "23514"),
    ("UPDATE ocs_inventory SET quantity_available = quantity_on_hand + 1", "23514"),
    ("INSERT INTO ocs_inventory (store_id, sku, quantity_on_hand, quantity_available)"
     " SELECT store_id, sku, 1, 1 FROM ocs_inventory", "23505"),
])
def test_constraints_make_bad_stock_states_impossible(db, store, statement, sqlstate):
    add_stock(db, store, "SKU", 5)  # legacy unbatched: a second unbatched row of SKU must be refused
    with pytest.raises(psycopg.Error) as refused:
        db.execute(statement)
    db.rollback()
    assert refused.value.diag.sqlstate == sqlstate


def test_a_batch_is_one_row_per_store(db, store):
    add_stock(db, store, "SKU", 5, "LOT")
    with pytest.raises(psycopg.errors.UniqueViolation):
        add_stock(db, store, "SKU", 5, "LOT")
    db.rollback()
    add_stock(db, new_store(db), "SKU", 5, "LOT")


def test_the_discrepancy_view_finds_an_unledgered_change_until_it_is_corrected(db, store):
    query = "SELECT store_id, sku, batch_lot, quantity_on_hand, ledger_total FROM inventory_discrepancies"
    row = add_stock(db, store, "SKU", 10, "LOT")
    add_stock(db, store, "SKU", 4)  # an unbatched row of the same sku: the query must not mix them up
    record_sale(db, sale_payload(store, item("SKU", 3, "LOT")))
    assert db.execute(query).fetchall() == []
    # A change that bypassed the trigger, as a restore of an old dump could leave behind.
    db.execute("ALTER TABLE ocs_inventory DISABLE TRIGGER ocs_inventory_ledger_change")
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 5, quantity_available = 5 WHERE id = %s", [row])
    db.execute("ALTER TABLE ocs_inventory ENABLE TRIGGER ocs_inventory_ledger_change")
    assert db.execute(query).fetchall() == [(uuid.UUID(store), "SKU", "LOT", 5, 7)]
    # Resolved by appending the correcting movement, never by editing the ledger.
    db.execute("INSERT INTO ocs_inventory_transactions (store_id, inventory_id, sku, batch_lot, transaction_type,"
               " quantity, quantity_after, notes) VALUES (%s, %s, 'SKU', 'LOT', 'manual_adjustment', -2, 5,"
               " 'unledgered change found by reconciliation')", [store, row])
    assert db.execute(query).fetchall() == []
    db.commit()
