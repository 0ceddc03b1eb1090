"""Read-only reports over the DBA views and the ledger, as lists of dicts: what `posledger stock`,
`ledger` and `reconcile` and the demo show. The views (migration 0006) hold the logic; this only
filters them by store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

STOCK = """
    SELECT sku, batch_lot, status, fefo_rank, packaged_on_date, quantity_on_hand, quantity_available,
           quantity_quarantined
    FROM stock_by_batch
    WHERE store_id = %(store_id)s AND (%(sku)s::text IS NULL OR sku = %(sku)s)
    ORDER BY sku, fefo_rank"""

# The newest rows, shown oldest first, as a ledger is read.
LEDGER = """
    SELECT * FROM (
        SELECT id, created_at, sku, batch_lot, transaction_type, reason_code, quantity, quantity_after, actor
        FROM ocs_inventory_transactions
        WHERE store_id = %(store_id)s AND (%(sku)s::text IS NULL OR sku = %(sku)s)
        ORDER BY id DESC
        LIMIT %(limit)s) newest
    ORDER BY id"""

# Both views are empty on a healthy database; a store narrows them.
DISCREPANCIES = """
    SELECT store_id, sku, batch_lot, quantity_on_hand, ledger_total, last_balance, difference
    FROM inventory_discrepancies
    WHERE %(store_id)s::uuid IS NULL OR store_id = %(store_id)s
    ORDER BY store_id, sku, batch_lot"""

NEGATIVE = """
    SELECT store_id, sku, batch_lot, quantity_on_hand, quantity_available, quantity_quarantined
    FROM negative_inventory
    WHERE %(store_id)s::uuid IS NULL OR store_id = %(store_id)s
    ORDER BY store_id, sku, batch_lot"""


def _rows(conn: psycopg.Connection, query: str, **params: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query, params).fetchall()


def stock(conn: psycopg.Connection, store_id: str, sku: str | None = None) -> list[dict[str, Any]]:
    """A store's batches in FEFO order per sku, with their status and quantities."""
    return _rows(conn, STOCK, store_id=store_id, sku=sku)


def ledger(conn: psycopg.Connection, store_id: str, sku: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """A store's newest ``limit`` ledger rows, oldest first."""
    return _rows(conn, LEDGER, store_id=store_id, sku=sku, limit=limit)


def reconciliation(conn: psycopg.Connection, store_id: str | None = None) -> dict[str, Any]:
    """Rows whose books disagree (on hand against the ledger) and rows below zero; both empty when the
    books balance."""
    discrepancies = _rows(conn, DISCREPANCIES, store_id=store_id)
    negative = _rows(conn, NEGATIVE, store_id=store_id)
    return {"balanced": not discrepancies and not negative, "discrepancies": discrepancies, "negative": negative}


def verification(conn: psycopg.Connection, store_id: str | None = None) -> dict[str, Any]:
    """What verify_ledger() finds: each chain's first broken link and any disabled guard ("broken"), and the
    rows written into the ledger directly ("review"). ``intact`` is true when nothing is broken."""
    found = _rows(conn, "SELECT * FROM verify_ledger(%(store_id)s) ORDER BY kind, store_id, inventory_id, "
                        "transaction_id", store_id=store_id)
    return {"intact": all(row["kind"] == "review" for row in found),
            "broken": [row for row in found if row["kind"] == "broken"],
            "review": [row for row in found if row["kind"] == "review"]}


def digests(conn: psycopg.Connection, as_of: datetime | None = None,
            store_id: str | None = None) -> list[dict[str, Any]]:
    """Per store, the digest of its ledger as of a moment (default now), to keep outside the database."""
    return _rows(conn, "SELECT * FROM ledger_digest(coalesce(%(as_of)s, now()), %(store_id)s)",
                 as_of=as_of, store_id=store_id)
