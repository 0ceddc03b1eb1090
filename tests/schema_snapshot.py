"""sql/schema.sql: the schema of a freshly migrated database in one readable file, as PostgreSQL 15's
pg_dump prints it, normalised so that it is stable (no version banners, settings, \\restrict keys or blank
runs). The
migrations are the upgrade path; this file is where a reader sees the shape of everything at once.
tests/test_schema.py fails when the two differ; `./scripts/schema` writes it anew."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

SNAPSHOT = Path(__file__).resolve().parents[1] / "sql" / "schema.sql"
BINDIR = Path(os.environ.get("POSLEDGER_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
HEADER = ("-- The schema of a freshly migrated posledger database, written by ./scripts/schema (PostgreSQL 15's\n"
          "-- pg_dump, normalised). Do not edit: change sql/migrations or sql/functions and run it again.\n\n")


def schema_of(dsn: str) -> str:
    """The normalised schema-only dump of the database at dsn, yoyo's own tables left out."""
    # Only what names the database: the driver's newer libpq adds parameters PostgreSQL 15's does not know.
    target = {key: value for key, value in conninfo_to_dict(dsn).items() if key in ("host", "port", "user", "dbname")}
    dump = subprocess.run([str(BINDIR / "pg_dump"), "--schema-only", "--no-owner", "--no-tablespaces",
                           "--exclude-table=*yoyo*", "--dbname", make_conninfo(**target)],
                          check=True, capture_output=True, text=True).stdout
    lines: list[str] = []
    for line in dump.splitlines():
        # \restrict carries a random key per dump (pg_dump 15.14 and later)
        if line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")):
            continue
        if not line.strip() and (not lines or not lines[-1].strip()):
            continue
        lines.append(line)
    return HEADER + "\n".join(lines).strip() + "\n"


def main() -> None:
    from posledger.migrations import migrate
    from posledger.pgserver import running_cluster

    with running_cluster() as cluster:
        migrate(cluster.server.dsn())
        SNAPSHOT.write_text(schema_of(cluster.server.dsn()))
    print(f"wrote {SNAPSHOT}")


if __name__ == "__main__":
    main()
