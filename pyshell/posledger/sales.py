"""The sale call: the business rules live in record_pos_sale(), this only carries the payload there."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from posledger.errors import translate


def record_sale(conn: psycopg.Connection, sale: dict[str, Any]) -> dict[str, Any]:
    """Record one sale atomically and return the result of DESIGN.md section 4.

    The call runs in ``conn.transaction()``: on its own it commits, so the sale is durable when this
    returns; inside the caller's own ``with conn.transaction():`` it becomes a savepoint of it.
    Raises a ``PosLedgerError`` subclass when the database refuses the sale; nothing has changed then.
    """
    try:
        with conn.transaction():
            row = conn.execute("SELECT record_pos_sale(%s)", [Jsonb(sale)]).fetchone()
    except psycopg.Error as error:
        ours = translate(error)
        if ours is None:
            raise
        raise ours from error
    assert row is not None
    result: dict[str, Any] = row[0]
    return result
