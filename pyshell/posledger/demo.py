"""The demo: a store's day told through the real entry functions. Every step is a real call on a real
PostgreSQL; the refusals are the database's own. A new store each run, so it can run again and again on
the same database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from posledger import render, reports
from posledger.asn import read_asn, receive_shipments
from posledger.calls import call
from posledger.errors import PosLedgerError, error_report
from posledger.migrations import SQL_DIR

SAMPLE_ASN = SQL_DIR / "demo" / "ocs_asn_sample.csv"
CUSTOMER = "0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"

Step = dict[str, Any]  # {"title", "function", "refused", "outcome"}: what --json prints of each step


def _story(store_id: str) -> list[tuple[str, str, dict[str, Any], bool]]:
    """The day after the shipment: (title, entry function, payload, whether a refusal is the point), in order."""
    def sale(receipt: str, sku: str, quantity: int, batch_lot: str | None, total: float, **extra: Any) -> dict:
        line: dict[str, Any] = {"product": {"sku": sku}, "quantity": quantity}
        if batch_lot:
            line["batch"] = {"batch_lot": batch_lot}
        return {"store_id": store_id, "receipt_number": receipt, "items": [line], "total": total,
                "payment_method": "card", "cashier_id": "cashier-1", "terminal_id": "till-1", **extra}

    fefo_sale = sale("R-1002", "OCS-PREROLL-1G", 7, None, 45.50, user_id=CUSTOMER)
    return [
        ("A sale naming its batch: 2 vapes of LOT-V-0701", "record_pos_sale",
         sale("R-1001", "OCS-VAPE-05", 2, "LOT-V-0701", 64.00), False),
        ("A sale split FEFO across two batches: 7 pre-rolls, the older lot first", "record_pos_sale",
         fefo_sale, False),
        ("30 gummies, when the store has 24: refused, nothing changes", "record_pos_sale",
         sale("R-1003", "OCS-GUMMIES-10", 30, None, 360.00), True),
        ("The till retries R-1002 after a network blip: replayed, recorded once", "record_pos_sale",
         fefo_sale, False),
        ("A pre-roll of R-1002 comes back: to the batch it came from, and its points with it", "return_pos_sale",
         {"store_id": store_id, "reference": "RET-1001", "receipt_number": "R-1002", "cashier_id": "cashier-1",
          "reason": "changed mind", "lines": [{"line_no": 1, "quantity": 1}]}, False),
        ("Health Canada recalls LOT-V-0701: the lot is held", "set_batch_status",
         {"reference": f"DEMO-RECALL-{store_id}", "store_id": store_id, "batch_lot": "LOT-V-0701",
          "status": "recalled", "reason": "Health Canada recall (demo)", "actor": "compliance-1"}, False),
        ("A sale of the recalled lot: refused", "record_pos_sale",
         sale("R-1004", "OCS-VAPE-05", 1, "LOT-V-0701", 32.00), True),
    ]


def run(conn: psycopg.Connection, show: Callable[[Step], None] = lambda step: None) -> dict[str, Any]:
    """Tell the day on ``conn`` (migrated), handing each step to ``show`` as it happens; return the whole
    day: the store, the steps, and at the end its stock, ledger and reconciliation."""
    row = conn.execute((SQL_DIR / "demo" / "new_store.sql").read_text()).fetchone()
    conn.commit()
    assert row is not None
    store_id = str(row[0])
    steps: list[Step] = []

    def told(title: str, function: str, outcome: Any, refused: bool = False) -> None:
        steps.append({"title": title, "function": function, "refused": refused, "outcome": outcome})
        show(steps[-1])

    told("A new store opens", "stores", {"store_id": store_id})
    with SAMPLE_ASN.open(encoding="utf-8-sig") as asn:
        shipments = read_asn(asn, store_id, "receiver-1")
    told("The OCS shipment arrives: the sample ASN is received", "receive_inventory",
         receive_shipments(conn, shipments))
    for title, function, payload, expect_refusal in _story(store_id):
        try:
            told(title, function, call(conn, function, payload))
        except PosLedgerError as error:
            if not expect_refusal:
                raise
            told(title, function, error_report(error), refused=True)
    return {"store_id": store_id, "steps": steps, "stock": reports.stock(conn, store_id),
            "ledger": reports.ledger(conn, store_id, limit=1000),
            "reconciliation": reports.reconciliation(conn, store_id)}


def show(step: Step) -> None:
    """A step for people, as it happens."""
    render.out.rule(f"[bold]{step['title']}", align="left")
    if step["refused"]:
        render.error(step["outcome"], expected=True)
    elif step["function"] == "stores":
        render.out.print(f"store id {step['outcome']['store_id']}")
    elif step["function"] == "receive_inventory":
        render.shipments(step["outcome"])
    else:
        render.RESULTS[step["function"]](step["outcome"])


def show_end_of_day(day: dict[str, Any]) -> None:
    render.out.rule("[bold]End of the day", align="left")
    render.rows("Stock by batch (FEFO order)", day["stock"])
    render.rows("The day's ledger", [{key: row[key] for key in ("id", "sku", "batch_lot", "transaction_type",
                                                                 "quantity", "quantity_after", "actor")}
                                     for row in day["ledger"]])
    render.reconciliation(day["reconciliation"])
