"""The sale call: the business rules live in record_pos_sale(), this only carries the payload there,
and retries what the database says is worth retrying."""

from __future__ import annotations

import random
import time
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from posledger.errors import Busy, translate

# Worth another try: a lock wait ran out (IV503), or PostgreSQL chose this transaction as the victim
# of a serialization failure or a deadlock. A retry is safe because the receipt number makes the call
# idempotent: a sale that did commit is replayed, never recorded twice.
RETRYABLE = (Busy, psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


def record_sale(conn: psycopg.Connection, sale: dict[str, Any], *, attempts: int = 4,
                backoff: float = 0.05) -> dict[str, Any]:
    """Record one sale atomically and return the result of DESIGN.md section 4.

    The call runs in ``conn.transaction()``: on an idle connection it commits, so the sale is durable
    when this returns; on a connection already in a transaction (the caller's ``with conn.transaction():``,
    or an implicit one a non-autocommit connection opened) it is a savepoint, and the caller commits.
    Raises a ``PosLedgerError`` subclass when the database refuses the sale; nothing has changed then.
    Busy, serialization failures and deadlocks are retried up to ``attempts`` times in all, after a
    random pause of up to ``backoff`` seconds, doubled each time - but not inside the caller's own
    transaction, which the caller must retry whole.
    """
    attempt = 1
    while True:
        try:
            return _record_once(conn, sale)
        except RETRYABLE:
            if attempt >= attempts or conn.info.transaction_status != TransactionStatus.IDLE:
                raise
            time.sleep(random.uniform(0, backoff * 2 ** (attempt - 1)))
            attempt += 1


def _record_once(conn: psycopg.Connection, sale: dict[str, Any]) -> dict[str, Any]:
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
