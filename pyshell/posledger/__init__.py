"""posledger: the inventory core of a cannabis retail POS, as PostgreSQL functions with a thin Python shell."""

from importlib.metadata import version

from posledger.calls import (
    adjust_inventory,
    cancel_reservation,
    cancel_transfer,
    catalogue_product,
    complete_reservation,
    count_inventory,
    load_catalogue,
    receive_inventory,
    record_sale,
    release_expired_reservations,
    resolve_exception,
    return_sale,
    set_batch_status,
    transfer_in,
    transfer_out,
)
from posledger.errors import (
    BatchBlocked,
    Busy,
    IdempotencyConflict,
    InsufficientStock,
    InvalidSale,
    LedgerAppendOnly,
    LimitExceeded,
    Misconfigured,
    NotFound,
    PosLedgerError,
    ReservationClosed,
    ReturnExceedsSale,
)

__version__ = version("posledger")  # the one place is pyproject.toml

__all__ = [
    "BatchBlocked",
    "Busy",
    "IdempotencyConflict",
    "InsufficientStock",
    "InvalidSale",
    "LedgerAppendOnly",
    "LimitExceeded",
    "Misconfigured",
    "NotFound",
    "PosLedgerError",
    "ReservationClosed",
    "ReturnExceedsSale",
    "adjust_inventory",
    "cancel_reservation",
    "cancel_transfer",
    "catalogue_product",
    "complete_reservation",
    "count_inventory",
    "load_catalogue",
    "receive_inventory",
    "record_sale",
    "release_expired_reservations",
    "resolve_exception",
    "return_sale",
    "set_batch_status",
    "transfer_in",
    "transfer_out",
]
