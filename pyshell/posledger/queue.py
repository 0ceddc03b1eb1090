"""The exception queue (README, "The exception queue"): its open items, oldest first, and a watch that yields
each new one as the database announces it. The view open_inventory_exceptions holds the logic and the
trigger inventory_exceptions_announce sends the announcement, which PostgreSQL delivers only once the
transaction that raised the exception commits; this only reads them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator
from contextlib import ExitStack
from queue import Queue
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
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
    'resolved'. ``listening()`` is called once every LISTEN is in place: what commits after it is yielded.
    Runs until the caller stops iterating (close the generator to close its connections).

    A connection reads the rows, and one listens on each node that announces (_announcers): psycopg's
    notifies() holds its connection while it waits, so each listener waits in a thread of its own. All are
    autocommit: a LISTEN inside a transaction hears nothing until it ends.
    """
    store_id = store_id and store_id.lower()   # as the database writes a uuid in JSON
    heard: Queue[str | BaseException] = Queue()
    stop = threading.Event()
    with psycopg.connect(dsn, autocommit=True) as reader, ExitStack() as stack:
        listeners = [stack.enter_context(psycopg.connect(node, autocommit=True)) for node in _announcers(dsn, reader)]
        for listener in listeners:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        threads = [threading.Thread(target=_hear, args=(listener, heard, stop), daemon=True) for listener in listeners]
        for thread in threads:   # on the way out (last in, first out): stop, then join each
            stack.callback(thread.join)
        stack.callback(stop.set)
        for thread in threads:
            thread.start()
        listening()
        while True:
            payload = heard.get()
            if isinstance(payload, BaseException):
                raise payload
            announced = json.loads(payload)
            if store_id is None or announced["store_id"] == store_id:
                yield _row(reader, announced)


def _announcers(dsn: str, reader: psycopg.Connection) -> list[str]:
    """Where exceptions are announced: the database itself, and on Citus each worker too, since a call
    delegated to the worker holding its store announces there (docs/scaling.md)."""
    if reader.execute("SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus'").fetchone() is None:
        return [dsn]
    workers = reader.execute("SELECT nodename, nodeport FROM pg_catalog.pg_dist_node"
                             " WHERE noderole = 'primary' AND isactive AND groupid <> 0 ORDER BY nodeid").fetchall()
    return [dsn] + [make_conninfo(dsn, host=host, port=port) for host, port in workers]


def _hear(listener: psycopg.Connection, heard: Queue[str | BaseException], stop: threading.Event) -> None:
    """Hands each payload the listener hears to ``heard`` until ``stop``; a lost connection too, as the error."""
    try:
        while not stop.is_set():
            for notify in listener.notifies(timeout=0.5):
                heard.put(notify.payload)
    except psycopg.Error as error:
        if not stop.is_set():
            heard.put(error)


def _row(reader: psycopg.Connection, announced: dict[str, Any]) -> dict[str, Any]:
    with reader.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(OPEN, {"store_id": announced["store_id"], "id": announced["id"]}).fetchone()
    if row is not None:
        return row
    gone = {key: value for key, value in announced.items() if key != "batch"}
    return {**gone, "batch_lot": announced.get("batch"), "status": "resolved"}
