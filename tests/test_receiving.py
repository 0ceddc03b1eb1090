"""receive_inventory: OCS shipments create or top up batch rows through 'receipt' ledger rows, GTINs are
checked and stored as 14 digits, variances are recorded, and a shipment id counts once."""

import pytest

from conftest import batches_of, count_rows, ledger_of, new_store, receive, record_sale, sale_payload, shipment_line
from posledger import IdempotencyConflict, InvalidSale, NotFound, receive_inventory
from posledger.asn import receive_shipments

EACH_GTIN_13 = "4006381333931"      # a real EAN-13
CASE_GTIN_14 = "10012345678902"     # a GTIN-14 with a valid check digit
UPC_12 = "036000291452"
EAN_8 = "96385074"


def test_a_shipment_creates_batches_and_ledgers_each_as_a_receipt(db):
    store = new_store(db)
    result = receive(db, store, shipment_line("SKU-1", 12, "LOT-A", "2025-09-01", each_gtin=EACH_GTIN_13,
                                              case_gtin=CASE_GTIN_14),
                     shipment_line("SKU-1", 5, "LOT-B"), received_by="receiver-3")
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (12, 12, 0, "active"), "LOT-B": (5, 5, 0, "active")}
    assert result["units_received"] == 17 and result["variances"] == [] and result["replayed"] is False
    row = db.execute("SELECT each_gtin, case_gtin, packaged_on_date::text FROM ocs_inventory"
                     " WHERE store_id = %s AND batch_lot = 'LOT-A'", [store]).fetchone()
    assert row == ("0" + EACH_GTIN_13, CASE_GTIN_14, "2025-09-01")
    ledger = db.execute("SELECT transaction_type, quantity, reference_type, reference_id, actor, notes"
                        " FROM ocs_inventory_transactions WHERE store_id = %s ORDER BY id", [store]).fetchall()
    assert [(t, q, rt, str(rid), a) for t, q, rt, rid, a, _ in ledger] == [
        ("receipt", 12, "ocs_shipment", result["id"], "receiver-3"),
        ("receipt", 5, "ocs_shipment", result["id"], "receiver-3")]
    assert ledger[0][5] == f"OCS shipment {result['shipment_id']}"


def test_a_later_shipment_tops_up_the_batch_and_containers_of_one_batch_are_one_movement(db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 10, "LOT-A"))
    receive(db, store, shipment_line("SKU-1", 4, "LOT-A", ContainerID="C1"), shipment_line("SKU-1", 6, "LOT-A"))
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (20, 20, 0, "active")}
    assert ledger_of(db, store, "SKU-1") == [("LOT-A", "receipt", None, 10, 10), ("LOT-A", "receipt", None, 10, 20)]
    assert count_rows(db, "ocs_shipment_lines") == 3


def test_the_same_shipment_twice_changes_nothing_the_second_time(db):
    store = new_store(db)
    shipment = {"store_id": store, "shipment_id": "OCS-77", "lines": [shipment_line("SKU-1", 10, "LOT-A")]}
    first = receive_inventory(db, shipment)
    again = receive_inventory(db, {**shipment, "lines": [dict(shipment["lines"][0])]})
    assert again == {**first, "replayed": True}
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (10, 10, 0, "active")}
    assert count_rows(db, "ocs_inventory_transactions") == 1
    with pytest.raises(IdempotencyConflict) as conflict:
        receive_inventory(db, {**shipment, "lines": [shipment_line("SKU-1", 11, "LOT-A")]})
    assert conflict.value.detail["shipment_id"] == "OCS-77"
    assert count_rows(db, "ocs_inventory_transactions") == 1


def test_a_shipped_received_difference_is_a_receiving_variance(db):
    store = new_store(db)
    result = receive(db, store, shipment_line("SKU-1", 12, "LOT-A", received=10), shipment_line("SKU-2", 3, "LOT-Z"))
    assert result["variances"] == [{"line_no": 1, "sku": "SKU-1", "batch": "LOT-A", "shipped": 12, "received": 10,
                                    "variance": -2}]
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (10, 10, 0, "active")}
    rows = db.execute("SELECT ocs_shipment_id, sku, quantity_shipped, quantity_received, variance"
                      " FROM receiving_variances").fetchall()
    assert rows == [(result["shipment_id"], "SKU-1", 12, 10, -2)]


def test_nothing_received_of_a_new_batch_leaves_an_empty_row_and_no_ledger_row(db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 6, "LOT-A", received=0))
    assert batches_of(db, store, "SKU-1") == {"LOT-A": (0, 0, 0, "active")}
    assert count_rows(db, "ocs_inventory_transactions") == 0


@pytest.mark.parametrize("gtin, stored", [
    (EAN_8, "000000" + EAN_8), (UPC_12, "00" + UPC_12), (EACH_GTIN_13, "0" + EACH_GTIN_13),
    (CASE_GTIN_14, CASE_GTIN_14), ("4006381333932", None), ("400638133393", None), ("40063813339311", None),
    ("123", None), ("40063813339a1", None), ("", None)])
def test_gtins_are_checked_by_their_gs1_check_digit_and_stored_as_14_digits(db, gtin, stored):
    assert db.execute("SELECT posledger_private.gtin14(%s)", [gtin]).fetchone() == (stored,)


def test_bad_gtins_and_dates_are_refused_naming_every_line_and_nothing_changes(db):
    store = new_store(db)
    with pytest.raises(InvalidSale) as refused:
        receive(db, store, shipment_line("SKU-1", 1, "LOT-A", each_gtin="4006381333932"),
                shipment_line("SKU-2", 1, "LOT-B", case_gtin=4006381333931, packaged_on_date="2025-02-30"),
                shipment_line("", -1, "LOT-C", packaged_on_date="09/01/2025"))
    assert refused.value.sqlstate == "IV400"
    assert [p["field"] for p in refused.value.detail["problems"]] == [
        "lines[0].each_gtin", "lines[1].case_gtin", "lines[1].packaged_on_date", "lines[2].sku",
        "lines[2].quantity_shipped", "lines[2].quantity_received", "lines[2].packaged_on_date"]
    assert count_rows(db, "ocs_inventory") == 0 and count_rows(db, "ocs_shipments") == 0


def test_one_batch_with_two_different_packaged_dates_in_one_shipment_is_refused(db):
    store = new_store(db)
    with pytest.raises(InvalidSale) as refused:
        receive(db, store, shipment_line("SKU-1", 1, "LOT-A", "2025-01-01"),
                shipment_line("SKU-1", 1, "LOT-A", "2025-02-01"))
    assert refused.value.detail["problems"][0]["field"] == "lines[0]"


def test_an_unknown_store_is_not_found(db):
    with pytest.raises(NotFound) as refused:
        receive(db, "5071d685-00dc-4e56-bb11-36e31b305c50", shipment_line("SKU-1", 1, "LOT-A"))
    assert refused.value.detail == {"missing": [{"store_id": "5071d685-00dc-4e56-bb11-36e31b305c50"}]}


def test_received_stock_is_sold_fefo_by_packaged_on_date(db):
    store = new_store(db)
    receive(db, store, shipment_line("SKU-1", 5, "NEW", "2025-09-01"), shipment_line("SKU-1", 5, "OLD", "2025-03-01"))
    result = record_sale(db, sale_payload(store, {"product": {"sku": "SKU-1"}, "quantity": 7}))
    taken = {u["batch"]: u["quantity_deducted"] for u in result["inventory_updates"]["successful"]}
    assert taken == {"OLD": 5, "NEW": 2}
    assert batches_of(db, store, "SKU-1") == {"NEW": (3, 3, 0, "active"), "OLD": (0, 0, 0, "active")}


def test_receiving_shipments_tells_its_progress_in_lines_before_the_first_and_after_each(db):
    store = new_store(db)
    shipments = [{"store_id": store, "shipment_id": "S-1",
                  "lines": [shipment_line("SKU-1", 2, "LOT-A"), shipment_line("SKU-2", 1, "LOT-B")]},
                 {"store_id": store, "shipment_id": "S-2", "lines": [shipment_line("SKU-1", 3, "LOT-C")]}]
    told = []
    results = receive_shipments(db, shipments, lambda done, total: told.append((done, total)))
    assert told == [(0, 3), (2, 3), (3, 3)]
    assert [result["shipment_id"] for result in results] == ["S-1", "S-2"]
