"""Property-based and stateful tests (hypothesis) against the real database.

Profiles: `ci` (the default: a few hundred examples) and `long` (thousands):
    HYPOTHESIS_PROFILE=long ./scripts/test -k properties
"""

import datetime
import os
import uuid
from fractions import Fraction
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import FIGURES, add_stock, catalogue, check_invariants, new_store, record_sale
from posledger import (
    BatchBlocked,
    InsufficientStock,
    InvalidSale,
    LimitExceeded,
    NotFound,
    PosLedgerError,
    ReservationClosed,
    ReturnExceedsSale,
    cancel_reservation,
    complete_reservation,
    count_inventory,
    release_expired_reservations,
    return_sale,
    set_batch_status,
)
from posledger.calls import call

settings.register_profile("ci", max_examples=200, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, stateful_step_count=60, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
STATEFUL_EXAMPLES = {"ci": 30, "long": 300}[PROFILE]

SKUS = ["SKU-A", "SKU-B", "SKU-C"]
CUSTOMER = "0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"
LOTS = ["LOT-1", "LOT-2", "LOT-3"]
LIMIT_GRAMS = 15   # the state machine's store: a limit its sales cross often

# Any JSON PostgreSQL's jsonb can hold: it refuses \u0000 and lone surrogates before any function runs.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(text, inner, max_size=3), max_leaves=8)


def json_object(fields):
    """A JSON object with the given fields, each mostly valid, sometimes junk, sometimes missing."""
    return st.fixed_dictionaries({}, optional={key: st.one_of(valid, valid, json_value)
                                              for key, valid in fields.items()})


def valid_payload(store_id):
    item = st.fixed_dictionaries(
        {"product": st.fixed_dictionaries({"sku": st.sampled_from(SKUS + ["NOPE"])}),
         "quantity": st.integers(1, 60)},
        optional={"batch": st.sampled_from(LOTS[:2]).map(lambda lot: {"batch_lot": lot})})
    return st.fixed_dictionaries(
        {"store_id": st.just(store_id), "receipt_number": st.uuids().map(lambda u: f"R-{u.hex[:12]}"),
         "items": st.lists(item, min_size=1, max_size=3), "total": st.decimals(0, 500, places=2).map(float)},
        optional={"user_id": st.just("0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"), "tax": st.just(1.5),
                  "policy": st.just("strict")})


@st.composite
def one_field_broken(draw, valid, lines="lines", also=()):
    """A valid payload with one field, top-level or of one of its lines, replaced by junk or removed;
    `also` names fields worth breaking that the valid payload may not have."""
    payload = draw(valid)
    target = draw(st.sampled_from([payload, *(payload.get(lines) or [])]))
    key = draw(st.sampled_from(sorted(target) + list(also)))
    junk = draw(st.none() | json_value | st.just(KeyError))
    if junk is KeyError:
        target.pop(key, None)
    else:
        target[key] = junk
    return payload


def near_valid_payload(store_id):
    """Valid sales (some of unknown skus or more than the stock), sales with one field broken, objects
    of the payload's fields with any of them junk or missing, and any JSON at all."""
    item = json_object({
        "product": json_object({"sku": st.sampled_from(SKUS + ["NOPE"])}),
        "quantity": st.integers(-2, 30) | st.just(10 ** 13) | st.just(1.5),
        "batch": st.none() | json_object({"batch_lot": st.sampled_from(LOTS)}),
        # Issue 15's line fields: scans good, bad and unknown to the catalogue, and money with float noise.
        "scan": text | st.sampled_from(["(01)00012345678905", "0627701000018", f"(01)00012345678905(10){LOTS[0]}",
                                        "(01)00012345678905(17)991399", "(01)00012345678906"]),
        "unit_price": st.floats(-1, 1e10, allow_nan=False) | st.just(4.550000000000001),
        "discount": st.floats(-1, 200, allow_nan=False),
        "discount_type": st.sampled_from(["percentage", "amount", "bogus"]),
        "tax": st.floats(-1, 100, allow_nan=False),
    })
    broken = one_field_broken(valid_payload(store_id), "items", ("batch", "status", "policy"))
    return valid_payload(store_id) | broken | json_value | json_object({
        "store_id": st.just(store_id) | st.uuids().map(str) | st.just(store_id.upper() + "x"),
        "receipt_number": st.uuids().map(lambda u: f"R-{u.hex[:12]}") | st.just(""),
        "user_id": st.none() | st.just("0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"),
        "status": st.just("completed") | st.just("reserved"),
        "policy": st.sampled_from(["strict", "lenient", "loose"]),
        "authorized_by": st.just("manager-1"),
        "items": st.lists(item, max_size=4),
        "total": st.decimals(0, 1000, places=2).map(float) | st.just(-1) | st.just(10 ** 12),
        "tax": st.just(1.5),
    })


def fingerprint(conn):
    row = conn.execute("SELECT (SELECT count(*) FROM pos_orders), (SELECT count(*) FROM ocs_inventory_transactions),"
                       " (SELECT sum(quantity_on_hand) FROM ocs_inventory),"
                       " (SELECT coalesce(sum(loyalty_points), 0) FROM profiles)").fetchone()
    conn.commit()
    return row


def test_fuzzed_payloads_get_only_iv_errors_and_an_error_changes_nothing(db, dsn):
    store = new_store(db)
    for sku in SKUS[:2]:
        add_stock(db, store, sku, 200)
        add_stock(db, store, sku, 50, "LOT-1", "2025-01-01")

    @settings(settings.default)
    def check(payload):
        before = fingerprint(db)
        FIGURES["fuzzed payloads"] += 1
        try:
            record_sale(db, payload)
            FIGURES["fuzzed payloads recorded"] += 1
        except PosLedgerError as refused:  # anything else - a raw psycopg error - fails the test
            FIGURES[f"fuzzed payloads rejected: {refused.sqlstate}"] += 1
            assert refused.detail, refused
            assert fingerprint(db) == before

    given(near_valid_payload(store))(check)()


# The other entry functions: a mostly valid payload each, for a store stocked as in the test below (and,
# for returns, its one order), broken by one_field_broken as the sales above.
REASONS = ["physical_count", "cycle_count", "loss_theft", "destruction", "shrinkage"]


def valid_documents(store_id, order_id):
    key = st.uuids().map(lambda u: f"K-{u.hex[:12]}")
    sku, lot = st.sampled_from(["SKU-A", "SKU-B", "SKU-A", "NOPE"]), st.sampled_from(["LOT-1", "LOT-1", "LOT-2"])
    gtin = st.sampled_from(["4006381333931", "96385074", "10012345678902", "4006381333932"])
    day = st.sampled_from(["2025-09-01", "2024-02-29", "2025-06-30", "2025-02-30"])
    receipt_line = st.fixed_dictionaries(
        {"sku": sku, "batch_lot": lot, "quantity_shipped": st.integers(0, 20), "quantity_received": st.integers(0, 20)},
        optional={"each_gtin": gtin, "case_gtin": gtin, "packaged_on_date": day})
    batch = st.fixed_dictionaries({"sku": sku}, optional={"batch_lot": st.none() | lot})  # null: the unbatched row
    header = {"store_id": st.just(store_id), "reference": key, "note": st.just("n"), "actor": st.just("a")}
    return {
        "receive_inventory": st.fixed_dictionaries({"store_id": st.just(store_id), "shipment_id": key,
                                                    "lines": st.lists(receipt_line, min_size=1, max_size=3)}),
        "adjust_inventory": st.fixed_dictionaries({**header, "reason_code": st.sampled_from(REASONS), "lines": st.lists(
            st.builds(lambda b, q, h: {**b, "quantity": q} | ({"quarantined": h} if h is not None else {}),
                      batch, st.integers(-60, -1) | st.integers(1, 60), st.none() | st.booleans()),
            min_size=1, max_size=3)}),
        "count_inventory": st.fixed_dictionaries({**header, "reason_code": st.sampled_from(REASONS), "lines": st.lists(
            st.builds(lambda b, c: {**b, "counted": c}, batch, st.integers(0, 300)), min_size=1, max_size=3)}),
        "return_pos_sale": st.fixed_dictionaries(
            {"store_id": st.just(store_id), "reference": key, "order_id": st.just(order_id)},
            optional={"void": st.just(False), "lines": st.lists(st.fixed_dictionaries(
                {"line_no": st.integers(1, 3), "quantity": st.integers(1, 3)},
                optional={"defective": st.booleans(), "batch_lot": lot}), min_size=1, max_size=2)})
        | st.fixed_dictionaries({"store_id": st.just(store_id), "reference": key, "order_id": st.just(order_id),
                                 "void": st.just(True)}, optional={"lines": st.none() | st.just([])}),
        "set_batch_status": st.fixed_dictionaries(
            {"reference": key, "batch_lot": lot, "reason": st.just("r"), "actor": st.just("a"),
             "status": st.sampled_from(["active", "quarantined", "recalled", "held"])},
            optional={"store_id": st.just(store_id), "sku": sku}),
    }


def document_fingerprint(conn):
    row = conn.execute("""
        SELECT (SELECT count(*) FROM ocs_inventory_transactions), (SELECT count(*) FROM batch_status_changes),
               (SELECT count(*) FROM pos_returns) + (SELECT count(*) FROM ocs_shipments)
               + (SELECT count(*) FROM inventory_adjustments) + (SELECT count(*) FROM batch_status_requests),
               (SELECT string_agg(concat_ws(':', id, quantity_on_hand, quantity_available, quantity_quarantined,
                                            status), ',' ORDER BY id) FROM ocs_inventory),
               (SELECT coalesce(sum(loyalty_points), 0) FROM profiles)""").fetchone()
    conn.commit()
    return row


@pytest.mark.parametrize("function", ["receive_inventory", "adjust_inventory", "count_inventory", "return_pos_sale",
                                      "set_batch_status"])
def test_fuzzed_documents_get_only_iv_errors_and_an_error_changes_nothing(db, function):
    store = new_store(db)
    for sku in SKUS[:2]:
        add_stock(db, store, sku, 200)
        add_stock(db, store, sku, 50, "LOT-1", "2025-01-01")
    order = record_sale(db, {"store_id": store, "receipt_number": "R-1", "total": 30, "user_id": CUSTOMER,
                             "items": [{"product": {"sku": "SKU-A"}, "quantity": 3},
                                       {"product": {"sku": "SKU-B"}, "quantity": 2, "batch": {"batch_lot": "LOT-1"}}]})
    valid = valid_documents(store, order["id"])[function]

    @settings(settings.default, max_examples=max(settings.default.max_examples // 2, 10))
    @given(st.one_of(valid, valid, valid, one_field_broken(valid), json_value))
    def check(payload):
        before = document_fingerprint(db)
        FIGURES[f"fuzzed {function} payloads"] += 1
        try:
            call(db, function, payload)
            FIGURES[f"fuzzed {function} payloads accepted"] += 1
        except PosLedgerError as refused:  # anything else - a raw psycopg error - fails the test
            FIGURES[f"fuzzed {function} payloads rejected: {refused.sqlstate}"] += 1
            assert refused.detail, refused
            assert document_fingerprint(db) == before

    check()


@settings(settings.default, max_examples=max(settings.default.max_examples // 4, 10))
@given(batches=st.lists(st.tuples(st.none() | st.integers(-3, 3), st.integers(0, 5)), min_size=1, max_size=5),
       wanted=st.integers(1, 20))
def test_fefo_never_sells_an_expired_unit_while_unexpired_stock_exists(db, batches, wanted):
    db.rollback()   # one connection for every example: a failed one must not leave it aborted
    store = new_store(db)
    for n, (expires_in, quantity) in enumerate(batches):
        row = add_stock(db, store, "SKU", quantity, f"LOT-{n}")
        if expires_in is not None:
            db.execute("UPDATE ocs_inventory SET expiry_date = posledger_private.store_today(s) + %s"
                       " FROM stores s WHERE s.id = store_id AND ocs_inventory.id = %s", [expires_in, row])
    expired = db.execute("SELECT i.id, i.quantity_on_hand FROM ocs_inventory i JOIN stores s ON s.id = i.store_id"
                         " WHERE i.store_id = %s AND i.expiry_date < posledger_private.store_today(s)",
                         [store]).fetchall()
    sellable = db.execute("SELECT coalesce(sum(quantity_available), 0) FROM ocs_inventory i JOIN stores s"
                          " ON s.id = i.store_id WHERE i.store_id = %s AND (i.expiry_date IS NULL"
                          " OR i.expiry_date >= posledger_private.store_today(s))", [store]).fetchone()[0]
    db.commit()
    try:
        record_sale(db, {"store_id": store, "receipt_number": "R-1", "total": 1,
                         "items": [{"product": {"sku": "SKU"}, "quantity": wanted}]})
        assert wanted <= sellable
    except InsufficientStock as refused:
        assert wanted > sellable and refused.detail["short_lines"][0]["available"] == sellable
    after = dict(db.execute("SELECT id, quantity_on_hand FROM ocs_inventory WHERE store_id = %s", [store]).fetchall())
    db.commit()
    assert all(after[row] == quantity for row, quantity in expired)


OPEN = ("reserved", "parked")   # a reservation's status while it holds its units


class StoreModel(RuleBasedStateMachine):
    """A store under random receipts, counts, sales (named batch, FEFO by expiry and date, multi-line,
    replays), returns (partial, defective), holds, expiry dates and catalogue corrections, reservations and
    parked carts (held, completed, cancelled, expired) and offline sales (judged by the day they happened,
    never refused), against a plain Python model of its stock, its promises and of the 30 g limit. After
    every step the database must equal the model."""

    dsn = ""

    @initialize(stock=st.lists(st.tuples(st.sampled_from(SKUS), st.none() | st.sampled_from(LOTS), st.integers(0, 15),
                                         st.none() | st.dates(datetime.date(2024, 1, 1), datetime.date(2025, 12, 31))),
                               max_size=4))
    def open_store(self, stock):
        self.conn = psycopg.connect(self.dsn)
        self.store = new_store(self.conn)
        self.rows = {}  # inventory id -> {sku, batch, date, expiry, qty, quarantined, reserved, status}
        self.sold = []  # (payload, result, {line_no: {row: units not yet returned}})
        # receipt -> {payload, result, held: {line_no: {row: units}}, status, and the result that closed it},
        # drawn from in the order they were made: receipts are random, so their sorted order is not replayable
        self.reservations = {}
        self.sequence = 0   # the offline till's own numbering
        # SKU-A 1 g of dried flower a unit (stated on the label, corrected by a rule below), SKU-B a 355 mL
        # beverage (355/570 g), SKU-C an accessory (0 g), and a store limit of 15 g, so that a sale of up to 4
        # lines of 12 units crosses it often.
        self.conn.execute("UPDATE stores SET purchase_limit_grams = %s WHERE id = %s", [LIMIT_GRAMS, self.store])
        catalogue(self.conn, "SKU-A", "dried", stated_dried_grams=1)
        catalogue(self.conn, "SKU-B", "beverage", net_content=355, net_unit="mL")
        catalogue(self.conn, "SKU-C", "accessory")
        self.grams = {"SKU-A": Fraction(1), "SKU-B": Fraction(355, 570), "SKU-C": Fraction(0)}
        self.correct_the_catalogue("1")   # the catalogue is the database's: an earlier example may have corrected it
        row = self.conn.execute("SELECT posledger_private.store_today(s), s.time_zone FROM stores s WHERE id = %s",
                                [self.store]).fetchone()
        self.conn.commit()
        self.today, self.zone = row[0], ZoneInfo(row[1])
        # The store opens with a few batches, or none: the rules that need stock get going sooner.
        for sku, batch, quantity, date in stock:
            self.receive(sku, batch, quantity, date)

    def teardown(self):
        self.conn.close()

    def available(self, row):
        r = self.rows[row]
        return r["qty"] - r["quarantined"] - r["reserved"] if r["status"] == "active" else 0

    @rule(sku=st.sampled_from(SKUS), batch=st.none() | st.sampled_from(LOTS), quantity=st.integers(0, 15),
          date=st.none() | st.dates(datetime.date(2024, 1, 1), datetime.date(2025, 12, 31)))
    def receive(self, sku, batch, quantity, date):
        existing = [i for i, r in self.rows.items() if (r["sku"], r["batch"]) == (sku, batch)]
        if existing:  # more of a known batch: a manual top-up, ledgered by the trigger
            active = self.rows[existing[0]]["status"] == "active"
            self.conn.execute("UPDATE ocs_inventory SET quantity_on_hand = quantity_on_hand + %s,"
                              " quantity_available = quantity_available + %s WHERE id = %s",
                              [quantity, quantity if active else 0, existing[0]])
            self.conn.commit()
            self.rows[existing[0]]["qty"] += quantity
        else:
            row = add_stock(self.conn, self.store, sku, quantity, batch, date and date.isoformat())
            self.rows[row] = {"sku": sku, "batch": batch, "date": date, "expiry": None, "qty": quantity,
                              "quarantined": 0, "reserved": 0, "status": "active"}

    @precondition(lambda self: any(r["batch"] for r in self.rows.values()))
    @rule(data=st.data(), days=st.integers(-3, 3))
    def expire(self, data, days):
        """A batch learns its expiry date: expired (before today), expiring today (still sold), or later."""
        self.set_expiry(data.draw(st.sampled_from(sorted(i for i, r in self.rows.items() if r["batch"]))), days)

    def set_expiry(self, row, days):
        expiry = self.today + datetime.timedelta(days=days)
        self.conn.execute("UPDATE ocs_inventory SET expiry_date = %s WHERE id = %s", [expiry, row])
        self.conn.commit()
        self.rows[row]["expiry"] = expiry

    @rule(grams=st.sampled_from(["1", "2.5", "3.5"]))
    def correct_the_catalogue(self, grams):
        """SKU-A's label is corrected: later sales weigh it anew, replays of earlier ones stay as they were."""
        self.conn.execute("UPDATE products SET stated_dried_grams = %s WHERE sku = 'SKU-A'", [grams])
        self.conn.commit()
        self.grams["SKU-A"] = Fraction(grams)

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), counted=st.integers(0, 15))
    def count(self, data, counted):
        row = data.draw(st.sampled_from(sorted(self.rows)))
        r = self.rows[row]
        # The unbatched row is named by a null batch_lot or none at all; naming it both ways is naming it twice.
        lines = [{"sku": r["sku"], "batch_lot": r["batch"], "counted": counted}]
        if r["batch"] is None:
            lines = data.draw(st.sampled_from([lines, [{"sku": r["sku"], "counted": counted}],
                                               [*lines, {"sku": r["sku"], "counted": counted}]]))
        payload = {"store_id": self.store, "reference": uuid.uuid4().hex, "reason_code": "cycle_count",
                   "note": "model", "actor": "model", "lines": lines}
        if len(lines) == 2:
            with pytest.raises(InvalidSale):
                count_inventory(self.conn, payload)
            return
        try:
            count_inventory(self.conn, payload)
        except InsufficientStock:
            assert counted < r["quarantined"] + r["reserved"]   # a count cannot take promised units either
            return
        r["qty"] = counted

    @precondition(lambda self: any(r["batch"] for r in self.rows.values()))
    @rule(data=st.data(), status=st.sampled_from(["active", "active", "quarantined", "recalled"]))
    def hold_or_release(self, data, status):
        row = data.draw(st.sampled_from(sorted(i for i, r in self.rows.items() if r["batch"])))
        r = self.rows[row]
        set_batch_status(self.conn, {"reference": uuid.uuid4().hex, "store_id": self.store, "sku": r["sku"],
                                     "batch_lot": r["batch"], "status": status, "reason": "model", "actor": "m"})
        r["status"] = status

    def cart(self, skus=SKUS, stocked_per_any=3, units=12):
        """A sale's lines (sku, batch or None, units): mostly stocked skus and batches, named or not; sometimes
        (one line in 1 + stocked_per_any) any of `skus` and LOTS, so that unknown skus and batches come too."""
        stocked = sorted({(r["sku"], r["batch"]) for r in self.rows.values()}, key=str)
        line = st.tuples(st.sampled_from(stocked), st.booleans(), st.integers(1, units)).map(
            lambda t: (t[0][0], t[0][1] if t[1] else None, t[2]))
        anything = st.tuples(st.sampled_from(skus), st.none() | st.sampled_from(LOTS), st.integers(1, units))
        # Weighted by sampling: st.one_of(line, line, line, anything) is a coin toss, as one_of drops repeats.
        return st.lists(st.sampled_from([line] * stocked_per_any + [anything]).flatmap(lambda lines: lines),
                        min_size=1, max_size=4)

    def payload(self, lines, **fields):
        return {"store_id": self.store, "receipt_number": uuid.uuid4().hex, "total": 1,
                "items": [{"product": {"sku": s}, "quantity": q} | ({"batch": {"batch_lot": b}} if b else {})
                          for s, b, q in lines], **fields}

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def sell(self, data):
        # Mostly stocked skus and batches, named or not; sometimes any, so NotFound is exercised too.
        lines = data.draw(self.cart())
        payload = self.payload(lines)
        expected = self.allocate(lines)
        FIGURES["sales attempted"] += 1
        try:
            result = record_sale(self.conn, payload)
        except (NotFound, LimitExceeded, BatchBlocked, InsufficientStock) as refused:
            FIGURES[f"sales rejected: {type(refused).__name__}"] += 1
            assert type(refused) is expected
            return
        FIGURES["sales committed"] += 1
        assert isinstance(expected, dict), f"expected {expected.__name__}, the sale went through"
        for row, units in self.by_row(expected).items():
            self.rows[row]["qty"] -= units
        self.sold.append((payload, result, expected))

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), days_ago=st.integers(0, 3), late=st.booleans())
    def sell_offline(self, data, days_ago, late):
        """A sale a till made offline, days ago: never refused. What was available on its day (FEFO, by the
        store's date then) is deducted, the rest is short; over the limit, an uncatalogued sku, a named held
        or expired batch are flagged. A minute before midnight is still its day, in the store's zone."""
        lines = data.draw(self.cart(SKUS + ["NOPE"], stocked_per_any=5, units=8))
        day = self.today - datetime.timedelta(days=days_ago)
        when = datetime.time(23, 59) if late and days_ago else datetime.time(0, 1)   # never after now
        self.sequence += 1
        payload = self.payload(lines, policy="offline", terminal_id="T-model", terminal_sequence=self.sequence,
                               occurred_at=datetime.datetime.combine(day, when, self.zone).isoformat())
        taken, short = self.fefo(lines, day)
        kinds = (["over_limit"] * (self.weight(lines) > LIMIT_GRAMS)
                 + ["uncatalogued"] * len({sku for sku, _, _ in lines if sku not in self.grams})
                 + ["blocked_batch"] * len(self.blocked(lines, day)))
        FIGURES["offline sales attempted"] += 1
        result = record_sale(self.conn, payload)
        FIGURES["offline sales recorded"] += 1
        FIGURES["offline sales short"] += bool(short)
        deducted = self.by_row(taken)
        for row, units in deducted.items():
            self.rows[row]["qty"] -= units
        assert [(u["batch"], u["quantity_deducted"], u["remaining"]) for u in result["inventory_updates"]["successful"]
                ] == [(self.rows[row]["batch"], units, self.available(row)) for row, units in sorted(deducted.items())]
        assert sorted(e["kind"] for e in result.get("compliance_exceptions") or []) == sorted(kinds)
        assert result["requires_manual_inventory_adjustment"] == bool(short)
        shortfalls = dict(self.conn.execute(
            "SELECT line_no, sum(quantity_short) FROM inventory_exceptions WHERE store_id = %s AND order_id = %s"
            " AND kind = 'shortfall' GROUP BY line_no", [self.store, result["id"]]).fetchall())
        self.conn.commit()
        assert shortfalls == short
        if taken:
            self.sold.append((payload, result, taken))

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), status=st.sampled_from(OPEN))
    def reserve(self, data, status):
        """A reservation or a parked cart: judged as a strict sale, against what is available; holds its units.
        Smaller carts than a sale's, of stocked lines mostly, so that enough are held to complete and release."""
        lines = data.draw(self.cart(stocked_per_any=8, units=5))
        payload = self.payload(lines, status=status)
        expected = self.allocate(lines)
        FIGURES["reservations attempted"] += 1
        try:
            result = record_sale(self.conn, payload)
        except (NotFound, LimitExceeded, BatchBlocked, InsufficientStock) as refused:
            FIGURES[f"reservations rejected: {type(refused).__name__}"] += 1
            assert type(refused) is expected
            return
        FIGURES["reservations held"] += 1
        assert isinstance(expected, dict), f"expected {expected.__name__}, the reservation went through"
        held = self.by_row(expected)
        for row, units in held.items():
            self.rows[row]["reserved"] += units
        assert result["status"] == status and result["loyalty"] is None
        assert [(h["batch"], h["quantity_held"], h["remaining"]) for h in result["held"]] == [
            (self.rows[row]["batch"], units, self.available(row)) for row, units in sorted(held.items())]
        self.reservations[payload["receipt_number"]] = {"payload": payload, "result": result, "held": expected,
                                                        "status": status}

    def promised_batches(self):
        """The batch rows open reservations hold."""
        return sorted({row for r in self.reservations.values() if r["status"] in OPEN
                       for row in self.by_row(r["held"]) if self.rows[row]["batch"]})

    @precondition(lambda self: self.promised_batches())
    @rule(data=st.data(), change=st.sampled_from(["quarantined", "recalled", "expired"]))
    def block_a_promised_batch(self, data, change):
        """A batch a reservation holds is recalled, quarantined or found expired before the customer comes
        (hold_or_release and expire reach such a batch too, but seldom): its completion must be refused."""
        row = data.draw(st.sampled_from(self.promised_batches()))
        if change == "expired":
            self.set_expiry(row, -1)
        else:
            r = self.rows[row]
            set_batch_status(self.conn, {"reference": uuid.uuid4().hex, "store_id": self.store, "sku": r["sku"],
                                         "batch_lot": r["batch"], "status": change, "reason": "model", "actor": "m"})
            r["status"] = change

    @precondition(lambda self: self.reservations)
    @rule(data=st.data())
    def complete(self, data):
        """The customer came: an open reservation is sold from what it held, unless a batch it holds was held
        or expired meanwhile (it stays open); a completed one replays; a released one is closed."""
        receipt = data.draw(st.sampled_from(list(self.reservations)))
        r = self.reservations[receipt]
        key = {"store_id": self.store, "receipt_number": receipt}
        held = self.by_row(r["held"])
        FIGURES["completions attempted"] += 1
        try:
            sale = complete_reservation(self.conn, key)
        except (ReservationClosed, BatchBlocked) as refused:
            FIGURES[f"completions rejected: {type(refused).__name__}"] += 1
            if isinstance(refused, ReservationClosed):
                assert r["status"] in ("cancelled", "expired")
            else:
                assert r["status"] in OPEN and self.blocked_rows(held)
            return
        if r["status"] == "completed":
            assert sale == {**r["closed"], "replayed": True}
            return
        assert r["status"] in OPEN and not self.blocked_rows(held)
        FIGURES["reservations completed"] += 1
        for row, units in held.items():
            self.rows[row]["qty"] -= units
            self.rows[row]["reserved"] -= units
        assert sale["status"] == "completed" and sale["id"] == r["result"]["id"] and not sale["replayed"]
        assert [(u["batch"], u["quantity_deducted"], u["remaining"]) for u in sale["inventory_updates"]["successful"]
                ] == [(self.rows[row]["batch"], units, self.available(row)) for row, units in sorted(held.items())]
        r["status"], r["closed"] = "completed", sale
        # A completed reservation is a sale like any other: returned and replayed (by its completion) below.
        self.sold.append((key, sale, {line_no: dict(rows) for line_no, rows in r["held"].items()}))

    @precondition(lambda self: self.reservations)
    @rule(data=st.data())
    def cancel(self, data):
        """An open reservation is cancelled: its units are available again (if their batch is); a cancelled one
        replays, an expired one answers with its expiry, a completed one is closed."""
        receipt = data.draw(st.sampled_from(list(self.reservations)))
        r = self.reservations[receipt]
        payload = {"store_id": self.store, "receipt_number": receipt, "cancelled_by": "model"}
        if r["status"] == "completed":
            with pytest.raises(ReservationClosed):
                cancel_reservation(self.conn, payload)
            return
        result = cancel_reservation(self.conn, payload)
        if r["status"] == "cancelled":
            assert result == {**r["closed"], "replayed": True}
            return
        if r["status"] == "expired":
            assert result["status"] == "expired" and result["replayed"]
            return
        FIGURES["reservations cancelled"] += 1
        held = self.by_row(r["held"])
        for row, units in held.items():
            self.rows[row]["reserved"] -= units
        assert result["status"] == "cancelled" and not result["replayed"]
        released = {}
        for part in result["released"]:   # one part per hold: a row held by two lines is released twice
            key = (part["sku"], part["batch"])
            released[key] = released.get(key, 0) + part["quantity_released"]
        assert released == {(self.rows[row]["sku"], self.rows[row]["batch"]): units for row, units in held.items()}
        r["status"], r["closed"] = "cancelled", result

    @precondition(lambda self: any(r["status"] in OPEN for r in self.reservations.values()))
    @rule(data=st.data())
    def let_reservations_expire(self, data):
        """Some open reservations pass their end (moved into the past, as time would) and the scheduler runs:
        exactly those are released, their units available again."""
        late = data.draw(st.lists(st.sampled_from([k for k, r in self.reservations.items() if r["status"] in OPEN]),
                                  min_size=1, unique=True))
        self.conn.execute("UPDATE pos_orders SET expires_at = now() - interval '1 second'"
                          " WHERE store_id = %s AND receipt_number = ANY(%s)", [self.store, late])
        self.conn.commit()
        units = 0
        for receipt in late:
            for row, held in self.by_row(self.reservations[receipt]["held"]).items():
                self.rows[row]["reserved"] -= held
                units += held
            self.reservations[receipt]["status"] = "expired"
        FIGURES["reservations expired"] += len(late)
        assert release_expired_reservations(self.conn, self.store) == {
            "store_id": self.store, "released": len(late), "units": units, "more": False}

    @precondition(lambda self: self.reservations)
    @rule(data=st.data())
    def retry_a_reservation(self, data):
        """The reservation's own call again tells what became of it, changing nothing."""
        receipt = data.draw(st.sampled_from(list(self.reservations)))
        r = self.reservations[receipt]
        result = record_sale(self.conn, r["payload"])
        if r["status"] == "expired":
            assert result["status"] == "expired" and result["replayed"]
        else:
            assert result == {**r.get("closed", r["result"]), "replayed": True}

    @precondition(lambda self: self.sold)
    @rule(data=st.data())
    def retry_a_sale(self, data):
        payload, result, _ = data.draw(st.sampled_from(self.sold))
        again = complete_reservation if "items" not in payload else record_sale   # a completion's key, or a sale
        assert again(self.conn, payload) == {**result, "replayed": True}

    @precondition(lambda self: self.sold)
    @rule(data=st.data(), quantity=st.integers(1, 8), defective=st.booleans())
    def return_a_line(self, data, quantity, defective):
        payload, result, taken = data.draw(st.sampled_from(self.sold))
        line_no = data.draw(st.sampled_from(sorted(taken)))
        newest_first = sorted(taken[line_no], reverse=True, key=lambda i: (
            self.rows[i]["batch"] is not None, self.rows[i]["date"] or datetime.date.min, i))
        back = {}
        for row in newest_first:
            back[row] = min(quantity - sum(back.values()), taken[line_no][row])
        returned = {"store_id": self.store, "reference": uuid.uuid4().hex, "order_id": result["id"],
                    "lines": [{"line_no": line_no, "quantity": quantity, "defective": defective}]}
        FIGURES["returns attempted"] += 1
        try:
            return_sale(self.conn, returned)
        except ReturnExceedsSale:
            FIGURES["returns rejected: ReturnExceedsSale"] += 1
            assert quantity > sum(taken[line_no].values())   # units an offline sale was short of never left a batch
            return
        assert sum(back.values()) == quantity
        for row, units in back.items():
            taken[line_no][row] -= units
            self.rows[row]["qty"] += units
            self.rows[row]["quarantined"] += units if defective else 0

    def find(self, sku, batch):
        return [i for i, r in self.rows.items() if r["sku"] == sku and (batch is None or r["batch"] == batch)]

    def weight(self, lines):
        """Dried-equivalent grams of a sale: an uncatalogued sku weighs nothing (and is flagged or refused)."""
        return sum(quantity * self.grams.get(sku, 0) for sku, _, quantity in lines)

    def blocked(self, lines, day):
        """The batches the lines name that may not be sold on `day`: held, or expired by then."""
        return {(sku, batch) for sku, batch, _ in lines if batch
                for i in self.find(sku, batch) if self.blocked_rows([i], day)}

    def blocked_rows(self, rows, day=None):
        return [i for i in rows if self.rows[i]["status"] != "active" or self.expired(i, day)]

    def allocate(self, lines):
        """The model of DESIGN.md's rules: {line_no: {row: units}} for a sale, or the error class it must get."""
        if any(not self.find(sku, batch) for sku, batch, _ in lines):
            return NotFound
        if self.weight(lines) > LIMIT_GRAMS:
            return LimitExceeded
        if self.blocked(lines, self.today):
            return BatchBlocked
        taken, short = self.fefo(lines, self.today)
        return InsufficientStock if short else taken

    def fefo(self, lines, day):
        """Which batches serve each line, by what is available and unexpired on `day`: lines naming a batch
        first, in line order, then the others FEFO. ({line_no: {row: units}}, {line_no: units no batch covered})."""
        free = {i: 0 if self.expired(i, day) else self.available(i) for i in self.rows}
        taken, short = {}, {}
        numbered = list(enumerate(lines, start=1))
        named = [line for line in numbered if line[1][1] is not None]
        unbatched = [line for line in numbered if line[1][1] is None]
        for line_no, (sku, batch, quantity) in named + unbatched:
            fefo = sorted(self.find(sku, batch), key=lambda i: (self.rows[i]["batch"] is not None,
                                                               self.rows[i]["expiry"] is None,
                                                               self.rows[i]["expiry"] or datetime.date.min,
                                                               self.rows[i]["date"] is not None,
                                                               self.rows[i]["date"] or datetime.date.min, i))
            for row in fefo:
                take = min(quantity, free[row])
                free[row] -= take
                quantity -= take
                if take:
                    taken.setdefault(line_no, {})[row] = take
            if quantity:
                short[line_no] = quantity
        return taken, short

    @staticmethod
    def by_row(taken):
        """{row: units} of an allocation {line_no: {row: units}}."""
        units = {}
        for rows in taken.values():
            for row, n in rows.items():
                units[row] = units.get(row, 0) + n
        return units

    def expired(self, row, day=None):
        expiry = self.rows[row]["expiry"]
        return expiry is not None and expiry < (day or self.today)

    @invariant()
    def database_equals_model(self):
        if not hasattr(self, "conn"):
            return
        stock = {row: tuple(rest) for row, *rest in self.conn.execute(
            "SELECT id, quantity_on_hand, quantity_quarantined, quantity_reserved, quantity_available, status"
            " FROM ocs_inventory WHERE store_id = %s", [self.store])}
        reservations = dict(self.conn.execute(
            "SELECT receipt_number, status FROM pos_orders WHERE store_id = %s AND payload->>'status' = ANY(%s)",
            [self.store, list(OPEN)]).fetchall())
        self.conn.commit()
        assert stock == {row: (r["qty"], r["quarantined"], r["reserved"], self.available(row), r["status"])
                         for row, r in self.rows.items()}
        assert reservations == {receipt: r["status"] for receipt, r in self.reservations.items()}
        check_invariants(self.conn)


def test_a_store_under_random_operations_matches_its_model(dsn):
    StoreModel.dsn = dsn
    run_state_machine_as_test(StoreModel, settings=settings(settings.default, max_examples=STATEFUL_EXAMPLES))
