"""The schema fits Citus as docs/scaling.md distributes it: store-scoped tables by store_id, the rest
reference tables. Read from the catalog of a migrated database, so a new table or key that would not
distribute fails here first."""

import json
import re

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import add_stock, item, new_store, sale_payload

# docs/scaling.md: every other table of ours that has a store_id column is distributed by it.
REFERENCE_TABLES = {"stores", "adjustment_reasons", "batch_status_requests", "profiles"}

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
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'f')"""


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


def test_the_two_argument_entry_sells_only_for_the_store_it_is_routed_by(db):
    store, other = new_store(db), new_store(db)
    add_stock(db, store, "SKU", 5)
    sale = Jsonb(sale_payload(store, item("SKU", 2)))
    with pytest.raises(psycopg.Error) as refused:
        db.execute("SELECT record_pos_sale(%s::uuid, %s)", [other, sale])
    assert refused.value.sqlstate == "IV400"
    assert json.loads(refused.value.diag.message_detail)["problems"][0]["field"] == "store_id"
    db.rollback()
    result = db.execute("SELECT record_pos_sale(%s::uuid, %s)", [store, sale]).fetchone()[0]
    db.commit()
    assert result["inventory_updates"]["successful"][0]["remaining"] == 3
