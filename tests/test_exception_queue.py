"""The exception queue (issue 17): the shortfalls of lenient and offline sales and the rules offline sales broke
go to one queue (inventory_exceptions; the view open_inventory_exceptions lists the open ones, oldest first);
resolve_inventory_exception closes one with who and why, moving stock by an adjustment or a count where it must;
each new exception is announced on the channel posledger_inventory_exceptions once its transaction commits, and
`posledger exceptions` lists the queue, `--watch` prints each new one as it comes."""

import json
import queue
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from conftest import (
    add_stock,
    catalogue,
    count_rows,
    item,
    new_store,
    posledger_cli,
    record_sale,
    sale_payload,
    stock_of,
)
from posledger import (
    IdempotencyConflict,
    InvalidSale,
    NotFound,
    count_inventory,
    resolve_exception,
    set_batch_status,
)
from posledger.queue import CHANNEL, open_exceptions

ANNOUNCED = {"id", "store_id", "kind", "order_id", "sku", "batch", "quantity_short", "created_at"}


def short_sale(conn, store, sku="SKU-1", quantity=5, **fields):
    """A lenient sale of `quantity` units of `sku`, authorised by manager-7: what stock lacks is a shortfall."""
    return record_sale(conn, sale_payload(store, item(sku, quantity), policy="lenient", authorized_by="manager-7",
                                          cashier_id="cashier-1", terminal_id="till-1", **fields))


def offline_sale(conn, store, *items, sequence=1):
    """A sale a till made an hour ago while the database was out of reach, sent now."""
    occurred_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    return record_sale(conn, sale_payload(store, *items, policy="offline", occurred_at=occurred_at,
                                          terminal_id="till-2", terminal_sequence=sequence, cashier_id="cashier-2"))


def over_the_limit(db, store):
    """An offline sale of 31.5 g of dried flower: over the 30 g limit, so an over_limit exception."""
    catalogue(db, "FLOWER-3.5G", "dried", net_content=Decimal("3.5"), net_unit="g")
    add_stock(db, store, "FLOWER-3.5G", 20, "LOT-F")
    return offline_sale(db, store, item("FLOWER-3.5G", 9))


def exception_of(db, store, kind):
    row = db.execute("SELECT id FROM inventory_exceptions WHERE store_id = %s AND kind = %s", [store, kind]).fetchone()
    db.commit()
    assert row is not None
    return row[0]


def snapshot(db, store):
    """What a refused resolution must leave as it was: the exceptions, the stock, the ledger, the adjustments."""
    found = {
        "exceptions": db.execute("SELECT id, status, resolved_by, resolved_at, resolution FROM inventory_exceptions"
                                 " WHERE store_id = %s ORDER BY id", [store]).fetchall(),
        "stock": db.execute("SELECT id, quantity_on_hand, quantity_available FROM ocs_inventory WHERE store_id = %s"
                            " ORDER BY id", [store]).fetchall(),
        "ledger": count_rows(db, "ocs_inventory_transactions"),
        "adjustments": count_rows(db, "inventory_adjustments"),
    }
    db.commit()
    return found


def test_a_short_lenient_sale_and_an_offline_sale_over_the_limit_are_queued_oldest_first(db, store):
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    lenient = short_sale(db, store)
    offline = over_the_limit(db, store)
    found = open_exceptions(db, store)
    assert [(row["kind"], row["order_id"]) for row in found] == [
        ("shortfall", uuid.UUID(lenient["id"])), ("over_limit", uuid.UUID(offline["id"]))]
    shortfall, breach = found
    assert (shortfall["sku"], shortfall["batch_lot"], shortfall["quantity_short"]) == ("SKU-1", None, 3)
    assert (shortfall["who"], shortfall["terminal_id"], shortfall["receipt_number"]) == (
        "manager-7", "till-1", lenient["receipt_number"])
    assert shortfall["why"] == "lenient sale: 3 units no batch covered"
    assert shortfall["sold_at"] == datetime.fromisoformat(lenient["timestamp"])
    assert (breach["sku"], breach["quantity_short"], breach["who"], breach["terminal_id"]) == (
        None, None, "cashier-2", "till-2")   # a breach names no line; who: the cashier, no one authorised it
    assert breach["why"].startswith("offline sale over a purchase limit: 31.5 g dried equivalent of 30")
    assert breach["sold_at"] == datetime.fromisoformat(offline["occurred_at"])   # when the till sold it
    assert offline["compliance_exceptions"] == [{"id": breach["id"], "kind": "over_limit", "reason": breach["why"]}]
    assert shortfall["created_at"] <= breach["created_at"] and all(row["status"] == "open" for row in found)
    assert db.execute("SELECT id FROM open_inventory_exceptions WHERE store_id = %s", [store]).fetchall() == [
        (shortfall["id"],), (breach["id"],)]   # the view itself is ordered, oldest first
    assert open_exceptions(db, new_store(db)) == []


def test_a_shortfall_is_resolved_only_by_moving_stock_and_nothing_changes_when_refused(db, store):
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    short_sale(db, store)
    shortfall = exception_of(db, store, "shortfall")
    resolution = {"store_id": store, "exception_id": shortfall, "resolved_by": "manager-7",
                  "reason": "one unit was found on the shelf"}
    before = snapshot(db, store)
    with pytest.raises(InvalidSale) as refused:
        resolve_exception(db, resolution)
    assert [problem["field"] for problem in refused.value.detail["problems"]] == ["adjustment"]
    assert snapshot(db, store) == before

    count = {"reference": "CNT-1", "reason_code": "cycle_count", "note": "shelf count", "actor": "manager-7",
             "lines": [{"sku": "SKU-1", "batch_lot": "LOT-A", "counted": 1}]}
    result = resolve_exception(db, {**resolution, "count": count})
    moved = result["moved"]
    assert {key: result[key] for key in ("id", "store_id", "kind", "status", "resolved_by", "reason", "replayed")} == {
        "id": shortfall, "store_id": store, "kind": "shortfall", "status": "resolved", "resolved_by": "manager-7",
        "reason": "one unit was found on the shelf", "replayed": False}
    assert result["was"] == "open"
    assert (moved["reference"], moved["exceptions_resolved"]) == ("CNT-1", 1)
    assert [(line["batch"], line["quantity"]) for line in moved["adjustments"]] == [("LOT-A", 1)]
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (1, 1)}
    row = db.execute("SELECT status, resolved_by::text, resolved_at IS NOT NULL, resolution->'result'"
                     " FROM inventory_exceptions WHERE store_id = %s AND id = %s", [store, shortfall]).fetchone()
    assert row == ("resolved", moved["id"], True, result)   # resolved_by: the count's adjustment
    assert open_exceptions(db, store) == []


def test_a_shortfall_resolved_by_an_adjustment(db, store):
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    short_sale(db, store)
    shortfall = exception_of(db, store, "shortfall")
    adjustment = {"reference": "ADJ-1", "reason_code": "receiving_error", "note": "3 units never booked in",
                  "actor": "manager-7", "lines": [{"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": 3}]}
    result = resolve_exception(db, {"store_id": store, "exception_id": shortfall, "resolved_by": "manager-7",
                                    "reason": "the shipment was short-booked", "adjustment": adjustment})
    assert (result["status"], result["was"], result["moved"]["reference"]) == ("resolved", "open", "ADJ-1")
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (3, 3)}
    assert db.execute("SELECT status, resolved_by::text FROM inventory_exceptions WHERE id = %s",
                      [shortfall]).fetchone() == ("resolved", result["moved"]["id"])


def test_a_compliance_exception_is_resolved_with_a_reason_alone_once_and_replayed(db, store):
    over_the_limit(db, store)
    breach = exception_of(db, store, "over_limit")
    resolution = {"store_id": store, "exception_id": breach, "resolved_by": "compliance-1",
                  "reason": "reported to the regulator"}
    result = resolve_exception(db, resolution)
    assert {key: result[key] for key in ("kind", "status", "was", "moved", "replayed")} == {
        "kind": "over_limit", "status": "resolved", "was": "open", "moved": None, "replayed": False}
    assert db.execute("SELECT status, resolved_by, resolved_at IS NOT NULL FROM inventory_exceptions WHERE id = %s",
                      [breach]).fetchone() == ("resolved", None, True)
    assert resolve_exception(db, resolution) == {**result, "replayed": True}
    before = snapshot(db, store)
    with pytest.raises(IdempotencyConflict):
        resolve_exception(db, {**resolution, "reason": "something else"})
    # Another payload naming a new adjustment: the adjustment runs first and is undone with the refusal.
    with pytest.raises(IdempotencyConflict):
        resolve_exception(db, {**resolution, "adjustment": {
            "reference": "ADJ-LATE", "reason_code": "data_entry_error", "note": "n", "actor": "a",
            "lines": [{"sku": "FLOWER-3.5G", "batch_lot": "LOT-F", "quantity": 1}]}})
    assert snapshot(db, store) == before


def test_an_unknown_exception_or_a_bad_payload_is_refused_with_every_problem_and_changes_nothing(db, store):
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    short_sale(db, store)
    shortfall = exception_of(db, store, "shortfall")
    before = snapshot(db, store)
    adjustment = {"reference": "ADJ-1", "reason_code": "receiving_error", "note": "n", "actor": "a",
                  "lines": [{"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": 3}]}
    with pytest.raises(NotFound) as missing:   # the adjustment ran before the exception was looked up: undone
        resolve_exception(db, {"store_id": store, "exception_id": shortfall + 1000, "resolved_by": "m",
                               "reason": "r", "adjustment": adjustment})
    assert missing.value.detail["missing"] == [{"store_id": store, "exception_id": shortfall + 1000}]
    with pytest.raises(NotFound):   # another store's exception is not this store's
        resolve_exception(db, {"store_id": new_store(db), "exception_id": shortfall, "resolved_by": "m",
                               "reason": "r", "adjustment": adjustment})
    with pytest.raises(InvalidSale) as invalid:
        resolve_exception(db, {"store_id": store, "exception_id": 0, "reason": " ",
                               "adjustment": {"reference": "", "reason_code": "nope", "note": "n", "actor": "a",
                                              "lines": [{"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": 0}]}})
    fields = [problem["field"] for problem in invalid.value.detail["problems"]]
    assert fields[:3] == ["exception_id", "resolved_by", "reason"]
    assert {"adjustment.reference", "adjustment.reason_code", "adjustment.lines[0].quantity"} <= set(fields[3:])
    assert all(field.startswith("adjustment.") for field in fields[3:])
    with pytest.raises(InvalidSale) as invalid:
        resolve_exception(db, {"store_id": store, "exception_id": shortfall, "resolved_by": "m", "reason": "r",
                               "adjustment": adjustment, "count": {}})
    assert [problem["field"] for problem in invalid.value.detail["problems"]][0] == "adjustment"
    with pytest.raises(InvalidSale):
        resolve_exception(db, {"store_id": store, "exception_id": shortfall, "resolved_by": "m", "reason": "r",
                               "count": "CNT-1"})
    assert snapshot(db, store) == before


def test_a_count_settles_shortfalls_but_not_the_rules_an_offline_sale_broke(db, store):
    add_stock(db, store, "SKU-1", 4, "LOT-BAD")
    set_batch_status(db, {"reference": f"RECALL-{store}", "batch_lot": "LOT-BAD", "status": "recalled",
                          "reason": "recall", "actor": "compliance", "store_id": store})
    offline_sale(db, store, item("SKU-1", 2, "LOT-BAD"))
    assert sorted(row["kind"] for row in open_exceptions(db, store)) == ["blocked_batch", "shortfall"]
    count_inventory(db, {"store_id": store, "reference": "CNT-1", "reason_code": "physical_count", "note": "n",
                         "actor": "a", "lines": [{"sku": "SKU-1", "batch_lot": "LOT-BAD", "counted": 4}]})
    # The count settles what it counted (the units); the sale from a recalled lot waits for a person's reason.
    assert [row["kind"] for row in open_exceptions(db, store)] == ["blocked_batch"]


def heard(listener, timeout, stop_after=None):
    return [json.loads(notify.payload) for notify in listener.notifies(timeout=timeout, stop_after=stop_after)]


def test_a_listener_hears_a_new_exception_only_when_its_sale_commits(db, dsn, store):
    add_stock(db, store, "SKU-1", 1, "LOT-A")
    add_stock(db, store, "SKU-2", 0, "LOT-B")
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn) as till:
        listener.execute(f"LISTEN {CHANNEL}")
        with till.transaction():   # the caller's transaction: the sale runs in a savepoint of it
            sale = record_sale(till, sale_payload(store, item("SKU-1", 3), item("SKU-2", 1, "LOT-B"),
                                                  policy="lenient", authorized_by="manager-7"))
            assert heard(listener, 0.5) == []   # raised, not committed: nothing yet
        announced = heard(listener, 10, stop_after=2)
        assert heard(listener, 0.3) == []
    rows = dict(db.execute("SELECT sku, jsonb_build_object('id', id, 'created_at', created_at)"
                           " FROM inventory_exceptions WHERE store_id = %s", [store]).fetchall())
    assert all(set(payload) == ANNOUNCED for payload in announced)
    assert sorted(announced, key=lambda payload: payload["sku"]) == [
        {**rows["SKU-1"], "store_id": store, "kind": "shortfall", "order_id": sale["id"], "sku": "SKU-1",
         "batch": None, "quantity_short": 2},
        {**rows["SKU-2"], "store_id": store, "kind": "shortfall", "order_id": sale["id"], "sku": "SKU-2",
         "batch": "LOT-B", "quantity_short": 1}]   # the id and time as the database writes them in JSON


def test_a_rolled_back_exception_is_never_announced(db, dsn, store):
    add_stock(db, store, "SKU-1", 1, "LOT-A")
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn) as till:
        listener.execute(f"LISTEN {CHANNEL}")
        with till.transaction():
            short_sale(till, store)
            raise psycopg.Rollback
        till.commit()
        assert heard(listener, 0.5) == []
    assert count_rows(db, "inventory_exceptions") == 0 and stock_of(db, store, "SKU-1") == {"LOT-A": (1, 1)}


# The command line, as real subprocesses.

class Watch:
    """`posledger exceptions --watch ...` running in the background; threads read its lines, so that a test waits
    for a line with a timeout instead of hanging."""

    def __init__(self, *args):
        self.process = subprocess.Popen([sys.executable, "-m", "posledger", "exceptions", "--watch", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.readers = [threading.Thread(target=lambda s=stream, q=lines: [q.put(line) for line in s], daemon=True)
                        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def line(lines, timeout=60):
        return lines.get(timeout=timeout)

    def listening(self):
        first = self.line(self.err)
        assert first.startswith(f"listening on {CHANNEL}"), first

    def wait(self):
        """Its exit code, once it has exited by itself, and every line it printed after those already read."""
        code = self.process.wait(timeout=60)
        for reader in self.readers:
            reader.join(timeout=60)
        return code, *([lines.get() for _ in range(lines.qsize())] for lines in (self.out, self.err))

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=60)


def test_the_cli_lists_the_queue_and_resolves_from_a_payload(db, dsn, store):
    add_stock(db, store, "SKU-1", 2, "LOT-A")
    sale = short_sale(db, store)
    over_the_limit(db, store)
    listed = json.loads(posledger_cli("exceptions", "--store-id", store, "--dsn", dsn, "--json").stdout)
    assert [(row["kind"], row["receipt_number"], row["who"]) for row in listed] == [
        ("shortfall", sale["receipt_number"], "manager-7"), ("over_limit", listed[1]["receipt_number"], "cashier-2")]
    table = posledger_cli("exceptions", "--store-id", store, "--dsn", dsn)
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("open exceptions (oldest first)")
    for shown in (sale["receipt_number"], "manager-7", "lenient sale: 3", "over_limit", "cashier-2"):
        assert shown in table.stdout, shown
    # Every store's (on the distributed pass, other tests' stores too): this store's among them.
    everyone = json.loads(posledger_cli("exceptions", "--dsn", dsn, "--json").stdout)
    assert {row["id"] for row in listed} <= {row["id"] for row in everyone if row["store_id"] == store}
    other = posledger_cli("exceptions", "--store-id", new_store(db), "--dsn", dsn)
    assert other.stdout.strip() == "open exceptions (oldest first): none"

    resolution = json.dumps({"store_id": store, "exception_id": listed[1]["id"], "resolved_by": "compliance-1",
                             "reason": "reported to the regulator"})
    done = posledger_cli("exceptions", "resolve", "-", "--dsn", dsn, stdin=resolution)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"exception {listed[1]['id']} (over_limit): resolved by compliance-1")
    again = posledger_cli("exceptions", "resolve", "-", "--dsn", dsn, "--json", stdin=resolution)
    assert json.loads(again.stdout)["replayed"] is True
    refused = posledger_cli("exceptions", "resolve", "-", "--dsn", dsn, stdin=json.dumps(
        {"store_id": store, "exception_id": listed[0]["id"], "resolved_by": "m", "reason": "r"}))
    assert refused.returncode == 1 and "IV400 InvalidSale" in refused.stderr and "field=adjustment" in refused.stderr
    assert [row["kind"] for row in open_exceptions(db, store)] == ["shortfall"]
    assert posledger_cli("exceptions", "--count", "2", "--dsn", dsn).returncode == 2      # --count goes with --watch
    assert posledger_cli("exceptions", "--json", "resolve", "-", "--dsn", dsn).returncode == 2


def test_watch_prints_each_new_exception_as_it_commits_and_stops_after_count(db, dsn, store):
    add_stock(db, store, "SKU-1", 1, "LOT-A")
    add_stock(db, store, "SKU-2", 0, "LOT-B")
    short_sale(db, store)   # before the watch: not printed
    watch = Watch("--count", "2", "--store-id", store, "--json", "--dsn", dsn)
    try:
        watch.listening()
        other = new_store(db)
        add_stock(db, other, "SKU-1", 0, "LOT-A")
        short_sale(db, other, quantity=1)   # another store's: not printed
        first = short_sale(db, store, quantity=2)
        with db.transaction():   # raised and settled by a count before anyone could read it
            second = short_sale(db, store, sku="SKU-2", quantity=4)
            count_inventory(db, {"store_id": store, "reference": "CNT-1", "reason_code": "cycle_count", "note": "n",
                                 "actor": "a", "lines": [{"sku": "SKU-2", "batch_lot": "LOT-B", "counted": 0}]})
        code, out, err = watch.wait()
    finally:
        watch.stop()
    assert code == 0, err
    printed = [json.loads(line) for line in out]
    assert [(row["order_id"], row["quantity_short"], row["status"]) for row in printed] == [
        (first["id"], 2, "open"), (second["id"], 4, "resolved")]
    assert (printed[0]["receipt_number"], printed[0]["who"], printed[0]["why"]) == (
        first["receipt_number"], "manager-7", "lenient sale: 2 units no batch covered")
    assert printed[1]["batch_lot"] is None and printed[1]["sku"] == "SKU-2"   # the announcement, as a row has it
    assert err == []


def test_watch_prints_a_line_at_once_and_exits_cleanly_on_sigterm(db, dsn, store):
    add_stock(db, store, "SKU-1", 1, "LOT-A")
    watch = Watch("--dsn", dsn)
    try:
        watch.listening()
        sale = short_sale(db, store)
        line = watch.line(watch.out)   # flushed as it came, while the watch keeps running
        watch.process.send_signal(signal.SIGTERM)
        code, out, err = watch.wait()
    finally:
        watch.stop()
    assert (code, out, err) == (0, [], ["stopped\n"])
    exception_id = exception_of(db, store, "shortfall")
    assert line.startswith(f"exception {exception_id} shortfall: 4 x SKU-1, store {store}, till till-1, "
                           f"receipt {sale['receipt_number']}, who manager-7, sold ")
    assert line.endswith("why lenient sale: 4 units no batch covered\n")
