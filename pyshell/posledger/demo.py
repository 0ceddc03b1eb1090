"""The demo: a store's day told through the real entry functions. Every step is a real call on a real
PostgreSQL; the refusals are the database's own. A new store each run, so it can run again and again on
the same database. Nothing here prints: the CLI shows each step with render.demo_step as it happens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from posledger import reports
from posledger.asn import read_asn, receive_shipments
from posledger.calls import Call, complete_reservation, load_catalogue, record_sale, return_sale, set_batch_status
from posledger.catalogue import read_catalogue
from posledger.errors import PosLedgerError, error_report
from posledger.migrations import SQL_DIR, migrate

SAMPLE_ASN = SQL_DIR / "demo" / "ocs_asn_sample.csv"
SAMPLE_CATALOGUE = SQL_DIR / "demo" / "ocs_catalogue_sample.csv"

# The sample input of each command that reads one, as the package ships it (sql/demo): `posledger example NAME`.
EXAMPLES = {"sale": "sale.json", "return": "return.json", "adjust": "adjustment.json", "count": "count.json",
            "batch-status": "recall.json", "receive": SAMPLE_ASN.name, "catalogue": SAMPLE_CATALOGUE.name}
CUSTOMER = "0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"

Step = dict[str, Any]  # {"title", "function", "refused", "outcome"}: what --json prints of each step


# One act of the day: its title, the entry function it calls (named in each step), the library call, the
# payload, and whether a refusal is the point of it.
Act = tuple[str, str, Call, dict[str, Any], bool]


def _story(store_id: str) -> list[Act]:
    """The day after the shipment, in order."""
    def sale(receipt: str, sku: str, quantity: int, batch_lot: str | None, total: float, **extra: Any) -> dict:
        line: dict[str, Any] = {"product": {"sku": sku}, "quantity": quantity}
        if batch_lot:
            line["batch"] = {"batch_lot": batch_lot}
        return {"store_id": store_id, "receipt_number": receipt, "items": [line], "total": total,
                "payment_method": "card", "cashier_id": "cashier-1", "terminal_id": "till-1", **extra}

    fefo_sale = sale("R-1002", "OCS-PREROLL-1G", 7, None, 45.50, user_id=CUSTOMER)
    over_the_limit = sale("R-1005", "OCS-VAPE-05", 4, None, 431.50)   # 4 x 0.5 g of concentrate = 8 g dried
    over_the_limit["items"] += [{"product": {"sku": "OCS-GUMMIES-10"}, "quantity": 24},   # 24 x 10 g / 15 = 16 g
                                {"product": {"sku": "OCS-PREROLL-1G"}, "quantity": 7}]    # 7 g: 31 g in all
    scanned = {"store_id": store_id, "receipt_number": "R-1006", "subtotal": 6.50, "tax": 0.85, "total": 7.35,
               "payment_method": "cash", "cashier_id": "cashier-1", "terminal_id": "till-1",
               "items": [{"scan": "(01)00627701000018(10)LOT-2025-10-B", "quantity": 1, "unit_price": 6.50,
                          "tax": 0.85}]}
    return [
        ("A sale naming its batch: 2 vapes of LOT-V-0701", "record_pos_sale", record_sale,
         sale("R-1001", "OCS-VAPE-05", 2, "LOT-V-0701", 64.00), False),
        ("A sale split FEFO across two batches: 7 pre-rolls, the older lot first", "record_pos_sale", record_sale,
         fefo_sale, False),
        ("30 gummies, when the store has 24: refused, nothing changes", "record_pos_sale", record_sale,
         sale("R-1003", "OCS-GUMMIES-10", 30, None, 360.00), True),
        ("4 vapes, 24 gummies and 7 pre-rolls: 31 g dried equivalent, over the 30 g limit: refused at the till",
         "record_pos_sale", record_sale, over_the_limit, True),
        ("The till retries R-1002 after a network blip: replayed, recorded once", "record_pos_sale", record_sale,
         fefo_sale, False),
        ("A pre-roll sold by scanning its barcode: the GS1 string names the product and its lot",
         "record_pos_sale", record_sale, scanned, False),
        ("A pre-roll of R-1002 comes back: to the batch it came from, and its points with it", "return_pos_sale",
         return_sale,
         {"store_id": store_id, "reference": "RET-1001", "receipt_number": "R-1002", "cashier_id": "cashier-1",
          "reason": "changed mind", "lines": [{"line_no": 1, "quantity": 1}]}, False),
        ("Health Canada recalls LOT-V-0701: the lot is held", "set_batch_status", set_batch_status,
         {"reference": f"DEMO-RECALL-{store_id}", "store_id": store_id, "batch_lot": "LOT-V-0701",
          "status": "recalled", "reason": "Health Canada recall (demo)", "actor": "compliance-1"}, False),
        ("A sale of the recalled lot: refused", "record_pos_sale", record_sale,
         sale("R-1004", "OCS-VAPE-05", 1, "LOT-V-0701", 32.00), True),
        ("A click-and-collect order reserves 3 pre-rolls: held by batch, not yet sold", "record_pos_sale",
         record_sale, sale("WEB-1001", "OCS-PREROLL-1G", 3, None, 19.50, status="reserved"), False),
        ("The customer collects: the reservation becomes the sale, from the units it held", "complete_reservation",
         complete_reservation, {"store_id": store_id, "receipt_number": "WEB-1001"}, False),
        ("Till 2 lost its link an hour ago and sends the sale it made then, of more gummies than the books hold: "
         "recorded, the shortfall goes to the exception queue", "record_pos_sale", record_sale,
         sale("R-2001", "OCS-GUMMIES-10", 26, None, 312.00, policy="offline", terminal_id="till-2",
              terminal_sequence=1, occurred_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat()), False),
    ]


def run(dsn: str, show: Callable[[Step], None] | None = None) -> dict[str, Any]:
    """Migrate the database at ``dsn`` and tell the day on it, handing each step to ``show`` (if given) as it
    happens; return the whole day: the store, the steps, and at the end its stock, ledger and reconciliation."""
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        store = _new_store(conn)
        store_id = store["store_id"]
        steps = _tell(conn, store, show or (lambda step: None))
        # The whole database's books: "books balance" said of the demo's store alone would hide the others'.
        return {"store_id": store_id, "steps": steps, "stock": reports.stock(conn, store_id),
                "ledger": reports.ledger(conn, store_id, limit=1000),
                "reconciliation": reports.reconciliation(conn)}


def _tell(conn: psycopg.Connection, store: dict[str, str], show: Callable[[Step], None]) -> list[Step]:
    steps: list[Step] = []
    store_id = store["store_id"]

    def told(title: str, function: str, outcome: Any, refused: bool = False) -> None:
        steps.append({"title": title, "function": function, "refused": refused, "outcome": outcome})
        show(steps[-1])

    told("The provincial catalogue is loaded (again on a second run: nothing changes)", "load_catalogue",
         _load_sample_catalogue(conn))
    told("A new store opens", "stores", store)
    told("The OCS shipment arrives: the sample ASN is received", "receive_inventory", _receive_sample(conn, store_id))
    for title, function, library_call, payload, expect_refusal in _story(store_id):
        try:
            told(title, function, library_call(conn, payload))
        except PosLedgerError as error:
            if not expect_refusal:
                raise
            told(title, function, error_report(error), refused=True)
    return steps


def _new_store(conn: psycopg.Connection) -> dict[str, str]:
    row = conn.execute((SQL_DIR / "demo" / "new_store.sql").read_text()).fetchone()
    conn.commit()
    assert row is not None
    return {"store_id": str(row[0]), "name": row[1]}


def example(name: str) -> str:
    """The sample input of the command ``name`` (a key of EXAMPLES), as the package ships it."""
    return (SQL_DIR / "demo" / EXAMPLES[name]).read_text(encoding="utf-8")


def _load_sample_catalogue(conn: psycopg.Connection) -> dict[str, Any]:
    with SAMPLE_CATALOGUE.open(encoding="utf-8-sig") as catalogue:
        return load_catalogue(conn, read_catalogue(catalogue))


def _receive_sample(conn: psycopg.Connection, store_id: str) -> list[dict[str, Any]]:
    with SAMPLE_ASN.open(encoding="utf-8-sig") as asn:
        return receive_shipments(conn, read_asn(asn, store_id, "receiver-1"))
