"""docs/runbook.md, step by step, against a database where stock was changed behind the ledger's back."""

from conftest import batches_of, new_store, readme_sql, receive, shipment_line

STORE = "5071d685-00dc-4e56-bb11-36e31b305c50"


def step(number):
    return readme_sql(f"-- {number}.", doc="docs/runbook.md")


def test_the_runbook_finds_explains_and_resolves_a_planted_discrepancy(db):
    new_store(db, id=STORE)
    new_store(db)   # a second store with the same sku and lot must not disturb the first's numbers
    receive(db, STORE, shipment_line("OCS-PREROLL-1G", 10, "LOT-B"), shipment_line("OCS-PREROLL-1G", 5, "LOT-A"))
    db.execute("ALTER TABLE ocs_inventory DISABLE TRIGGER ocs_inventory_ledger_change")
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 12, quantity_available = 12 WHERE batch_lot = 'LOT-B'")
    db.execute("ALTER TABLE ocs_inventory ENABLE TRIGGER ocs_inventory_ledger_change")
    db.commit()

    discrepancies, negative = (db.execute(query).fetchall() for query in step(1).split(";")[:2])
    assert negative == []
    found = discrepancies
    assert [(row[2], row[3], row[7]) for row in found] == [("OCS-PREROLL-1G", "LOT-B", 2)]
    history = db.execute(step(2)).fetchall()
    assert [(row[2], row[4], row[5], row[6]) for row in history] == [("receipt", 10, 10, 10)]

    db.execute(step(4))
    # The correction was written into the ledger directly: sealed into the batch's chain, listed for review.
    assert db.execute("SELECT kind, sku, quantity FROM verify_ledger() v JOIN ocs_inventory_transactions t"
                      " ON t.id = v.transaction_id").fetchall() == [("review", "OCS-PREROLL-1G", 2)]
    count = db.execute(step(5)).fetchone()[0]
    db.commit()
    assert count["adjustments"][0]["quantity"] == -3
    assert db.execute(step(6)).fetchone() == (0,)
    assert batches_of(db, STORE, "OCS-PREROLL-1G")["LOT-B"] == (9, 9, 0, "active")
