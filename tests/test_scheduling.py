"""docs/runbook.md's scheduled release of expired reservations, run as written: pg_cron (Debian's
postgresql-15-cron, which scripts/test installs as root) on a server of the test's own, configured as the
runbook says. pg_cron 1.4.2 schedules by the minute at the finest, so the test waits for the next minute's
run: one test, up to a minute and a half. System-server pass only: pg_cron is preloaded at the server's
start, which the embedded server and the shared Citus cluster do not let a test choose."""

import os
import re
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from conftest import add_stock, check_invariants, item, new_store, readme_sql, record_sale, sale_payload, stock_of
from posledger.migrations import migrate
from posledger.pgserver import extension_installed, running_cluster, server_kind

RUNBOOK = "docs/runbook.md"
DATABASE = "shop"
RUN_WAIT = 90.0  # seconds: the next minute's run, and its time to finish


def pg_cron_required():
    if server_kind() != "system":
        pytest.skip("pg_cron runs in the system-server pass, on a server of the test's own that preloads it")
    if not extension_installed("pg_cron"):
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail("CI must run the runbook's pg_cron job: scripts/test installs postgresql-15-cron as root")
        pytest.skip("pg_cron is not installed for the system PostgreSQL (Debian: postgresql-15-cron)")


def runbook_inline(start):
    """The statement the runbook gives inline (`...`) that starts with `start`: what DBAs copy must work."""
    text = (Path(__file__).resolve().parents[1] / RUNBOOK).read_text()
    return next(span for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text) if span.startswith(start))


def wait_for_release(conn, store):
    """The job's runs (the runbook's query) once one has succeeded and the store has nothing overdue left."""
    deadline = time.monotonic() + RUN_WAIT
    while True:
        runs = conn.cursor(row_factory=dict_row).execute(
            runbook_inline("SELECT * FROM cron.job_run_details")).fetchall()
        failed = [run["return_message"] for run in runs if run["status"] == "failed"]
        assert not failed, f"the job failed: {failed}"
        overdue = conn.execute("SELECT count(*) FROM open_reservations WHERE store_id = %s AND overdue",
                               [store]).fetchone()[0]
        if overdue == 0 and any(run["status"] == "succeeded" for run in runs):
            return runs
        assert time.monotonic() < deadline, f"no release within {RUN_WAIT:g} s: runs {runs}, {overdue} overdue"
        time.sleep(1)


def test_the_runbooks_pg_cron_job_releases_expired_reservations_and_parked_carts_every_minute():
    pg_cron_required()
    with running_cluster() as cluster:
        with psycopg.connect(cluster.server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        dsn = cluster.server.dsn(DATABASE)
        migrate(dsn)
        with psycopg.connect(dsn) as conn:
            store = new_store(conn)
            add_stock(conn, store, "SKU-1", 10, "LOT-A")
            late = [record_sale(conn, sale_payload(store, item("SKU-1", 3), status="reserved")),
                    record_sale(conn, sale_payload(store, item("SKU-1", 2), status="parked"))]
            on_time = record_sale(conn, sale_payload(store, item("SKU-1", 1), status="reserved"))
            conn.execute("UPDATE pos_orders SET expires_at = now() - interval '1 second' WHERE id = ANY(%s)",
                         [[order["id"] for order in late]])
            conn.commit()
            assert stock_of(conn, store, "SKU-1") == {"LOT-A": (4, 10)}

        # The runbook's postgresql.conf settings, then a restart; its block as a superuser.
        cluster.settings += f" -c shared_preload_libraries=pg_cron -c cron.database_name={DATABASE}"
        cluster.stop()
        cluster.start()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(readme_sql("-- release expired reservations every minute", doc=RUNBOOK))
            assert conn.execute("SELECT schedule, command FROM cron.job").fetchall() == [
                ("* * * * *", "SELECT release_expired_reservations(id) FROM stores")]
            runs = wait_for_release(conn, store)

            assert {(run["database"], run["username"], run["status"]) for run in runs} == {
                (DATABASE, "postgres", "succeeded")}
            assert stock_of(conn, store, "SKU-1") == {"LOT-A": (9, 10)}   # the late 5 units available again
            assert conn.execute("SELECT receipt_number FROM open_reservations").fetchall() == [
                (on_time["receipt_number"],)]
            assert conn.execute("SELECT DISTINCT h.released_as, o.status FROM reservation_holds h"
                                " JOIN pos_orders o ON o.id = h.order_id WHERE o.id = ANY(%s)",
                                [[order["id"] for order in late]]).fetchall() == [("expired", "expired")]

            conn.execute(runbook_inline("SELECT cron.unschedule("))
            assert conn.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
        check_invariants(dsn)
