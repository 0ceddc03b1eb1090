"""Property-based and stateful tests (hypothesis) against the real database.

Profiles: `ci` (the default: a few hundred examples) and `long` (thousands):
    HYPOTHESIS_PROFILE=long ./scripts/test -k properties
"""

import datetime
import os
import uuid

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import FIGURES, add_stock, check_invariants, new_store, record_sale
from posledger import InsufficientStock, NotFound, PosLedgerError

settings.register_profile("ci", max_examples=200, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, stateful_step_count=60, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
STATEFUL_EXAMPLES = {"ci": 30, "long": 300}[PROFILE]

SKUS = ["SKU-A", "SKU-B", "SKU-C"]
LOTS = ["LOT-1", "LOT-2", "LOT-3"]

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
def one_field_broken(draw, store_id):
    """A valid payload with one field, top-level or of one item, replaced by junk or removed."""
    payload = draw(valid_payload(store_id))
    target = draw(st.sampled_from([payload, *payload["items"]]))
    key = draw(st.sampled_from(sorted(target) + ["batch", "status", "policy"]))
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
    })
    return valid_payload(store_id) | one_field_broken(store_id) | json_value | json_object({
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

    from hypothesis import given
    given(near_valid_payload(store))(check)()


class StoreModel(RuleBasedStateMachine):
    """A store under random receipts, manual counts and sales (named batch, FEFO, multi-line, replays),
    against a plain Python model of its stock. After every step the database must equal the model."""

    dsn = ""

    @initialize()
    def open_store(self):
        self.conn = psycopg.connect(self.dsn)
        self.store = new_store(self.conn)
        self.rows = {}  # inventory id -> {sku, batch, date, qty}
        self.sold = []

    def teardown(self):
        self.conn.close()

    @rule(sku=st.sampled_from(SKUS), batch=st.none() | st.sampled_from(LOTS), quantity=st.integers(0, 15),
          date=st.none() | st.dates(datetime.date(2024, 1, 1), datetime.date(2025, 12, 31)))
    def receive(self, sku, batch, quantity, date):
        existing = [i for i, r in self.rows.items() if (r["sku"], r["batch"]) == (sku, batch)]
        if existing:  # more of a known batch: a manual top-up, ledgered by the trigger
            self.conn.execute("UPDATE ocs_inventory SET quantity_on_hand = quantity_on_hand + %s,"
                              " quantity_available = quantity_available + %s WHERE id = %s",
                              [quantity, quantity, existing[0]])
            self.conn.commit()
            self.rows[existing[0]]["qty"] += quantity
        else:
            row = add_stock(self.conn, self.store, sku, quantity, batch, date and date.isoformat())
            self.rows[row] = {"sku": sku, "batch": batch, "date": date, "qty": quantity}

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), counted=st.integers(0, 15))
    def count(self, data, counted):
        row = data.draw(st.sampled_from(sorted(self.rows)))
        self.conn.execute("UPDATE ocs_inventory SET quantity_on_hand = %s, quantity_available = %s WHERE id = %s",
                          [counted, counted, row])
        self.conn.commit()
        self.rows[row]["qty"] = counted

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def sell(self, data):
        # Mostly stocked skus and batches, named or not; sometimes any, so NotFound is exercised too.
        stocked = sorted({(r["sku"], r["batch"]) for r in self.rows.values()}, key=str)
        line = st.tuples(st.sampled_from(stocked), st.booleans(), st.integers(1, 12)).map(
            lambda t: (t[0][0], t[0][1] if t[1] else None, t[2]))
        anything = st.tuples(st.sampled_from(SKUS), st.none() | st.sampled_from(LOTS), st.integers(1, 12))
        lines = data.draw(st.lists(st.one_of(line, line, line, anything), min_size=1, max_size=4))
        payload = {"store_id": self.store, "receipt_number": uuid.uuid4().hex, "total": 1,
                   "items": [{"product": {"sku": s}, "quantity": q} | ({"batch": {"batch_lot": b}} if b else {})
                             for s, b, q in lines]}
        expected = self.allocate(lines)
        FIGURES["sales attempted"] += 1
        try:
            result = record_sale(self.conn, payload)
        except (NotFound, InsufficientStock) as refused:
            FIGURES[f"sales rejected: {type(refused).__name__}"] += 1
            assert type(refused) is expected
            return
        FIGURES["sales committed"] += 1
        assert isinstance(expected, dict), f"expected {expected.__name__}, the sale went through"
        for row, taken in expected.items():
            self.rows[row]["qty"] -= taken
        self.sold.append((payload, result))

    @precondition(lambda self: self.sold)
    @rule(data=st.data())
    def retry_a_sale(self, data):
        payload, result = data.draw(st.sampled_from(self.sold))
        assert record_sale(self.conn, payload) == {**result, "replayed": True}

    def allocate(self, lines):
        """The model of DESIGN.md's rules: {row: units} for a sale, or the error class it must get."""
        def find(sku, batch):
            return [i for i, r in self.rows.items() if r["sku"] == sku and (batch is None or r["batch"] == batch)]
        if any(not find(sku, batch) for sku, batch, _ in lines):
            return NotFound
        free = {i: r["qty"] for i, r in self.rows.items()}
        taken = {}
        named = [line for line in lines if line[1] is not None]
        unbatched = [line for line in lines if line[1] is None]
        for sku, batch, quantity in named + unbatched:
            fefo = sorted(find(sku, batch), key=lambda i: (self.rows[i]["batch"] is not None,
                                                          self.rows[i]["date"] is not None,
                                                          self.rows[i]["date"] or datetime.date.min, i))
            for row in fefo:
                take = min(quantity, free[row])
                free[row] -= take
                quantity -= take
                taken[row] = taken.get(row, 0) + take
            if quantity:
                return InsufficientStock
        return {row: units for row, units in taken.items() if units}

    @invariant()
    def database_equals_model(self):
        if not hasattr(self, "conn"):
            return
        stock = dict(self.conn.execute("SELECT id, quantity_on_hand FROM ocs_inventory WHERE store_id = %s",
                                       [self.store]).fetchall())
        self.conn.commit()
        assert stock == {row: r["qty"] for row, r in self.rows.items()}
        check_invariants(self.conn)


def test_a_store_under_random_operations_matches_its_model(dsn):
    StoreModel.dsn = dsn
    run_state_machine_as_test(StoreModel, settings=settings(settings.default, max_examples=STATEFUL_EXAMPLES))
