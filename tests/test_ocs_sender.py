"""The OCS feed's sender (issue 18; docs/ocs-feed.md): it claims a store's unsent outbox rows in its own
transaction (ocs_claim_events, FOR UPDATE SKIP LOCKED), POSTs their events to the platform, records every
answer (ocs_record_delivery, ocs_deliveries) and commits. The platform here is a real HTTP server on
127.0.0.1 that records each request and answers as the test tells it: 200, 400, 503, or not in time."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import (
    Platform,
    add_stock,
    count_rows,
    item,
    new_store,
    ocs_valid,
    posledger_cli,
    record_sale,
    sale_payload,
)
from posledger import InvalidSale, NotFound, ocs

TOKEN = "test-token-1"


@pytest.fixture
def platform():
    server = Platform()
    yield server
    server.close()


def movements(db, sales=2, **store_columns):
    """A store with stock and `sales` sales: 1 + sales ledger rows, so as many outbox rows."""
    store = new_store(db, **(store_columns or {"crsa": "CRSA-1", "crol": "CROL-1"}))
    add_stock(db, store, "SKU-1", 100, "LOT-A")
    for _ in range(sales):
        record_sale(db, sale_payload(store, item("SKU-1", 1)))
    return store


def ledger_ids(db, store):
    ids = [str(row[0]) for row in db.execute(
        "SELECT id FROM ocs_inventory_transactions WHERE store_id = %s ORDER BY id", [store])]
    db.commit()
    return ids


def outbox(db, store):
    rows = db.execute("SELECT sent_at IS NOT NULL, attempts FROM ocs_outbox WHERE store_id = %s ORDER BY id",
                      [store]).fetchall()
    db.commit()
    return rows


def deliveries(db, store):
    rows = db.execute("SELECT kind, cardinality(outbox_ids), attempt, status_code, error IS NOT NULL, accepted"
                      " FROM ocs_deliveries WHERE store_id = %s ORDER BY id", [store]).fetchall()
    db.commit()
    return rows


def test_the_sender_posts_the_events_as_json_with_the_bearer_token_and_the_stores_licences(db, dsn, platform):
    store = movements(db)
    outcome = ocs.send(dsn, store, platform.url, TOKEN)
    assert (outcome["sent"], outcome["batches"], outcome["refused"], outcome["failed"]) == (3, 1, None, None)
    [request] = platform.requests
    assert request["authorization"] == f"Bearer {TOKEN}"
    assert request["content_type"] == "application/json"
    assert request["query"] == {"crsa": ["CRSA-1"], "crol": ["CROL-1"]}
    ocs_valid(request["body"])
    assert [e["posTransactionLineId"] for e in platform.events()] == ledger_ids(db, store)   # oldest first
    assert outbox(db, store) == [(True, 1)] * 3
    assert deliveries(db, store) == [("events", 3, 1, 200, False, True)]
    # Nothing left: a second run posts nothing.
    assert ocs.send(dsn, store, platform.url, TOKEN)["sent"] == 0 and len(platform.requests) == 1


def test_batches_are_sent_oldest_first_each_in_its_own_transaction(db, dsn, platform):
    store = movements(db, sales=4)
    outcome = ocs.send(dsn, store, platform.url, TOKEN, batch=2)
    assert (outcome["sent"], outcome["batches"]) == (5, 3)
    assert [len(r["body"]["inventoryEventList"]) for r in platform.requests] == [2, 2, 1]
    assert [e["posTransactionLineId"] for e in platform.events()] == ledger_ids(db, store)


def test_a_503_and_a_timeout_are_retried_with_growing_pauses_then_the_success_is_recorded(db, dsn, platform):
    store = movements(db)
    platform.answers = [503, ("sleep", 1.5, 200), 200]
    pauses: list[float] = []
    outcome = ocs.send(dsn, store, platform.url, TOKEN, timeout=0.5, backoff=0.2, sleep=pauses.append)
    assert (outcome["sent"], outcome["refused"], outcome["failed"]) == (3, None, None)
    assert len(platform.requests) == 3
    assert [r["body"] for r in platform.requests] == [platform.requests[0]["body"]] * 3   # the same events
    assert 0.1 <= pauses[0] <= 0.2 and 0.2 <= pauses[1] <= 0.4
    assert deliveries(db, store) == [("events", 3, 1, 503, False, False), ("events", 3, 2, None, True, False),
                                     ("events", 3, 3, 200, False, True)]
    assert db.execute("SELECT error FROM ocs_deliveries WHERE store_id = %s AND attempt = 2",
                      [store]).fetchone()[0].startswith("timeout")
    db.commit()
    assert outbox(db, store) == [(True, 3)] * 3


def test_retries_are_bounded_and_a_batch_that_never_gets_through_stays_unsent(db, dsn, platform):
    store = movements(db)
    platform.answers = [503] * 10
    outcome = ocs.send(dsn, store, platform.url, TOKEN, attempts=3, sleep=lambda _: None)
    assert outcome["sent"] == 0 and outcome["failed"]["status"] == 503
    assert len(platform.requests) == 3
    assert [row[3] for row in deliveries(db, store)] == [503, 503, 503]
    assert outbox(db, store) == [(False, 3)] * 3


def test_a_refused_connection_is_recorded_as_an_error_and_retried(db, dsn):
    store = movements(db, sales=0)
    outcome = ocs.send(dsn, store, "http://127.0.0.1:9/nothing-listens", TOKEN, attempts=2, sleep=lambda _: None)
    assert outcome["failed"]["error"].startswith("connection error")
    assert deliveries(db, store) == [("events", 1, 1, None, True, False), ("events", 1, 2, None, True, False)]
    assert outbox(db, store) == [(False, 2)]


def test_a_400_is_a_refusal_recorded_not_retried_and_the_rows_stay_unsent(db, dsn, platform):
    store = movements(db)
    platform.answers = [400]
    outcome = ocs.send(dsn, store, platform.url, TOKEN, sleep=lambda _: pytest.fail("a 400 is not retried"))
    assert outcome["refused"]["status"] == 400 and outcome["sent"] == 0
    assert json.loads(outcome["refused"]["body"]) == {"status": 400}
    assert len(platform.requests) == 1
    assert deliveries(db, store) == [("events", 3, 1, 400, False, False)]
    assert db.execute("SELECT body FROM ocs_deliveries WHERE store_id = %s", [store]).fetchone()[0] == '{"status": 400}'
    db.commit()
    assert outbox(db, store) == [(False, 1)] * 3


def test_a_day_that_fails_the_check_is_held_back_and_reported(db, dsn, platform):
    store = movements(db, sales=0)
    # What only the owner can do: a ledger row written with the outbox's trigger out of the way.
    db.execute("ALTER TABLE ocs_inventory_transactions DISABLE TRIGGER ocs_inventory_transactions_outbox")
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 97, quantity_available = 97 WHERE store_id = %s", [store])
    db.execute("ALTER TABLE ocs_inventory_transactions ENABLE TRIGGER ocs_inventory_transactions_outbox")
    db.commit()
    outcome = ocs.send(dsn, store, platform.url, TOKEN)
    assert outcome["sent"] == 0 and platform.requests == []
    [held] = outcome["held"]
    assert held["differences"] == [{"ocsSku": "SKU-1", "previous": 0, "events": 100, "position": 97}]
    assert outbox(db, store) == [(False, 0)]


def test_two_senders_at_once_deliver_every_event_exactly_once(db, dsn, platform):
    store = movements(db, sales=23)
    platform.delay = 0.02
    outcomes, errors = [], []

    def sender(name):
        try:
            outcomes.append(ocs.send(dsn, store, platform.url, TOKEN, batch=3, sender=name))
        except Exception as error:   # noqa: BLE001 - reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=sender, args=(f"sender-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    sent = [e["posTransactionLineId"] for e in platform.events()]
    assert sorted(sent, key=int) == ledger_ids(db, store)   # every event, none twice
    assert sum(outcome["sent"] for outcome in outcomes) == 24
    assert outbox(db, store) == [(True, 1)] * 24
    assert db.execute("SELECT count(*), sum(cardinality(outbox_ids)) FROM ocs_deliveries WHERE store_id = %s",
                      [store]).fetchone() == (len(platform.requests), 24)
    db.commit()


def test_a_sender_killed_mid_batch_releases_its_rows_and_the_next_sender_delivers_them_all(db, dsn, platform):
    store = movements(db, sales=4)
    platform.answers = ["stall"]
    killed = subprocess.Popen([sys.executable, "-m", "posledger", "send", "ocs", "--store-id", store,
                               "--url", platform.url, "--timeout", "60", "--dsn", dsn],
                              env={**os.environ, "POSLEDGER_OCS_TOKEN": TOKEN},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not platform.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(platform.requests) == 1
        # While it holds its claim, another sender finds nothing to claim (SKIP LOCKED) rather than waiting.
        assert db.execute("SELECT ocs_claim_events(%s)", [Jsonb({"store_id": store})]).fetchone()[0]["outbox_ids"] == []
        db.rollback()
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
    # The server notices the dead client when it reads from the socket: wait until the claim is released.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        claimable = db.execute("SELECT ocs_claim_events(%s)", [Jsonb({"store_id": store})]).fetchone()[0]
        db.rollback()
        if len(claimable["outbox_ids"]) == 5:
            break
        time.sleep(0.1)
    assert outbox(db, store) == [(False, 0)] * 5
    assert deliveries(db, store) == []   # what the killed sender recorded rolled back with its claim
    outcome = ocs.send(dsn, store, platform.url, TOKEN)
    assert outcome["sent"] == 5
    resent = platform.requests[-1]["body"]["inventoryEventList"]
    assert [e["posTransactionLineId"] for e in resent] == ledger_ids(db, store)
    assert outbox(db, store) == [(True, 1)] * 5


def test_send_ocs_on_the_command_line_exits_0_when_accepted_and_1_when_refused(db, dsn, platform):
    store = movements(db)
    env = {**os.environ, "OCS_TOKEN_FOR_TEST": TOKEN}
    platform.answers = [400]
    refused = posledger_cli("send", "ocs", "--store-id", store, "--url", platform.url,
                            "--token-env", "OCS_TOKEN_FOR_TEST", "--dsn", dsn, "--json", env=env)
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout)["refused"]["status"] == 400
    done = posledger_cli("send", "ocs", "--store-id", store, "--url", platform.url, "--token-env", "OCS_TOKEN_FOR_TEST",
                         "--dsn", dsn, env=env)
    assert done.returncode == 0, done.stderr
    assert "sent: 3" in done.stdout
    assert [r["authorization"] for r in platform.requests] == [f"Bearer {TOKEN}"] * 2
    assert outbox(db, store) == [(True, 2)] * 3
    no_token = posledger_cli("send", "ocs", "--store-id", store, "--url", platform.url,
                             "--token-env", "NO_SUCH_TOKEN_VAR", "--dsn", dsn,
                             env={k: v for k, v in os.environ.items() if k != "NO_SUCH_TOKEN_VAR"})
    assert no_token.returncode == 2


def test_report_ocs_writes_the_days_files_that_validate_and_check_only_checks(db, dsn, tmp_path):
    store = movements(db)
    day = db.execute("SELECT DISTINCT day FROM ocs_outbox WHERE store_id = %s", [store]).fetchone()[0]
    db.commit()
    checked = posledger_cli("report", "ocs", "--store-id", store, "--day", str(day), "--check", "--out", str(tmp_path),
                            "--dsn", dsn)
    assert checked.returncode == 0, checked.stderr
    assert "balanced: True" in checked.stdout
    assert list(tmp_path.iterdir()) == []
    written = posledger_cli("report", "ocs", "--store-id", store, "--day", str(day), "--out", str(tmp_path / "feed"),
                            "--dsn", dsn, "--json")
    assert written.returncode == 0, written.stderr
    feed = tmp_path / "feed"
    events, position = feed / f"events-CRSA-1-{day}.json", feed / f"position-CRSA-1-{day}.json"
    assert sorted(json.loads(written.stdout)["written"]) == sorted([str(events), str(position)])
    for path in (events, position):
        ocs_valid(json.loads(path.read_text()))
    assert len(json.loads(events.read_text())["inventoryEventList"]) == 3
    assert json.loads(position.read_text())["inventoryPositionList"][0]["inventoryQuantityOnHand"] == "98"


def test_report_ocs_of_an_unbalanced_day_exits_1_with_the_differences_and_writes_nothing(db, dsn, tmp_path):
    store = movements(db, sales=0, name="no licence yet")
    db.execute("ALTER TABLE ocs_inventory_transactions DISABLE TRIGGER ocs_inventory_transactions_outbox")
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 97, quantity_available = 97 WHERE store_id = %s", [store])
    db.execute("ALTER TABLE ocs_inventory_transactions ENABLE TRIGGER ocs_inventory_transactions_outbox")
    day = db.execute("SELECT DISTINCT day FROM ocs_outbox WHERE store_id = %s", [store]).fetchone()[0]
    db.commit()
    for extra in (["--check"], []):
        found = posledger_cli("report", "ocs", "--store-id", store, "--day", str(day), "--out", str(tmp_path),
                              "--dsn", dsn, "--json", *extra)
        assert found.returncode == 1, found.stderr
        assert json.loads(found.stdout)["differences"] == [
            {"ocsSku": "SKU-1", "previous": 0, "events": 100, "position": 97}]
    assert list(tmp_path.iterdir()) == []
    balanced_day = posledger_cli("report", "ocs", "--store-id", store, "--day", "2001-01-01", "--out", str(tmp_path),
                                 "--dsn", dsn)
    assert balanced_day.returncode == 0   # a day with nothing: empty files named by the store (no CRSA)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"events-{store}-2001-01-01.json",
                                                          f"position-{store}-2001-01-01.json"]


def test_claim_and_record_refuse_bad_input_with_every_problem_and_change_nothing(db):
    store = movements(db, sales=0)
    refusals = [
        ("ocs_claim_events", {"store_id": "x", "limit": 0}, "IV400", ["store_id", "limit"]),
        ("ocs_claim_events", {"store_id": "00000000-0000-0000-0000-000000000000"}, "IV404", None),
        ("ocs_record_delivery", {"store_id": store, "outbox_ids": [], "attempt": 0, "status": 42, "error": 5,
                                 "body": 1, "day": "2026-02-30"},
         "IV400", ["outbox_ids", "day", "attempt", "status", "error", "body"]),
        ("ocs_record_delivery", {"store_id": store, "kind": "position", "attempt": 1}, "IV400", ["day", "status"]),
        ("ocs_record_delivery", {"store_id": store, "kind": "x", "attempt": 1, "status": 200}, "IV400", ["kind"]),
        ("ocs_record_delivery", {"store_id": store, "outbox_ids": [9007199254740990], "attempt": 1, "status": 200},
         "IV404", None),
    ]
    for function, payload, code, fields in refusals:
        with pytest.raises(psycopg.Error) as refused:
            db.execute(f"SELECT {function}(%s)", [Jsonb(payload)])
        db.rollback()
        assert refused.value.sqlstate == code, (function, payload)
        if fields is not None:
            detail = json.loads(refused.value.diag.message_detail)
            assert [p["field"] for p in detail["problems"]] == fields, (function, payload)
    assert count_rows(db, "ocs_deliveries") == 0
    # A position delivery names its day, not outbox rows; a 2xx is accepted.
    recorded = db.execute("SELECT ocs_record_delivery(%s)", [Jsonb(
        {"store_id": store, "kind": "position", "day": "2026-11-30", "attempt": 1, "status": 202})]).fetchone()[0]
    db.commit()
    assert (recorded["accepted"], recorded["marked_sent"]) == (True, 0)
    assert outbox(db, store) == [(False, 0)]


def test_the_days_position_is_sent_and_recorded_and_an_unbalanced_day_is_held(db, dsn, platform):
    store = movements(db)
    day = db.execute("SELECT DISTINCT day FROM ocs_outbox WHERE store_id = %s", [store]).fetchone()[0]
    db.commit()
    platform.answers = [503, 200]
    outcome = ocs.send_position(dsn, store, day, platform.url, TOKEN, sleep=lambda _: None)
    assert (outcome["sent"], outcome["held"]) == (1, [])
    [first, request] = platform.requests
    assert request["query"] == {"crsa": ["CRSA-1"], "crol": ["CROL-1"]}
    ocs_valid(request["body"])
    assert request["body"]["inventoryPositionList"][0]["inventoryQuantityOnHand"] == "98"
    assert db.execute("SELECT kind, day, attempt, status_code, accepted FROM ocs_deliveries WHERE store_id = %s"
                      " ORDER BY id", [store]).fetchall() == [("position", day, 1, 503, False),
                                                              ("position", day, 2, 200, True)]
    db.commit()
    assert outbox(db, store) == [(False, 0)] * 3   # a position marks no event sent
    db.execute("ALTER TABLE ocs_inventory_transactions DISABLE TRIGGER ocs_inventory_transactions_outbox")
    db.execute("UPDATE ocs_inventory SET quantity_on_hand = 90, quantity_available = 90 WHERE store_id = %s", [store])
    db.execute("ALTER TABLE ocs_inventory_transactions ENABLE TRIGGER ocs_inventory_transactions_outbox")
    db.commit()
    env = {**os.environ, "POSLEDGER_OCS_TOKEN": TOKEN}
    held = posledger_cli("send", "ocs", "--store-id", store, "--url", platform.url, "--position-day", str(day),
                         "--dsn", dsn, "--json", env=env)
    assert held.returncode == 1, held.stderr
    assert json.loads(held.stdout)["held"][0]["differences"][0]["position"] == 90
    assert len(platform.requests) == 2


def test_a_resend_requeues_the_accepted_events_it_names_once_and_they_go_again_under_their_ids(db, dsn, platform):
    store = movements(db, sales=2)
    add_stock(db, store, "SKU-2", 3, "LOT-B")   # an opening, not a sale: left out of the resend below
    ocs.send(dsn, store, platform.url, TOKEN)
    first = platform.events()
    today = db.execute("SELECT day FROM ocs_outbox WHERE store_id = %s LIMIT 1", [store]).fetchone()[0]
    db.commit()
    request = {"store_id": store, "from_day": str(today), "transaction_types": ["sale"], "reason": "mapping fixed",
               "actor": "dba"}
    resent = ocs.resend(db, request)
    db.commit()
    assert resent["requeued"] == 2 and resent["transaction_types"] == ["sale"]
    assert ocs.resend(db, request)["requeued"] == 0   # already unsent: nothing more to requeue
    db.commit()
    assert ocs.send(dsn, store, platform.url, TOKEN)["sent"] == 2
    again = platform.events()[len(first):]
    assert again == [e for e in first if e["inventoryEventType"] == "PURCHASE"]   # the same ids, the same events
    kept = db.execute("SELECT reason, actor, cardinality(outbox_ids) FROM ocs_resends WHERE store_id = %s ORDER BY id",
                      [store]).fetchall()
    db.commit()
    assert kept == [("mapping fixed", "dba", 2), ("mapping fixed", "dba", 0)]


def test_a_bad_resend_names_every_problem_and_changes_nothing(db, dsn, platform):
    store = movements(db, sales=1)
    ocs.send(dsn, store, platform.url, TOKEN)
    with pytest.raises(InvalidSale) as refused:
        ocs.resend(db, {"store_id": store, "from_day": "2026-11-31", "to_day": "2026-01-01", "transaction_types": [],
                        "actor": ""})
    db.rollback()
    assert [(p["field"]) for p in refused.value.detail["problems"]] == [
        "from_day", "transaction_types", "reason", "actor"]
    with pytest.raises(InvalidSale) as misspelt:
        ocs.resend(db, {"store_id": store, "from_day": "2026-01-01", "transaction_types": ["sales"], "reason": "r",
                        "actor": "a"})
    db.rollback()
    assert [p["field"] for p in misspelt.value.detail["problems"]] == ["transaction_types"]
    with pytest.raises(InvalidSale) as backwards:
        ocs.resend(db, {"store_id": store, "from_day": "2026-02-01", "to_day": "2026-01-01", "reason": "r",
                        "actor": "a"})
    db.rollback()
    assert backwards.value.detail["problems"][0]["field"] == "to_day"
    with pytest.raises(NotFound):
        ocs.resend(db, {"store_id": "00000000-0000-4000-8000-000000000000", "from_day": "2026-01-01", "reason": "r",
                        "actor": "a"})
    db.rollback()
    assert count_rows(db, "ocs_resends") == 0 and outbox(db, store) == [(True, 1)] * 2


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_recorded_as_a_refusal_and_never_followed(db, dsn, platform, status):
    """urllib would follow a 301 or 302 with a GET and lose the events; the sender records it and stops."""
    store = movements(db, sales=0)
    platform.answers = [status]
    outcome = ocs.send(dsn, store, platform.url, TOKEN, sleep=lambda _: pytest.fail("a redirect is not retried"))
    assert outcome["refused"]["status"] == status and outcome["sent"] == 0
    assert [request["path"] for request in platform.requests] == ["/inventory-events"]
    assert deliveries(db, store) == [("events", 1, 1, status, False, False)]
    assert outbox(db, store) == [(False, 1)]


def test_posledger_send_ocs_again_requeues_from_a_payload_file(db, dsn, platform, tmp_path):
    store = movements(db, sales=1)
    ocs.send(dsn, store, platform.url, TOKEN)
    day = db.execute("SELECT max(day) FROM ocs_outbox WHERE store_id = %s", [store]).fetchone()[0]
    db.commit()
    request = tmp_path / "again.json"
    request.write_text(json.dumps({"store_id": store, "from_day": str(day), "reason": "wrong type", "actor": "dba"}))
    done = posledger_cli("send", "ocs-again", str(request), "--dsn", dsn, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["requeued"] == 2 and outbox(db, store) == [(False, 1)] * 2


def test_a_resend_waits_for_a_batch_a_sender_holds_and_requeues_it_once_it_is_sent(db, dsn):
    """A sender has claimed the day's events (rendered under the old mapping) and not yet committed: the resend
    waits for it instead of skipping its rows, and requeues them once they are marked sent."""
    store = movements(db, sales=1)
    day = db.execute("SELECT max(day) FROM ocs_outbox WHERE store_id = %s", [store]).fetchone()[0]
    db.commit()
    resent = {}

    def ask():
        with psycopg.connect(dsn, autocommit=True) as conn:
            resent.update(ocs.resend(conn, {"store_id": store, "from_day": str(day), "reason": "mapping fixed",
                                            "actor": "dba"}))

    with psycopg.connect(dsn) as sender:
        claim = sender.execute("SELECT ocs_claim_events(%s)", [Jsonb({"store_id": store, "limit": 10})]).fetchone()[0]
        asking = threading.Thread(target=ask)
        asking.start()
        time.sleep(0.5)
        assert asking.is_alive() and resent == {}   # waiting on the sender's rows
        sender.execute("SELECT ocs_record_delivery(%s)", [Jsonb({
            "store_id": store, "outbox_ids": claim["outbox_ids"], "attempt": 1, "status": 200})])
        sender.commit()
        asking.join(10)
    assert resent["requeued"] == len(claim["outbox_ids"]) == 2
    assert outbox(db, store) == [(False, 1)] * 2
