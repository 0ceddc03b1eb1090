"""The calls: one per entry function of sql/functions. The business rules live in the database; this
only carries the payload there and retries what the database says is worth retrying."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from posledger.errors import Busy, translate

# Worth another try: a lock wait ran out (IV503), or PostgreSQL chose this transaction as the victim
# of a serialization failure or a deadlock. A retry is safe because every entry function is idempotent
# by its key (receipt number, shipment id, reference): a call that did commit is replayed, never
# recorded twice.
RETRYABLE = (Busy, psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)

# The shape of every named call below: a connection and a payload in, the function's result out.
Call = Callable[[psycopg.Connection, dict[str, Any]], dict[str, Any]]


def call(conn: psycopg.Connection, function: str, payload: Any, *, attempts: int = 4,
         backoff: float = 0.05, as_json: bool = True) -> dict[str, Any]:
    """Call the entry function ``function(jsonb)`` with ``payload`` and return its result.

    On an idle connection the call is one statement outside a transaction block, which commits by itself:
    the change is durable when this returns. On a connection already in a transaction (the caller's
    ``with conn.transaction():``, or an implicit one a non-autocommit connection opened) it runs in a
    savepoint, and the caller commits. A store-scoped entry is called in its two-argument form,
    ``function(store_id, payload)``, when the payload names its store: the form Citus distributes by store,
    and delegates to the worker holding it only outside a transaction block (docs/scaling.md); on one
    server it is the same call.
    Raises a ``PosLedgerError`` subclass when the database refuses the call; nothing has changed then.
    Busy, serialization failures and deadlocks are retried up to ``attempts`` times in all, after a
    random pause of up to ``backoff`` seconds, doubled each time - but not inside the caller's own
    transaction, which the caller must retry whole. ``as_json=False`` passes the payload as it is (a text).
    """
    return _retried(conn, lambda: _call_once(conn, function, payload, as_json), attempts, backoff)


def _retried(conn: psycopg.Connection, once: Callable[[], Any], attempts: int, backoff: float) -> Any:
    attempt = 1
    while True:
        try:
            return once()
        except RETRYABLE:
            if attempt >= attempts or conn.info.transaction_status != TransactionStatus.IDLE:
                raise
            time.sleep(random.uniform(0, backoff * 2 ** (attempt - 1)))
            attempt += 1


# The entries with a two-argument form routed by store (docs/scaling.md).
STORE_SCOPED = frozenset({"record_pos_sale", "return_pos_sale", "receive_inventory", "adjust_inventory",
                          "count_inventory", "complete_reservation", "cancel_reservation",
                          "resolve_inventory_exception", "transfer_out", "transfer_in", "cancel_transfer"})


def _store_of(payload: Any) -> uuid.UUID | None:
    """The store a payload names, when it names one as the database reads a uuid (8-4-4-4-12 hex digits);
    else None, and the one-argument form refuses the payload with every problem it has."""
    store = payload.get("store_id") if isinstance(payload, dict) else None
    if not isinstance(store, str):
        return None
    try:
        parsed = uuid.UUID(store)
    except ValueError:
        return None
    return parsed if str(parsed) == store.lower() else None


@contextmanager
def _one_statement(conn: psycopg.Connection) -> Iterator[None]:
    """Outside a transaction block when the connection is idle (autocommit for this statement), else in a
    savepoint of the caller's transaction."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        with conn.transaction():
            yield
        return
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        yield
    finally:
        conn.autocommit = autocommit


def _call_once(conn: psycopg.Connection, function: str, payload: Any, as_json: bool = True) -> dict[str, Any]:
    argument = Jsonb(payload) if as_json else payload
    store = _store_of(payload) if function in STORE_SCOPED else None
    query = sql.SQL("SELECT {}(%s, %s)" if store else "SELECT {}(%s)").format(sql.Identifier(function))
    return _select_one(conn, query, [store, argument] if store else [argument])


def _select_one(conn: psycopg.Connection, query: sql.Composed | str, params: list[Any]) -> dict[str, Any]:
    """The one value of ``query`` (_one_statement), our errors raised as their PosLedgerError."""
    try:
        with _one_statement(conn):
            row = conn.execute(query, params).fetchone()
    except psycopg.Error as error:
        ours = translate(error)
        if ours is None:
            raise
        raise ours from error
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def record_sale(conn: psycopg.Connection, sale: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """A sale at the till (record_pos_sale; README, "The sale")."""
    return call(conn, "record_pos_sale", sale, **retry)


def return_sale(conn: psycopg.Connection, return_: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """A partial return or a whole-order void (return_pos_sale)."""
    return call(conn, "return_pos_sale", return_, **retry)


def receive_inventory(conn: psycopg.Connection, shipment: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """One OCS shipment into one store (receive_inventory)."""
    return call(conn, "receive_inventory", shipment, **retry)


def adjust_inventory(conn: psycopg.Connection, adjustment: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """Signed corrections with a reason code (adjust_inventory)."""
    return call(conn, "adjust_inventory", adjustment, **retry)


def count_inventory(conn: psycopg.Connection, count: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """Counted quantities, posted as adjustments (count_inventory)."""
    return call(conn, "count_inventory", count, **retry)


def set_batch_status(conn: psycopg.Connection, change: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """Hold, recall or release a lot (set_batch_status)."""
    return call(conn, "set_batch_status", change, **retry)


def complete_reservation(conn: psycopg.Connection, completion: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """A reservation or parked cart becomes its sale, from the batches it held (complete_reservation)."""
    return call(conn, "complete_reservation", completion, **retry)


def cancel_reservation(conn: psycopg.Connection, cancellation: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """A reservation or parked cart is given up: its units become available again (cancel_reservation)."""
    return call(conn, "cancel_reservation", cancellation, **retry)


def transfer_out(conn: psycopg.Connection, transfer: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """Units leave a store by batch for another store of its retailer, in transit (transfer_out;
    docs/transfers.md)."""
    return call(conn, "transfer_out", transfer, **retry)


def transfer_in(conn: psycopg.Connection, receipt: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """A transfer arrives at the receiving store, per line sent and received (transfer_in)."""
    return call(conn, "transfer_in", receipt, **retry)


def cancel_transfer(conn: psycopg.Connection, cancellation: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """A transfer in transit is called off: its units come back to the sender (cancel_transfer)."""
    return call(conn, "cancel_transfer", cancellation, **retry)


def release_expired_reservations(conn: psycopg.Connection, store_id: str, max_orders: int = 10000) -> dict[str, Any]:
    """Release a store's reservations past their end, at most ``max_orders`` (release_expired_reservations):
    what a scheduler calls; ``result["more"]`` says to call again. One autocommit statement when idle."""
    result: dict[str, Any] = _retried(
        conn, lambda: _select_one(conn, "SELECT release_expired_reservations(%s, %s)", [store_id, max_orders]), 4, 0.05)
    return result


def resolve_exception(conn: psycopg.Connection, resolution: dict[str, Any], **retry: Any) -> dict[str, Any]:
    """Close one inventory exception with who and why, moving stock by an adjustment or a count where it must
    (resolve_inventory_exception)."""
    return call(conn, "resolve_inventory_exception", resolution, **retry)


# Rows per load_catalogue call: well inside the 10,000 a payload may carry, and often enough to move a
# progress bar.
CATALOGUE_CHUNK = 1000

# Told before the first chunk and after each: (rows sent so far, rows in all).
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    pass


def load_catalogue(conn: psycopg.Connection, rows: list[dict[str, Any]], skip_bad: bool = False, *,
                   progress: Progress = _no_progress, chunk_size: int = CATALOGUE_CHUNK, attempts: int = 4,
                   backoff: float = 0.05) -> dict[str, Any]:
    """Load catalogue rows (load_catalogue; README, "The catalogue"), ``chunk_size`` rows per call, all calls
    in one transaction: one bad row refuses the whole load (InvalidSale, its detail naming every bad row of
    the chunk by line) unless ``skip_bad``, which loads the good rows and lists the others. Returns the sums
    of the calls' counts and every skipped row. Retried whole, as ``call`` retries one call."""
    chunks = [rows[start:start + chunk_size] for start in range(0, len(rows), chunk_size)] or [[]]

    def once() -> dict[str, Any]:
        # One load_id for the calls of this load: load_catalogue finds a sku repeated across chunks by it.
        load_id = str(uuid.uuid4())
        totals: dict[str, Any] = {"rows": 0, "inserted": 0, "updated": 0, "unchanged": 0, "skipped": 0,
                                  "skipped_rows": []}
        progress(0, len(rows))
        with conn.transaction():
            for chunk in chunks:
                result = _call_once(conn, "load_catalogue", {"rows": chunk, "skip_bad": skip_bad, "load_id": load_id})
                for key in totals:
                    totals[key] += result[key]
                progress(totals["rows"], len(rows))
        return totals

    result: dict[str, Any] = _retried(conn, once, attempts, backoff)
    return result


def catalogue_product(conn: psycopg.Connection, key: str, **retry: Any) -> dict[str, Any]:
    """One product by its sku or any of its GTINs (catalogue_product); NotFound when the catalogue has neither."""
    return call(conn, "catalogue_product", key, as_json=False, **retry)
