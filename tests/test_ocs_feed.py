"""The OCS data platform's feed (issue 18, first part): every committed movement leaves its event in the outbox
in the same transaction; ocs_report renders a store's day as the platform's JSON (events and position) and makes
the platform's check (yesterday's position + today's events = today's position, per SKU). The JSON is validated
against sql/ocs/ocs_feed.schema.json, written from the platform's published shape."""

import datetime
import io
import json
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import (
    add_stock,
    count_rows,
    item,
    new_store,
    receive,
    record_sale,
    sale_payload,
    shipment_line,
    validated_report,
)
from posledger import InvalidSale, adjust_inventory, return_sale
from posledger.asn import read_asn
from posledger.pgserver import server_kind


def today_of(db, store):
    zone = db.execute("SELECT time_zone FROM stores WHERE id = %s", [store]).fetchone()[0]
    db.commit()
    return ZoneInfo(zone), datetime.datetime.now(ZoneInfo(zone)).date()


def test_a_day_of_movements_is_reported_as_the_platforms_events_and_position_and_balances(db):
    store = new_store(db, crsa="CRSA-TEST-1", crol="CROL-TEST")
    receive(db, store, shipment_line("SKU-1", 10, "LOT-A", each_gtin="0627701000049"))
    add_stock(db, store, "SKU-2", 4, "LOT-B")
    sale = record_sale(db, sale_payload(store, item("SKU-1", 3), total=30.0))
    return_sale(db, {"store_id": store, "reference": "RET-1", "order_id": sale["id"],
                     "lines": [{"line_no": 1, "quantity": 1}]})
    adjust_inventory(db, {"store_id": store, "reference": "ADJ-1", "reason_code": "destruction", "note": "n",
                          "actor": "a", "lines": [{"sku": "SKU-2", "batch_lot": "LOT-B", "quantity": -1}]})
    assert count_rows(db, "ocs_outbox") == count_rows(db, "ocs_inventory_transactions") == 5
    _, today = today_of(db, store)
    day = validated_report(db, store, today)
    assert (day["crsa"], day["crol"]) == ("CRSA-TEST-1", "CROL-TEST")
    assert day["check"] == {"balanced": True, "differences": []}
    events = day["events"]["inventoryEventList"]
    assert [(e["ocsSku"], e["inventoryEventType"], e["inventoryQuantityChange"]) for e in events] == [
        ("SKU-1", "RECEIVING", "10"), ("SKU-2", "ADJUSTMENT", "4"), ("SKU-1", "PURCHASE", "-3"),
        ("SKU-1", "RETURN", "1"), ("SKU-2", "DESTRUCTION", "-1")]
    purchase = events[2]
    assert purchase["posSalesTransactionId"] == sale["receipt_number"]
    assert purchase["upcAndBarcode"] == "00627701000049"   # the GTIN as stored: 14 digits
    assert events[4]["reasonCategory"] == "DESTRUCTION"
    assert len({e["posTransactionLineId"] for e in events}) == 5
    position = {p["ocsSku"]: p["inventoryQuantityOnHand"] for p in day["position"]["inventoryPositionList"]}
    assert position == {"SKU-1": "8", "SKU-2": "3"}


def test_an_offline_sale_belongs_to_the_day_it_happened_and_every_day_still_balances(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    zone, today = today_of(db, store)
    yesterday = today - datetime.timedelta(days=1)
    record_sale(db, sale_payload(store, item("SKU-1", 2), policy="offline", terminal_id="T1", terminal_sequence=1,
                                 occurred_at=datetime.datetime.combine(yesterday, datetime.time(12), zone).isoformat()))
    record_sale(db, sale_payload(store, item("SKU-1", 1)))
    before, after = validated_report(db, store, yesterday), validated_report(db, store, today)
    assert [e["inventoryQuantityChange"] for e in before["events"]["inventoryEventList"]] == ["-2"]
    assert before["events"]["inventoryEventList"][0]["posTransactionTimeStamp"].startswith(f"{yesterday}T12:00:00")
    assert [e["inventoryQuantityChange"] for e in after["events"]["inventoryEventList"]] == ["10", "-1"]
    assert before["check"]["balanced"] and after["check"]["balanced"]


def test_the_check_fails_and_shows_the_difference_when_a_movement_has_no_event(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    _, today = today_of(db, store)
    # What only the owner can do: a ledger row written with the outbox's trigger out of the way.
    db.execute("ALTER TABLE ocs_inventory_transactions DISABLE TRIGGER ocs_inventory_transactions_outbox")
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 7, quantity_available = 7 WHERE store_id = %s", [store])
    db.execute("ALTER TABLE ocs_inventory_transactions ENABLE TRIGGER ocs_inventory_transactions_outbox")
    db.commit()
    day = validated_report(db, store, today)
    assert day["check"] == {"balanced": False, "differences": [
        {"ocsSku": "SKU-1", "previous": 0, "events": 10, "position": 7}]}


def test_the_mapping_is_data_a_corrected_event_type_keeps_its_ids(db):
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    record_sale(db, sale_payload(store, item("SKU-1", 1)))
    _, today = today_of(db, store)
    first = validated_report(db, store, today)["events"]["inventoryEventList"]
    db.execute("UPDATE ocs_event_types SET event_type = 'OPENING_BALANCE' WHERE transaction_type = 'opening'")
    try:
        again = validated_report(db, store, today)["events"]["inventoryEventList"]   # commits the correction
    finally:
        db.execute("UPDATE ocs_event_types SET event_type = 'ADJUSTMENT' WHERE transaction_type = 'opening'")
        db.commit()
    assert [e["inventoryEventType"] for e in first] == ["ADJUSTMENT", "PURCHASE"]
    assert [e["inventoryEventType"] for e in again] == ["OPENING_BALANCE", "PURCHASE"]
    assert [(e["posTransactionLineId"], e["posSalesTransactionId"]) for e in again] == [
        (e["posTransactionLineId"], e["posSalesTransactionId"]) for e in first]


def test_a_bad_request_is_refused_with_every_problem(db):
    with pytest.raises(psycopg.Error) as refused:
        db.execute("SELECT ocs_report(%s)", [Jsonb({"store_id": "x", "day": "2026-02-30"})])
    db.rollback()
    assert refused.value.sqlstate == "IV400"
    assert [p["field"] for p in json.loads(refused.value.diag.message_detail)["problems"]] == ["store_id", "day"]


def test_values_are_at_the_unit_cost_the_receipt_gave(db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 10, "LOT-A", unit_cost=6.5),
            shipment_line("SKU-1", 4, "LOT-B", unit_cost=7.25), shipment_line("SKU-2", 3, "LOT-C"))
    record_sale(db, sale_payload(store, item("SKU-1", 12)))   # FEFO: all of LOT-A, 2 of LOT-B
    _, today = today_of(db, store)
    day = validated_report(db, store, today)
    values = [(e["ocsSku"], e["inventoryEventType"], e["inventoryValueChange"])
              for e in day["events"]["inventoryEventList"]]
    assert values == [("SKU-1", "RECEIVING", "65.00"), ("SKU-1", "RECEIVING", "29.00"), ("SKU-2", "RECEIVING", "0.00"),
                      ("SKU-1", "PURCHASE", "-65.00"), ("SKU-1", "PURCHASE", "-14.50")]
    book = {p["ocsSku"]: (p["inventoryQuantityOnHand"], p["inventoryBookValue"])
            for p in day["position"]["inventoryPositionList"]}
    assert book == {"SKU-1": ("2", "14.50"), "SKU-2": ("3", "0.00")}   # SKU-2's receipt gave no cost


def test_a_unit_cost_must_be_a_number_and_one_batch_has_one(db):
    store = new_store(db)
    with pytest.raises(InvalidSale) as refused:
        receive(db, store, shipment_line("SKU-1", 1, "LOT-A", unit_cost="cheap"),
                shipment_line("SKU-2", 1, "LOT-B", unit_cost=1.0), shipment_line("SKU-2", 1, "LOT-B", unit_cost=2.0))
    assert [p["field"] for p in refused.value.detail["problems"]] == ["lines[0].unit_cost", "lines[1]"]


def test_the_asn_unit_price_is_the_unit_cost_per_each():
    asn = io.StringIO(
        "ShipmentID,ContainerID,SKU,ItemName,UnitPrice,Vendor,Brand,CaseGTIN,PackagedOnDate,BatchLot,GTINBarCode,"
        "EachGTIN,Shipped_Qty,UOM,UOMCONVERSION,UOMCONVERSIONQTY\n"
        "9001,C1,SKU-1,One,6.50,OCS,B,,09/01/2025 12:00:00 AM,LOT-A,,,5,EA,EA,1\n"
        "9001,C1,SKU-2,Two,60.00,OCS,B,,09/01/2025 12:00:00 AM,LOT-B,,,2,CS,EA,12\n"
        "9001,C1,SKU-3,Three,,OCS,B,,09/01/2025 12:00:00 AM,LOT-C,,,1,EA,EA,1\n")
    lines = read_asn(asn, "5071d685-00dc-4e56-bb11-36e31b305c50")[0]["lines"]
    assert [(line["quantity_shipped"], line.get("unit_cost")) for line in lines] == [(5, 6.5), (24, 5.0), (1, None)]


def test_a_days_report_sums_the_ledger_for_the_day_once(db):
    """The day's position (the store's ledger summed up to the day's end) serves both the position list and the
    check: read once for the day and once for the day before, not a third time."""
    if server_kind() == "citus":
        pytest.skip("the call runs on a worker: the coordinator's session counts no calls")
    store = new_store(db)
    add_stock(db, store, "SKU-1", 10, "LOT-A")
    _, today = today_of(db, store)
    db.execute("SET LOCAL track_functions = 'pl'")
    day = db.execute("SELECT ocs_report(%s)", [Jsonb({"store_id": store, "day": str(today)})]).fetchone()[0]
    calls = db.execute("SELECT calls FROM pg_stat_xact_user_functions"
                       " WHERE schemaname = 'posledger_private' AND funcname = 'ocs_day_position'").fetchall()
    db.rollback()
    assert day["check"]["balanced"] and len(day["position"]["inventoryPositionList"]) == 1
    assert calls == [(2,)]
