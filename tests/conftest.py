"""Fixtures: posledger.testing's, loaded as a backend's tests load it (`-p posledger.testing`, in
pyproject.toml's addopts): one PostgreSQL server per session, the migrations loaded once into a template
database by the same code users run, a fresh database per test; here under the short names the tests
use. After every test that used a database, the books must balance (see check_invariants)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

import posledger.migrations
from posledger import receive_inventory, record_sale, return_sale
from posledger.migrations import MIGRATE_LOCK_KEY, migrate
from posledger.pgserver import Server, server_kind
from posledger.testing import INVARIANT_CHECKS, broken_invariants, new_store

# Figures of this run for docs/reliability.md, written at the end of the run to .posledger/figures-SERVER.txt
# (and printed with POSLEDGER_FIGURES=1; see pytest_terminal_summary): sales attempted,
# committed and rejected by reason in the race, fault and stateful tests, faults injected, invariant
# checks and violations, and the deadlocks the server itself counted.
FIGURES: Counter[str] = Counter()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def posledger_server(posledger_server: Server) -> Iterator[Server]:
    """posledger.testing's server; at its end, the deadlocks the server counted join the figures."""
    yield posledger_server
    with psycopg.connect(posledger_server.dsn()) as conn:
        FIGURES["deadlocks (pg_stat_database)"] += conn.execute(
            "SELECT coalesce(sum(deadlocks), 0) FROM pg_stat_database").fetchone()[0]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The run's figures go to .posledger/figures-SERVER.txt, replacing the last run's; they are printed
    only when POSLEDGER_FIGURES=1, so that a plain run shows pytest's own lines."""
    from datetime import UTC, datetime

    server = os.environ.get("POSLEDGER_TEST_SERVER", "system")
    lines = [f"{name}: {value}" for name, value in sorted(FIGURES.items())]
    path = config.rootpath / ".posledger" / f"figures-{server}.txt"
    path.parent.mkdir(exist_ok=True)
    run = " ".join(["pytest", *config.invocation_params.args])
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text("".join(f"{line}\n" for line in [f"# {server} PostgreSQL, {stamp}, {run}", *lines]))
    if lines and os.environ.get("POSLEDGER_FIGURES", "") not in ("", "0"):
        terminalreporter.section("posledger reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"(also in {path})")


@pytest.fixture(scope="session")
def pg_server(posledger_server: Server) -> Server:
    """The session's server; ``.dsn(dbname)`` connects as its superuser."""
    return posledger_server


@pytest.fixture
def db(posledger_db: psycopg.Connection) -> psycopg.Connection:
    """A psycopg connection to a freshly migrated database of the test's own."""
    return posledger_db


@pytest.fixture
def dsn(posledger_dsn: str) -> str:
    """The per-test database's DSN, for extra connections (threads, subprocesses)."""
    return posledger_dsn


@pytest.fixture
def store(posledger_store: str) -> str:
    """A new store in the per-test database; a test file that needs it stocked extends this fixture."""
    return posledger_store


@pytest.fixture
def empty_dsn(pg_server: Server) -> Iterator[str]:
    """A database with nothing in it, dropped afterwards."""
    name = f"empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield pg_server.dsn(name)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def migrate_as_released(dsn: str, revision: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrate `dsn` by the SQL of an earlier commit (its sql/ from git), with today's migrate(). A release
    without sql/retired.sql retired its helpers in its own files: it gets an empty one."""
    subprocess.run(f"git -C {ROOT} archive {revision} sql | tar -x -C {tmp_path}", shell=True, check=True)
    if not (retired := tmp_path / "sql" / "retired.sql").exists():
        retired.write_text("")
    with monkeypatch.context() as patch:
        patch.setattr(posledger.migrations, "SQL_DIR", tmp_path / "sql")
        migrate(dsn)


def login_as(dsn: str, group: str) -> str:
    """A DSN for a login role that is a member of `group` (created once: roles belong to the cluster)."""
    name = f"{group}_test_login"
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT FROM pg_roles WHERE rolname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(name), sql.Identifier(group)))
    return make_conninfo(dsn, user=name)


@contextmanager
def holding_the_migrate_lock(dsn: str) -> Iterator[int]:
    """A till's session (a login of posledger_app) holding migrate's advisory lock, as any role can:
    pg_advisory_lock() is executable by PUBLIC. Yields that session's pid."""
    with psycopg.connect(login_as(dsn, "posledger_app"), autocommit=True, application_name="stuck till") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK_KEY])
        row = holder.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        yield row[0]


def check_invariants(conninfo: str | psycopg.Connection) -> None:
    """posledger.testing's check that the books balance, counted in this run's figures."""
    broken = broken_invariants(conninfo)
    FIGURES[f"invariant checks ({len(INVARIANT_CHECKS)} invariants each)"] += 1
    FIGURES["invariant violations"] += len(broken)
    assert not broken, f"invariants broken: {broken}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tampers: the test breaks the books on purpose, as an attacker would;"
                                       " the books are not checked after it")
    config.addinivalue_line("markers", "whole_database: the test reads or changes what belongs to no store of its"
                                       " own; not in the distributed pass, whose tests share one database")


# The distributed pass (POSLEDGER_TEST_SERVER=citus) runs these through the coordinator of a local Citus
# cluster: the fix plan's cases, the races, the lifecycle, the DBA views, every route of a call, the
# reservations of issue 17, and the schema's fit with every two-argument form routed right and wrong.
DISTRIBUTED_PASS = {"test_fix_plan.py", "test_concurrency.py", "test_returns.py", "test_adjustments.py",
                    "test_receiving.py", "test_holds.py", "test_dba_views.py", "test_routes.py",
                    "test_reservations.py", "test_distribution.py", "test_exception_queue.py",
                    "test_offline_tills.py", "test_ocs_feed.py", "test_monthly_report.py",
                    "test_ocs_sender.py", "test_transfers.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if server_kind() != "citus":
        return
    kept = [item for item in items if item.path.name in DISTRIBUTED_PASS
            and not item.get_closest_marker("whole_database") and not item.get_closest_marker("tampers")]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


# Rows in each table when the test began: the distributed pass shares one database, so count_rows counts
# what the test itself added (on a database of the test's own, the baseline is empty).
_BASELINE: dict[str, int] = {}


@pytest.fixture(autouse=True)
def shared_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """In the distributed pass: count_rows' baseline, and afterwards no hold left in force, since a lot's
    hold reaches stores that later tests create (a hold of a store of this test's own binds nothing later)."""
    _BASELINE.clear()
    if server_kind() != "citus" or "posledger_db" not in request.fixturenames:
        yield
        return
    conn = request.getfixturevalue("posledger_db")
    tables = [name for (name,) in conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        " AND relname NOT LIKE '%yoyo%'")]
    _BASELINE.update({table: _count(conn, table) for table in tables})
    yield
    conn.rollback()   # on the test's own connection: a transaction it left open may hold the rows
    conn.execute("DELETE FROM batch_lot_holds")
    conn.commit()


@pytest.fixture(autouse=True)
def books_balance(request: pytest.FixtureRequest) -> Iterator[None]:
    checked = "posledger_db" in request.fixturenames and not request.node.get_closest_marker("tampers")
    dsn = request.getfixturevalue("posledger_dsn") if checked else None
    yield
    if dsn is not None:
        check_invariants(dsn)


# Helpers the tests share (new_store is posledger.testing's): stock is set up exactly as the old fix plan's
# tests do, with a bare INSERT.

def catalogue(db: psycopg.Connection, sku: str, product_class: str = "accessory", **columns: Any) -> None:
    """Put `sku` in the catalogue unless it is there. Tests about stock sell their skus as accessories (zero
    dried-equivalent grams), so no purchase limit gets in their way; tests of the law give a class and its
    net content or stated grams (columns of the products table)."""
    fields = {"sku": sku, "name": f"Product {sku}", "product_class": product_class, **columns}
    db.execute(sql.SQL("INSERT INTO products ({}) VALUES ({}) ON CONFLICT (sku) DO NOTHING").format(
        sql.SQL(", ").join(map(sql.Identifier, fields)), sql.SQL(", ").join(sql.Placeholder() * len(fields))),
        list(fields.values()))
    db.commit()


def add_stock(db: psycopg.Connection, store_id: str, sku: str, quantity: int,
              batch_lot: str | None = None, packaged_on_date: str | None = None) -> int:
    catalogue(db, sku)
    row = db.execute(
        "INSERT INTO ocs_inventory (store_id, sku, batch_lot, packaged_on_date, quantity_on_hand,"
        " quantity_available) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        [store_id, sku, batch_lot, packaged_on_date, quantity, quantity]).fetchone()
    db.commit()
    assert row is not None
    return int(row[0])


def receive(db: psycopg.Connection, store_id: str, *lines: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Receive one shipment through receive_inventory; lines are shipment_line(...) dicts."""
    shipment: dict[str, Any] = {"store_id": store_id, "shipment_id": f"S-{uuid.uuid4().hex[:10]}",
                                "lines": list(lines)}
    shipment.update(fields)
    for line in lines:
        if isinstance(line.get("sku"), str) and line["sku"].strip():
            catalogue(db, line["sku"])
    return receive_inventory(db, shipment)


def shipment_line(sku: str, quantity: int, batch_lot: str, packaged_on_date: str | None = None,
                  received: int | None = None, **fields: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"sku": sku, "batch_lot": batch_lot, "quantity_shipped": quantity,
                            "quantity_received": quantity if received is None else received, **fields}
    if packaged_on_date is not None:
        line["packaged_on_date"] = packaged_on_date
    return line


def ledger_of(db: psycopg.Connection, store_id: str, sku: str) -> list[tuple[Any, ...]]:
    """The ledger of one sku, oldest first: (batch_lot, transaction_type, reason_code, quantity, quantity_after)."""
    rows = db.execute("SELECT batch_lot, transaction_type, reason_code, quantity, quantity_after"
                      " FROM ocs_inventory_transactions WHERE store_id = %s AND sku = %s ORDER BY id",
                      [store_id, sku]).fetchall()
    db.commit()
    return rows


def quarantine_by_return(db: psycopg.Connection, store_id: str, sku: str, quantity: int) -> None:
    """Sell `quantity` of `sku` and take them back as defective: they become quarantined units of their batch."""
    order = record_sale(db, sale_payload(store_id, item(sku, quantity)))
    return_sale(db, {"store_id": store_id, "reference": f"RET-{uuid.uuid4().hex[:8]}", "order_id": order["id"],
                     "lines": [{"line_no": 1, "quantity": quantity, "defective": True}]})


def sale_payload(store_id: str, *items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"store_id": store_id, "receipt_number": f"R-{uuid.uuid4().hex[:10]}",
                               "items": list(items), "total": 10.0}
    payload.update(fields)
    return payload


def item(sku: str, quantity: int, batch_lot: str | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"product": {"sku": sku, "name": f"Product {sku}"}, "quantity": quantity}
    if batch_lot is not None:
        line["batch"] = {"batch_lot": batch_lot}
    return line


@pytest.fixture
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An environment with no DSN in it: posledger commands use an embedded server in a data folder of this
    test's own, stopped afterwards if a command left it running."""
    env = {key: value for key, value in os.environ.items() if key not in ("POSLEDGER_DSN", "DATABASE_URL")}
    env["POSLEDGER_DATA_DIR"] = str(tmp_path_factory.mktemp("embedded") / "pgdata")
    yield env
    subprocess.run([sys.executable, "-m", "posledger", "stop"], env=env, capture_output=True, timeout=120)


def readme_block(marker, language, doc="README.md"):
    """The ```language block of the README (or another doc) that starts with `marker`: what readers copy must
    work as written."""
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    return next(block for block in text.split(f"```{language}\n")[1:] if block.startswith(marker)).split("```")[0]


def readme_sql(marker, doc="README.md"):
    """The ```sql block of the README (or another doc) that starts with the comment `marker`: what DBAs copy
    must work."""
    return readme_block(marker, "sql", doc)


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def count_rows(conn: psycopg.Connection, table: str) -> int:
    """The rows of `table` this test added (all of them, on a database of the test's own)."""
    return _count(conn, table) - _BASELINE.get(table, 0)


def stock_of(db: psycopg.Connection, store_id: str, sku: str) -> dict[str | None, tuple[int, int]]:
    """{batch_lot: (quantity_available, quantity_on_hand)} for one sku."""
    return {batch: (available, on_hand) for batch, (available, on_hand, _, _) in batches_of(db, store_id, sku).items()}


def batches_of(db: psycopg.Connection, store_id: str, sku: str) -> dict[str | None, tuple[int, int, int, str]]:
    """{batch_lot: (quantity_available, quantity_on_hand, quantity_quarantined, status)} for one sku."""
    rows = db.execute("SELECT batch_lot, quantity_available, quantity_on_hand, quantity_quarantined, status"
                      " FROM ocs_inventory WHERE store_id = %s AND sku = %s", [store_id, sku]).fetchall()
    db.commit()
    return {batch: tuple(rest) for batch, *rest in rows}


def posledger_cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
                  cwd: Path | str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI as users run it: `python -m posledger ARGS` in a subprocess. Without COLUMNS, output to a pipe
    is as wide as its tables: nothing is cut off for the assertions."""
    env = {key: value for key, value in (env or os.environ).items() if key != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "posledger", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


# The OCS feed (issue 18): its JSON Schema, the day's report validated against it, and the platform's stand-in.
OCS_FEED_SCHEMA = json.loads((ROOT / "sql" / "ocs" / "ocs_feed.schema.json").read_text())


def ocs_valid(document: dict[str, Any]) -> None:
    """Raises unless `document` (an event list, a position list) has the platform's shape."""
    jsonschema.validate(document, OCS_FEED_SCHEMA)


def validated_report(db: psycopg.Connection, store_id: str, day: Any) -> dict[str, Any]:
    """ocs_report of a store's day, its events and its position validated against the feed's JSON Schema."""
    result = db.execute("SELECT ocs_report(%s)", [Jsonb({"store_id": store_id, "day": str(day)})]).fetchone()[0]
    db.commit()
    ocs_valid(result["events"])
    ocs_valid(result["position"])
    return result


class Platform:
    """An HTTP server standing in for the platform: answers[i] is the answer to the i-th request (then 200):
    a status code, ("sleep", seconds, status), or "stall" (no answer until release())."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list = []
        self.delay = 0.0
        self.released = threading.Event()
        self.lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:   # only a sender that followed a redirect would GET: recorded, refused
                with platform.lock:
                    platform.requests.append({"method": "GET", "path": urllib.parse.urlsplit(self.path).path})
                self.send_error(405)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                url = urllib.parse.urlsplit(self.path)
                with platform.lock:
                    platform.requests.append({"path": url.path, "query": urllib.parse.parse_qs(url.query),
                                              "authorization": self.headers["Authorization"],
                                              "content_type": self.headers["Content-Type"], "body": body})
                    answer = platform.answers.pop(0) if platform.answers else 200
                time.sleep(platform.delay)
                if answer == "stall":
                    platform.released.wait(60)
                    answer = 200
                if isinstance(answer, tuple):
                    time.sleep(answer[1])
                    answer = answer[2]
                payload = json.dumps({"status": answer}).encode()
                try:
                    self.send_response(answer)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if 300 <= answer < 400:
                        self.send_header("Location", "/moved")
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass   # the sender gave up (its timeout) or was killed

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/inventory-events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [event for request in self.requests for event in request["body"]["inventoryEventList"]]


__all__ = ["OCS_FEED_SCHEMA", "Platform", "add_stock", "batches_of", "count_rows", "item", "ledger_of", "new_store",
           "ocs_valid", "posledger_cli", "quarantine_by_return", "readme_block", "readme_sql", "receive", "record_sale",
           "sale_payload", "shipment_line", "stock_of", "validated_report"]

