"""Loyalty by store (issue 16, migration 0018): a sale's points go to the customer's account at its own
store, so a sale writes its store's rows alone (one Citus worker, no two-phase commit); the customer's
balance is the sum of their accounts (the view profiles), exact; a return takes points back from the
order's store only. Databases migrated before 0018 keep every point, or refuse to migrate."""


import psycopg
import pytest

from conftest import add_stock, item, migrate_as_released, new_store, record_sale, sale_payload
from posledger import return_sale
from posledger.migrations import migrate
from posledger.testing import check_invariants

BEFORE_ACCOUNTS = "4ca8dbf"   # the last commit whose balances live in the table profiles
CUSTOMER = "0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"


def two_stores(db):
    stores = [new_store(db), new_store(db)]
    for store in stores:
        add_stock(db, store, "SKU", 10)
    return stores


def test_points_go_to_the_sales_store_and_the_balance_is_their_sum(db):
    north, south = two_stores(db)
    first = record_sale(db, sale_payload(north, item("SKU", 1), user_id=CUSTOMER, total=30))
    second = record_sale(db, sale_payload(south, item("SKU", 1), user_id=CUSTOMER, total=12.5))
    third = record_sale(db, sale_payload(north, item("SKU", 1), user_id=CUSTOMER, total=5))
    assert [r["loyalty"]["balance"] for r in (first, second, third)] == [30, 12, 35]   # each at its store
    assert db.execute("SELECT store_id::text, points FROM loyalty_accounts WHERE user_id = %s ORDER BY points",
                      [CUSTOMER]).fetchall() == [(south, 12), (north, 35)]
    assert db.execute("SELECT loyalty_points FROM profiles WHERE user_id = %s", [CUSTOMER]).fetchone() == (47,)
    check_invariants(db)


def test_a_return_takes_points_from_the_orders_store_only(db):
    north, south = two_stores(db)
    order = record_sale(db, sale_payload(north, item("SKU", 2), user_id=CUSTOMER, total=40))
    record_sale(db, sale_payload(south, item("SKU", 1), user_id=CUSTOMER, total=100))
    with db.transaction():   # 30 of the north store's points are spent (a redemption)
        db.execute("UPDATE loyalty_accounts SET points = points - 30 WHERE store_id = %s AND user_id = %s",
                   [north, CUSTOMER])
        db.execute("INSERT INTO loyalty_transactions (user_id, store_id, order_id, transaction_type, points,"
                   " balance_after) VALUES (%s, %s, %s, 'redemption', -30, 10)", [CUSTOMER, north, order["id"]])
    voided = return_sale(db, {"store_id": north, "reference": "VOID-1", "order_id": order["id"], "void": True})
    # The south store's 100 points are not the north store's to take: 10 come back, 30 are short.
    assert voided["loyalty"] == {"user_id": CUSTOMER, "points_due": 40, "points_reversed": 10, "shortfall": 30,
                                 "balance": 0}
    assert db.execute("SELECT loyalty_points FROM profiles WHERE user_id = %s", [CUSTOMER]).fetchone() == (100,)
    check_invariants(db)


@pytest.fixture
def released_with_profiles(empty_dsn, tmp_path, monkeypatch):
    """empty_dsn migrated by the posledger of BEFORE_ACCOUNTS (its sql/ from git), where two stores sold
    to the customer."""
    migrate_as_released(empty_dsn, BEFORE_ACCOUNTS, tmp_path, monkeypatch)
    with psycopg.connect(empty_dsn) as conn:
        north, south = two_stores(conn)
        record_sale(conn, sale_payload(north, item("SKU", 1), user_id=CUSTOMER, total=30))
        record_sale(conn, sale_payload(south, item("SKU", 1), user_id=CUSTOMER, total=12))
        assert conn.execute("SELECT loyalty_points FROM profiles").fetchone() == (42,)
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'profiles'").fetchone() == ("r",)
    return empty_dsn, north, south


def test_migrating_keeps_every_point_in_the_store_that_awarded_it(released_with_profiles):
    dsn, north, south = released_with_profiles
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        assert dict(conn.execute("SELECT store_id::text, points FROM loyalty_accounts").fetchall()) == {
            north: 30, south: 12}
        assert conn.execute("SELECT user_id::text, loyalty_points FROM profiles").fetchall() == [(CUSTOMER, 42)]
        # The next sale adds to its store's account.
        after = record_sale(conn, sale_payload(south, item("SKU", 1), user_id=CUSTOMER, total=8))
        assert after["loyalty"]["balance"] == 20
        check_invariants(conn)


def test_a_balance_the_ledger_does_not_explain_stops_the_migration_and_changes_nothing(released_with_profiles):
    dsn, _, _ = released_with_profiles
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE profiles SET loyalty_points = 50")   # 8 points nobody ledgered
    with pytest.raises(psycopg.Error) as refused:
        migrate(dsn)
    assert refused.value.sqlstate == "IV500"
    assert refused.value.diag.message_detail is not None
    assert '"profile": 50' in refused.value.diag.message_detail and '"ledger": 42' in refused.value.diag.message_detail
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('loyalty_accounts')").fetchone() == (None,)
        assert conn.execute("SELECT loyalty_points FROM profiles").fetchone() == (50,)
