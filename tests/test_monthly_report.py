"""The monthly report a store files (issue 18, migrations 0025 and 0027, docs/monthly-report.md): per product
class, opening, receipts, sales, returns, transfers, adjustments by reason, destructions and closing, in units,
grams and value at cost; it balances per class and against the ledger, and the CSV, the workbook and the CLI say
the same."""

import csv
import datetime
import io
import json
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from conftest import (
    add_stock,
    catalogue,
    item,
    new_store,
    posledger_cli,
    receive,
    record_sale,
    sale_payload,
    shipment_line,
)
from posledger import adjust_inventory, reports, return_sale
from posledger.pgserver import server_kind

# Grams of one unit by the catalogue below: 3.5 g dried; 355 mL of a beverage over Schedule 3's 570 (since
# 2022-12-02); an accessory counts nothing; an uncatalogued sku counts 0 g.
GRAMS = {"DRY-1": Decimal("3.5"), "BEV-1": Decimal(355) / Decimal(570), "ACC-1": Decimal(0), "LOOSE-1": Decimal(0)}
CLASSES = {"DRY-1": "dried", "BEV-1": "beverage", "ACC-1": "accessory", "LOOSE-1": "uncatalogued"}
# What one unit of a batch cost, as its receipt said (a_month_of_activity); every other batch is unpriced.
UNIT_COSTS = {"LOT-R": Decimal("4.25"), "LOT-B": Decimal("2.5")}
SECTIONS = {"receipt": "receipts", "sale": "sales", "return": "returns", "void": "returns",
            "transfer_in": "transfers_in", "transfer_out": "transfers_out", "opening": "other",
            "manual_adjustment": "other"}


def _month_of(db, store):
    row = db.execute("SELECT time_zone, (now() AT TIME ZONE time_zone)::date FROM stores WHERE id = %s",
                     [store]).fetchone()
    db.commit()
    return ZoneInfo(row[0]), row[1].replace(day=1)


def _adjust(db, store, reason, sku, batch, quantity):
    adjust_inventory(db, {"store_id": store, "reference": f"ADJ-{reason}-{sku}", "reason_code": reason,
                          "note": "monthly report test", "actor": "manager-7",
                          "lines": [{"sku": sku, "batch_lot": batch, "quantity": quantity}]})


def a_month_of_activity(db):
    """Last month: offline sales that happened then, recorded now. This month: stock entered (unpriced) and
    received (priced), a receipt, sales, a return, adjustments under three reasons and a destruction, in four
    classes (one not in the catalogue). Priced: the beverage's batch, and the dried batch received, sold from and
    returned to; the dried stock entered, the accessory and the uncatalogued sku are not."""
    store = new_store(db)
    catalogue(db, "DRY-1", "dried", net_content=3.5, net_unit="g")
    catalogue(db, "BEV-1", "beverage", net_content=355, net_unit="mL")
    add_stock(db, store, "DRY-1", 20, "LOT-D")
    receive(db, store, shipment_line("BEV-1", 12, "LOT-B", unit_cost=float(UNIT_COSTS["LOT-B"])))
    add_stock(db, store, "ACC-1", 30, "LOT-A")
    db.execute("INSERT INTO ocs_inventory (store_id, sku, batch_lot, quantity_on_hand, quantity_available)"
               " VALUES (%s, 'LOOSE-1', 'LOT-L', 5, 5)", [store])   # a sku the catalogue does not know
    db.commit()
    zone, this_month = _month_of(db, store)
    last_day = this_month - datetime.timedelta(days=1)
    for sequence, (hour, items) in enumerate([(10, [item("DRY-1", 2), item("BEV-1", 1)]),
                                              (22, [item("ACC-1", 5)])], start=1):
        occurred_at = datetime.datetime.combine(last_day, datetime.time(hour), zone)
        record_sale(db, sale_payload(store, *items, policy="offline", terminal_id="T1", terminal_sequence=sequence,
                                     occurred_at=occurred_at.isoformat(timespec="seconds")))
    receive(db, store, shipment_line("DRY-1", 10, "LOT-R", unit_cost=float(UNIT_COSTS["LOT-R"])))
    sold = record_sale(db, sale_payload(store, item("DRY-1", 3, "LOT-R"), item("ACC-1", 4)))
    return_sale(db, {"store_id": store, "reference": "RET-1", "order_id": sold["id"],
                     "lines": [{"line_no": 1, "quantity": 1}]})
    _adjust(db, store, "cycle_count", "ACC-1", "LOT-A", 2)
    _adjust(db, store, "loss_theft", "DRY-1", "LOT-D", -1)
    _adjust(db, store, "data_entry_error", "BEV-1", "LOT-B", -2)
    _adjust(db, store, "destruction", "BEV-1", "LOT-B", -1)
    return store, this_month, last_day.replace(day=1)


def expected_from_the_ledger(db, store, zone):
    """Each (month, class, measure)'s movements, summed here from the raw ledger rows, apart from the view: value
    is each row's quantity at the cost its batch's receipt gave (UNIT_COSTS), 0 for a batch no receipt priced."""
    moved = defaultdict(lambda: defaultdict(Decimal))
    rows = db.execute("SELECT sku, batch_lot, transaction_type, reason_code, quantity,"
                      " coalesce(occurred_at, created_at)"
                      " FROM ocs_inventory_transactions WHERE store_id = %s ORDER BY id", [store]).fetchall()
    db.commit()
    for sku, batch, kind, reason, quantity, when in rows:
        month = when.astimezone(zone).date().replace(day=1)
        if kind == "adjustment":
            column = "destructions" if reason == "destruction" else f"adjustment:{reason}"
        else:
            column = SECTIONS[kind]
        for measure, amount in (("units", Decimal(quantity)), ("grams", quantity * GRAMS[sku]),
                                ("value", quantity * UNIT_COSTS.get(batch, Decimal(0)))):
            moved[(month, CLASSES[sku], measure)][column] += amount
    return moved


def test_the_monthly_report_balances_per_class_and_equals_the_ledger(db):
    store, this_month, last_month = a_month_of_activity(db)
    zone, _ = _month_of(db, store)
    moved = expected_from_the_ledger(db, store, zone)
    closing = defaultdict(Decimal)
    for month in (last_month, this_month):
        report = reports.monthly(db, store, month)
        db.commit()
        rows = {(row["product_class"], row["measure"]): row for row in report["rows"]}
        # Every class held has its three measures, moved or not (the accessory sold last month; the
        # uncatalogued sku was only entered this month, so last month does not know it).
        classes = {"dried", "beverage", "accessory"} | ({"uncatalogued"} if month == this_month else set())
        assert set(rows) == {(c, m) for c in classes for m in ("units", "grams", "value")}
        for (product_class, measure), row in rows.items():
            expected = moved[(month, product_class, measure)]
            assert row["balanced"], row
            assert row["opening"] == pytest.approx(closing[(product_class, measure)])
            for column in ("receipts", "sales", "returns", "transfers_in", "transfers_out", "destructions", "other"):
                assert row[column] == pytest.approx(expected[column]), (product_class, measure, column)
            for reason in report["reasons"]:
                assert row[f"adjustment:{reason}"] == pytest.approx(expected[f"adjustment:{reason}"])
            assert row["adjusted"] == pytest.approx(sum(row[f"adjustment:{r}"] for r in report["reasons"]))
            closing[(product_class, measure)] = row["closing"]
            if measure == "value" and product_class in ("accessory", "uncatalogued"):
                assert all(row[c] == 0 for c in reports.MONTHLY_SUMMARY)   # unpriced batches count 0
    this = {(row["product_class"], row["measure"]): row for row in reports.monthly(db, store, this_month)["rows"]}
    # Last month's offline sales, recorded this month, show there and not here.
    assert this[("dried", "units")]["sales"] == -3 and moved[(last_month, "dried", "units")]["sales"] == -2
    assert this[("dried", "units")]["returns"] == 1 and this[("dried", "units")]["receipts"] == 10
    assert this[("beverage", "units")]["destructions"] == -1
    # Value at cost: a priced receipt, a sale and a return from its batch are quantity x its unit cost, and the
    # dried stock entered unpriced (20 units, sold and lost from) adds nothing beside them.
    dried, beverage = this[("dried", "value")], this[("beverage", "value")]
    assert (dried["receipts"], dried["sales"], dried["returns"]) == (Decimal("42.5"), Decimal("-12.75"),
                                                                   Decimal("4.25"))
    assert (dried["other"], dried["adjustment:loss_theft"], dried["opening"]) == (0, 0, 0)
    assert (beverage["opening"], beverage["receipts"], beverage["adjustment:data_entry_error"],
            beverage["destructions"], beverage["closing"]) == (Decimal("-2.5"), 30, -5, Decimal("-2.5"), 20)
    # The closing of this month is the ledger's balance and the stock on hand, per class, in units and grams.
    on_hand = db.execute("SELECT sku, sum(quantity_on_hand) FROM ocs_inventory WHERE store_id = %s GROUP BY sku",
                         [store]).fetchall()
    # In value: each batch's on hand at its unit cost, 0 unpriced, summed per class.
    book = db.execute("SELECT sku, sum(quantity_on_hand * coalesce(unit_cost, 0)) FROM ocs_inventory"
                      " WHERE store_id = %s GROUP BY sku", [store]).fetchall()
    balance = db.execute("SELECT DISTINCT ON (inventory_id) sku, quantity_after FROM ocs_inventory_transactions"
                         " WHERE store_id = %s ORDER BY inventory_id, id DESC", [store]).fetchall()
    db.commit()
    for held in (on_hand, balance):
        units, grams = defaultdict(int), defaultdict(Decimal)
        for sku, quantity in held:
            units[CLASSES[sku]] += quantity
            grams[CLASSES[sku]] += quantity * GRAMS[sku]
        assert {c: this[(c, "units")]["closing"] for c in units} == units
        assert {c: this[(c, "grams")]["closing"] for c in grams} == pytest.approx(grams)
    assert units == {"dried": 20 + 10 - 2 - 3 + 1 - 1, "beverage": 12 - 1 - 2 - 1, "accessory": 30 - 5 - 4 + 2,
                     "uncatalogued": 5}
    value = defaultdict(Decimal)
    for sku, amount in book:
        value[CLASSES[sku]] += amount
    assert {c: this[(c, "value")]["closing"] for c in value} == value
    assert value == {"dried": (10 - 3 + 1) * UNIT_COSTS["LOT-R"], "beverage": (12 - 1 - 2 - 1) * UNIT_COSTS["LOT-B"],
                     "accessory": 0, "uncatalogued": 0}


def test_a_class_that_did_not_move_reports_its_stock_and_a_month_before_any_is_empty(db):
    store = new_store(db)
    add_stock(db, store, "ACC-1", 7, "LOT-A")
    _, this_month = _month_of(db, store)
    report = reports.monthly(db, store, this_month)
    assert [(r["product_class"], r["measure"], r["opening"], r["other"], r["closing"]) for r in report["rows"]] == [
        ("accessory", "units", 0, 7, 7), ("accessory", "grams", 0, 0, 0), ("accessory", "value", 0, 0, 0)]
    assert reports.monthly(db, store, (this_month - datetime.timedelta(days=1)).replace(day=1))["rows"] == []
    db.commit()


def _numbers(rows):
    """Rows as {(class, measure): {column: Decimal}} whatever they were read from (CSV text, workbook cells)."""
    found = {}
    for row in rows:
        key = (row["product_class"], row["measure"])
        found.setdefault(key, {}).update({
            column: Decimal(str(value)) for column, value in row.items()
            if column not in ("store_id", "month", "product_class", "measure", "balanced")})
    return found


def test_the_csv_and_the_workbook_hold_the_views_numbers(db, tmp_path):
    store, this_month, _ = a_month_of_activity(db)
    report = reports.monthly(db, store, this_month)
    db.commit()
    text = io.StringIO()
    reports.write_monthly_csv(report, text)
    from_csv = _numbers(csv.DictReader(io.StringIO(text.getvalue())))
    path = tmp_path / "monthly.xlsx"
    reports.write_monthly_xlsx(report, str(path))
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["Summary", "Receipts", "Sales", "Returns", "Transfers", "Adjustments",
                                   "Destructions", "Other"]
    sheets = []
    for sheet in workbook.worksheets:
        header, *body = sheet.iter_rows(values_only=True)
        assert header[:4] == ("store_id", "month", "product_class", "measure")
        assert all(row[0] == store and row[1] == this_month.strftime("%Y-%m") for row in body)
        sheets.extend(dict(zip(header, row, strict=True)) for row in body)
    from_workbook = _numbers(sheets)
    from_view = _numbers(report["rows"])
    assert from_csv.keys() == from_workbook.keys() == from_view.keys()
    for key, numbers in from_view.items():
        assert from_csv[key] == numbers
        assert {c: float(v) for c, v in from_workbook[key].items()} == pytest.approx(
            {c: float(v) for c, v in numbers.items()})
    assert workbook["Adjustments"]["A1"].value == "store_id"
    assert {f"adjustment:{reason}" for reason in ("cycle_count", "loss_theft", "data_entry_error")} <= set(
        next(workbook["Adjustments"].iter_rows(values_only=True)))


def test_posledger_report_monthly_writes_the_csv_and_the_workbook(db, dsn, tmp_path):
    store, this_month, _ = a_month_of_activity(db)
    csv_path, xlsx_path = tmp_path / "m.csv", tmp_path / "m.xlsx"
    month = this_month.strftime("%Y-%m")
    done = posledger_cli("report", "monthly", "--store-id", store, "--month", month, "--csv", str(csv_path),
                         "--xlsx", str(xlsx_path), "--dsn", dsn, "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["store_id"] == store and printed["month"] == this_month.strftime("%Y-%m")
    assert all(row["balanced"] for row in printed["rows"])
    report = reports.monthly(db, store, this_month)
    db.commit()
    assert _numbers(csv.DictReader(csv_path.open(encoding="utf-8"))) == _numbers(report["rows"])
    summary = openpyxl.load_workbook(xlsx_path)["Summary"]
    header, *body = summary.iter_rows(values_only=True)
    assert len(body) == len(report["rows"]) == 12
    people = posledger_cli("report", "monthly", "--store-id", store, "--month", month, "--dsn", dsn)
    assert people.returncode == 0 and "dried" in people.stdout, people.stderr
    bad = posledger_cli("report", "monthly", "--store-id", store, "--month", "2026-13", "--dsn", dsn)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr


def test_a_stores_report_reads_that_stores_ledger_only(db):
    """The view reads the movements twice (the months and the sums): both reads must take the store's filter,
    not sum every store's ledger first (a materialised CTE would); so must both reads of the batches' unit costs
    (migration 0027), not read every store's stock rows."""
    if server_kind() == "citus":
        pytest.skip("the coordinator's plan is one Citus scan: a worker's plan is what this reads")
    store = new_store(db)
    add_stock(db, store, "ACC-1", 7, "LOT-A")
    plan = db.execute("EXPLAIN (FORMAT JSON) SELECT * FROM monthly_report WHERE store_id = %s AND month = %s",
                      [store, datetime.date(2026, 1, 1)]).fetchone()[0]
    db.commit()
    scans = defaultdict(list)

    def walk(node):
        if node.get("Relation Name") in ("ocs_inventory_transactions", "ocs_inventory"):
            scans[node["Relation Name"]].append(json.dumps(node))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    assert set(scans) == {"ocs_inventory_transactions", "ocs_inventory"}, scans
    for table in scans.values():
        assert len(table) == 2 and all(store in scan for scan in table), scans
