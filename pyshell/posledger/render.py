"""What the command line prints for people: a line saying what happened, then rich tables. Scripts use
--json and get the functions' own results instead; nothing here decides anything."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table


def _console(stderr: bool = False) -> Console:
    # A terminal sets its own width; a log or a pipe gets room for every column instead of rich's 80.
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160
    return console


out = _console()
err = _console(stderr=True)

# Column headings for people, in the order tables show them; other keys follow in their own order.
HEADINGS = {
    "id": "id", "created_at": "time", "receipt_number": "receipt", "shipment": "shipment", "line_no": "line",
    "sku": "sku", "batch": "batch", "batch_lot": "batch", "status": "status", "from": "from", "fefo_rank": "FEFO",
    "packaged_on_date": "packaged", "transaction_type": "type", "reason_code": "reason",
    "quantity_deducted": "deducted", "quantity": "quantity", "quantity_short": "short", "quantity_after": "balance",
    "remaining": "remaining", "quantity_on_hand": "on hand", "quantity_available": "available",
    "quantity_quarantined": "quarantined", "ledger_total": "ledger total", "last_balance": "last balance",
    "difference": "difference", "terminal_id": "till", "sold_at": "sold",
}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, datetime.timedelta):   # an age: to the second
        return str(datetime.timedelta(seconds=int(value.total_seconds())))
    if isinstance(value, dict):
        return ", ".join(f"{key}={_cell(item)}" for key, item in value.items())
    if isinstance(value, list):
        return json.dumps(value, default=str)
    return str(value)


def rows(title: str, records: list[dict[str, Any]], empty: str = "none") -> None:
    """A table of dict rows, one column per key."""
    if not records:
        out.print(f"{title}: {empty}")
        return
    keys = list(dict.fromkeys(key for record in records for key in record))
    order = list(HEADINGS)
    keys.sort(key=lambda key: order.index(key) if key in order else len(order))
    table = Table(*(HEADINGS.get(key, key.replace("_", " ")) for key in keys), title=title, title_justify="left")
    for record in records:
        table.add_row(*(_cell(record.get(key)) for key in keys))
    out.print(table)


def _replayed(result: dict[str, Any]) -> str:
    return " [yellow](replayed: recorded before, nothing changed now)[/]" if result.get("replayed") else ""


def _loyalty(loyalty: dict[str, Any] | None) -> None:
    if loyalty and "points_earned" in loyalty:
        out.print(f"loyalty: +{loyalty['points_earned']} points, balance {loyalty['balance']}")
    elif loyalty:
        out.print(f"loyalty: -{loyalty['points_reversed']} points (shortfall {loyalty['shortfall']}), "
                  f"balance {loyalty['balance']}")


def sale(result: dict[str, Any]) -> None:
    out.print(f"[bold]sale {result['receipt_number']}[/]: {result['status']}, order {result['id']}"
              + _replayed(result))
    if "held" in result:   # a reservation or parked cart: its units are held, not taken
        rows(f"held until {result['expires_at']}", result["held"])
        return
    updates = result["inventory_updates"]
    rows("taken from", updates["successful"])
    if updates["failed"]:
        rows("short (in the exception queue: settle with a count)", updates["failed"])
    if result.get("compliance_exceptions"):
        rows("compliance exceptions (posledger exceptions lists them)", result["compliance_exceptions"])
    _loyalty(result["loyalty"])


def return_(result: dict[str, Any]) -> None:
    out.print(f"[bold]{result['kind']} {result['reference']}[/] of sale {result['receipt_number']}"
              + _replayed(result))
    rows("returned", result["lines"])
    rows("back in stock", result["restocked"])
    _loyalty(result["loyalty"])


def adjustment(result: dict[str, Any]) -> None:
    out.print(f"[bold]{result['kind']} {result['reference']}[/] ({result['reason_code']})" + _replayed(result))
    rows("adjusted", result["adjustments"], empty="none: the books already agreed")


def exceptions(found: list[dict[str, Any]], one_store: bool = False) -> None:
    """The open exceptions, oldest first, one row each: what people act on (--json has every column); the
    store's column only when they are of every store."""
    hidden = {"order_id", "detail", "status", "created_at"} | ({"store_id"} if one_store else set())
    rows("open exceptions (oldest first)", [{key: value for key, value in row.items() if key not in hidden}
                                            for row in found], empty="none")


def announced(row: dict[str, Any]) -> None:
    """A new exception on one line, as `exceptions --watch` prints it: what, where, who, why, when."""
    what = f"{row['quantity_short']} x {row['sku']}" if row.get("quantity_short") else row.get("sku")
    facts = [f"exception {row['id']} {row['kind']}" + (f": {what}" if what else "")]
    for label, key in (("batch", "batch_lot"), ("store", "store_id"), ("till", "terminal_id"),
                       ("receipt", "receipt_number"), ("who", "who"), ("sold", "sold_at"), ("why", "why")):
        if row.get(key) is not None:
            facts.append(f"{label} {_cell(row[key])}")
    if row.get("status") != "open":
        facts.append(f"(already {row.get('status')})")
    out.print(", ".join(facts), markup=False)


def resolution(result: dict[str, Any]) -> None:
    out.print(f"[bold]exception {result['id']} ({result['kind']})[/]: {result['status']} by {result['resolved_by']}"
              + _replayed(result))
    out.print(f"reason: {result['reason']}", markup=False)
    if result["moved"]:
        adjustment(result["moved"])


def batch_status(result: dict[str, Any]) -> None:
    out.print(f"[bold]{result['reference']}[/]: {result['changed_count']} batch(es) now {result['status']}"
              + _replayed(result))
    rows("changed", result["changed"])


def shipments(results: list[dict[str, Any]]) -> None:
    rows("received", [{"shipment": result["shipment_id"], "batches": len(result["batches"]),
                       "units received": result["units_received"], "variances": len(result["variances"]),
                       "replayed": result["replayed"]} for result in results])


def catalogue_loaded(result: dict[str, Any]) -> None:
    """A catalogue load: its counts in one table, then each skipped row on a line of its own."""
    rows("catalogue loaded", [{key: result[key] for key in ("rows", "inserted", "updated", "unchanged", "skipped")}])
    for row in result["skipped_rows"]:
        out.print(f"skipped {_bad_row(row)}", markup=False)


def product(found: dict[str, Any]) -> None:
    """One product of the catalogue, one "key: value" line each."""
    facts({key: value if isinstance(value, list) else _cell(value) for key, value in found.items()})


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, gone when done; yields the callback that moves it: (done, total)."""
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def migrated(done: dict[str, Any]) -> None:
    applied = done["applied"]
    names = f": {', '.join(applied)}" if applied else ""
    out.print(f"applied {len(applied)} migration(s){names}; functions re-created")


def facts(found: dict[str, Any]) -> None:
    """One "key: value" line each; a list as its items, or "none"."""
    for key, value in found.items():
        out.print(f"{key}: {', '.join(value) or 'none' if isinstance(value, list) else value}")


def transfer(result: dict[str, Any]) -> None:
    """A transfer's side: its reference, where it stands, the other store, then its lines."""
    other = (f"to {result['to_crsa']}" if "to_crsa" in result else f"from {result['from_crsa']}")
    state = result.get("status") or ("balanced" if result["balanced"] else "received with variances")
    out.print(f"[bold]transfer {result['reference']}[/] {other}: {state}" + _replayed(result), highlight=False)
    rows("lines", result["lines"])


def ocs(found: dict[str, Any]) -> None:
    """One "key: value" line each, a list or object as its JSON (not read as markup: it has brackets)."""
    for key, value in found.items():
        out.print(f"{key}: {json.dumps(value) if isinstance(value, (list, dict)) else value}", markup=False)


def reconciliation(report: dict[str, Any]) -> None:
    if report["balanced"]:
        out.print("[bold green]books balance: 0 discrepancies[/]")
        return
    found = [_counted(len(report["discrepancies"]), "row differs from its ledger", "rows differ from their ledger"),
             _counted(len(report["negative"]), "row below zero", "rows below zero")]
    out.print(f"[bold red]books do not balance: {', '.join(found)}[/] (docs/runbook.md says what to do)")
    for key, title in (("discrepancies", "on hand differs from the ledger (inventory_discrepancies)"),
                       ("negative", "below zero (negative_inventory)")):
        if report[key]:
            rows(title, report[key])


def _counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def verification(report: dict[str, Any]) -> None:
    if report["intact"]:
        out.print(f"[bold green]ledger intact: every chain links[/] ({len(report['review'])} rows to review)")
    else:
        out.print(f"[bold red]ledger tampered with: {len(report['broken'])} broken links or guards[/]"
                  " (docs/reliability.md, \"A ledger whose history cannot be rewritten unseen\")")
        rows("broken (the first break of each chain)", report["broken"])
    if report["review"]:
        rows("written into the ledger directly (review them)", report["review"])


def _bad_row(row: dict[str, Any]) -> str:
    """A catalogue row refused or skipped, on one line: its line in the file, sku and every problem."""
    problems = "; ".join(f"{problem['field']}: {problem['problem']}" for problem in row["problems"])
    return f"line {row['line']} (sku {row['sku'] or '-'}): {problems}"


def error(report: dict[str, Any], expected: bool = False) -> None:
    """An error with its code and every problem of its detail, one per line (a catalogue load's: one line
    per bad row, by its line in the file)."""
    console = out if expected else err
    label = "refused, as it should be" if expected else "error"
    code = f" {report['sqlstate']}" if report.get("sqlstate") else ""
    console.print(f"[bold red]{label}{code} {report['error']}[/]: {report['message']}")
    detail = report.get("detail") or {}
    if "rows" in detail:
        for row in detail["rows"]:
            console.print(f"  {_bad_row(row)}", markup=False)
        if detail["bad_rows"] > len(detail["rows"]):
            console.print(f"  ... and {detail['bad_rows'] - len(detail['rows'])} more bad rows")
        detail = {}
    for key, value in detail.items():
        for item in value if isinstance(value, list) else [value]:
            console.print(f"  {key}: {_cell(item)}")
    if report.get("hint"):
        console.print(f"  hint: {report['hint']}")


def _new_store(outcome: dict[str, Any]) -> None:
    out.print(f"{outcome['name']}, id {outcome['store_id']}")


# How to show a demo step's outcome, by what produced it (the step's "function").
_STEP_RESULTS: dict[str, Callable[[Any], None]] = {
    "load_catalogue": catalogue_loaded, "stores": _new_store, "receive_inventory": shipments,
    "record_pos_sale": sale, "return_pos_sale": return_, "set_batch_status": batch_status,
    "complete_reservation": sale,
}


def demo_step(step: dict[str, Any]) -> None:
    """A step of the demo's day, as it happens."""
    out.rule(f"[bold]{step['title']}", align="left")
    if step["refused"]:
        error(step["outcome"], expected=True)
    else:
        _STEP_RESULTS[step["function"]](step["outcome"])


def end_of_day(day: dict[str, Any]) -> None:
    """The demo's end of the day: stock by batch, the day's ledger, and whether the books balance."""
    out.rule("[bold]End of the day", align="left")
    rows("Stock by batch (FEFO order)", day["stock"])
    rows("The day's ledger", [{key: row[key] for key in ("id", "sku", "batch_lot", "transaction_type", "quantity",
                                                          "quantity_after", "actor")} for row in day["ledger"]])
    out.print("The books of the whole database, this store's and every other:")
    reconciliation(day["reconciliation"])
