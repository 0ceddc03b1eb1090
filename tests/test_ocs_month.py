"""A month of one retailer's three stores, and everything the OCS platform checks of it (issue 18's end-to-end
test): sales, returns, receipts, transfers (one cancelled), a count, a recall and its destruction, and an offline
till's late sale, generated day by day; each evening every store's day is checked and sent to a platform on
localhost. Then: every day balances, every event and position validates against sql/ocs/ocs_feed.schema.json,
the platform heard every movement exactly once, transfers balance between the stores, each store's monthly report
balances per class and equals the ledger, and a corrected event goes again under its own ids.

The server's clock walks through the month: a PostgreSQL of the system binaries started under libfaketime
(Debian's package; scripts/test installs it as root), whose offset the test moves forward before each movement, so
every movement is stamped with the moment it happened, as at a real store. So this runs in the system pass only."""

import datetime
import random
import tempfile
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import (
    Platform,
    batches_of,
    catalogue,
    check_invariants,
    item,
    new_store,
    ocs_valid,
    receive,
    sale_payload,
    shipment_line,
    validated_report,
)
from posledger import (
    InsufficientStock,
    adjust_inventory,
    cancel_transfer,
    count_inventory,
    ocs,
    record_sale,
    reports,
    return_sale,
    set_batch_status,
    transfer_in,
    transfer_out,
)
from posledger.migrations import migrate
from posledger.pgserver import running_cluster, server_kind

FAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), Path("/nonexistent/libfaketime.so.1"))
pytestmark = [
    pytest.mark.skipif(server_kind() != "system", reason="a server of the system binaries under libfaketime"),
    pytest.mark.skipif(not FAKETIME.exists(), reason="libfaketime is not installed (scripts/test installs it as root)"),
]

ZONE = ZoneInfo("America/Toronto")
DAYS = [datetime.date(2026, 3, 1) + datetime.timedelta(days=n) for n in range(31)]   # DST begins on the 8th
TOKEN = "month-token"
# sku: (class, grams of one unit by the catalogue below, GTIN of its each, unit cost of its batches)
PRODUCTS = {"DRY-1": ("dried", Decimal("3.5"), "00628000000013", Decimal("21.40")),
            "BEV-1": ("beverage", Decimal(355) / Decimal(570), "00628000000020", Decimal("2.75")),
            "ACC-1": ("accessory", Decimal(0), "00628000000037", Decimal("5.10"))}
PRICES = {"DRY-1": 39.99, "BEV-1": 5.49, "ACC-1": 12.0}   # shelf prices, for soldAtPrice


class Clock:
    """The server's clock: libfaketime reads the offset, in seconds, from this file at every call."""

    def __init__(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="posledger-clock-"))
        folder.chmod(0o755)   # the server runs as postgres
        self.path = folder / "offset"
        self.at(DAYS[0], 8)

    def at(self, day: datetime.date, hour: int, minute: int = 0) -> None:
        when = datetime.datetime.combine(day, datetime.time(hour, minute), ZONE)
        offset = round((when - datetime.datetime.now(datetime.UTC)).total_seconds())
        self.path.write_text(f"{offset:+d}\n")

    def environment(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(FAKETIME), "FAKETIME_TIMESTAMP_FILE": str(self.path), "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


class Retailer:
    """Three stores of one CROL and what the month did to them (kept for the tests to compare with)."""

    def __init__(self, db: psycopg.Connection, clock: Clock, platform: Platform) -> None:
        self.db, self.clock, self.platform = db, clock, platform
        self.rng = random.Random(18)
        self.stores = [new_store(db, name=f"store {n}", crsa=f"CRSA-M-{n}", crol="CROL-M", time_zone=str(ZONE))
                       for n in (1, 2, 3)]
        self.crsa = {store: f"CRSA-M-{n}" for n, store in enumerate(self.stores, start=1)}
        self.sales: dict[str, list[dict]] = defaultdict(list)
        self.checks: list[tuple[str, datetime.date, bool]] = []
        self.sent_on: dict[datetime.date, list[dict]] = {}
        self.refused = 0
        catalogue(db, "DRY-1", "dried", net_content=3.5, net_unit="g")
        catalogue(db, "BEV-1", "beverage", net_content=355, net_unit="mL")
        catalogue(db, "ACC-1", "accessory")

    def receive_week(self, day: datetime.date) -> None:
        week = day.day // 7 + 1
        for store in self.stores:
            lines = [shipment_line(sku, 40, f"{sku}-W{week}", expiry_date="2027-12-31", each_gtin=gtin,
                                   unit_cost=float(cost)) for sku, (_, _, gtin, cost) in PRODUCTS.items()]
            if day == DAYS[0] and store != self.stores[2]:   # expiring last: FEFO leaves it on the shelf
                lines.append(shipment_line("DRY-1", 12, "LOT-RECALL", expiry_date="2028-01-31",
                                           each_gtin=PRODUCTS["DRY-1"][2], unit_cost=19.0))
            receive(self.db, store, *lines, shipment_id=f"ASN-{store[:8]}-{day}")

    def sell(self, store: str, **fields) -> dict | None:
        skus = self.rng.sample(sorted(PRODUCTS), self.rng.randint(1, 2))
        items = [{**item(sku, self.rng.randint(1, 2)), "unit_price": PRICES[sku]} for sku in skus]
        total = round(sum(line["quantity"] * line["unit_price"] for line in items), 2)
        try:
            sale = record_sale(self.db, sale_payload(store, *items, total=total, **fields))
        except InsufficientStock:
            self.refused += 1
            return None
        self.sales[store].append(sale)
        return sale

    def move(self, day: datetime.date, n: int) -> None:
        """The day's movements other than sales, by day of the month."""
        s1, s2, s3 = self.stores
        db = self.db
        if n == 5:
            self.clock.at(day, 14)
            transfer_out(db, transfer(s1, s2, "TR-S1-S2", {"DRY-1": ("DRY-1-W1", 6), "ACC-1": ("ACC-1-W1", 4)}))
        if n == 6:
            self.clock.at(day, 11)
            transfer_in(db, arrival(s2, s1, "TR-S1-S2", {"DRY-1": ("DRY-1-W1", 6), "ACC-1": ("ACC-1-W1", 4)}))
        if n == 10:   # the till that was offline last night sends its sale, which happened yesterday
            self.clock.at(day, 9, 5)
            late = datetime.datetime.combine(day - datetime.timedelta(days=1), datetime.time(21, 30), ZONE)
            self.sell(s2, policy="offline", terminal_id="T9", terminal_sequence=1, occurred_at=late.isoformat())
        if n == 12:
            self.clock.at(day, 16)
            transfer_out(db, transfer(s2, s3, "TR-S2-S3", {"BEV-1": ("BEV-1-W2", 10)}))
            transfer_in(db, arrival(s3, s2, "TR-S2-S3", {"BEV-1": ("BEV-1-W2", 10)}))
        if n == 15:   # a count at S3 finds two accessories fewer than the books
            self.clock.at(day, 19, 30)
            _, on_hand, _, _ = batches_of(db, s3, "ACC-1")["ACC-1-W3"]
            count_inventory(db, {"store_id": s3, "reference": "COUNT-15", "reason_code": "cycle_count",
                                 "note": "shelf count", "actor": "clerk-3",
                                 "lines": [{"sku": "ACC-1", "batch_lot": "ACC-1-W3", "counted": on_hand - 2}]})
        if n == 18:
            self.clock.at(day, 10)
            set_batch_status(db, {"reference": "RECALL-2026-03", "batch_lot": "LOT-RECALL", "status": "recalled",
                                  "reason": "Health Canada recall", "actor": "compliance"})
        if n == 19:
            self.clock.at(day, 15)
            transfer_out(db, transfer(s3, s1, "TR-S3-S1", {"ACC-1": ("ACC-1-W3", 3)}))
        if n == 20:
            self.clock.at(day, 9, 30)
            cancel_transfer(db, {"store_id": s3, "reference": "TR-S3-S1", "actor": "manager-3"})
        if n == 22:   # the recalled lot is destroyed where it was
            self.clock.at(day, 13)
            for store in (s1, s2):
                _, left, _, _ = batches_of(db, store, "DRY-1")["LOT-RECALL"]
                adjust_inventory(db, {"store_id": store, "reference": f"DESTROY-{store[:8]}",
                                      "reason_code": "destruction", "note": "recall RECALL-2026-03",
                                      "actor": "compliance", "lines": [{"sku": "DRY-1", "batch_lot": "LOT-RECALL",
                                                                        "quantity": -left}]})

    def day(self, n: int, day: datetime.date) -> None:
        if day.day % 7 == 1:
            self.clock.at(day, 8, 30)
            self.receive_week(day)
        self.move(day, n)
        for hour in (10, 12, 15, 18):
            for store in self.stores:
                self.clock.at(day, hour, self.rng.randrange(60))
                self.sell(store)
        if n % 4 == 3:   # a customer brings one unit back
            store = self.stores[n % 3]
            sale = self.sales[store][-2]
            self.clock.at(day, 19)
            return_sale(self.db, {"store_id": store, "reference": f"RET-{day}", "order_id": sale["id"],
                                  "lines": [{"line_no": 1, "quantity": 1}]})
        # The evening: each store's day is checked, then its outbox goes to the platform.
        self.clock.at(day + datetime.timedelta(days=1), 0, 30)
        before = len(self.platform.requests)
        for store in self.stores:
            self.checks.append((store, day, validated_report(self.db, store, day)["check"]["balanced"]))
            outcome = ocs.send(self.db, store, self.platform.url, TOKEN)
            assert outcome["refused"] is None and outcome["failed"] is None and outcome["held"] == [], outcome
        self.sent_on[day] = self.platform.requests[before:]


def transfer(sender, receiver, reference, lines):
    return {"store_id": sender, "reference": reference, "to_store_id": receiver, "actor": "manager",
            "lines": [{"sku": sku, "batch_lot": lot, "quantity": units} for sku, (lot, units) in lines.items()]}


def arrival(receiver, sender, reference, lines):
    return {"store_id": receiver, "reference": reference, "from_store_id": sender, "actor": "clerk",
            "lines": [{"sku": sku, "batch_lot": lot, "sent": units, "received": units}
                      for sku, (lot, units) in lines.items()]}


@pytest.fixture(scope="module")
def month():
    clock = Clock()
    platform = Platform()
    with running_cluster(environment=clock.environment()) as cluster:
        dsn = cluster.server.dsn()
        migrate(dsn)
        with psycopg.connect(dsn) as db:
            retailer = Retailer(db, clock, platform)
            for n, day in enumerate(DAYS, start=1):
                retailer.day(n, day)
            clock.at(DAYS[-1] + datetime.timedelta(days=1), 9)   # the 1st of the next month: March is closed
            check_invariants(dsn)
            yield retailer
    platform.close()


def events_of(requests):
    return [event for request in requests for event in request["body"]["inventoryEventList"]]


def test_every_stores_day_balanced_that_evening_and_still_does_with_the_late_sale_in_it(month):
    # The clock walked: the ledger was stamped on every day of the month, at the store's hours.
    stamped = month.db.execute("SELECT count(DISTINCT (created_at AT TIME ZONE 'America/Toronto')::date),"
                               " min((created_at AT TIME ZONE 'America/Toronto')::date),"
                               " max((created_at AT TIME ZONE 'America/Toronto')::date)"
                               " FROM ocs_inventory_transactions").fetchone()
    month.db.commit()
    assert stamped == (31, DAYS[0], DAYS[-1])
    assert len(month.checks) == 3 * 31 and all(balanced for _, _, balanced in month.checks)
    # Four sales a day in each store and the late one; the weekly receipts keep every sale in stock.
    assert sum(len(sales) for sales in month.sales.values()) == 31 * 4 * 3 + 1 and month.refused == 0
    for store in month.stores:
        for day in DAYS:
            again = validated_report(month.db, store, day)   # validated against the JSON Schema
            assert again["check"] == {"balanced": True, "differences": []}, (store, day)
            assert again["crsa"] == month.crsa[store] and again["crol"] == "CROL-M"
    # The offline till's sale of the 9th at 21:30, recorded on the 10th: in the 9th's events, sent on the 10th.
    ninth = validated_report(month.db, month.stores[1], DAYS[8])["events"]["inventoryEventList"]
    late = [e for e in ninth if e["posTransactionTimeStamp"].startswith("2026-03-09T21:30:00")]
    assert late and all(e["inventoryEventType"] == "PURCHASE" for e in late)
    assert {e["posTransactionLineId"] for e in late} <= {e["posTransactionLineId"]
                                                         for e in events_of(month.sent_on[DAYS[9]])}


def test_the_platform_heard_every_movement_once_as_its_store(month):
    heard = events_of([request for day in DAYS for request in month.sent_on[day]])   # the month's, no correction
    ledger = month.db.execute("SELECT id::text FROM ocs_inventory_transactions").fetchall()
    month.db.commit()
    assert Counter(e["posTransactionLineId"] for e in heard) == Counter(row[0] for row in ledger)
    for request in month.platform.requests:
        ocs_valid(request["body"])   # the events as the platform received them
        assert request["query"]["crol"] == ["CROL-M"] and request["query"]["crsa"][0] in month.crsa.values()
        assert request["authorization"] == f"Bearer {TOKEN}"
    unsent = month.db.execute("SELECT count(*) FROM ocs_outbox WHERE sent_at IS NULL").fetchone()[0]
    month.db.commit()
    assert unsent == 0


def test_transfers_balance_between_the_stores(month):
    """Per transfer and sku, what left the sender (net of a cancel) arrived at the receiver, each side naming the
    other's CRSA: the platform's pairing of TRANSFER_OUT and TRANSFER_IN by the transfer's reference."""
    moved, valued, sent_at_cost = defaultdict(int), defaultdict(Decimal), {}
    for request in month.platform.requests:
        crsa = request["query"]["crsa"][0]
        for e in request["body"]["inventoryEventList"]:
            if e["inventoryEventType"] in ("TRANSFER_OUT", "TRANSFER_IN"):
                key = (e["posSalesTransactionId"], tuple(sorted((crsa, e["counterPartyCRSA"]))), e["ocsSku"])
                moved[key] += int(e["inventoryQuantityChange"])
                valued[key] += Decimal(e["inventoryValueChange"])
                if e["inventoryEventType"] == "TRANSFER_OUT" and int(e["inventoryQuantityChange"]) < 0:
                    sent_at_cost[key] = Decimal(e["inventoryValueChange"])
    assert {key[0] for key in moved} == {"TR-S1-S2", "TR-S2-S3", "TR-S3-S1"}
    assert all(units == 0 for units in moved.values()), moved
    # The batch brought its cost: what left one store's books at cost arrived in the other's at the same cost.
    assert all(value == 0 for value in valued.values()), valued
    assert sent_at_cost and all(value < 0 for value in sent_at_cost.values()), sent_at_cost
    watched = month.db.execute("SELECT count(*) FROM transfers_to_watch").fetchone()[0]
    month.db.commit()
    assert watched == 0


def test_each_stores_monthly_report_balances_per_class_and_equals_the_ledger(month):
    db = month.db
    for store in month.stores:
        report = reports.monthly(db, store, DAYS[0])
        rows = {(row["product_class"], row["measure"]): row for row in report["rows"]}
        assert all(row["balanced"] for row in rows.values())
        stock = db.execute("SELECT sku, quantity_on_hand, coalesce(unit_cost, 0) FROM ocs_inventory"
                           " WHERE store_id = %s", [store]).fetchall()
        ledger = db.execute("SELECT sku, transaction_type, sum(quantity) FROM ocs_inventory_transactions"
                            " WHERE store_id = %s GROUP BY 1, 2", [store]).fetchall()
        db.commit()
        units, grams, value = defaultdict(int), defaultdict(Decimal), defaultdict(Decimal)
        for sku, on_hand, cost in stock:
            product_class, unit_grams, _, _ = PRODUCTS[sku]
            units[product_class] += on_hand
            grams[product_class] += on_hand * unit_grams
            value[product_class] += on_hand * cost
        for product_class in units:
            assert rows[(product_class, "units")]["opening"] == 0   # the store opened this month
            assert rows[(product_class, "units")]["closing"] == units[product_class]
            assert rows[(product_class, "grams")]["closing"] == pytest.approx(grams[product_class])
            assert rows[(product_class, "value")]["closing"] == pytest.approx(value[product_class])
        by_column = defaultdict(int)
        for sku, kind, quantity in ledger:
            by_column[(PRODUCTS[sku][0], kind)] += quantity
        for (product_class, kind), quantity in by_column.items():
            column = {"receipt": "receipts", "sale": "sales", "return": "returns", "transfer_in": "transfers_in",
                      "transfer_out": "transfers_out", "transfer_cancel": "other"}.get(kind)
            if column:
                assert rows[(product_class, "units")][column] == quantity, (product_class, kind)


def test_a_corrected_event_goes_again_under_its_own_ids(month):
    """The count's adjustments went as ADJUSTMENT / OTHER. Say the platform wants counts under a reason of their
    own: one row of the mapping says so, ocs_resend_events requeues that day's adjustments at S3, and the sender
    delivers them again - the same transaction and line ids, the corrected reason."""
    db, s3, day = month.db, month.stores[2], DAYS[14]
    first = [e for e in events_of(month.sent_on[day]) if e["inventoryEventType"] == "ADJUSTMENT"]
    assert first and {e["reasonCategory"] for e in first} == {"OTHER"}
    db.execute("INSERT INTO ocs_event_types (transaction_type, reason_code, event_type, reason_category, confirmed)"
               " VALUES ('adjustment', 'cycle_count', 'ADJUSTMENT', 'INVENTORY_COUNT', false)")
    db.commit()
    try:
        resend = db.execute("SELECT ocs_resend_events(%s)", [Jsonb({
            "store_id": s3, "from_day": str(day), "transaction_types": ["adjustment"],
            "reason": "counts have their own reasonCategory", "actor": "dba"})]).fetchone()[0]
        db.commit()
        assert resend["requeued"] == len(first)
        before = len(month.platform.requests)
        assert ocs.send(db, s3, month.platform.url, TOKEN)["sent"] == len(first)
        again = events_of(month.platform.requests[before:])
        assert [(e["posTransactionLineId"], e["posSalesTransactionId"]) for e in again] == [
            (e["posTransactionLineId"], e["posSalesTransactionId"]) for e in first]
        assert {e["reasonCategory"] for e in again} == {"INVENTORY_COUNT"}
        assert [{**e, "reasonCategory": None} for e in again] == [{**e, "reasonCategory": None} for e in first]
    finally:
        db.execute("DELETE FROM ocs_event_types WHERE reason_code = 'cycle_count'")
        db.commit()

