"""posledger: the inventory core of a cannabis retail POS, as PostgreSQL functions with a thin Python shell."""

from importlib.metadata import version

from posledger.errors import (
    BatchBlocked,
    Busy,
    IdempotencyConflict,
    InsufficientStock,
    InvalidSale,
    LedgerAppendOnly,
    LimitExceeded,
    NotFound,
    PosLedgerError,
)
from posledger.sales import record_sale

__version__ = version("posledger")  # the one place is pyproject.toml

__all__ = [
    "BatchBlocked",
    "Busy",
    "IdempotencyConflict",
    "InsufficientStock",
    "InvalidSale",
    "LedgerAppendOnly",
    "LimitExceeded",
    "NotFound",
    "PosLedgerError",
    "record_sale",
]
