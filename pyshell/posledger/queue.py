"""The exception queue (README, "The exception queue"): its open items, oldest first, and a watch that yields
each new one as the database announces it. The view open_inventory_exceptions holds the logic and the
trigger inventory_exceptions_announce sends the announcement, which PostgreSQL delivers only once the
transaction that raised the exception commits; this only reads them."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

# The channel the database announces each new exception on, with a small JSON payload: id, store_id, kind,
# order_id, sku, batch, quantity_short, created_at (sql/functions/_triggers.sql).
CHANNEL = "posledger_inventory_exceptions"

OPEN = """
    SELECT id, store_id, kind, sku, batch_lot, quantity_short, terminal_id, receipt_number, order_id, who, why,
           detail, sold_at, created_at, age, status
    FROM open_inventory_exceptions
    WHERE (%(store_id)s::uuid IS NULL OR store_id = %(store_id)s) AND (%(id)s::bigint IS NULL OR id = %(id)s)
    ORDER BY created_at, id"""


def open_exceptions(conn: psycopg.Connection, store_id: str | None = None) -> list[dict[str, Any]]:
    """The open exceptions (of one store, or of all), oldest first: what, where, who, why, when."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(OPEN, {"store_id": store_id, "id": None}).fetchall()


def _no_one() -> None:
    pass


def watch(dsn: str, store_id: str | None = None, *,
          listening: Callable[[], None] = _no_one) -> Generator[dict[str, Any], None, None]:
    """Each new exception (of one store, or of all) as the database announces it, its row of
    open_inventory_exceptions; one resolved before it could be read comes as its announcement with status
    'resolved'. ``listening()`` is called once the LISTEN is in place: what commits after it is yielded.
    Runs until the caller stops iterating (close the generator to close its connections).

    Two connections of its own: psycopg's notifies() holds its connection while it waits, so the rows are
    read on the other one. Both are autocommit: a LISTEN inside a transaction hears nothing until it ends.
    """
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn, autocommit=True) as reader:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        listening()
        store_id = store_id and store_id.lower()   # as the database writes a uuid in JSON
        for notify in listener.notifies():
            announced = json.loads(notify.payload)
            if store_id is None or announced["store_id"] == store_id:
                yield _row(reader, announced)


def _row(reader: psycopg.Connection, announced: dict[str, Any]) -> dict[str, Any]:
    with reader.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(OPEN, {"store_id": announced["store_id"], "id": announced["id"]}).fetchone()
    if row is not None:
        return row
    gone = {key: value for key, value in announced.items() if key != "batch"}
    return {**gone, "batch_lot": announced.get("batch"), "status": "resolved"}
