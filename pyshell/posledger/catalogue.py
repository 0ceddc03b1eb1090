"""Reads the provincial item catalogue (CSV) into load_catalogue rows. Only the format is translated here:
each value goes to the database as the text it was (a GTIN cell split into its GTINs), and load_catalogue
checks every one, naming a bad row by its line in the file. posledger.load_catalogue sends the rows."""

from __future__ import annotations

import csv
import re
from typing import Any, TextIO

# Each field of a load_catalogue row and the headers that fill it. Headers match case-insensitively, with
# spaces and underscores ignored ("Net Content", "net_content" and "NETCONTENT" are one header); the first
# name is the one an error names. Every column is required but the dried flower equivalency.
COLUMNS: dict[str, tuple[str, ...]] = {
    "sku": ("Variant Number", "SKU"),
    "gtins": ("GTIN", "GTINs"),
    "brand": ("Brand",),
    "name": ("Product Name", "Name"),
    "category": ("Category",),
    "net_content": ("Net Content",),
    "net_unit": ("Net Content Unit of Measure", "Net Content Unit", "Unit of Measure"),
    "stated_dried_grams": ("Dried Flower Equivalency", "Dried Flower Equivalent"),
}
OPTIONAL = {"stated_dried_grams"}

# Several GTINs in one cell are separated by ; or | or white space.
GTIN_SEPARATORS = re.compile(r"[;|\s]+")


class CatalogueFormatError(ValueError):
    """The file is not a provincial item catalogue: it is empty, or columns are missing."""


def _normalised(header: str) -> str:
    return re.sub(r"[\s_]+", "", header).lower()


def read_catalogue(file: TextIO) -> list[dict[str, Any]]:
    """The load_catalogue rows of a catalogue CSV (open it with encoding utf-8-sig), each with its line in
    the file; blank lines are passed over."""
    reader = csv.reader(file)
    header = next(reader, None)
    if not header:
        raise CatalogueFormatError("not a provincial item catalogue: the file is empty, it has no header")
    found = {_normalised(name): index for index, name in reversed(list(enumerate(header)))}
    columns = {field: next((found[_normalised(name)] for name in names if _normalised(name) in found), None)
               for field, names in COLUMNS.items()}
    missing = [COLUMNS[field][0] for field, index in columns.items() if index is None and field not in OPTIONAL]
    if missing:
        raise CatalogueFormatError(f"not a provincial item catalogue: missing columns {', '.join(missing)}")
    rows = []
    line = reader.line_num
    for record in reader:
        start, line = line + 1, reader.line_num   # a quoted cell may span lines: the row starts at the first
        if not any(cell.strip() for cell in record):
            continue
        cells = {field: record[index] if index is not None and index < len(record) else ""
                 for field, index in columns.items()}
        rows.append({"line": start, **cells,
                     "gtins": [gtin for gtin in GTIN_SEPARATORS.split(cells["gtins"]) if gtin],
                     "stated_dried_grams": cells["stated_dried_grams"] or None})
    return rows
