"""One exception class per SQLSTATE our functions raise (class IV), each carrying the parsed JSON detail.

Callers match on the class or on ``detail``, never on message text; ``error_report`` turns any error into
the dict the CLI prints.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg


class PosLedgerError(Exception):
    """posledger refused the operation."""

    sqlstate: str = ""

    def __init__(self, message: str | None = None, *, detail: Any = None, hint: str | None = None) -> None:
        super().__init__(message or self.__doc__)
        self.detail = detail
        self.hint = hint


class InvalidSale(PosLedgerError):
    """The payload (of a sale or of any other call) is malformed; ``detail["problems"]`` names every problem."""

    sqlstate = "IV400"


class LedgerAppendOnly(PosLedgerError):
    """History cannot be rewritten: an UPDATE, DELETE or TRUNCATE of a ledger, or a change of a stock row's
    id, store, sku or batch_lot, was refused."""

    sqlstate = "IV403"


class NotFound(PosLedgerError):
    """The store, a sku, a batch or an order is unknown; ``detail["missing"]`` lists them."""

    sqlstate = "IV404"


class InsufficientStock(PosLedgerError):
    """A line cannot be served, or an adjustment would go below zero; ``detail["short_lines"]`` lists them all."""

    sqlstate = "IV409"


class ReservationClosed(PosLedgerError):
    """The reservation holds no stock any more: it was completed, cancelled or expired, or is past its end, or
    the receipt is a sale; ``detail`` gives its status, ``expires_at`` and ``closed_at``."""

    sqlstate = "IV408"


class ReturnExceedsSale(PosLedgerError):
    """A return asks for more than was sold minus already returned; ``detail["over_returned"]`` lists the lines."""

    sqlstate = "IV410"


class IdempotencyConflict(PosLedgerError):
    """The idempotency key (receipt number, shipment id, reference) was already used for a different payload."""

    sqlstate = "IV412"


class LimitExceeded(PosLedgerError):
    """The sale exceeds a legal purchase limit."""

    sqlstate = "IV422"


class BatchBlocked(PosLedgerError):
    """A batch the sale names is held (quarantined, recalled, awaiting destruction).

    ``detail["blocked"]`` lists them.
    """

    sqlstate = "IV423"


class Misconfigured(PosLedgerError):
    """A posledger setting of the database or role is unusable; ``detail`` names the setting, its value and what
    is allowed. Every call fails until a DBA corrects it."""

    sqlstate = "IV500"


class Busy(PosLedgerError):
    """A lock could not be had in time; the call is safe to retry."""

    sqlstate = "IV503"


ERROR_CLASSES: dict[str, type[PosLedgerError]] = {
    cls.sqlstate: cls for cls in PosLedgerError.__subclasses__()
}


def translate(error: psycopg.Error) -> PosLedgerError | None:
    """The posledger exception for a database error raised by our functions, or None for any other error."""
    diag = error.diag
    cls = ERROR_CLASSES.get(diag.sqlstate or "")
    if cls is None:
        return None
    detail = json.loads(diag.message_detail) if diag.message_detail else None
    return cls(diag.message_primary, detail=detail, hint=diag.message_hint)


# Database errors a user can fix themselves: posledger's functions or tables are not there yet.
_NOT_MIGRATED = {"42883", "42P01"}


def error_report(error: Exception, name: str | None = None) -> dict[str, Any]:
    """An error as a dict, for a log or a screen: its class name (or ``name``), message, SQLSTATE, JSON detail
    and hint. The CLI prints it (as JSON with --json); the demo keeps it as the outcome of a refused step."""
    if isinstance(error, PosLedgerError):
        return {"error": type(error).__name__, "message": str(error), "sqlstate": error.sqlstate,
                "detail": error.detail, "hint": error.hint}
    report: dict[str, Any] = {"error": name or type(error).__name__, "message": str(error).strip()}
    if isinstance(error, psycopg.Error):
        report["sqlstate"] = error.sqlstate
        if error.sqlstate in _NOT_MIGRATED:
            report["hint"] = "is the database migrated? run: posledger migrate"
    return report
