"""Offline tills (issue 17): a sale a till made while the database was out of reach arrives later with
"policy": "offline", its till's terminal_id and terminal_sequence, and when it happened (occurred_at).

What this file proves, on a real PostgreSQL with real connections:
- 500 queued offline sales from three tills, replayed in order (the three tills at once, one connection
  each), shuffled, and each sent twice, are each recorded exactly once; the books balance, nothing goes
  negative, the stock each order of arrival leaves is the one the sales determine, and the gaps in each
  till's numbering are exactly the sales that never arrived;
- an offline sale is never refused for stock or the law: what stock covers is deducted, the rest and any
  breach (over 30 g, a recalled batch) become exceptions - while the same sale online is refused;
- a malformed offline payload is refused (IV400) naming every problem, a till's sequence number reused by
  another sale is IV412 naming the receipt that has it;
- the ledger keeps when each unit left (occurred_at, sealed into the hash chain) beside when it was
  recorded, the monthly movements count it in the month it happened, and an offline sale is judged by the
  store's date when it happened, not when it arrived."""

import datetime
import random
import threading
from collections import Counter
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest

from conftest import (
    FIGURES,
    add_stock,
    catalogue,
    check_invariants,
    count_rows,
    item,
    new_store,
    record_sale,
    sale_payload,
    stock_of,
)
from posledger import BatchBlocked, IdempotencyConflict, InvalidSale, LimitExceeded, set_batch_status

FLOWER = "FLOWER-3.5G"   # 3.5 g dried flower a unit: nine units (31.5 g) are over the 30 g limit


def zone_of(db, store):
    """The store's time zone and its date today: its calendar decides expiry and months (stores.time_zone)."""
    row = db.execute("SELECT time_zone, (now() AT TIME ZONE time_zone)::date FROM stores WHERE id = %s",
                     [store]).fetchone()
    db.commit()
    return ZoneInfo(row[0]), row[1]


def offline(store, terminal, sequence, occurred_at, *items, receipt_number=None, **fields):
    """An offline sale as a till queues it: when it happened, with its offset, and the till's own number."""
    payload = sale_payload(store, *items, policy="offline", terminal_id=terminal, terminal_sequence=sequence,
                           occurred_at=occurred_at.isoformat(timespec="seconds"), **fields)
    if receipt_number is not None:
        payload["receipt_number"] = receipt_number
    return payload


def exceptions_of(db, order_id):
    """An order's exceptions: the law's (no line) first, then its shortfalls in line order."""
    rows = db.execute("SELECT kind, sku, batch_lot, quantity_short, reason FROM inventory_exceptions"
                      " WHERE order_id = %s ORDER BY line_no NULLS FIRST, id", [order_id]).fetchall()
    db.commit()
    return rows


def snapshot(db):
    """Everything a refused sale must leave as it was."""
    tables = ["ocs_inventory", "ocs_inventory_transactions", "pos_orders", "pos_order_lines", "inventory_exceptions"]
    state = {t: db.execute(f"SELECT to_jsonb(x) FROM {t} x ORDER BY to_jsonb(x)::text").fetchall() for t in tables}
    db.commit()
    return state


# 500 queued sales from three tills

# (sku, batch, units, packaged_on_date). The mix is chosen so that what must not depend on the order of
# arrival can be asserted per sku: SKU-A's named batch alone covers all SKU-A demand, and FLOWER's only
# batch all flower demand (no shortfall, in any order); SKU-B and SKU-C are sold by FEFO lines only, far
# beyond their stock (emptied, the same shortfall, in any order). SKU-D is contended: lines naming D-1
# compete with FEFO lines that take D-1 first, so which units end short depends on the order - there only
# the balance on hand - shortfall = stock - units sold holds in every order, and the test asserts just that.
STOCK = [("SKU-A", "A-OLD", 100, "2025-01-01"), ("SKU-A", "A-NEW", 1000, "2025-06-01"),
         ("SKU-B", None, 100, None), ("SKU-B", "B-1", 300, "2025-02-01"),
         ("SKU-C", "C-1", 30, "2025-03-01"), ("SKU-C", "C-2", 30, "2025-04-01"),
         ("SKU-D", "D-1", 150, "2025-01-15"), ("SKU-D", "D-2", 150, "2025-05-15"),
         (FLOWER, "F-1", 600, "2025-07-01")]
ORDER_FREE = ["SKU-A", "SKU-B", "SKU-C", FLOWER]
# Per till: how many numbers it used, and those whose sale never arrived. Only numbers between the first
# and the last that arrived are gaps (T1's 1 and T3's 170-171 cannot be told from sales not yet made).
TILLS = {"T1": (172, {1, 17, 18, 19, 120}), "T2": (170, {50, 51, 99}), "T3": (171, {2, 88, 130, 170, 171})}
EXPECTED_GAPS = {"T1": {17, 18, 19, 120}, "T2": {50, 51, 99}, "T3": {2, 88, 130}}
OVER_LIMIT_EVERY = 60   # every 60th sale of the queue sells 9 to 10 units of flower: over 30 g


def queued_sales(zone):
    """The 500 sales the three tills queued over the previous five days, as (till, number, occurred_at,
    [(sku, batch, units)]), each till's in its own order; seeded, so every store gets the same ones."""
    rng = random.Random(17)
    start = datetime.datetime.now(zone).replace(hour=9, minute=0, second=0, microsecond=0) - datetime.timedelta(days=5)
    sales = []
    for till, (used, never_sent) in TILLS.items():
        for number in range(1, used + 1):
            occurred_at = start + datetime.timedelta(minutes=number * 40 + rng.randrange(30))
            lines = []
            for sku in rng.sample(["SKU-A", "SKU-B", "SKU-C", "SKU-D", FLOWER], rng.choice([1, 2, 2, 3])):
                units = rng.randint(1, 2) if sku == FLOWER else rng.randint(1, 4)
                batch = {"SKU-A": rng.choice([None, "A-NEW"]), FLOWER: rng.choice([None, "F-1"]),
                         "SKU-D": rng.choice([None, None, "D-1", "D-1", "D-NEVER"])}.get(sku)
                lines.append((sku, batch, units))
            if number not in never_sent:
                sales.append((till, number, occurred_at, lines))
    for n, (_, _, _, lines) in enumerate(sales):
        if n % OVER_LIMIT_EVERY == OVER_LIMIT_EVERY - 1:
            lines[:] = [line for line in lines if line[0] != FLOWER] + [(FLOWER, None, 9 + n % 2)]
    return sales


def stocked_store(db):
    store = new_store(db)
    catalogue(db, FLOWER, "dried", net_content=Decimal("3.5"), net_unit="g")
    for sku, batch, units, packaged in STOCK:
        add_stock(db, store, sku, units, batch, packaged)
    return store


def payload_of(store, sale):
    till, number, occurred_at, lines = sale
    return offline(store, till, number, occurred_at, *(item(sku, units, batch) for sku, batch, units in lines),
                   receipt_number=f"{till}-{number:04d}", cashier_id=f"cashier-{till}")


def books_of(db, store):
    """What the replay left in a store: on hand and shortfall units per sku, over-limit exceptions, orders,
    sold units per sku (the order lines: every unit the tills sold, covered or not), and the gaps."""
    on_hand = dict(db.execute("SELECT sku, sum(quantity_on_hand) FROM ocs_inventory WHERE store_id = %s"
                              " GROUP BY sku", [store]).fetchall())
    short = Counter(dict(db.execute("SELECT sku, sum(quantity_short) FROM inventory_exceptions WHERE store_id = %s"
                                    " AND kind = 'shortfall' GROUP BY sku", [store]).fetchall()))
    kinds = Counter(dict(db.execute("SELECT kind, count(*) FROM inventory_exceptions WHERE store_id = %s"
                                    " GROUP BY kind", [store]).fetchall()))
    orders = db.execute("SELECT count(*) FROM pos_orders WHERE store_id = %s", [store]).fetchone()[0]
    sold = dict(db.execute("SELECT sku, sum(quantity) FROM pos_order_lines WHERE store_id = %s GROUP BY sku",
                           [store]).fetchall())
    gaps = {}
    for till, first, last in db.execute("SELECT terminal_id, first_missing, last_missing FROM terminal_sequence_gaps"
                                        " WHERE store_id = %s", [store]):
        gaps.setdefault(till, set()).update(range(first, last + 1))
    negative = db.execute("SELECT * FROM negative_inventory WHERE store_id = %s", [store]).fetchall()
    db.commit()
    return {"on_hand": on_hand, "short": short, "kinds": kinds, "orders": orders, "sold": sold, "gaps": gaps,
            "negative": negative}


def send(conn, payloads, results):
    """Send each payload; the first sending of a receipt is recorded, any later one must be its replay."""
    for payload in payloads:
        result = record_sale(conn, payload)
        FIGURES["offline replay: sales sent"] += 1
        first = results.setdefault(payload["receipt_number"], result)
        if first is not result:
            FIGURES["offline replay: sales sent again (replayed)"] += 1
            assert result == {**first, "replayed": True}
        else:
            assert result["replayed"] is False


def test_500_queued_offline_sales_from_three_tills_are_recorded_once_whatever_the_order(db, dsn):
    stores = {mode: stocked_store(db) for mode in ("in order", "shuffled", "twice")}
    zone, _ = zone_of(db, stores["in order"])
    sales = queued_sales(zone)
    assert len(sales) == 500
    demand = Counter()
    for _, _, _, lines in sales:
        for sku, _, units in lines:
            demand[sku] += units
    stock = Counter()
    for sku, _, units, _ in STOCK:
        stock[sku] += units
    # The mix is what the docstring of STOCK says: otherwise the per-sku comparisons below prove nothing.
    assert demand["SKU-A"] <= 1000 and demand[FLOWER] <= 600
    assert demand["SKU-B"] > stock["SKU-B"] and demand["SKU-C"] > stock["SKU-C"] and demand["SKU-D"] > stock["SKU-D"]
    over_limit = sum(1 for _, _, _, lines in sales if sum(u for s, _, u in lines if s == FLOWER) * 3.5 > 30)
    assert over_limit == 500 // OVER_LIMIT_EVERY

    # In order: each till replays its own queue in its own numbering, the three at once on their own connections.
    results = {mode: {} for mode in stores}
    start = threading.Barrier(len(TILLS))
    failures = []

    def till(name):
        try:
            with psycopg.connect(dsn) as conn:
                start.wait()
                send(conn, [payload_of(stores["in order"], s) for s in sales if s[0] == name], results["in order"])
        except BaseException as error:   # noqa: BLE001 - reported to the main thread below
            failures.append(error)

    threads = [threading.Thread(target=till, args=(name,)) for name in TILLS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    check_invariants(dsn)

    # Shuffled: the queues arrive mixed and out of each till's order.
    shuffled = sales[:]
    random.Random(1).shuffle(shuffled)
    send(db, [payload_of(stores["shuffled"], s) for s in shuffled], results["shuffled"])
    check_invariants(db)

    # Twice: every sale is sent again, later, in another order (a till that did not hear back retries).
    twice = sales + sales
    random.Random(2).shuffle(twice)
    send(db, [payload_of(stores["twice"], s) for s in twice], results["twice"])
    check_invariants(db)

    books = {mode: books_of(db, store) for mode, store in stores.items()}
    for mode, book in books.items():
        assert book["orders"] == len(results[mode]) == 500, mode   # each sale recorded exactly once
        assert book["negative"] == [], mode
        assert book["sold"] == dict(demand), mode          # every unit a till sold is on an order line
        assert book["kinds"]["over_limit"] == over_limit, mode
        assert set(book["kinds"]) <= {"shortfall", "over_limit"}, mode
        assert book["gaps"] == EXPECTED_GAPS, mode
        for sku in stock:   # what was there, less what was sold, is on hand, or short
            assert book["on_hand"][sku] - book["short"][sku] == stock[sku] - demand[sku], (mode, sku)
        flagged = [r for r in results[mode].values() if r.get("compliance_exceptions")]
        assert len(flagged) == over_limit and all(
            [e["kind"] for e in r["compliance_exceptions"]] == ["over_limit"] for r in flagged), mode
        assert all(r["requires_manual_inventory_adjustment"] == bool(r["inventory_updates"]["failed"])
                   for r in results[mode].values()), mode
    for mode in ("shuffled", "twice"):
        for sku in ORDER_FREE:
            assert books[mode]["on_hand"][sku] == books["in order"]["on_hand"][sku], (mode, sku)
            assert books[mode]["short"][sku] == books["in order"]["short"][sku], (mode, sku)
    assert books["in order"]["on_hand"]["SKU-B"] == books["in order"]["on_hand"]["SKU-C"] == 0
    assert books["in order"]["short"]["SKU-A"] == books["in order"]["short"][FLOWER] == 0
    FIGURES["offline replay: sales recorded"] += sum(book["orders"] for book in books.values())
    for book in books.values():
        for kind, count in book["kinds"].items():
            FIGURES[f"offline replay: exceptions raised: {kind}"] += count


# One offline sale at a time

def test_an_offline_sale_short_of_stock_deducts_what_exists_and_queues_the_rest(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 3, "LOT-A")
    zone, _ = zone_of(db, store)
    occurred_at = datetime.datetime.now(zone) - datetime.timedelta(hours=5)
    before = count_rows(db, "ocs_inventory_transactions")
    # More than stock has, a batch this store never stocked, and a sku it never stocked: all sold, none refused.
    result = record_sale(db, offline(store, "T1", 1, occurred_at, item("SKU-1", 5), item("SKU-1", 4, "LOT-NEVER"),
                                     item("NEVER-STOCKED", 2)))
    assert result["status"] == "completed" and result["requires_manual_inventory_adjustment"]
    assert result["inventory_updates"]["successful"] == [
        {"sku": "SKU-1", "batch": "LOT-A", "quantity_deducted": 3, "remaining": 0}]
    assert result["inventory_updates"]["failed"] == [
        {"sku": "NEVER-STOCKED", "batch": None, "requested": 2, "available": 0},   # unknown: short, not IV404
        {"sku": "SKU-1", "batch": "LOT-NEVER", "requested": 4, "available": 0},
        {"sku": "SKU-1", "batch": None, "requested": 5, "available": 3}]
    assert result["terminal_sequence"] == 1
    assert datetime.datetime.fromisoformat(result["occurred_at"]) == occurred_at.replace(microsecond=0)
    # The sku the catalogue does not know cannot be weighed against the limit: that is the law's exception.
    assert [e["kind"] for e in result["compliance_exceptions"]] == ["uncatalogued"]
    exceptions = exceptions_of(db, result["id"])
    assert [row[:4] for row in exceptions] == [
        ("uncatalogued", "NEVER-STOCKED", None, None), ("shortfall", "SKU-1", None, 2),
        ("shortfall", "SKU-1", "LOT-NEVER", 4), ("shortfall", "NEVER-STOCKED", None, 2)]
    assert all(reason for *_, reason in exceptions)
    queue = db.execute("SELECT kind, sku, quantity_short, terminal_id, why, sold_at FROM open_inventory_exceptions"
                       " WHERE store_id = %s ORDER BY id", [store]).fetchall()
    lines = db.execute("SELECT sku, batch_lot, inventory_id IS NOT NULL, quantity FROM pos_order_lines"
                       " WHERE order_id = %s ORDER BY line_no, inventory_id", [result["id"]]).fetchall()
    db.commit()
    assert sorted((kind, sku, short, till, why) for kind, sku, short, till, why, _ in queue) == sorted(
        (kind, sku, short, "T1", reason) for kind, sku, _, short, reason in exceptions)
    assert all(sold_at == occurred_at.replace(microsecond=0) for *_, sold_at in queue)
    # Every unit the till sold is on the order, those from no batch too; only the three deducted are ledgered.
    assert lines == [("SKU-1", "LOT-A", True, 3), ("SKU-1", None, False, 2), ("SKU-1", "LOT-NEVER", False, 4),
                     ("NEVER-STOCKED", None, False, 2)]
    assert count_rows(db, "ocs_inventory_transactions") == before + 1
    assert stock_of(db, store, "SKU-1") == {"LOT-A": (0, 0)}
    assert db.execute("SELECT count(*) FROM negative_inventory").fetchone() == (0,)


def test_an_offline_sale_over_the_limit_is_recorded_and_flagged_while_online_it_is_refused(db):
    store = new_store(db)
    catalogue(db, FLOWER, "dried", net_content=Decimal("3.5"), net_unit="g")
    add_stock(db, store, FLOWER, 20, "LOT-F")
    zone, _ = zone_of(db, store)
    result = record_sale(db, offline(store, "T1", 1, datetime.datetime.now(zone), item(FLOWER, 9)))
    assert result["inventory_updates"]["successful"][0]["quantity_deducted"] == 9
    assert not result["requires_manual_inventory_adjustment"]
    assert Decimal(str(result["purchase_limit"]["dried_grams"])) == Decimal("31.5")
    [flag] = result["compliance_exceptions"]
    assert flag["kind"] == "over_limit" and flag["reason"]
    assert [(kind, sku, short) for kind, sku, _, short, _ in exceptions_of(db, result["id"])] == [
        ("over_limit", None, None)]
    assert db.execute("SELECT id, kind FROM open_inventory_exceptions WHERE store_id = %s",
                      [store]).fetchall() == [(flag["id"], "over_limit")]
    db.commit()
    with pytest.raises(LimitExceeded) as refused:
        record_sale(db, sale_payload(store, item(FLOWER, 9)))
    assert refused.value.sqlstate == "IV422"
    assert stock_of(db, store, FLOWER) == {"LOT-F": (11, 11)}


def test_an_offline_sale_from_a_recalled_batch_is_recorded_short_and_flagged_while_online_it_is_refused(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-BAD")
    add_stock(db, store, "SKU-1", 5, "LOT-GOOD")
    set_batch_status(db, {"reference": f"RECALL-{store}", "batch_lot": "LOT-BAD", "status": "recalled",
                          "reason": "recall", "actor": "compliance", "store_id": store})
    zone, _ = zone_of(db, store)
    with pytest.raises(BatchBlocked) as refused:
        record_sale(db, sale_payload(store, item("SKU-1", 2, "LOT-BAD")))
    assert refused.value.sqlstate == "IV423"
    result = record_sale(db, offline(store, "T1", 1, datetime.datetime.now(zone), item("SKU-1", 2, "LOT-BAD"),
                                     item("SKU-1", 1)))
    assert [e["kind"] for e in result["compliance_exceptions"]] == ["blocked_batch"]
    assert result["inventory_updates"]["successful"] == [
        {"sku": "SKU-1", "batch": "LOT-GOOD", "quantity_deducted": 1, "remaining": 4}]   # FEFO passes it by
    assert result["requires_manual_inventory_adjustment"]
    assert [row[:4] for row in exceptions_of(db, result["id"])] == [
        ("blocked_batch", "SKU-1", "LOT-BAD", None), ("shortfall", "SKU-1", "LOT-BAD", 2)]
    # The recalled units stay on the shelf, unsellable: the two sold from it are a matter for a person.
    assert stock_of(db, store, "SKU-1") == {"LOT-BAD": (0, 5), "LOT-GOOD": (4, 4)}


@pytest.mark.parametrize("broken, fields", [
    ({"occurred_at": None, "terminal_id": None, "terminal_sequence": None},
     {"occurred_at", "terminal_id", "terminal_sequence"}),
    ({"occurred_at": "2026-11-29T10:00:00"}, {"occurred_at"}),                      # no offset
    ({"occurred_at": "2026-02-30T10:00:00Z"}, {"occurred_at"}),                     # no such day
    ({"occurred_at": "2026-11-29T24:00:00-05:00", "terminal_sequence": 0}, {"occurred_at", "terminal_sequence"}),
    ({"occurred_at": 1764428400, "terminal_id": "", "terminal_sequence": 1.5},
     {"occurred_at", "terminal_id", "terminal_sequence"}),
    ({"terminal_sequence": "7", "terminal_id": "T" * 201}, {"terminal_sequence", "terminal_id"}),
    ({"terminal_sequence": 10 ** 16}, {"terminal_sequence"}),
])
def test_a_malformed_offline_sale_is_refused_naming_every_problem(db, broken, fields):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    payload = offline(store, "T1", 1, datetime.datetime(2026, 11, 29, 10, tzinfo=datetime.UTC), item("SKU-1", 1))
    for key, value in broken.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    before = snapshot(db)
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, payload)
    assert refused.value.sqlstate == "IV400"
    assert {p["field"] for p in refused.value.detail["problems"]} == fields
    assert snapshot(db) == before


def test_another_sale_reusing_a_tills_number_is_refused_naming_the_receipt_that_has_it(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 5, "LOT-A")
    zone, _ = zone_of(db, store)
    first = record_sale(db, offline(store, "T1", 7, datetime.datetime.now(zone), item("SKU-1", 1)))
    before = snapshot(db)
    for other in (offline(store, "T1", 7, datetime.datetime.now(zone), item("SKU-1", 2)),
                  # an online sale naming its till is held to the same numbering
                  sale_payload(store, item("SKU-1", 1), terminal_id="T1", terminal_sequence=7)):
        with pytest.raises(IdempotencyConflict) as refused:
            record_sale(db, other)
        assert refused.value.sqlstate == "IV412"
        assert refused.value.detail["receipt_number"] == first["receipt_number"] != other["receipt_number"]
        assert refused.value.detail["order_id"] == first["id"]
        assert (refused.value.detail["terminal_id"], refused.value.detail["terminal_sequence"]) == ("T1", 7)
    assert snapshot(db) == before
    # Another till's 7, and this till's next number, are other sales.
    record_sale(db, offline(store, "T2", 7, datetime.datetime.now(zone), item("SKU-1", 1)))
    record_sale(db, offline(store, "T1", 8, datetime.datetime.now(zone), item("SKU-1", 1)))
    assert count_rows(db, "pos_orders") == 3


def test_the_ledger_keeps_when_an_offline_sale_happened_and_the_month_counts_it_there(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    add_stock(db, store, "SKU-1", 10, "LOT-B", "2026-01-01")
    zone, today = zone_of(db, store)
    # Noon of the last day of last month, in the store's zone: recorded now, in a later month.
    last_day = today.replace(day=1) - datetime.timedelta(days=1)
    occurred_at = datetime.datetime.combine(last_day, datetime.time(12), zone)
    recorded_from = db.execute("SELECT now()").fetchone()[0]
    db.commit()
    result = record_sale(db, offline(store, "T1", 1, occurred_at, item("SKU-1", 12)))
    online = record_sale(db, sale_payload(store, item("SKU-1", 1)))
    rows = db.execute("SELECT reference_id, batch_lot, quantity, occurred_at, created_at"
                      " FROM ocs_inventory_transactions WHERE store_id = %s AND transaction_type = 'sale'"
                      " ORDER BY id", [store]).fetchall()
    order = db.execute("SELECT occurred_at, created_at FROM pos_orders WHERE id = %s", [result["id"]]).fetchone()
    db.commit()
    offline_rows = [r for r in rows if str(r[0]) == result["id"]]
    assert sorted((batch, quantity) for _, batch, quantity, _, _ in offline_rows) == [("LOT-A", -10), ("LOT-B", -2)]
    assert all(when == occurred_at and created >= recorded_from for _, _, _, when, created in offline_rows)
    assert order[0] == occurred_at and order[1] >= recorded_from
    assert [when for ref, _, _, when, _ in rows if str(ref) == online["id"]] == [None]   # at created_at
    months = dict(db.execute("SELECT month, sold FROM inventory_movements_monthly"
                             " WHERE store_id = %s AND sku = 'SKU-1'", [store]).fetchall())
    db.commit()
    assert months == {last_day.replace(day=1): -12, today.replace(day=1): -1}
    assert db.execute("SELECT * FROM verify_ledger(%s)", [store]).fetchall() == []


def test_a_sale_late_on_the_last_day_counts_in_that_month_of_the_stores_calendar(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    zone, today = zone_of(db, store)
    last_day = today.replace(day=1) - datetime.timedelta(days=1)
    # 22:00 in Toronto is 03:00 the next day in UTC, the sessions' zone here.
    record_sale(db, offline(store, "T1", 1, datetime.datetime.combine(last_day, datetime.time(22), zone),
                            item("SKU-1", 1)))
    months = dict(db.execute("SELECT month, sold FROM inventory_movements_monthly WHERE store_id = %s",
                             [store]).fetchall())
    db.commit()
    assert months.get(last_day.replace(day=1)) == -1


@pytest.mark.tampers
def test_the_hash_chain_covers_occurred_at(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    zone, _ = zone_of(db, store)
    record_sale(db, offline(store, "T1", 1, datetime.datetime.now(zone) - datetime.timedelta(days=3), item("SKU-1", 2)))
    assert db.execute("SELECT * FROM verify_ledger(%s)", [store]).fetchall() == []
    # What a table's owner can always do: set the append-only guard aside and move the sale to another day.
    db.execute("ALTER TABLE ocs_inventory_transactions DISABLE TRIGGER ocs_inventory_transactions_append_only")
    db.execute("UPDATE ocs_inventory_transactions SET occurred_at = occurred_at + interval '1 day'"
               " WHERE store_id = %s AND occurred_at IS NOT NULL", [store])
    db.execute("ALTER TABLE ocs_inventory_transactions ENABLE TRIGGER ocs_inventory_transactions_append_only")
    db.commit()
    broken = db.execute("SELECT kind, problem FROM verify_ledger(%s)", [store]).fetchall()
    assert [(kind, problem.split(":")[0]) for kind, problem in broken] == [("broken", "altered")]


def test_an_offline_sale_is_judged_by_the_stores_date_when_it_happened(db):
    """A batch that expired after the sale happened but before it arrived was sellable then: sold from, named or
    by FEFO. The day is the store's: a minute before midnight there is still the expiry day, hours into the
    next day in UTC."""
    store = new_store(db)
    zone, today = zone_of(db, store)
    expiry = today - datetime.timedelta(days=2)
    expiring = add_stock(db, store, "SKU-1", 10, "LOT-EXPIRING", "2025-01-01")
    add_stock(db, store, "SKU-1", 10, "LOT-LATER", "2025-02-01")
    db.execute("UPDATE ocs_inventory SET expiry_date = %s WHERE id = %s", [expiry, expiring])
    db.execute("UPDATE ocs_inventory SET expiry_date = %s WHERE store_id = %s AND batch_lot = 'LOT-LATER'",
               [today + datetime.timedelta(days=30), store])
    db.commit()
    last_minute = datetime.datetime.combine(expiry, datetime.time(23, 59), zone)
    next_day = datetime.datetime.combine(expiry + datetime.timedelta(days=1), datetime.time(0, 1), zone)

    named = record_sale(db, offline(store, "T1", 1, last_minute, item("SKU-1", 2, "LOT-EXPIRING")))
    fefo = record_sale(db, offline(store, "T1", 2, last_minute, item("SKU-1", 3)))
    for sold in (named, fefo):
        assert "compliance_exceptions" not in sold and not sold["requires_manual_inventory_adjustment"]
        assert [u["batch"] for u in sold["inventory_updates"]["successful"]] == ["LOT-EXPIRING"]
    assert stock_of(db, store, "SKU-1") == {"LOT-EXPIRING": (5, 5), "LOT-LATER": (10, 10)}

    # A minute into the next day it had expired: named, it is flagged and short; FEFO passes it by.
    late = record_sale(db, offline(store, "T1", 3, next_day, item("SKU-1", 1, "LOT-EXPIRING"), item("SKU-1", 2)))
    assert [e["kind"] for e in late["compliance_exceptions"]] == ["blocked_batch"]
    assert late["inventory_updates"]["successful"] == [
        {"sku": "SKU-1", "batch": "LOT-LATER", "quantity_deducted": 2, "remaining": 8}]
    assert [row[:4] for row in exceptions_of(db, late["id"])] == [
        ("blocked_batch", "SKU-1", "LOT-EXPIRING", None), ("shortfall", "SKU-1", "LOT-EXPIRING", 1)]
    # Online, now, the batch has expired.
    with pytest.raises(BatchBlocked):
        record_sale(db, sale_payload(store, item("SKU-1", 1, "LOT-EXPIRING")))
    online = record_sale(db, sale_payload(store, item("SKU-1", 1)))
    assert [u["batch"] for u in online["inventory_updates"]["successful"]] == ["LOT-LATER"]
