"""The distributed pass's ground: a local Citus cluster (a coordinator and two workers on loopback, the
system PostgreSQL 15 with Citus built by scripts/citus) starts, a table distributed on the coordinator
has its shards on both workers, and `posledger distribute` lays posledger out on it; then a cluster
outgrows its two workers: a third joins and takes shards while the tills sell. Skipped, with one line
saying how to enable it, where no Citus source is given; it runs in the system-server pass only, since
the cluster is of the system binaries either way."""

import json
import os
import threading
import time
from collections import Counter

import psycopg
import pytest

from conftest import FIGURES, posledger_cli
from posledger import receive_inventory, record_sale
from posledger.distribution import distribute
from posledger.migrations import migrate
from posledger.pgserver import citus_installed, running_citus_cluster, server_kind
from posledger.testing import check_invariants, new_store

if not os.environ.get("POSLEDGER_CITUS_SOURCE"):
    pytest.skip("set POSLEDGER_CITUS_SOURCE to the Citus source tarball (e.g. ../shared/citus) to run the"
                " distributed pass", allow_module_level=True)
if server_kind() != "system":
    pytest.skip("the distributed pass runs in the system-server pass (a Citus cluster of the system binaries)",
                allow_module_level=True)


def citus_required():
    if not citus_installed():
        if os.environ.get("CI"):
            pytest.fail("CI gave a Citus source but Citus is not installed: scripts/citus failed (see its lines)")
        pytest.skip("Citus is not installed for the system PostgreSQL: run scripts/citus as root with "
                    "POSLEDGER_CITUS_SOURCE set")


@pytest.fixture(scope="module")
def citus_cluster():
    citus_required()
    with running_citus_cluster() as cluster:
        yield cluster


def test_the_coordinator_sees_two_active_workers(citus_cluster):
    with psycopg.connect(citus_cluster.dsn()) as conn:
        active = conn.execute("SELECT node_name, node_port FROM citus_get_active_worker_nodes()"
                              " ORDER BY node_port").fetchall()
    assert sorted(active) == sorted((worker.host, worker.port) for worker in citus_cluster.workers)
    assert len(active) == 2


def test_a_distributed_table_is_placed_on_both_workers(citus_cluster):
    with psycopg.connect(citus_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (store_id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("SELECT create_distributed_table('probe', 'store_id', shard_count => 8)")
        conn.execute("INSERT INTO probe SELECT i, 'store ' || i FROM generate_series(1, 100) i")
        placements = Counter(dict(conn.execute(
            "SELECT p.nodeport, count(*) FROM pg_dist_shard_placement p"
            " JOIN pg_dist_shard s USING (shardid) WHERE s.logicalrelid = 'probe'::regclass"
            " GROUP BY p.nodeport").fetchall()))
        assert conn.execute("SELECT count(*) FROM probe").fetchone()[0] == 100
    assert set(placements) == {worker.port for worker in citus_cluster.workers}
    assert sum(placements.values()) == 8
    # Each worker holds its shards' rows: together, every row once.
    rows = 0
    for worker in citus_cluster.workers:
        with psycopg.connect(worker.dsn(citus_cluster.dbname)) as conn:
            conn.execute("SET citus.override_table_visibility = off")
            shards = [name for (name,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relname ~ '^probe_[0-9]+$' AND relkind = 'r'").fetchall()]
            assert shards, f"no shard of probe on the worker at port {worker.port}"
            rows += sum(conn.execute(f"SELECT count(*) FROM {shard}").fetchone()[0] for shard in shards)
    assert rows == 100
    with psycopg.connect(citus_cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP TABLE probe")   # posledger's own tables come next


def test_posledger_distribute_runs_twice_and_every_function_reaches_every_worker(citus_cluster):
    dsn = citus_cluster.dsn()
    assert posledger_cli("migrate", "--dsn", dsn, timeout=600).returncode == 0
    runs = [posledger_cli("distribute", "--dsn", dsn, "--shard-count", "4", "--json", timeout=600) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr
    layouts = [json.loads(run.stdout) for run in runs]
    assert layouts[0] == layouts[1] == {"reference_tables": 10, "distributed_tables": 19,
                                        "distributed_functions": 10, "workers": 2}
    ours = ("SELECT p.oid::regprocedure::text FROM pg_proc p"
            " WHERE p.pronamespace IN ('public'::regnamespace, 'posledger_private'::regnamespace)")
    with psycopg.connect(dsn) as conn:
        functions = {row[0] for row in conn.execute(ours)}
        shards = conn.execute("SELECT DISTINCT shard_count FROM citus_tables WHERE citus_table_type = 'distributed'"
                              ).fetchall()
    assert shards == [(4,)]
    for worker in citus_cluster.workers:
        with psycopg.connect(worker.dsn(citus_cluster.dbname)) as conn:
            assert {row[0] for row in conn.execute(ours)} == functions
            # The ledger's triggers run on the shards: the database's setting reached the worker.
            assert conn.execute("SHOW citus.enable_unsafe_triggers").fetchone() == ("on",)
            # Migrate took forced generic plans off the entries (sql/citus/plan_cache.sql), here too;
            # custom plans (release_expired_reservations) are what Citus needs, and stay.
            assert conn.execute("SELECT count(*) FROM pg_proc WHERE proconfig::text LIKE '%force_generic_plan%'"
                                ).fetchone() == (0,)

    # A cluster distributed while transfer_in was still delegated: distributing again runs it on the coordinator.
    delegated = ("SELECT distribution_argument_index FROM pg_dist_object"
                 " WHERE objid = 'transfer_in(uuid, jsonb)'::regprocedure")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT create_distributed_function('transfer_in(uuid, jsonb)'::regprocedure, 'p_store_id',"
                     " colocate_with => 'ocs_inventory')")
        assert conn.execute(delegated).fetchone() == (0,)
    assert posledger_cli("distribute", "--dsn", dsn, "--json", timeout=600).returncode == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute(delegated).fetchone() == (None,)


CUSTOMER = "0c3d0c7e-4d1f-4a51-9a39-2f5d6a1b7c11"
STORES = 6


@pytest.fixture(scope="module")
def outgrown_cluster():
    """Two workers holding six stocked stores, and a third node ready to join; distributed by the command
    users run, with 8 shards so that a third worker has some to take."""
    citus_required()
    with running_citus_cluster(workers=2, spares=1) as cluster:
        migrate(cluster.dsn())
        distribute(cluster.dsn(), shard_count=8)
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("INSERT INTO products (sku, name, product_class)"
                         " VALUES ('SKU', 'Rolling papers', 'accessory')")
            stores = [new_store(conn) for _ in range(STORES)]
            for store in stores:
                receive_inventory(conn, {"store_id": store, "shipment_id": f"ASN-{store[:8]}", "lines": [
                    {"sku": "SKU", "batch_lot": "LOT", "quantity_shipped": 100000, "quantity_received": 100000}]})
        yield cluster, stores



def test_a_third_worker_takes_shards_while_sales_run_and_no_acknowledged_sale_is_lost(outgrown_cluster):
    cluster, stores = outgrown_cluster
    dsn, spare = cluster.dsn(), cluster.spares[0]
    stop, acknowledged, refused = threading.Event(), [], Counter()

    def till(n):
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                store = stores[(n + len(acknowledged)) % STORES]
                sale = {"store_id": store, "receipt_number": f"T{n}-{time.monotonic_ns()}", "total": 1,
                        "user_id": CUSTOMER, "items": [{"product": {"sku": "SKU"}, "quantity": 1}]}
                try:
                    acknowledged.append((store, record_sale(conn, sale)["receipt_number"]))
                except psycopg.Error as error:   # an outcome to count, not to hide: asserted below
                    refused[type(error).__name__] += 1

    tills = [threading.Thread(target=till, args=(n,)) for n in range(4)]
    for thread in tills:
        thread.start()
    try:
        time.sleep(1)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT citus_add_node(%s, %s)", (spare.host, spare.port))
            before = len(acknowledged)
            conn.execute("SELECT citus_rebalance_start()")
            conn.execute("SELECT citus_rebalance_wait()")
            during = len(acknowledged) - before
        time.sleep(1)
    finally:
        stop.set()
        for thread in tills:
            thread.join()

    with psycopg.connect(dsn) as conn:
        moved = conn.execute("SELECT count(*) FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)"
                             " WHERE n.nodeport = %s", [spare.port]).fetchone()[0]
        found = set(conn.execute("SELECT store_id::text, receipt_number FROM pos_orders"
                                 " WHERE result IS NOT NULL").fetchall())
        points = conn.execute("SELECT loyalty_points FROM profiles WHERE user_id = %s", [CUSTOMER]).fetchone()
    FIGURES["rebalance: sales acknowledged (before, while and after the shards moved)"] += len(acknowledged)
    FIGURES["rebalance: sales acknowledged while the shards moved"] += during
    for name, count in refused.items():
        FIGURES[f"rebalance: sales refused ({name})"] += count
    assert moved > 0, "the rebalance moved no shard to the new worker"
    assert during > 0, "no sale was acknowledged while the shards moved"
    assert set(acknowledged) <= found, f"acknowledged sales missing: {set(acknowledged) - found}"
    assert len(acknowledged) > 10 * sum(refused.values()), f"too many sales refused: {refused}"
    assert points == (len(found),)   # one point per sale, at whichever store
    check_invariants(dsn)
