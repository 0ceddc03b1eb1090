"""The schema fits Citus as docs/scaling.md distributes it: store-scoped tables by store_id, the rest
reference tables. Read from the catalog of a migrated database, so a new table or key that would not
distribute fails here first; in the distributed pass, from the coordinator's catalog, and every two-argument
form is called, routed right and wrong, on the cluster."""

import json
import re

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import batches_of, catalogue, count_rows, item, new_store, readme_sql, sale_payload, shipment_line
from posledger.distribution import DISTRIBUTE_SQL

# docs/scaling.md: every other table of ours that has a store_id column is distributed by it.
REFERENCE_TABLES = {"stores", "adjustment_reasons", "batch_status_requests", "batch_lot_holds",
                    "product_classes", "dried_equivalency_factors", "catalogue_categories", "products", "product_gtins",
                    "ocs_event_types"}

TABLES = """
    SELECT c.relname, EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'store_id'
                                                          AND NOT a.attisdropped)
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname NOT LIKE '%yoyo%'"""

KEYS = """
    SELECT conrelid::regclass::text, conname, contype,
           (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(conkey) WITH ORDINALITY k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.attnum),
           confrelid::regclass::text,
           (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(confkey) WITH ORDINALITY k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = confrelid AND a.attnum = k.attnum)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'f')
      AND conrelid IN (SELECT oid FROM pg_class)   -- on a Citus coordinator, not its shards' (pg_class hides them)"""


def classified(db):
    tables = dict(db.execute(TABLES).fetchall())
    unknown = {name for name, has_store in tables.items() if not has_store and name not in REFERENCE_TABLES}
    assert not unknown, f"neither store-scoped (no store_id) nor a reference table: {unknown}"
    return {name for name, has_store in tables.items() if has_store and name not in REFERENCE_TABLES}


def test_every_store_scoped_key_leads_with_store_id(db):
    scoped = classified(db)
    broken = [(table, name, columns) for table, name, kind, columns, _, _ in db.execute(KEYS)
              if kind in "pu" and table in scoped and columns[0] != "store_id"]
    assert broken == []
    assert {"ocs_inventory", "ocs_inventory_transactions", "pos_orders", "loyalty_transactions"} <= scoped


def test_foreign_keys_join_colocated_rows_or_point_at_reference_tables(db):
    scoped = classified(db)
    broken = []
    for table, name, kind, columns, target, target_columns in db.execute(KEYS):
        if kind != "f":
            continue
        if table in scoped and target in scoped:
            colocated = columns[0] == target_columns[0] == "store_id"
        else:
            colocated = target in REFERENCE_TABLES   # to a reference table from anywhere; never the reverse
        if not colocated:
            broken.append((table, name, target))
    assert broken == []


def test_every_table_has_a_replica_identity_so_citus_can_copy_and_move_it(db):
    """Citus copies reference tables to a joining worker and moves shards by logical replication, which
    needs a primary key or an explicit replica identity (migration 0019)."""
    missing = db.execute("""
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname NOT LIKE '%yoyo%'
          AND c.relreplident <> 'f'
          AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident))
        ORDER BY 1""").fetchall()
    assert missing == []


def test_docs_scaling_shows_exactly_the_calls_posledger_distribute_runs():
    shown = readme_sql("-- Distribute a migrated posledger database", doc="docs/scaling.md")
    assert shown == DISTRIBUTE_SQL.read_text()


def test_posledger_distribute_distributes_every_table_and_entry_the_catalog_has(db):
    """The cluster runs them (tests/test_citus_cluster.py); this keeps them and the schema from drifting apart."""
    reference, distributed, functions, undelegated = (re.findall(r"'(\w+)'", array) for array in re.findall(
        r"unnest\(ARRAY\[(.*?)\]\)", DISTRIBUTE_SQL.read_text(), re.S))
    assert set(reference) == REFERENCE_TABLES
    assert distributed[0] == "ocs_inventory" and set(distributed) == classified(db)
    # Foreign-key order: a colocated table comes after every store-scoped table it points at.
    for table, _, kind, _, target, _ in db.execute(KEYS):
        if kind == "f" and table in distributed and target in distributed and target != table:
            assert distributed.index(target) < distributed.index(table), (table, target)
    two_argument = {row[0] for row in db.execute(
        "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        " AND proargtypes = '2950 3802'::oidvector"   # (uuid, jsonb)
        " AND has_function_privilege('posledger_app', oid, 'EXECUTE')")}   # an entry, not a helper
    # receive_inventory stays on the coordinator, with the recalls it takes turns with; a transfer's receipt too,
    # reading and marking the sender's transfer (docs/scaling.md).
    assert set(undelegated) == {"transfer_in"}
    assert set(functions) == two_argument - {"receive_inventory", *undelegated} and "record_pos_sale" in functions


def test_function_bodies_schema_qualify_every_table_and_function_of_ours(db):
    """Citus does not pass search_path to workers: a name inside a body must say its schema."""
    ours = {row[0] for row in db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v')"
        " UNION SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")}
    pattern = re.compile(r"(?<![\w.])(" + "|".join(sorted(ours, key=len, reverse=True)) + r")\b")
    unqualified = {}
    for name, body in db.execute("SELECT p.oid::regprocedure::text, p.prosrc FROM pg_proc p"
                                 " WHERE p.pronamespace = 'public'::regnamespace"):
        code = re.sub(r"--[^\n]*|'(?:[^']|'')*'", "", body)   # comments and string literals name nothing
        found = {match.group(1) for match in pattern.finditer(code)}
        if found:
            unqualified[name] = found
    assert unqualified == {}


def store_payloads(store):
    """A valid payload for each store-scoped entry function, in an order that makes each valid in turn,
    and a field each requires. A payload that names a row an earlier call made (an exception's id) is a
    function of the connection, read when its turn comes."""
    movement = {"store_id": store, "note": "n", "actor": "a"}
    return [
        ("receive_inventory", {"store_id": store, "shipment_id": "S-1",
                               "lines": [shipment_line("SKU", 5, "LOT-A")]}, "shipment_id"),
        ("record_pos_sale", sale_payload(store, item("SKU", 2), receipt_number="R-1"), "receipt_number"),
        ("return_pos_sale", {"store_id": store, "reference": "RET-1", "receipt_number": "R-1",
                             "lines": [{"line_no": 1, "quantity": 1}]}, "reference"),
        ("adjust_inventory", {**movement, "reference": "ADJ-1", "reason_code": "data_entry_error",
                              "lines": [{"sku": "SKU", "batch_lot": "LOT-A", "quantity": 1}]}, "reference"),
        ("count_inventory", {**movement, "reference": "COUNT-1", "reason_code": "cycle_count",
                             "lines": [{"sku": "SKU", "batch_lot": "LOT-A", "counted": 5}]}, "reference"),
        # Issue 17: a reservation completed, another cancelled, and a lenient sale's shortfall resolved.
        ("record_pos_sale", sale_payload(store, item("SKU", 1), receipt_number="RES-1", status="reserved"),
         "receipt_number"),
        ("complete_reservation", {"store_id": store, "receipt_number": "RES-1"}, "receipt_number"),
        ("record_pos_sale", sale_payload(store, item("SKU", 1), receipt_number="RES-2", status="parked"),
         "receipt_number"),
        ("cancel_reservation", {"store_id": store, "receipt_number": "RES-2", "cancelled_by": "cashier"},
         "cancelled_by"),
        ("record_pos_sale", sale_payload(store, item("SKU", 6), receipt_number="L-1", policy="lenient",
                                         authorized_by="manager"), "authorized_by"),
        ("resolve_inventory_exception", lambda db: {
            "store_id": store, "exception_id": db.execute(
                "SELECT e.id FROM inventory_exceptions e JOIN pos_orders o ON o.store_id = e.store_id"
                " AND o.id = e.order_id WHERE e.store_id = %s AND o.receipt_number = 'L-1'", [store]).fetchone()[0],
            "resolved_by": "manager", "reason": "the shelf is empty, as the books say",
            "count": {"reference": "COUNT-2", "reason_code": "cycle_count", "note": "n", "actor": "a",
                      "lines": [{"sku": "SKU", "batch_lot": "LOT-A", "counted": 0}]}}, "reason"),
    ]


def test_every_store_scoped_entry_has_a_two_argument_form_that_writes_only_the_store_it_is_routed_by(db):
    store, other = new_store(db), new_store(db)
    catalogue(db, "SKU")
    for function, payload, required in store_payloads(store):
        payload = payload(db) if callable(payload) else payload
        call = f"SELECT {function}(%s::uuid, %s)"
        holed = {key: value for key, value in payload.items() if key != required}
        with pytest.raises(psycopg.Error) as refused:
            db.execute(call, [other, Jsonb(holed)])
        db.rollback()
        assert refused.value.sqlstate == "IV400", function
        fields = [problem["field"] for problem in json.loads(refused.value.diag.message_detail)["problems"]]
        assert fields == ["store_id", required], function   # the mismatch, and every other problem too
        result = db.execute(call, [store, Jsonb(payload)]).fetchone()[0]
        db.commit()
        assert result["replayed"] is False, function
    # +5 -2 +1 +1, counted 5; a reservation of 1 completed (-1), another cancelled (0); a lenient sale of 6
    # takes the 4 there are and is 2 short; the shortfall resolved by a count of the empty shelf, which agrees.
    assert batches_of(db, store, "SKU") == {"LOT-A": (0, 0, 0, "active")}
    assert count_rows(db, "ocs_inventory_transactions") == 6   # the counts agreed: no row
    assert db.execute("SELECT kind, quantity_short, status FROM inventory_exceptions WHERE store_id = %s",
                      [store]).fetchall() == [("shortfall", 2, "resolved")]
    assert db.execute("SELECT receipt_number, status FROM pos_orders WHERE store_id = %s"
                      " AND receipt_number LIKE 'RES-%%' ORDER BY 1", [store]).fetchall() == [
        ("RES-1", "completed"), ("RES-2", "cancelled")]
