"""Least privilege: connected as a login role granted posledger_app, a till can ring up sales through
the entry functions and do nothing else; posledger_readonly reads everything and writes nothing; and a
caller's own search_path cannot swap our functions or operators for planted ones."""

import logging

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from conftest import add_stock, item, login_as, new_store, record_sale, sale_payload, stock_of
from posledger import InvalidSale
from posledger.migrations import SQL_DIR, migrate

# One file per entry function, named after it (shared/STYLE.md); _shared.sql holds only helpers.
# The DBAs' checks of the ledger (verify_ledger.sql) are posledger_readonly's, not the application's.
DBA_FUNCTIONS = ["verify_ledger", "ledger_digest"]
ENTRY_NAMES = sorted(path.stem for path in (SQL_DIR / "functions").glob("[!_]*.sql") if path.stem not in DBA_FUNCTIONS)


@pytest.fixture
def till(dsn):
    with psycopg.connect(login_as(dsn, "posledger_app")) as conn:
        yield conn


@pytest.fixture
def store(store, db):
    """The shared new store, with 10 unbatched units of SKU."""
    add_stock(db, store, "SKU", 10)
    return store


def tables(db):
    """Every table of ours (yoyo's bookkeeping aside), with a column an UPDATE may name."""
    rows = db.execute("SELECT DISTINCT ON (table_name) table_name, column_name FROM information_schema.columns"
                      " WHERE table_schema = 'public' AND is_identity = 'NO' AND table_name NOT LIKE '%yoyo%'"
                      " AND table_name IN (SELECT tablename FROM pg_tables) ORDER BY table_name, ordinal_position"
                      ).fetchall()
    db.commit()
    return rows


def test_the_application_role_rings_up_a_sale_and_the_ledger_names_its_login(db, till, store):
    record_sale(till, sale_payload(store, item("SKU", 2), cashier_id="cashier-1"))
    assert stock_of(db, store, "SKU") == {None: (8, 8)}
    assert db.execute("SELECT actor, db_user FROM ocs_inventory_transactions WHERE transaction_type = 'sale'"
                      ).fetchone() == ("cashier-1", "posledger_app_test_login")


@pytest.mark.parametrize("statement", [
    "CREATE TEMP TABLE scratch (id integer)",
    "CREATE FUNCTION pg_temp.x() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
    "CREATE TYPE pg_temp.t AS (id integer)",
])
def test_the_application_role_cannot_create_temporary_objects_and_still_sells(empty_dsn, statement):
    # A database migrate brought up itself: the per-test databases are copies of a template, and a copy
    # gets the default database privileges back (PUBLIC has TEMPORARY), whatever the template had.
    migrate(empty_dsn)
    with psycopg.connect(empty_dsn) as owner:
        store = new_store(owner)
        add_stock(owner, store, "SKU", 10)
    with psycopg.connect(login_as(empty_dsn, "posledger_app")) as till:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            till.execute(statement)
        till.rollback()
        record_sale(till, sale_payload(store, item("SKU", 2)))
    with psycopg.connect(empty_dsn) as owner:
        assert stock_of(owner, store, "SKU") == {None: (8, 8)}


def test_a_migrating_role_that_does_not_own_the_database_is_told_how_to_revoke_temporary(empty_dsn, caplog):
    migrator = "posledger_test_migrator"   # neither the database's owner nor a superuser
    with psycopg.connect(empty_dsn, autocommit=True) as owner:
        if owner.execute("SELECT FROM pg_roles WHERE rolname = %s", [migrator]).fetchone() is None:
            owner.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(migrator)))
        owner.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(owner.info.dbname), sql.Identifier(migrator)))
        owner.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(migrator)))
    with caplog.at_level(logging.WARNING, logger="posledger.migrations"):
        migrate(make_conninfo(empty_dsn, user=migrator))
    told = [record.getMessage() for record in caplog.records if "REVOKE TEMPORARY" in record.getMessage()]
    assert len(told) == 1
    app_may_create_temp = "SELECT has_database_privilege('posledger_app', current_database(), 'TEMPORARY')"
    with psycopg.connect(empty_dsn, autocommit=True) as owner:
        assert owner.execute(app_may_create_temp).fetchone() == (True,)
        owner.execute(told[0].split("run: ")[1])   # the statement it was told, run by the owner, as told
        assert owner.execute(app_may_create_temp).fetchone() == (False,)


@pytest.mark.parametrize("statement", [
    "SELECT * FROM {table}", "INSERT INTO {table} DEFAULT VALUES", "DELETE FROM {table}", "TRUNCATE {table}",
    "UPDATE {table} SET {column} = {column}",
])
def test_the_application_role_cannot_touch_any_table(db, till, statement):
    for table, column in tables(db):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            till.execute(sql.SQL(statement).format(table=sql.Identifier(table), column=sql.Identifier(column)))
        till.rollback()


def test_the_application_role_may_execute_only_the_entry_functions(db, till):
    executable = {row[0] for row in db.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
        " AND has_function_privilege('posledger_app_test_login', p.oid, 'EXECUTE')")}
    entries = {row[0] for row in db.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
        " AND p.proname = ANY(%s)", [ENTRY_NAMES])}
    assert executable == entries
    # Every entry but set_batch_status (a recall spans stores) and the catalogue's (a reference table, of no
    # store) also has its two-argument Citus form; the scheduler's takes its store alone. The OCS sender's
    # claim and record run inside the sender's own transaction, where Citus never delegates a call; a resend is a
    # DBA's correction, run where the DBA is.
    assert {name for name in entries if "(uuid,jsonb)" in name} == {
        f"{name}(uuid,jsonb)" for name in ENTRY_NAMES
        if name not in ("set_batch_status", "load_catalogue", "catalogue_product", "release_expired_reservations",
                        "ocs_report", "ocs_claim_events", "ocs_record_delivery", "ocs_resend_events")}
    assert "release_expired_reservations(uuid,integer)" in entries
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        till.execute("SELECT posledger_private.pos_sale_problems('{}')")


# What public holds besides the entry functions and the DBAs' checks: the triggers' functions (and the
# ledger's hash, which the seal trigger and verify_ledger share). Not executable by the application.
TRIGGER_FUNCTIONS = {"ocs_inventory_write_ledger()", "refuse_ledger_rewrite()", "refuse_identity_change()",
                     "ocs_ledger_seal()", "ocs_ledger_hash(ocs_inventory_transactions)",
                     "inventory_exception_announce()", "ocs_outbox_write()"}


def test_public_holds_the_entry_functions_and_the_helpers_live_in_their_own_schema(db):
    public = {row[0] for row in db.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace")}
    entries = {name for name in public if name.split("(")[0] in ENTRY_NAMES + DBA_FUNCTIONS}
    assert public - entries == TRIGGER_FUNCTIONS
    helpers = db.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'posledger_private'::regnamespace"
                         ).fetchone()[0]
    assert helpers > 40
    assert db.execute("SELECT has_schema_privilege('posledger_app', 'posledger_private', 'USAGE'),"
                      " has_schema_privilege('posledger_readonly', 'posledger_private', 'USAGE')").fetchone() == (
        False, False)


def test_public_has_no_privilege_on_anything_of_ours(db):
    granted_to_public = db.execute("""
        SELECT c.oid::regclass::text FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
        WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 0
        UNION ALL
        SELECT p.oid::regprocedure::text FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
        WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = 0
        UNION ALL
        SELECT t.oid::regtype::text FROM pg_type t, aclexplode(coalesce(t.typacl, acldefault('T', t.typowner))) a
        WHERE t.typnamespace = 'public'::regnamespace AND t.typtype = 'c' AND t.typrelid IN (
            SELECT oid FROM pg_class WHERE relkind = 'c') AND a.grantee = 0""").fetchall()
    assert granted_to_public == []


def test_the_readonly_role_reads_every_table_and_writes_none(db, dsn, store):
    with psycopg.connect(login_as(dsn, "posledger_readonly")) as dba:
        for table, _ in tables(db):
            dba.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                dba.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            dba.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            dba.execute("SELECT record_pos_sale('{}')")


def test_objects_planted_in_the_callers_search_path_are_never_called(db, dsn, till, store):
    # Each planted object would, if called, let a bad sale through or corrupt a good one.
    db.execute("""
        CREATE SCHEMA evil;
        CREATE FUNCTION evil.json_is_uuid(jsonb) RETURNS boolean LANGUAGE sql AS 'SELECT true';
        CREATE FUNCTION evil.never_differs(jsonb, jsonb) RETURNS boolean LANGUAGE sql AS 'SELECT false';
        CREATE OPERATOR evil.<> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = evil.never_differs);
        CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$;
        CREATE FUNCTION evil.least(integer, integer) RETURNS integer LANGUAGE sql AS 'SELECT 0';
        GRANT USAGE ON SCHEMA evil TO PUBLIC;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC;""")
    db.commit()
    till.execute("SET search_path = evil, pg_catalog, public")
    till.commit()
    with pytest.raises(InvalidSale) as refused:
        record_sale(till, sale_payload("not-a-uuid", item("SKU", 1)))
    assert [p["field"] for p in refused.value.detail["problems"]] == ["store_id"]
    record_sale(till, sale_payload(store, item("SKU", 3)))
    assert stock_of(db, store, "SKU") == {None: (7, 7)}
    assert db.execute("SELECT last_sold > '2001-01-01' FROM ocs_inventory").fetchone() == (True,)


def test_objects_planted_in_the_public_schema_do_not_shadow_the_builtins_we_call(db, till, store):
    # Only the owner may create in public (PUBLIC lost CREATE); the till cannot plant anything there.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        till.execute("CREATE FUNCTION public.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$SELECT 'object'$$")
    till.rollback()
    # Planted by someone who can (here the owner): pg_catalog comes first in our pinned search_path.
    db.execute("""
        CREATE FUNCTION public.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$SELECT 'object'$$;
        CREATE FUNCTION public.never_differs(jsonb, jsonb) RETURNS boolean LANGUAGE sql AS 'SELECT false';
        CREATE OPERATOR public.<> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = public.never_differs);
        GRANT EXECUTE ON FUNCTION public.jsonb_typeof(jsonb), public.never_differs(jsonb, jsonb) TO PUBLIC;""")
    db.commit()
    till.execute("SET search_path = public, pg_catalog")
    till.commit()
    with pytest.raises(InvalidSale) as refused:
        record_sale(till, {"store_id": store, "receipt_number": "R-1", "total": 1, "items": "not a list"})
    assert [p["field"] for p in refused.value.detail["problems"]] == ["items"]
