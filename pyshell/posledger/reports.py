"""Read-only reports over the DBA views and the ledger, as lists of dicts: what `posledger stock`,
`ledger` and `reconcile` and the demo show. The views (migration 0006) hold the logic; this only
filters them by store."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

import psycopg
from psycopg.rows import dict_row

STOCK = """
    SELECT sku, batch_lot, status, fefo_rank, packaged_on_date, quantity_on_hand, quantity_available,
           quantity_quarantined
    FROM stock_by_batch
    WHERE store_id = %(store_id)s AND (%(sku)s::text IS NULL OR sku = %(sku)s)
    ORDER BY sku, fefo_rank"""

# The newest rows, shown oldest first, as a ledger is read.
LEDGER = """
    SELECT * FROM (
        SELECT id, created_at, sku, batch_lot, transaction_type, reason_code, quantity, quantity_after, actor
        FROM ocs_inventory_transactions
        WHERE store_id = %(store_id)s AND (%(sku)s::text IS NULL OR sku = %(sku)s)
        ORDER BY id DESC
        LIMIT %(limit)s) newest
    ORDER BY id"""

# Both views are empty on a healthy database; a store narrows them.
DISCREPANCIES = """
    SELECT store_id, sku, batch_lot, quantity_on_hand, ledger_total, last_balance, difference
    FROM inventory_discrepancies
    WHERE %(store_id)s::uuid IS NULL OR store_id = %(store_id)s
    ORDER BY store_id, sku, batch_lot"""

NEGATIVE = """
    SELECT store_id, sku, batch_lot, quantity_on_hand, quantity_available, quantity_quarantined
    FROM negative_inventory
    WHERE %(store_id)s::uuid IS NULL OR store_id = %(store_id)s
    ORDER BY store_id, sku, batch_lot"""


def _rows(conn: psycopg.Connection, query: str, **params: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query, params).fetchall()


def stock(conn: psycopg.Connection, store_id: str, sku: str | None = None) -> list[dict[str, Any]]:
    """A store's batches in FEFO order per sku, with their status and quantities."""
    return _rows(conn, STOCK, store_id=store_id, sku=sku)


def ledger(conn: psycopg.Connection, store_id: str, sku: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """A store's newest ``limit`` ledger rows, oldest first."""
    return _rows(conn, LEDGER, store_id=store_id, sku=sku, limit=limit)


def reconciliation(conn: psycopg.Connection, store_id: str | None = None) -> dict[str, Any]:
    """Rows whose books disagree (on hand against the ledger) and rows below zero; both empty when the
    books balance."""
    discrepancies = _rows(conn, DISCREPANCIES, store_id=store_id)
    negative = _rows(conn, NEGATIVE, store_id=store_id)
    return {"balanced": not discrepancies and not negative, "discrepancies": discrepancies, "negative": negative}


def verification(conn: psycopg.Connection, store_id: str | None = None) -> dict[str, Any]:
    """What verify_ledger() finds: each chain's first broken link and any disabled guard ("broken"), and the
    rows written into the ledger directly ("review"). ``intact`` is true when nothing is broken."""
    found = _rows(conn, "SELECT * FROM verify_ledger(%(store_id)s) ORDER BY kind, store_id, inventory_id, "
                        "transaction_id", store_id=store_id)
    return {"intact": all(row["kind"] == "review" for row in found),
            "broken": [row for row in found if row["kind"] == "broken"],
            "review": [row for row in found if row["kind"] == "review"]}


def digests(conn: psycopg.Connection, as_of: datetime | None = None,
            store_id: str | None = None) -> list[dict[str, Any]]:
    """Per store, the digest of its ledger as of a moment (default now), to keep outside the database."""
    return _rows(conn, "SELECT * FROM ledger_digest(coalesce(%(as_of)s, now()), %(store_id)s)",
                 as_of=as_of, store_id=store_id)


# The monthly report (migration 0025, docs/monthly-report.md): one store's month, a row per class and measure.
MONTHLY = """
    SELECT product_class, measure, opening, receipts, sales, returns, transfers_in, transfers_out, adjusted,
           adjustments::text AS adjustments, destructions, other, closing
    FROM monthly_report
    WHERE store_id = %(store_id)s AND month = %(month)s
    ORDER BY product_class, array_position(ARRAY['units', 'grams', 'value'], measure)"""

# The reasons an adjustment is filed under, destruction apart (its own section): one column each.
ADJUSTMENT_REASONS = "SELECT code FROM adjustment_reasons WHERE code <> 'destruction' ORDER BY code"

MONTHLY_SUMMARY = ("opening", "receipts", "sales", "returns", "transfers_in", "transfers_out", "adjusted",
                   "destructions", "other", "closing")
MONTHLY_MOVEMENTS = MONTHLY_SUMMARY[1:-1]


def monthly(conn: psycopg.Connection, store_id: str, month: date) -> dict[str, Any]:
    """A store's monthly report for the month starting on ``month``: {store_id, month, reasons, rows}, a row per
    product class and measure (units, grams, value) with one ``adjustment:<reason>`` column per reason, and
    ``balanced``: opening + movements = closing on every row."""
    reasons = [row["code"] for row in _rows(conn, ADJUSTMENT_REASONS)]
    rows = []
    for row in _rows(conn, MONTHLY, store_id=store_id, month=month):
        by_reason = json.loads(row.pop("adjustments"), parse_float=Decimal)  # grams exactly, not as floats
        row.update({f"adjustment:{reason}": by_reason.get(reason, 0) for reason in reasons})
        row["balanced"] = row["opening"] + sum(row[column] for column in MONTHLY_MOVEMENTS) == row["closing"]
        rows.append(row)
    return {"store_id": store_id, "month": month.strftime("%Y-%m"), "reasons": reasons, "rows": rows}


def _monthly_columns(report: dict[str, Any]) -> list[str]:
    reasons = [f"adjustment:{reason}" for reason in report["reasons"]]
    return ["product_class", "measure", *MONTHLY_SUMMARY[:7], *reasons, *MONTHLY_SUMMARY[7:], "balanced"]


def write_monthly_csv(report: dict[str, Any], out: TextIO) -> None:
    """The report as one CSV table: a row per class and measure, every section's columns side by side."""
    columns = _monthly_columns(report)
    writer = csv.DictWriter(out, fieldnames=["store_id", "month", *columns], lineterminator="\n")
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow({"store_id": report["store_id"], "month": report["month"],
                         **{column: row[column] for column in columns}})


def monthly_sections(report: dict[str, Any]) -> dict[str, list[str]]:
    """The workbook's sheets and the columns of each, after product_class and measure."""
    reasons = [f"adjustment:{reason}" for reason in report["reasons"]]
    return {"Summary": [*MONTHLY_SUMMARY, "balanced"], "Receipts": ["receipts"], "Sales": ["sales"],
            "Returns": ["returns"], "Transfers": ["transfers_in", "transfers_out"],
            "Adjustments": [*reasons, "adjusted"], "Destructions": ["destructions"], "Other": ["other"]}


def write_monthly_xlsx(report: dict[str, Any], path: str) -> None:
    """The report as an Excel workbook, one sheet per section, each a row per class and measure."""
    import openpyxl  # only this command needs it: the rest of the shell loads without it

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    workbook.properties.title = f"Monthly report {report['month']} store {report['store_id']}"
    for title, columns in monthly_sections(report).items():
        sheet = workbook.create_sheet(title)
        sheet.append(["store_id", "month", "product_class", "measure", *columns])
        for row in report["rows"]:
            sheet.append([report["store_id"], report["month"], row["product_class"], row["measure"],
                          *(row[column] for column in columns)])
        sheet.freeze_panes = "E2"
    workbook.save(path)
