"""Reads an OCS ASN export (CSV, with OCS's column names) into receive_inventory payloads, one per
ShipmentID. Only the format is translated here; receive_inventory checks every value, so a value this
cannot read is passed on as the text it was and comes back as an IV400 naming its line."""

from __future__ import annotations

import csv
import datetime
from collections.abc import Callable
from typing import Any, TextIO

import psycopg

from posledger.calls import receive_inventory

COLUMNS = ("ShipmentID", "ContainerID", "SKU", "ItemName", "UnitPrice", "Vendor", "Brand", "CaseGTIN",
           "PackagedOnDate", "BatchLot", "GTINBarCode", "EachGTIN", "Shipped_Qty", "UOM", "UOMCONVERSION",
           "UOMCONVERSIONQTY")

# Shipped_Qty counts UOMs; any other UOM (a case) holds UOMCONVERSIONQTY units each.
EACH_UOMS = {"", "EA", "EACH", "UNIT", "UNITS"}

# What the store counted, when it adds this column to the file; without it, received = shipped.
RECEIVED_COLUMN = "Received_Qty"


class AsnFormatError(ValueError):
    """The file is not an OCS ASN export: columns are missing."""


def read_asn(file: TextIO, store_id: str, received_by: str | None = None) -> list[dict[str, Any]]:
    """One receive_inventory payload per ShipmentID, in the order the file first names them."""
    reader = csv.DictReader(file)
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise AsnFormatError(f"not an OCS ASN export: missing columns {', '.join(missing)}")
    shipments: dict[str, dict[str, Any]] = {}
    for row in reader:
        shipment = shipments.setdefault(row["ShipmentID"], {
            "store_id": store_id, "shipment_id": row["ShipmentID"], "lines": [],
            **({"received_by": received_by} if received_by else {})})
        shipped = _units(row)
        received = row.get(RECEIVED_COLUMN)
        shipment["lines"].append({
            "sku": row["SKU"], "batch_lot": row["BatchLot"], "item_name": row["ItemName"],
            "container_id": row["ContainerID"], "case_gtin": row["CaseGTIN"] or None,
            "each_gtin": row["EachGTIN"] or None, "packaged_on_date": _iso_date(row["PackagedOnDate"]),
            "quantity_shipped": shipped,
            "quantity_received": shipped if received in (None, "") else _whole(received),
            **_unit_cost(row)})
    return list(shipments.values())


# Told before the first shipment and after each: (lines received so far, lines in all). The CLI draws its
# progress bar with it; the library itself prints nothing.
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    pass


def receive_shipments(conn: psycopg.Connection, shipments: list[dict[str, Any]],
                      progress: Progress = _no_progress) -> list[dict[str, Any]]:
    """Receive the shipments one by one, each whole or not at all, telling ``progress`` (once before the first,
    then after each); the first refused one stops the run (rerunning is safe: a received shipment is replayed)."""
    total = sum(len(shipment["lines"]) for shipment in shipments)
    done = 0
    progress(done, total)
    results = []
    for shipment in shipments:
        results.append(receive_inventory(conn, shipment))
        done += len(shipment["lines"])
        progress(done, total)
    return results


def _whole(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


def _unit_cost(row: dict[str, str]) -> dict[str, float | str]:
    """The line's unit_cost: UnitPrice, which OCS gives per unit of the line's UOM, so per each when the UOM
    is a case of UOMCONVERSIONQTY (an assumption: docs/ocs-feed.md). A value that is no number goes as it is,
    for the database to name; none when the column is blank."""
    price = row["UnitPrice"].strip()
    if not price:
        return {}
    try:
        cost = float(price)
    except ValueError:
        return {"unit_cost": price}
    per_uom = _whole(row["UOMCONVERSIONQTY"])
    if row["UOM"].strip().upper() not in EACH_UOMS and isinstance(per_uom, int) and per_uom > 0:
        cost /= per_uom
    return {"unit_cost": round(cost, 4)}


def _units(row: dict[str, str]) -> int | str:
    shipped = _whole(row["Shipped_Qty"])
    if row["UOM"].strip().upper() in EACH_UOMS:
        return shipped
    per_uom = _whole(row["UOMCONVERSIONQTY"])
    if isinstance(shipped, int) and isinstance(per_uom, int):
        return shipped * per_uom
    return f"{row['Shipped_Qty']} {row['UOM']} of {row['UOMCONVERSIONQTY']}"


def _iso_date(text: str) -> str | None:
    """OCS writes "09/01/2025 12:00:00 AM" (month first); the function takes 2025-09-01."""
    if not text.strip():
        return None
    try:
        return datetime.datetime.strptime(text.strip().split(" ")[0], "%m/%d/%Y").date().isoformat()
    except ValueError:
        return text
