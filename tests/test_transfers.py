"""Transfers between the stores of one retailer (issue 18; docs/transfers.md): units leave the sender by batch and
are in transit, arrive at the receiver with any variance recorded per line, or come back to the sender when the
transfer is cancelled in transit. Each call writes one store's rows; a receipt and a cancel read the other side (on
Citus they run on the coordinator, so every refusal here holds there too); both sides are ledgered with the other
store's CRSA, and the OCS feed reports them as TRANSFER_OUT and TRANSFER_IN with counterPartyCRSA."""

import datetime
import json
import threading
import uuid
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import batches_of, new_store, posledger_cli, receive, shipment_line, validated_report
from posledger import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidSale,
    NotFound,
    cancel_transfer,
    set_batch_status,
    transfer_in,
    transfer_out,
)


def two_stores(db, crol="CROL-1"):
    tag = uuid.uuid4().hex[:8]
    sender = new_store(db, name="sender", crsa=f"CRSA-A-{tag}", crol=crol)
    receiver = new_store(db, name="receiver", crsa=f"CRSA-B-{tag}", crol=crol)
    receive(db, sender, shipment_line("SKU-1", 10, "LOT-A", expiry_date="2027-06-30"),
            shipment_line("SKU-2", 5, "LOT-B"))
    return sender, receiver


def crsa_of(db, store):
    crsa = db.execute("SELECT crsa FROM stores WHERE id = %s", [store]).fetchone()[0]
    db.commit()
    return crsa


def sent(sender, receiver, reference="TR-1", **lines):
    return {"store_id": sender, "reference": reference, "to_store_id": receiver, "actor": "clerk",
            "lines": [{"sku": sku, "batch_lot": lot, "quantity": quantity} for sku, (lot, quantity) in lines.items()]}


def arrived(receiver, sender, reference="TR-1", **lines):
    return {"store_id": receiver, "reference": reference, "from_store_id": sender, "actor": "clerk",
            "lines": [{"sku": sku, "batch_lot": lot, "sent": s, "received": r} for sku, (lot, s, r) in lines.items()]}


def ledger(db, store):
    rows = db.execute("SELECT sku, batch_lot, transaction_type, quantity, reference_type, notes"
                      " FROM ocs_inventory_transactions WHERE store_id = %s AND transaction_type LIKE 'transfer%%'"
                      " ORDER BY id", [store]).fetchall()
    db.commit()
    return rows


def watched(db, sender, reference="TR-1"):
    rows = db.execute("SELECT state, units_sent, units_received, differences FROM transfers_to_watch"
                      " WHERE from_store_id = %s AND reference = %s", [sender, reference]).fetchall()
    db.commit()
    return rows


def test_a_transfer_leaves_the_sender_is_in_transit_and_arrives_with_its_variance(db):
    sender, receiver = two_stores(db)
    out = transfer_out(db, sent(sender, receiver, **{"SKU-1": ("LOT-A", 4), "SKU-2": ("LOT-B", 2)}))
    assert (out["status"], out["replayed"], out["to_crsa"]) == ("in_transit", False, crsa_of(db, receiver))
    assert out["lines"][0] == {"sku": "SKU-1", "batch_lot": "LOT-A", "quantity": 4, "expiry_date": "2027-06-30"}
    assert batches_of(db, sender, "SKU-1")["LOT-A"][:2] == (6, 6)
    assert watched(db, sender) == [("in_transit", 6, 0, [])]

    # One unit of SKU-2 broke on the way: the receiver records 1 less than was sent.
    received = transfer_in(db, arrived(receiver, sender, **{"SKU-1": ("LOT-A", 4, 4), "SKU-2": ("LOT-B", 2, 1)}))
    assert received["balanced"] is False
    assert [(line["sku"], line["variance"]) for line in received["lines"]] == [("SKU-1", 0), ("SKU-2", -1)]
    assert batches_of(db, receiver, "SKU-1")["LOT-A"][:2] == (4, 4)
    assert batches_of(db, receiver, "SKU-2")["LOT-B"][:2] == (1, 1)
    expiry = db.execute("SELECT expiry_date FROM ocs_inventory WHERE store_id = %s AND sku = 'SKU-1'",
                        [receiver]).fetchone()[0]
    db.commit()
    assert expiry == datetime.date(2027, 6, 30)   # the sender's batch brought its date; the payload gave none
    assert watched(db, sender) == [("unbalanced", 6, 5, [{"sku": "SKU-2", "batch": "LOT-B", "sent": 2, "received": 1}])]

    # Both sides ledgered, each with the other's CRSA.
    assert ledger(db, sender) == [("SKU-1", "LOT-A", "transfer_out", -4, "store_transfer", crsa_of(db, receiver)),
                                  ("SKU-2", "LOT-B", "transfer_out", -2, "store_transfer", crsa_of(db, receiver))]
    assert ledger(db, receiver) == [
        ("SKU-1", "LOT-A", "transfer_in", 4, "store_transfer_receipt", crsa_of(db, sender)),
        ("SKU-2", "LOT-B", "transfer_in", 1, "store_transfer_receipt", crsa_of(db, sender))]


def test_a_balanced_receipt_leaves_nothing_to_watch_and_adds_to_a_batch_the_receiver_has(db):
    sender, receiver = two_stores(db)
    receive(db, receiver, shipment_line("SKU-1", 3, "LOT-A"))
    transfer_out(db, sent(sender, receiver, **{"SKU-1": ("LOT-A", 2)}))
    transfer_in(db, arrived(receiver, sender, **{"SKU-1": ("LOT-A", 2, 2)}))
    assert batches_of(db, receiver, "SKU-1")["LOT-A"][:2] == (5, 5)
    assert watched(db, sender) == []


def test_every_call_is_idempotent_by_its_reference_and_refuses_another_payload(db):
    sender, receiver = two_stores(db)
    payload = sent(sender, receiver, **{"SKU-1": ("LOT-A", 3)})
    first = transfer_out(db, payload)
    again = transfer_out(db, payload)
    assert again == {**first, "replayed": True}
    with pytest.raises(IdempotencyConflict):
        transfer_out(db, sent(sender, receiver, **{"SKU-1": ("LOT-A", 2)}))
    receipt = arrived(receiver, sender, **{"SKU-1": ("LOT-A", 3, 3)})
    assert transfer_in(db, receipt)["replayed"] is False
    assert transfer_in(db, receipt)["replayed"] is True
    with pytest.raises(IdempotencyConflict):
        transfer_in(db, arrived(receiver, sender, **{"SKU-1": ("LOT-A", 3, 2)}))
    assert batches_of(db, sender, "SKU-1")["LOT-A"][:2] == (7, 7)
    assert batches_of(db, receiver, "SKU-1")["LOT-A"][:2] == (3, 3)


def test_a_cancel_brings_the_units_back_once(db):
    sender, receiver = two_stores(db)
    transfer_out(db, sent(sender, receiver, **{"SKU-1": ("LOT-A", 4)}))
    cancel = {"store_id": sender, "reference": "TR-1", "actor": "manager"}
    result = cancel_transfer(db, cancel)
    assert (result["status"], result["replayed"]) == ("cancelled", False)
    assert cancel_transfer(db, cancel)["replayed"] is True
    with pytest.raises(IdempotencyConflict):
        cancel_transfer(db, {**cancel, "actor": "someone else"})
    assert batches_of(db, sender, "SKU-1")["LOT-A"][:2] == (10, 10)
    assert [row[2:4] for row in ledger(db, sender)] == [("transfer_out", -4), ("transfer_cancel", 4)]
    assert ledger(db, sender)[1][5] == crsa_of(db, receiver)
    assert watched(db, sender) == []


def test_a_cancelled_transfer_cannot_be_received(db):
    sender, receiver = two_stores(db)
    transfer_out(db, sent(sender, receiver, **{"SKU-1": ("LOT-A", 4)}))
    cancel_transfer(db, {"store_id": sender, "reference": "TR-1", "actor": "manager"})
    with pytest.raises(InvalidSale) as refused:
        transfer_in(db, arrived(receiver, sender, **{"SKU-1": ("LOT-A", 4, 4)}))
    assert refused.value.detail["problems"][0]["field"] == "reference"
    assert batches_of(db, receiver, "SKU-1") == {}


def test_a_received_transfer_cannot_be_cancelled_and_an_unknown_one_cannot_be_received(db):
    sender, receiver = two_stores(db)
    transfer_out(db, sent(sender, receiver, **{"SKU-1": ("LOT-A", 4)}))
    transfer_in(db, arrived(receiver, sender, **{"SKU-1": ("LOT-A", 4, 4)}))
    with pytest.raises(InvalidSale) as refused:
        cancel_transfer(db, {"store_id": sender, "reference": "TR-1", "actor": "manager"})
    assert [problem["field"] for problem in refused.value.detail["problems"]] == ["reference"]
    with pytest.raises(NotFound):
        cancel_transfer(db, {"store_id": sender, "reference": "TR-NONE", "actor": "manager"})
    with pytest.raises(NotFound):
        transfer_in(db, arrived(receiver, sender, "TR-NONE", **{"SKU-1": ("LOT-A", 1, 1)}))
    assert batches_of(db, sender, "SKU-1")["LOT-A"][:2] == (6, 6)


def test_transfers_to_itself_to_another_retailer_to_an_unknown_store_or_beyond_stock_are_refused(db):
    sender, receiver = two_stores(db)
    elsewhere = new_store(db, name="other retailer", crsa=f"CRSA-X-{uuid.uuid4().hex[:8]}", crol="CROL-2")
    no_licence = new_store(db, name="no licences")
    line = {"SKU-1": ("LOT-A", 1)}
    refusals = [(sender, "is this store"), (elsewhere, "another retailer"), (no_licence, "another retailer")]
    for target, problem in refusals:
        with pytest.raises(InvalidSale) as refused:
            transfer_out(db, sent(sender, target, **line))
        assert problem in refused.value.detail["problems"][0]["problem"]
        assert refused.value.detail["problems"][0]["field"] == "to_store_id"
    with pytest.raises(InvalidSale):
        transfer_in(db, arrived(elsewhere, sender, **{"SKU-1": ("LOT-A", 1, 1)}))
    assert db.execute("SELECT count(*) FROM transfer_receipts WHERE store_id = %s", [elsewhere]).fetchone()[0] == 0
    with pytest.raises(NotFound) as missing:
        transfer_out(db, sent(sender, str(uuid.uuid4()), **line))
    assert list(missing.value.detail["missing"][0]) == ["to_store_id"]
    with pytest.raises(NotFound):
        transfer_out(db, sent(sender, receiver, **{"SKU-9": ("LOT-Z", 1)}))
    with pytest.raises(InsufficientStock) as short:
        transfer_out(db, sent(sender, receiver, **{"SKU-1": ("LOT-A", 11), "SKU-2": ("LOT-B", 5)}))
    assert short.value.detail["short_lines"] == [
        {"sku": "SKU-1", "batch": "LOT-A", "requested": 11, "available": 10}]
    with pytest.raises(InvalidSale) as invalid:
        transfer_out(db, {"store_id": sender, "reference": "", "to_store_id": receiver, "actor": "a",
                          "lines": [{"sku": "SKU-1", "quantity": 0}]})
    assert [p["field"] for p in invalid.value.detail["problems"]] == [
        "reference", "lines[0].batch_lot", "lines[0].quantity"]
    assert batches_of(db, sender, "SKU-1")["LOT-A"][:2] == (10, 10)
    assert db.execute("SELECT count(*) FROM transfers WHERE store_id = %s", [sender]).fetchone()[0] == 0
    db.commit()


def test_the_ocs_feed_reports_both_sides_with_the_counterparty_and_each_day_balances(db):
    sender, receiver = two_stores(db)
    transfer_out(db, sent(sender, receiver, **{"SKU-1": ("LOT-A", 4)}))
    transfer_out(db, sent(sender, receiver, "TR-2", **{"SKU-2": ("LOT-B", 1)}))
    cancel_transfer(db, {"store_id": sender, "reference": "TR-2", "actor": "manager"})
    transfer_in(db, arrived(receiver, sender, **{"SKU-1": ("LOT-A", 4, 3)}))
    zone = db.execute("SELECT time_zone FROM stores WHERE id = %s", [sender]).fetchone()[0]
    db.commit()
    today = datetime.datetime.now(ZoneInfo(zone)).date()
    out, into = validated_report(db, sender, today), validated_report(db, receiver, today)
    assert out["check"]["balanced"] and into["check"]["balanced"]
    transfers = [(e["ocsSku"], e["inventoryEventType"], e["inventoryQuantityChange"], e["counterPartyCRSA"])
                 for e in out["events"]["inventoryEventList"] if "counterPartyCRSA" in e]
    assert transfers == [("SKU-1", "TRANSFER_OUT", "-4", crsa_of(db, receiver)),
                         ("SKU-2", "TRANSFER_OUT", "-1", crsa_of(db, receiver)),
                         ("SKU-2", "TRANSFER_OUT", "1", crsa_of(db, receiver))]
    assert [(e["inventoryEventType"], e["inventoryQuantityChange"], e["counterPartyCRSA"])
            for e in into["events"]["inventoryEventList"]] == [("TRANSFER_IN", "3", crsa_of(db, sender))]
    assert [e["posSalesTransactionId"] for e in out["events"]["inventoryEventList"] if "counterPartyCRSA" in e] == [
        "TR-1", "TR-2", "TR-2"]
    assert into["events"]["inventoryEventList"][0]["posSalesTransactionId"] == "TR-1"   # the pair, by reference
    receiving = [e for e in out["events"]["inventoryEventList"] if e["inventoryEventType"] == "RECEIVING"]
    assert receiving and all("counterPartyCRSA" not in e for e in receiving)


@pytest.mark.parametrize("function", ["transfer_out", "transfer_in", "cancel_transfer"])
def test_the_two_argument_forms_write_only_the_store_they_are_routed_by(db, function):
    sender, receiver = two_stores(db)
    payload = {"store_id": sender, "reference": "TR-1", "actor": "a"}
    with pytest.raises(Exception) as refused:
        db.execute(f"SELECT {function}(%s::uuid, %s)", [receiver, Jsonb(payload)])
    db.rollback()
    assert refused.value.sqlstate == "IV400"
    assert json.loads(refused.value.diag.message_detail)["problems"][0]["field"] == "store_id"


def test_a_batch_arrives_as_it_left_and_a_lot_recalled_in_transit_arrives_held(db):
    sender, receiver = two_stores(db)
    lot = f"LOT-C-{uuid.uuid4().hex[:8]}"   # a recall reaches every store: a lot of this test's own
    receive(db, sender, shipment_line("SKU-3", 6, lot, expiry_date="2027-01-31", each_gtin="00628000000013",
                                      unit_cost=4.25))
    transfer_out(db, sent(sender, receiver, **{"SKU-3": (lot, 4), "SKU-1": ("LOT-A", 2)}))
    recall = set_batch_status(db, {"reference": f"RECALL-{uuid.uuid4().hex[:8]}", "batch_lot": lot,
                                   "status": "recalled", "reason": "Health Canada recall", "actor": "compliance"})
    assert recall["status"] == "recalled"
    transfer_in(db, arrived(receiver, sender, **{"SKU-3": (lot, 4, 4), "SKU-1": ("LOT-A", 2, 2)}))
    # The recalled lot is on hand at the receiver, never available; the other batch is sellable.
    assert batches_of(db, receiver, "SKU-3")[lot] == (0, 4, 0, "recalled")
    assert batches_of(db, receiver, "SKU-1")["LOT-A"][:2] == (2, 2)
    why = db.execute("SELECT to_status, reason FROM batch_status_changes WHERE store_id = %s", [receiver]).fetchall()
    assert why == [("recalled", f"received while the lot is held: transfer TR-1 from {crsa_of(db, sender)}")]
    # What the sender knew of each batch travelled: its dates, its GTIN and its unit cost.
    row = db.execute("SELECT expiry_date, each_gtin, unit_cost FROM ocs_inventory"
                     " WHERE store_id = %s AND batch_lot = %s", [receiver, lot]).fetchone()
    db.commit()
    assert row == (datetime.date(2027, 1, 31), "00628000000013", 4.25)


def at_once(dsn, calls):
    """Runs each (name, call, payload) on its own connection, all at once; {name: "done" or the refusal's class}."""
    results = {}

    def run(name, call, payload):
        with psycopg.connect(dsn) as conn:
            try:
                call(conn, payload)
                results[name] = "done"
            except (InvalidSale, NotFound) as refused:
                results[name] = type(refused).__name__

    threads = [threading.Thread(target=run, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_a_receipt_and_a_cancel_of_one_transfer_at_once_one_wins_and_no_unit_is_made(dsn, db):
    """Real concurrent connections, many rounds: the receipt reads the transfer FOR SHARE and the cancel locks it,
    so exactly one of the two succeeds and the units end on exactly one side."""
    sender, receiver = two_stores(db)
    received = 0
    for round_no in range(8):
        reference = f"TR-RACE-{round_no}"
        transfer_out(db, sent(sender, receiver, reference, **{"SKU-1": ("LOT-A", 1)}))
        results = at_once(dsn, [
            ("in", transfer_in, arrived(receiver, sender, reference, **{"SKU-1": ("LOT-A", 1, 1)})),
            ("cancel", cancel_transfer, {"store_id": sender, "reference": reference, "actor": "manager"})])
        assert sorted(results.values()) == ["InvalidSale", "done"], results
        received += results["in"] == "done"
    assert batches_of(db, sender, "SKU-1")["LOT-A"][:2] == (10 - received, 10 - received)
    assert batches_of(db, receiver, "SKU-1").get("LOT-A", (0,))[0] == received


def test_the_cli_sends_receives_and_refuses_a_transfer(db, dsn, tmp_path):
    """`posledger transfer out|in|cancel PAYLOAD`, as subprocesses: the same calls, the same refusals."""
    sender, receiver = two_stores(db)
    files = {name: tmp_path / f"{name}.json" for name in ("out", "in", "cancel")}
    files["out"].write_text(json.dumps(sent(sender, receiver, **{"SKU-1": ("LOT-A", 3)})))
    files["in"].write_text(json.dumps(arrived(receiver, sender, **{"SKU-1": ("LOT-A", 3, 3)})))
    files["cancel"].write_text(json.dumps({"store_id": sender, "reference": "TR-1", "actor": "manager"}))
    out = posledger_cli("transfer", "out", str(files["out"]), "--dsn", dsn, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "in_transit"
    arrived_now = posledger_cli("transfer", "in", str(files["in"]), "--dsn", dsn)
    assert arrived_now.returncode == 0, arrived_now.stderr
    assert f"transfer TR-1 from {crsa_of(db, sender)}: balanced" in arrived_now.stdout
    refused = posledger_cli("transfer", "cancel", "-", "--dsn", dsn, "--json", stdin=files["cancel"].read_text())
    assert refused.returncode == 1
    error = json.loads(refused.stderr)
    assert error["sqlstate"] == "IV400" and [p["field"] for p in error["detail"]["problems"]] == ["reference"]
    assert batches_of(db, receiver, "SKU-1")["LOT-A"][:2] == (3, 3)
