"""The posledger command line: a thin layer over the library. Tables for people, --json for scripts.

Exit codes: 0 done; 1 refused (posledger said no, or the input file is not what it should be: the error,
its code and every problem go to stderr); 2 wrong usage; 3 the database could not be reached or failed;
4 `reconcile` found discrepancies, or `verify` a broken link of the ledger.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict

from posledger import __version__, demo, ocs, queue, render, reports
from posledger.asn import AsnFormatError, read_asn, receive_shipments
from posledger.calls import (
    Call,
    adjust_inventory,
    cancel_transfer,
    catalogue_product,
    count_inventory,
    load_catalogue,
    record_sale,
    resolve_exception,
    return_sale,
    set_batch_status,
    transfer_in,
    transfer_out,
)
from posledger.catalogue import CatalogueFormatError, read_catalogue
from posledger.connection import (
    default_data_dir,
    embedded_running,
    psql_path,
    resolve_dsn,
    start_embedded,
    stop_embedded,
)
from posledger.distribution import distribute
from posledger.errors import PosLedgerError, error_report
from posledger.migrations import MIGRATE_LOCK_WAIT, database_status, migrate

EXIT_REFUSED = 1
EXIT_DATABASE = 3
EXIT_DISCREPANCIES = 4

SUPPORTED_POSTGRESQL = "PostgreSQL 15 and newer (tested on 15 and 18)"


class Posledger(click.Group):
    """Turns what a user can get wrong into an exit code and a readable error, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except json.JSONDecodeError as error:
            self._report(ctx, EXIT_REFUSED, error_report(error, "InvalidJSON"))
        except (AsnFormatError, CatalogueFormatError, PosLedgerError, UnicodeDecodeError) as error:
            self._report(ctx, EXIT_REFUSED, error_report(error))
        except (psycopg.Error, subprocess.SubprocessError) as error:
            self._report(ctx, EXIT_DATABASE, error_report(error))

    @staticmethod
    def _report(ctx: click.Context, code: int, report: dict[str, Any]) -> None:
        if ctx.meta.get("posledger.json"):
            click.echo(json.dumps(report, indent=2, default=str), err=True)
        else:
            render.error(report)
        ctx.exit(code)


def _remember_json(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
    ctx.meta["posledger.json"] = value  # meta is shared with the group, which prints errors
    return value


def _dsn(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """A --dsn that is not a DSN is wrong usage (exit 2), not an unreachable database."""
    if value is not None:
        try:
            conninfo_to_dict(value)
        except psycopg.ProgrammingError as error:
            raise click.BadParameter(f"not a PostgreSQL DSN or URI: {error}".strip()) from error
    return value


dsn_option = click.option(
    "--dsn", callback=_dsn,
    help="PostgreSQL DSN or URI. Default: $POSLEDGER_DSN, then $DATABASE_URL, then the embedded server "
         "in ./.posledger (started for the command and stopped after it, unless a --keep left it running).")
json_option = click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                           help="Print JSON (results on stdout, errors on stderr) instead of tables.")
store_option = click.option("--store-id", type=click.UUID, required=True, help="The store (uuid).")


def _target(dsn: str | None, keep: bool = False) -> str:
    """The database to work on: the one named, else the embedded server (started now if it is not running)."""
    return resolve_dsn(dsn) or start_embedded(keep=keep)


def _connect(dsn: str | None) -> psycopg.Connection:
    return psycopg.connect(_target(dsn))


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _show(value: Any, as_json: bool, for_people: Callable[[Any], None]) -> None:
    if as_json:
        _print_json(value)
    else:
        for_people(value)


def _versions() -> dict[str, Any]:
    """What `posledger --version` and `posledger version` print first, with no database to ask."""
    return {"posledger": __version__, "python": platform.python_version(),
            "supported_postgresql": SUPPORTED_POSTGRESQL}


def _print_version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        render.facts(_versions())
        ctx.exit()


@click.group(cls=Posledger, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print posledger's version and exit (`posledger version` also asks the database).")
def main() -> None:
    """posledger: record POS sales against batch-level stock, atomically, in PostgreSQL.

    \b
    Start here:
      posledger demo            a store's day on an embedded PostgreSQL
      posledger COMMAND --help  what a command takes, with an example
    """


@main.command("migrate")
@dsn_option
@json_option
@click.option("--lock-wait", type=click.FloatRange(min=0), default=MIGRATE_LOCK_WAIT, show_default=True,
              metavar="SECONDS", help="How long to wait for another migrate (or any session holding its advisory "
                                      "lock); then exit 3 naming the sessions that hold it.")
def migrate_command(dsn: str | None, as_json: bool, lock_wait: float) -> None:
    """Apply pending schema migrations and (re)create every function. Safe to run twice, or twice at once.

    \b
    Example:
      posledger migrate --dsn postgresql://localhost/posledger
    """
    applied = migrate(_target(dsn), lock_wait=lock_wait)
    _show({"applied": applied}, as_json, render.migrated)


@main.command("distribute")
@dsn_option
@json_option
@click.option("--shard-count", type=click.IntRange(min=1), metavar="N",
              help="Shards of the store-scoped tables when first distributed. Default: Citus's citus.shard_count (32).")
def distribute_command(dsn: str | None, as_json: bool, shard_count: int | None) -> None:
    """Distribute a migrated database on a Citus coordinator by store (docs/scaling.md), then migrate again.
    Safe to run twice: what is distributed already stays as it is.

    \b
    Example:
      posledger migrate --dsn postgresql://coordinator/posledger
      posledger distribute --dsn postgresql://coordinator/posledger
    """
    _show(distribute(_target(dsn), shard_count=shard_count), as_json, render.facts)


def _read_json(payload: TextIO) -> Any:
    """The JSON document in a payload file; an error that is not JSON names the file."""
    try:
        return json.load(payload)
    except json.JSONDecodeError as error:
        raise json.JSONDecodeError(f"{payload.name} is not JSON: {error.msg}", error.doc, error.pos) from error


def _payload_command(name: str, library_call: Call, for_people: Callable[[dict[str, Any]], None],
                     help_text: str, group: click.Group = main) -> None:
    """A command (of the group) that sends a JSON file to one named library call and shows its result."""
    @group.command(name, help=help_text)
    @click.argument("payload", type=click.File("r"))
    @dsn_option
    @json_option
    def command(payload: TextIO, dsn: str | None, as_json: bool) -> None:
        document = _read_json(payload)
        with _connect(dsn) as conn:
            result = library_call(conn, document)
        _show(result, as_json, for_people)


_payload_command("sale", record_sale, render.sale,
                 """Record the sale in PAYLOAD (a JSON file, or - for standard input).

    The payload is the POS frontend's (README, "The sale"). Sending the same sale again is safe: the
    first result comes back, marked replayed, and nothing is sold twice.

    \b
    Example:
      posledger example sale | posledger sale -
      posledger example sale > sale.json && posledger sale sale.json --json
    """)
_payload_command("return", return_sale, render.return_,
                 """Return units of a sale, or void it whole (return_pos_sale).

    Units go back to the batches the sale took them from; loyalty points come back off the balance.

    \b
    Example:
      posledger example return | posledger return -
    """)
_payload_command("adjust", adjust_inventory, render.adjustment,
                 """Correct stock with a reason code (adjust_inventory).

    Signed quantities per sku and batch; stock never goes below zero.

    \b
    Example:
      posledger example adjust | posledger adjust -
    """)
_payload_command("count", count_inventory, render.adjustment,
                 """Post counted quantities as adjustments (count_inventory).

    \b
    Example:
      posledger example count | posledger count -
    """)
_payload_command("batch-status", set_batch_status, render.batch_status,
                 """Hold, recall or release a lot (set_batch_status).

    \b
    Example:
      posledger example batch-status | posledger batch-status -
    """)


@main.group("transfer")
def transfer_group() -> None:
    """Stock between two stores of one retailer (docs/transfers.md): out at the sender, in at the receiver,
    cancel while in transit. Each payload is a JSON file, or - for standard input; sending one again is safe.

    \b
    Example:
      posledger transfer out transfer.json
      posledger transfer in arrival.json --json
    """


_payload_command("out", transfer_out, render.transfer,
                 """Units leave the sending store by batch, in transit (transfer_out): {"store_id", "reference",
    "to_store_id", "actor", "lines": [{"sku", "batch_lot", "quantity"}]}.""", group=transfer_group)
_payload_command("in", transfer_in, render.transfer,
                 """The transfer arrives at the receiving store, per line sent and received (transfer_in):
    {"store_id", "reference", "from_store_id", "actor", "lines": [{"sku", "batch_lot", "sent", "received"}]}.""",
                 group=transfer_group)
_payload_command("cancel", cancel_transfer, render.transfer,
                 """A transfer still in transit is called off and its units come back (cancel_transfer):
    {"store_id", "reference", "actor"}.""", group=transfer_group)


@main.command("example", help=f"""Print the sample input of the command NAME, shipped with posledger: to read,
    to edit, or to pipe into that command. NAME is one of: {", ".join(sorted(demo.EXAMPLES))}.

    The samples are of the store 5071d685-00dc-4e56-bb11-36e31b305c50: the README's tour adds it and
    receives the sample ASN, which stocks what the other samples sell, return, adjust, count and recall.

    \b
    Example:
      posledger example sale | posledger sale -
      posledger example receive | posledger receive - --store-id 5071d685-00dc-4e56-bb11-36e31b305c50
    """)
@click.argument("name", metavar="NAME", type=click.Choice(sorted(demo.EXAMPLES)))
def example_command(name: str) -> None:
    click.echo(demo.example(name), nl=False)


@main.command("receive")
@click.argument("asn", type=click.File("r", encoding="utf-8-sig"))
@store_option
@click.option("--received-by", help="Who received them; the ledger's actor.")
@dsn_option
@json_option
def receive_command(asn: TextIO, store_id: Any, received_by: str | None, dsn: str | None, as_json: bool) -> None:
    """Receive an OCS ASN export (CSV): each ShipmentID in it is one receive_inventory call.

    Each shipment is received whole or not at all; the run stops at the first refused one. Receiving the
    same file again changes nothing (each shipment id counts once), so a stopped run is simply rerun.
    A case UOM counts UOMCONVERSIONQTY units; an optional Received_Qty column gives what was counted.

    \b
    Example:
      posledger example receive | posledger receive - --store-id 5071d685-00dc-4e56-bb11-36e31b305c50
    """
    shipments = read_asn(asn, str(store_id), received_by)
    with _connect(dsn) as conn, render.progress_bar("receiving") as progress:
        results = receive_shipments(conn, shipments, progress)
    _show(results, as_json, render.shipments)


@main.group("catalogue")
def catalogue_group() -> None:
    """The product catalogue, the same for every store: load the provincial item catalogue, show a product.

    \b
    Example:
      posledger example catalogue | posledger catalogue load -
      posledger catalogue show 0627701000025
    """


@catalogue_group.command("load")
@click.argument("catalogue", type=click.File("r", encoding="utf-8-sig"))
@click.option("--skip-bad", is_flag=True, help="Load the good rows and list the bad ones, instead of loading nothing.")
@dsn_option
@json_option
def catalogue_load_command(catalogue: TextIO, skip_bad: bool, dsn: str | None, as_json: bool) -> None:
    """Load a provincial item catalogue (CSV) into the product catalogue (load_catalogue).

    Every row is checked; a bad one is named by its line and problems, and then nothing loads (exit 1)
    unless --skip-bad, which loads the good rows and lists the skipped ones (exit 1 only when none was
    good). Loading the same file again changes nothing; a product's GTINs become those of its row.

    \b
    Example:
      posledger example catalogue | posledger catalogue load -
      posledger catalogue load catalogue.csv --skip-bad --json
    """
    rows = read_catalogue(catalogue)
    with _connect(dsn) as conn, render.progress_bar("loading the catalogue") as progress:
        result = load_catalogue(conn, rows, skip_bad, progress=progress)
    _show(result, as_json, render.catalogue_loaded)
    if result["skipped"] and result["skipped"] == result["rows"]:
        sys.exit(EXIT_REFUSED)


@catalogue_group.command("show")
@click.argument("key", metavar="SKU|GTIN")
@dsn_option
@json_option
def catalogue_show_command(key: str, dsn: str | None, as_json: bool) -> None:
    """Show one product of the catalogue by its sku or any of its GTINs (8, 12, 13 or 14 digits): its class,
    what it counts toward, its GTINs and its dried-equivalent grams per unit today (catalogue_product).

    \b
    Example:
      posledger catalogue show OCS-GUMMIES-10
      posledger catalogue show 627701000025 --json
    """
    with _connect(dsn) as conn:
        found = catalogue_product(conn, key)
    _show(found, as_json, render.product)


def _report_command(name: str, report: Callable[..., list[dict[str, Any]]], title: str, help_text: str,
                    *extra: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """A command that shows one store's rows of a report, as a table or --json."""
    def command(store_id: Any, sku: str | None, dsn: str | None, as_json: bool, **options: Any) -> None:
        with _connect(dsn) as conn:
            found = report(conn, str(store_id), sku, **options)
        _show(found, as_json, lambda rows: render.rows(title, rows))

    for option in (*extra, json_option, dsn_option, click.option("--sku", help="Only this sku."), store_option):
        command = option(command)
    main.command(name, help=help_text)(command)


_report_command("stock", reports.stock, "Stock by batch (FEFO order)", """A store's stock by batch.

    Each sku's batches in the order a sale without a batch takes them (FEFO), with status and quantities.

    \b
    Example:
      posledger stock --store-id 5071d685-00dc-4e56-bb11-36e31b305c50
    """)
_report_command("ledger", reports.ledger, "Ledger (newest rows, oldest first)", """A store's ledger: every movement.

    \b
    Example:
      posledger ledger --store-id 5071d685-00dc-4e56-bb11-36e31b305c50 --sku OCS-PREROLL-1G --limit 10
    """, click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Rows to show."))


def _check_command(name: str, check: Callable[[psycopg.Connection, str | None], dict[str, Any]],
                   for_people: Callable[[dict[str, Any]], None], passed: str, help_text: str) -> None:
    """A check of the whole database (or one store): a table or --json, and exit 4 when report[passed] is false."""
    @main.command(name, help=help_text)
    @click.option("--store-id", type=click.UUID, help="Only this store. Default: the whole database.")
    @dsn_option
    @json_option
    def command(store_id: Any, dsn: str | None, as_json: bool) -> None:
        with _connect(dsn) as conn:
            report = check(conn, str(store_id) if store_id else None)
        _show(report, as_json, for_people)
        if not report[passed]:
            sys.exit(EXIT_DISCREPANCIES)


_check_command("reconcile", reports.reconciliation, render.reconciliation, "balanced", """Check the books: every
    row's on-hand against its ledger, and nothing below zero.

    Exits 0 when the books balance, 4 when they do not (docs/runbook.md: what to do then).

    \b
    Example:
      posledger reconcile
    """)
_check_command("verify", reports.verification, render.verification, "intact", """Check that the ledger's history
    was not rewritten: every row matches its hash and links to the one before it, and the ledger's guards are in
    place. Rows written into the ledger directly are listed for review.

    Exits 0 when the ledger is intact, 4 when a link or guard is broken.

    \b
    Example:
      posledger verify
    """)


@main.group("report")
def report_group() -> None:
    """The reports a store files with the regulator: the monthly report, and a store's day as the OCS data
    platform's files.

    \b
    Examples:
      posledger report monthly --store-id 5071d685-00dc-4e56-bb11-36e31b305c50 --month 2026-10 --xlsx october.xlsx
      posledger report ocs --store-id 5071d685-00dc-4e56-bb11-36e31b305c50 --day 2026-11-30 --check
    """


def _month(_: click.Context, __: click.Parameter, value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise click.BadParameter("expected YYYY-MM, e.g. 2026-10") from None


@report_group.command("monthly")
@store_option
@click.option("--month", required=True, callback=_month, metavar="YYYY-MM",
              help="The month, in the store's calendar.")
@click.option("--csv", "csv_file", type=click.File("w", encoding="utf-8"), help="Write the report to this CSV file.")
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this Excel workbook, one sheet per section.")
@dsn_option
@json_option
def report_monthly_command(store_id: Any, month: date, csv_file: TextIO | None, xlsx_path: str | None,
                           dsn: str | None, as_json: bool) -> None:
    """A store's monthly report: per product class, opening, receipts, sales, returns, transfers in and out,
    adjustments by reason, destructions and closing, in units, dried-equivalent grams and value
    (docs/monthly-report.md).

    Exits 0 when every row balances (opening + movements = closing), 4 when one does not.

    \b
    Example:
      posledger report monthly --store-id 5071d685-00dc-4e56-bb11-36e31b305c50 --month 2026-10 \\
          --csv october.csv --xlsx october.xlsx
    """
    with _connect(dsn) as conn:
        found = reports.monthly(conn, str(store_id), month)
    if csv_file is not None:
        reports.write_monthly_csv(found, csv_file)
    if xlsx_path is not None:
        reports.write_monthly_xlsx(found, xlsx_path)
    summary = ["product_class", "measure", *reports.MONTHLY_SUMMARY, "balanced"]
    _show(found, as_json, lambda report: render.rows(f"Monthly report {report['month']}",
                                                      [{key: row[key] for key in summary} for row in report["rows"]]))
    if not all(row["balanced"] for row in found["rows"]):
        sys.exit(EXIT_DISCREPANCIES)


@main.group("exceptions", invoke_without_command=True)
@click.option("--store-id", type=click.UUID, help="Only this store. Default: every store.")
@click.option("--watch", is_flag=True, help="Wait for new exceptions and print each as it is committed, one "
                                            "line each (JSON lines with --json), until Ctrl-C or SIGTERM.")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="With --watch: stop after N exceptions.")
@dsn_option
@json_option
@click.pass_context
def exceptions_group(ctx: click.Context, store_id: Any, watch: bool, count: int | None, dsn: str | None,
                     as_json: bool) -> None:
    """The exception queue: the open exceptions, oldest first (view open_inventory_exceptions) - what
    (kind, sku, batch, units short), where (store, till, receipt), who, why, when. Shortfalls of lenient
    and offline sales, and the rules offline sales broke; each stays open until resolved.

    With --watch, LISTEN on the channel posledger_inventory_exceptions and print each new exception
    when the transaction that raised it commits ("listening" goes to stderr once it waits).

    \b
    Example:
      posledger exceptions --store-id 5071d685-00dc-4e56-bb11-36e31b305c50
      posledger exceptions --watch --json >> exceptions.jsonl
      posledger exceptions resolve resolution.json
    """
    if ctx.invoked_subcommand is not None:
        if store_id or watch or count or dsn or as_json:
            raise click.UsageError(f"the options of `exceptions` list or watch; `{ctx.invoked_subcommand}` "
                                   "takes its own after its name")
        return
    if count is not None and not watch:
        raise click.UsageError("--count goes with --watch")
    store = str(store_id) if store_id else None
    if watch:
        _watch(_target(dsn), store, count, as_json)
        return
    with _connect(dsn) as conn:
        found = queue.open_exceptions(conn, store)
    _show(found, as_json, lambda rows: render.exceptions(rows, one_store=store is not None))


def _watch(target: str, store_id: str | None, count: int | None, as_json: bool) -> None:
    """Print each new exception as it comes, flushed at once, until ``count`` of them or a signal to stop."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # a service manager's stop, as Ctrl-C: exit 0

    def listening() -> None:
        render.err.print(f"listening on {queue.CHANNEL}" + (f" for store {store_id}" if store_id else ""),
                         markup=False)

    try:
        with closing(queue.watch(target, store_id, listening=listening)) as announced:
            for row in islice(announced, count):
                if as_json:
                    click.echo(json.dumps(row, default=str))
                else:
                    render.announced(row)
                sys.stdout.flush()
    except KeyboardInterrupt:
        render.err.print("stopped")


_payload_command("resolve", resolve_exception, render.resolution,
                 """Resolve one exception of the queue with who and why (resolve_inventory_exception),
    from PAYLOAD (a JSON file, or - for standard input):
    {"store_id", "exception_id", "resolved_by", "reason"} and, for a shortfall, the stock it moves: an
    "adjustment" (adjust's payload) or a "count" (count's payload), run in the same transaction.
    Sending the same resolution again is safe: the first result comes back, marked replayed.

    \b
    Example:
      posledger exceptions resolve resolution.json
      posledger exceptions resolve - --json < resolution.json
    """, group=exceptions_group)


def _moment(_: click.Context, __: click.Parameter, value: str | None) -> datetime | None:
    try:
        moment = None if value is None else datetime.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    if moment is not None and moment.tzinfo is None:
        raise click.BadParameter("give the offset too, e.g. 2026-11-30T00:05-05:00: a digest is of one moment")
    return moment


@main.command("digest")
@click.option("--as-of", callback=_moment, help="The moment, ISO 8601 with its offset (e.g. 2026-11-30T00:05-05:00). "
                                                "Default: now.")
@click.option("--store-id", type=click.UUID, help="Only this store. Default: every store.")
@dsn_option
@json_option
def digest_command(as_of: datetime | None, store_id: Any, dsn: str | None, as_json: bool) -> None:
    """Each store's ledger digest as of a moment: keep it outside the database (the daily report).

    Recomputed later for the same moment, a different digest means the history before it was rewritten.

    \b
    Example:
      posledger digest --as-of "$(date -d 'today 00:05' -Iseconds)" --json >> ledger-digests.jsonl
    """
    with _connect(dsn) as conn:
        found = reports.digests(conn, as_of, str(store_id) if store_id else None)
    _show(found, as_json, lambda rows: render.rows("Ledger digests", rows))


def _day(_: click.Context, __: click.Parameter, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(f"not a date (YYYY-MM-DD): {value}") from error


@report_group.command("ocs")
@store_option
@click.option("--day", required=True, callback=_day, help="The store's calendar day, YYYY-MM-DD.")
@click.option("--check", is_flag=True, help="Only make the platform's check; write nothing.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="The directory to write the files into.")
@dsn_option
@json_option
def report_ocs_command(store_id: Any, day: date, check: bool, out: Path, dsn: str | None, as_json: bool) -> None:
    """A store's day for the OCS data platform: events-<crsa>-<day>.json and position-<crsa>-<day>.json
    (the store's id when it has no CRSA), after the platform's check: yesterday's position plus the day's
    events must equal the day's position, per SKU.

    Exits 1 and prints the differences, writing nothing, when the day does not balance.

    \b
    Example:
      posledger report ocs --store-id 5071d685-00dc-4e56-bb11-36e31b305c50 --day 2026-11-30 --out feed/
    """
    with _connect(dsn) as conn:
        found = ocs.report(conn, str(store_id), day)
    written = [] if check or not found["check"]["balanced"] else [str(path) for path in ocs.write_report(found, out)]
    result = {"store_id": found["store_id"], "day": found["day"], "balanced": found["check"]["balanced"],
              "differences": found["check"]["differences"], "events": len(found["events"]["inventoryEventList"]),
              "positions": len(found["position"]["inventoryPositionList"]), "written": written}
    _show(result, as_json, render.ocs)
    if not found["check"]["balanced"]:
        sys.exit(EXIT_REFUSED)


@main.group("send")
def send_group() -> None:
    """Deliveries to the outside world: a store's unsent events to the OCS data platform.

    \b
    Example:
      POSLEDGER_OCS_TOKEN=... posledger send ocs --store-id 5071d685-00dc-4e56-bb11-36e31b305c50 \\
          --url https://platform.example/inventory-events
    """


@send_group.command("ocs")
@store_option
@click.option("--url", required=True, help="The platform's endpoint for inventory events (no default: nothing is "
                                           "sent anywhere not named here).")
@click.option("--token-env", default="POSLEDGER_OCS_TOKEN", show_default=True,
              help="The environment variable holding the platform's bearer token.")
@click.option("--batch", type=click.IntRange(1, 1000), default=100, show_default=True, help="Events per POST.")
@click.option("--timeout", type=click.FloatRange(0.1), default=10.0, show_default=True, help="Seconds per POST.")
@click.option("--attempts", type=click.IntRange(1, 20), default=4, show_default=True,
              help="POSTs per batch in all, on timeouts, connection errors and 5xx.")
@click.option("--backoff", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Seconds before the second attempt, doubled each time after.")
@click.option("--position-day", callback=lambda ctx, param, value: value and _day(ctx, param, value),
              help="Send the store's position at the end of this day (YYYY-MM-DD) instead of its events.")
@dsn_option
@json_option
def send_ocs_command(store_id: Any, url: str, token_env: str, batch: int, timeout: float, attempts: int,
                     backoff: float, position_day: date | None, dsn: str | None, as_json: bool) -> None:
    """Send a store's unsent OCS events to the platform, a batch a transaction, oldest first; or, with
    --position-day, the store's position at the end of that day.

    A day that fails the platform's check is not sent (its differences are printed). Exits 0 when every
    event was accepted, 1 when the platform refused a batch (4xx), a batch ran out of attempts, or a day
    was held back; the events not accepted stay unsent for the next run.

    \b
    Example:
      POSLEDGER_OCS_TOKEN=... posledger send ocs --store-id 5071d685-00dc-4e56-bb11-36e31b305c50 \\
          --url https://platform.example/inventory-events
    """
    token = os.environ.get(token_env)
    if not token:
        raise click.UsageError(f"${token_env} holds no token")
    if position_day is None:
        outcome = ocs.send(_target(dsn), str(store_id), url, token, batch=batch, timeout=timeout,
                           attempts=attempts, backoff=backoff)
    else:
        outcome = ocs.send_position(_target(dsn), str(store_id), position_day, url, token, timeout=timeout,
                                    attempts=attempts, backoff=backoff)
    _show(outcome, as_json, lambda found: render.ocs({**found, "deliveries": len(found["deliveries"])}))
    if outcome["refused"] or outcome["failed"] or outcome["held"]:
        sys.exit(EXIT_REFUSED)


_payload_command("ocs-again", ocs.resend, render.ocs,
                 """Send a store's accepted OCS events of some days again, under their own ids: a correction,
    after the mapping (ocs_event_types) was corrected (ocs_resend_events). PAYLOAD: {"store_id", "from_day",
    "to_day" (default from_day), "transaction_types" (default every type), "reason", "actor"}. The events are
    marked unsent; the next `posledger send ocs` delivers them.

    \b
    Example:
      posledger send ocs-again correction.json
    """, group=send_group)


@main.command("demo")
@dsn_option
@json_option
@click.option("--keep", is_flag=True, help="Leave the embedded server running, for posledger psql; "
                                           "posledger stop stops it.")
def demo_command(dsn: str | None, as_json: bool, keep: bool) -> None:
    """A store's day: receive the sample OCS ASN, ring up sales (a named batch, a FEFO split, a refusal,
    a till's retry), take a return, recall a lot, and check the books.

    With no DSN it runs on an embedded PostgreSQL in ./.posledger, started and stopped for you.

    \b
    Example:
      posledger demo --keep && posledger psql
    """
    day = demo.run(_target(dsn, keep), show=None if as_json else render.demo_step)
    _show(day, as_json, render.end_of_day)
    if not as_json and not resolve_dsn(dsn):
        render.out.print(f"\nThe embedded server in {default_data_dir()} "
                         + ("is still running: posledger psql opens it, posledger stop stops it."
                            if keep else "was stopped; posledger demo --keep leaves it running."))


@main.command("psql", context_settings={"ignore_unknown_options": True})
@dsn_option
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def psql_command(dsn: str | None, psql_args: tuple[str, ...]) -> None:
    """Open psql on the database (the embedded one by default); arguments after it go to psql.

    \b
    Example:
      posledger psql -c "SELECT * FROM inventory_discrepancies"
    """
    sys.exit(subprocess.run([str(psql_path()), _target(dsn), *psql_args]).returncode)


@main.command("stop")
def stop_command() -> None:
    """Stop the embedded server a `demo --keep` left running in ./.posledger."""
    stopped = stop_embedded()
    render.out.print(f"embedded server in {default_data_dir()} " + ("stopped" if stopped else "was not running"))


@main.command("version")
@dsn_option
@json_option
def version_command(dsn: str | None, as_json: bool) -> None:
    """posledger's version; with a database (--dsn, the environment, or a running embedded server), its
    server and pending migrations too.

    \b
    Example:
      posledger version
    """
    found = _versions()
    target = resolve_dsn(dsn) or (start_embedded() if embedded_running() else None)
    if target:
        found.update(database_status(target))
    _show(found, as_json, render.facts)
