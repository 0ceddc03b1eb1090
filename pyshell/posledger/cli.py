"""The posledger command line: a thin layer over the library, printing JSON.

Exit codes: 0 done; 1 refused by posledger (the error and its JSON detail go to stderr);
2 wrong usage; 3 the database could not be reached or failed.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any, NoReturn, TextIO

import click
import psycopg
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from posledger.asn import AsnFormatError, read_asn
from posledger.calls import receive_inventory, record_sale
from posledger.connection import resolve_dsn, start_embedded
from posledger.errors import InsufficientStock, PosLedgerError
from posledger.migrations import SQL_DIR, migrate

EXIT_REFUSED = 1
EXIT_DATABASE = 3

dsn_option = click.option(
    "--dsn",
    help="PostgreSQL DSN or URI. Default: $POSLEDGER_DSN, then $DATABASE_URL, then an embedded server.",
)


def _echo_json(value: Any, err: bool = False) -> None:
    click.echo(json.dumps(value, indent=2, default=str), err=err)


def _fail(code: int, error: str, message: str, **extra: Any) -> NoReturn:
    _echo_json({"error": error, "message": message, **extra}, err=True)
    sys.exit(code)


def _target_dsn(dsn: str | None) -> str:
    """The database to work on: the one named, else the embedded server, started now."""
    return resolve_dsn(dsn) or start_embedded()


@click.group()
@click.version_option(package_name="posledger")
def main() -> None:
    """posledger: record POS sales against batch-level stock, atomically, in PostgreSQL."""


@main.command("migrate")
@dsn_option
def migrate_command(dsn: str | None) -> None:
    """Apply pending schema migrations and (re)create every function. Safe to run twice, or twice at once."""
    applied = migrate(_target_dsn(dsn))
    _echo_json({"applied": applied})


@main.command("sale")
@click.argument("payload", type=click.File("r"))
@dsn_option
def sale_command(payload: TextIO, dsn: str | None) -> None:
    """Record the sale in PAYLOAD (a JSON file, or - for standard input) and print the result.

    Example: posledger sale sale.json --dsn postgresql://localhost/posledger
    """
    try:
        sale = json.load(payload)
    except json.JSONDecodeError as error:
        _fail(EXIT_REFUSED, "InvalidJSON", f"the payload is not JSON: {error}")
    with psycopg.connect(_target_dsn(dsn)) as conn:
        _echo_json(record_sale(conn, sale))


@main.command("receive")
@click.argument("asn", type=click.File("r", encoding="utf-8-sig"))
@click.option("--store-id", required=True, help="The store receiving the shipments (uuid).")
@click.option("--received-by", help="Who received them; the ledger's actor.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
@dsn_option
def receive_command(asn: TextIO, store_id: str, received_by: str | None, as_json: bool, dsn: str | None) -> None:
    """Receive an OCS ASN export (CSV): each ShipmentID in it is one receive_inventory call.

    Each shipment is received whole or not at all; the run stops at the first refused one. Receiving the
    same file again changes nothing (each shipment id counts once), so a stopped run is simply rerun.
    A case UOM counts UOMCONVERSIONQTY units; an optional Received_Qty column gives what was counted.

    Example: posledger receive sql/demo/ocs_asn_sample.csv --store-id 5071d685-00dc-4e56-bb11-36e31b305c50
    """
    try:
        shipments = read_asn(asn, store_id, received_by)
    except AsnFormatError as error:
        _fail(EXIT_REFUSED, "AsnFormatError", str(error))
    results = []
    with psycopg.connect(_target_dsn(dsn)) as conn, Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("receiving", total=sum(len(shipment["lines"]) for shipment in shipments))
        for shipment in shipments:
            results.append(receive_inventory(conn, shipment))
            bar.advance(task, len(shipment["lines"]))
    if as_json:
        _echo_json(results)
        return
    table = Table("shipment", "lines", "batches", "units received", "variances", "replayed", title="Received")
    for shipment, result in zip(shipments, results, strict=True):
        table.add_row(result["shipment_id"], str(len(shipment["lines"])), str(len(result["batches"])),
                      str(result["units_received"]), str(len(result["variances"])), str(result["replayed"]))
    Console().print(table)


@main.command("demo")
@dsn_option
def demo_command(dsn: str | None) -> None:
    """Migrate, stock a new demo store, and ring up three sales: one split FEFO across two lots,
    its retry by the till (replayed, recorded once), and one refused for insufficient stock.

    With no DSN it runs on an embedded PostgreSQL in ./.posledger, started and stopped for you.
    """
    target = _target_dsn(dsn)
    migrate(target)
    with psycopg.connect(target) as conn:
        row = conn.execute((SQL_DIR / "demo" / "new_store.sql").read_text()).fetchone()
        conn.commit()
        assert row is not None
        sale = json.loads((SQL_DIR / "demo" / "sale.json").read_text())
        sale.update(store_id=str(row[0]), receipt_number=f"DEMO-{uuid.uuid4().hex[:8]}")
        _demo_step("1. A sale without batches: 8 pre-rolls come FEFO from two lots", record_sale(conn, sale))
        _demo_step("2. The till retries the same sale: the first result, replayed; nothing sold twice",
                   record_sale(conn, sale))
        oversell = {**sale, "receipt_number": f"DEMO-{uuid.uuid4().hex[:8]}",
                    "items": [{"product": {"sku": "OCS-PREROLL-1G"}, "quantity": 100}]}
        try:
            record_sale(conn, oversell)
        except InsufficientStock as refused:
            _demo_step("3. 100 pre-rolls: refused, nothing changed",
                       {"error": type(refused).__name__, "sqlstate": refused.sqlstate, "detail": refused.detail})


def _demo_step(title: str, outcome: Any) -> None:
    click.echo(f"\n== {title}")
    _echo_json(outcome)


def run() -> None:
    """Entry point: posledger's own refusals and database failures become exit codes, not tracebacks."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as usage:
        usage.show()
        sys.exit(usage.exit_code)
    except click.Abort:
        sys.exit(1)
    except PosLedgerError as refused:
        _fail(EXIT_REFUSED, type(refused).__name__, str(refused),
              sqlstate=refused.sqlstate, detail=refused.detail, hint=refused.hint)
    except psycopg.Error as failure:
        _fail(EXIT_DATABASE, type(failure).__name__, str(failure).strip(),
              sqlstate=failure.sqlstate)
