"""The stock ledger's history cannot be rewritten unseen: each row is sealed into its stock row's hash chain
as it is written, verify_ledger() names the first broken link of each chain, and a store's digest kept
outside the database exposes even a rewrite that recomputed every hash."""

import uuid

import psycopg
import pytest
import yoyo

from conftest import item, new_store, posledger_cli, receive, record_sale, sale_payload, shipment_line
from posledger.migrations import SQL_DIR, migrate, yoyo_uri


def problems(db, kind="broken"):
    rows = db.execute("SELECT inventory_id, transaction_id, problem FROM verify_ledger() WHERE kind = %s"
                      " ORDER BY inventory_id", [kind]).fetchall()
    db.commit()
    return [(inventory_id, transaction_id, problem.split(":")[0]) for inventory_id, transaction_id, problem in rows]


def a_trading_store(db):
    """A store with two batches, each with a receipt and two sales: two chains of three rows."""
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 10, "LOT-A"), shipment_line("SKU-2", 10, "LOT-B"))
    for _ in range(2):
        record_sale(db, sale_payload(store, item("SKU-1", 1), item("SKU-2", 2)))
    rows = db.execute("SELECT inventory_id, id FROM ocs_inventory_transactions ORDER BY inventory_id, id").fetchall()
    db.commit()
    return store, rows


def as_owner_without_guards(db, statement, *params):
    """What a table's owner can always do: set the append-only trigger aside, rewrite, put it back."""
    db.execute("ALTER TABLE ocs_inventory_transactions DISABLE TRIGGER ocs_inventory_transactions_append_only")
    db.execute(statement, params)
    db.execute("ALTER TABLE ocs_inventory_transactions ENABLE TRIGGER ocs_inventory_transactions_append_only")
    db.commit()


def test_every_row_is_sealed_into_its_stock_rows_chain_as_it_is_written(db):
    _, rows = a_trading_store(db)
    chains = db.execute("""
        SELECT inventory_id, origin, prev_hash IS NULL,
               prev_hash = lag(row_hash) OVER (PARTITION BY inventory_id ORDER BY id), row_hash = ocs_ledger_hash(t)
        FROM ocs_inventory_transactions t ORDER BY inventory_id, id""").fetchall()
    assert len(chains) == len(rows) == 6
    assert [(origin, first, linked, sealed) for _, origin, first, linked, sealed in chains] == [
        ("posledger", True, None, True), ("posledger", False, True, True), ("posledger", False, True, True)] * 2
    assert problems(db) == [] and problems(db, "review") == []


@pytest.mark.tampers
def test_a_column_rewritten_by_alter_table_is_named_at_the_first_altered_row(db):
    _, rows = a_trading_store(db)
    db.execute("ALTER TABLE ocs_inventory_transactions ALTER COLUMN notes TYPE text"
               " USING CASE WHEN transaction_type = 'sale' THEN 'a gift' ELSE notes END")
    db.commit()
    assert problems(db) == [(rows[0][0], rows[1][1], "altered"), (rows[3][0], rows[4][1], "altered")]


@pytest.mark.tampers
def test_a_row_removed_with_the_guard_set_aside_breaks_the_link_after_it(db):
    _, rows = a_trading_store(db)
    as_owner_without_guards(db, "DELETE FROM ocs_inventory_transactions WHERE id = %s", rows[1][1])
    assert problems(db) == [(rows[2][0], rows[2][1], "unlinked")]


@pytest.mark.tampers
def test_a_balanced_forged_pair_dated_2020_is_flagged_for_review(db):
    store, rows = a_trading_store(db)
    for quantity, kind in ((-4, "sale"), (4, "receipt")):
        db.execute("""
            INSERT INTO ocs_inventory_transactions (store_id, inventory_id, sku, batch_lot, transaction_type,
                                                    quantity, quantity_after, created_at)
            SELECT store_id, inventory_id, sku, batch_lot, %s, %s, quantity_after + %s, '2020-01-01'
            FROM ocs_inventory_transactions WHERE id = (SELECT max(id) FROM ocs_inventory_transactions
                                                        WHERE inventory_id = %s)""",
                   [kind, quantity, quantity, rows[0][0]])
    db.commit()
    forged = [row for (row,) in db.execute("SELECT id FROM ocs_inventory_transactions WHERE created_at < '2021-01-01'"
                                           " ORDER BY id")]
    assert problems(db, "review") == [(rows[0][0], forged[0], "written into the ledger directly, not by a change"
                                                               " of stock"),
                                      (rows[0][0], forged[1], "written into the ledger directly, not by a change"
                                                               " of stock")]
    assert problems(db) == []   # balanced and linked: only the flag (and a digest kept outside) shows it


def test_disabled_guards_are_named(db):
    a_trading_store(db)
    db.execute("ALTER TABLE ocs_inventory_transactions DISABLE TRIGGER ocs_inventory_transactions_seal")
    db.execute("ALTER TABLE ocs_inventory DISABLE TRIGGER ocs_inventory_ledger_change")
    db.commit()
    assert sorted(problem for _, _, problem in problems(db)) == [
        "trigger ocs_inventory_ledger_change on ocs_inventory is disabled",
        "trigger ocs_inventory_transactions_seal on ocs_inventory_transactions is disabled"]
    db.execute("ALTER TABLE ocs_inventory_transactions ENABLE TRIGGER ocs_inventory_transactions_seal")
    db.execute("ALTER TABLE ocs_inventory ENABLE TRIGGER ocs_inventory_ledger_change")
    db.commit()


@pytest.mark.tampers
def test_a_digest_kept_outside_exposes_a_rewrite_that_recomputed_every_hash(db):
    store, rows = a_trading_store(db)
    kept = db.execute("SELECT * FROM ledger_digest(now() + interval '1 second')").fetchall()
    db.commit()
    assert [(s, chains, n) for s, _, chains, n, _ in kept] == [(uuid.UUID(store), 2, 6)]
    # The owner rewrites the notes of a chain and reseals it in order: every link verifies again ...
    as_owner_without_guards(db, "UPDATE ocs_inventory_transactions SET notes = 'rewritten' WHERE inventory_id = %s",
                            rows[0][0])
    for _, transaction_id in rows[:3]:
        as_owner_without_guards(db, """
            UPDATE ocs_inventory_transactions t SET prev_hash = (
                SELECT p.row_hash FROM ocs_inventory_transactions p
                WHERE p.inventory_id = t.inventory_id AND p.id < t.id ORDER BY p.id DESC LIMIT 1)
            WHERE id = %s""", transaction_id)
        as_owner_without_guards(db, "UPDATE ocs_inventory_transactions t SET row_hash = ocs_ledger_hash(t)"
                                    " WHERE id = %s", transaction_id)
    assert problems(db) == []
    # ... but the digest of the same moment is not the one kept.
    again = db.execute("SELECT * FROM ledger_digest(%s)", [kept[0][1]]).fetchall()
    assert again[0][:4] == kept[0][:4] and again[0][4] != kept[0][4]


def test_a_ledger_written_before_the_chain_is_sealed_by_its_migration(empty_dsn):
    backend = yoyo.get_backend(yoyo_uri(empty_dsn))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(
            yoyo.read_migrations(str(SQL_DIR / "migrations")).filter(lambda m: m.id < "0011")))
    backend.connection.close()
    with psycopg.connect(empty_dsn) as conn:
        store = conn.execute("INSERT INTO stores DEFAULT VALUES RETURNING id").fetchone()[0]
        for sku in ("A", "B"):
            row = conn.execute("INSERT INTO ocs_inventory (store_id, sku, quantity_on_hand, quantity_available)"
                               " VALUES (%s, %s, 5, 5) RETURNING id", [store, sku]).fetchone()[0]
            conn.execute("UPDATE ocs_inventory SET quantity_on_hand = 3, quantity_available = 3 WHERE id = %s", [row])
    migrate(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT origin, prev_hash IS NULL FROM ocs_inventory_transactions ORDER BY id"
                            ).fetchall() == [("migrated", True), ("migrated", False)] * 2
        assert conn.execute("SELECT count(*) FROM verify_ledger()").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM ocs_inventory_transactions WHERE origin = 'migrated'"
                            ).fetchone() == (4,)


@pytest.mark.tampers
@pytest.mark.parametrize("tampered", [False, True])
def test_posledger_verify_exits_4_on_a_broken_link_and_digest_prints_each_store(db, dsn, tampered):
    store, rows = a_trading_store(db)
    if tampered:
        as_owner_without_guards(db, "UPDATE ocs_inventory_transactions SET quantity_after = 99 WHERE id = %s",
                                rows[1][1])
    done = posledger_cli("verify", "--json", "--dsn", dsn)
    assert done.returncode == (4 if tampered else 0), done.stderr
    assert ('"altered' in done.stdout) == tampered
    digest = posledger_cli("digest", "--json", "--dsn", dsn, "--store-id", store)
    assert digest.returncode == 0 and store in digest.stdout
    assert posledger_cli("digest", "--as-of", "yesterday", "--dsn", dsn).returncode == 2
