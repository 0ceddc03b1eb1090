"""posledger.testing, as a backend's tests get it: a freshly migrated database per test, a store in it, and a
check that the books balance which names what broke. (The README's backend test runs against the installed
wheel in tests/test_packaging.py.)"""

import pytest

from conftest import add_stock, count_rows
from posledger.migrations import pending_migrations
from posledger.testing import broken_invariants, check_invariants


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_fresh_migrated_database_with_only_its_own_store(posledger_db, posledger_dsn,
                                                                          posledger_store, run):
    assert pending_migrations(posledger_dsn) == []
    assert posledger_db.execute("SELECT id::text FROM stores").fetchall() == [(posledger_store,)]
    assert count_rows(posledger_db, "ocs_inventory_transactions") == 0


@pytest.mark.tampers
def test_the_invariant_check_names_stock_changed_behind_the_ledgers_back(posledger_db, posledger_store):
    add_stock(posledger_db, posledger_store, "SKU", 5)
    check_invariants(posledger_db)
    posledger_db.execute("SET session_replication_role = replica")   # as a superuser may: no trigger fires
    posledger_db.execute("UPDATE ocs_inventory SET quantity_on_hand = 7, quantity_available = 7")
    posledger_db.commit()
    assert list(broken_invariants(posledger_db)) == [
        "on hand differs from the ledger sum or the last running balance (inventory_discrepancies)"]
    with pytest.raises(AssertionError):
        check_invariants(posledger_db)
