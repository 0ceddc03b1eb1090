"""The OCS feed's sender and report files (issue 18; docs/ocs-feed.md). The rules live in the database:
ocs_claim_events claims a batch of a store's unsent outbox rows (FOR UPDATE SKIP LOCKED) with their events
and holds back a day that fails the platform's check; ocs_record_delivery records every answer and marks
the rows sent when the platform accepted them. This module only carries the events over HTTP, in the
claiming transaction, and retries what is worth retrying.

HTTP is the standard library's (urllib.request), always with a timeout. There is no default URL: nothing is
sent anywhere the caller did not name.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import closing, nullcontext
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from posledger.calls import call

# The platform's query parameters naming the store and its retailer. From the account of the
# platform, not verified against its published API: change them here if the platform names them otherwise.
STORE_PARAMETER = "crsa"
RETAILER_PARAMETER = "crol"


def report(conn: psycopg.Connection, store_id: str, day: date | str) -> dict[str, Any]:
    """A store's day as the platform reads it (ocs_report): events, position and the platform's check."""
    return call(conn, "ocs_report", {"store_id": str(store_id), "day": str(day)})


def resend(conn: psycopg.Connection, request: dict[str, Any]) -> dict[str, Any]:
    """Mark a store's accepted events of some days unsent again, to be delivered once more under their own ids:
    a correction (ocs_resend_events; {store_id, from_day, to_day, transaction_types, reason, actor})."""
    return call(conn, "ocs_resend_events", request)


def write_report(day_report: dict[str, Any], out: Path) -> list[Path]:
    """The day's events and position files, events-<crsa or store>-<day>.json and position-..., in ``out``."""
    name = f"{day_report['crsa'] or day_report['store_id']}-{day_report['day']}"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in ("events", "position"):
        path = out / f"{kind}-{name}.json"
        path.write_text(json.dumps(day_report[kind], indent=2) + "\n")
        written.append(path)
    return written


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, recorded like a refusal: urllib would follow a 301, 302 or 303 with a GET and
    drop the events, and a moved endpoint is for a person to look at, not for the sender to guess."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, token: str, params: dict[str, str], body: dict[str, Any],
         timeout: float) -> tuple[int | None, str | None, str | None]:
    """One POST of ``body`` as JSON: (status, response body, error). error stands for the answer that did
    not come (a timeout, a refused connection); an HTTP error status is an answer, not an error."""
    query = urllib.parse.urlencode({key: value for key, value in params.items() if value is not None})
    request = urllib.request.Request(
        f"{url}{'&' if '?' in url else '?'}{query}" if query else url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace"), None
    except urllib.error.HTTPError as answer:
        with closing(answer):
            return answer.code, answer.read().decode(errors="replace"), None
    except TimeoutError as error:
        return None, None, f"timeout after {timeout:g} s: {error}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        kind = "timeout" if isinstance(reason, TimeoutError) else "connection error"
        return None, None, f"{kind}: {reason}"


def worth_retrying(status: int | None) -> bool:
    """No answer (a timeout, a connection error) or a server error (5xx): the next attempt may succeed.
    A 4xx is the platform refusing what was sent, a 3xx an endpoint that moved: sending again changes nothing."""
    return status is None or status >= 500


def send(conn_or_dsn: psycopg.Connection | str, store_id: str, url: str, token: str, *, batch: int = 100,
         timeout: float = 10.0, attempts: int = 4, backoff: float = 0.5, sender: str | None = None,
         max_batches: int | None = None, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Send a store's unsent outbox to the platform at ``url``, a batch of up to ``batch`` events a POST.

    Each batch is one transaction (a savepoint, and the caller commits, when ``conn_or_dsn`` is a connection
    already in a transaction): claim (ocs_claim_events), POST {"inventoryEventList": [...]} with the
    bearer ``token`` and the store's crsa and crol as query parameters, record every answer
    (ocs_record_delivery), commit. A timeout, a connection error or a 5xx is retried up to ``attempts`` POSTs
    in all, after a pause of ``backoff`` seconds doubled each time (with jitter); a 4xx is not. Sending stops
    at the first batch not accepted (its rows stay unsent, its answers recorded), at a day held back because
    it fails the platform's check, or when nothing is left.

    Returns {"sent": events accepted, "batches": POSTs accepted, "deliveries": every answer recorded,
    "refused": the 4xx answer or null, "failed": the last answer of a batch that ran out of attempts or null,
    "held": [{day, differences}] of days not sent}.
    """
    sender = sender or f"{socket.gethostname()}:{os.getpid()}"
    owned = isinstance(conn_or_dsn, str)
    conn = psycopg.connect(conn_or_dsn) if isinstance(conn_or_dsn, str) else conn_or_dsn
    outcome: dict[str, Any] = {"sent": 0, "batches": 0, "deliveries": [], "refused": None, "failed": None,
                               "held": []}
    with conn if owned else nullcontext(conn):
        while max_batches is None or outcome["batches"] < max_batches:
            # One transaction a batch: the claim's locks last until its answers are recorded, and an error
            # (or a kill) rolls it back, releasing the rows unsent for the next sender.
            with conn.transaction():
                finished = _send_batch(conn, str(store_id), url, token, batch, timeout, attempts, backoff,
                                       sender, sleep, outcome)
            if finished:
                break
    return outcome


def send_position(conn_or_dsn: psycopg.Connection | str, store_id: str, day: date | str, url: str, token: str, *,
                  timeout: float = 10.0, attempts: int = 4, backoff: float = 0.5, sender: str | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Send a store's position at the end of ``day`` ({"inventoryPositionList": [...]}, from ocs_report) to
    the platform at ``url``, with the retries of ``send``; every answer is recorded (kind position). A day
    that fails the platform's check is not sent: it is returned in "held". Returns send's outcome, with
    "sent" the number of positions accepted."""
    sender = sender or f"{socket.gethostname()}:{os.getpid()}"
    conn = psycopg.connect(conn_or_dsn) if isinstance(conn_or_dsn, str) else conn_or_dsn
    outcome: dict[str, Any] = {"sent": 0, "batches": 0, "deliveries": [], "refused": None, "failed": None,
                               "held": []}
    with conn if isinstance(conn_or_dsn, str) else nullcontext(conn), conn.transaction():
        found = report(conn, str(store_id), day)
        if not found["check"]["balanced"]:
            outcome["held"] = [{"day": found["day"], "differences": found["check"]["differences"]}]
            return outcome
        params = {STORE_PARAMETER: found["crsa"], RETAILER_PARAMETER: found["crol"]}
        accepted = _deliver(conn, url, token, params, found["position"],
                            {"store_id": str(store_id), "kind": "position", "day": found["day"], "sender": sender},
                            timeout, attempts, backoff, sleep, outcome)
        if accepted is not None:
            outcome["sent"] = len(found["position"]["inventoryPositionList"])
    return outcome


def _send_batch(conn: psycopg.Connection, store_id: str, url: str, token: str, batch: int, timeout: float,
                attempts: int, backoff: float, sender: str, sleep: Callable[[float], None],
                outcome: dict[str, Any]) -> bool:
    """Claim, POST and record one batch inside the connection's transaction; True when sending should stop."""
    claim = call(conn, "ocs_claim_events", {"store_id": store_id, "limit": batch})
    outcome["held"] = claim["held"]
    if not claim["outbox_ids"]:
        return True
    params = {STORE_PARAMETER: claim["crsa"], RETAILER_PARAMETER: claim["crol"]}
    accepted = _deliver(conn, url, token, params, {"inventoryEventList": claim["events"]},
                        {"store_id": store_id, "kind": "events", "outbox_ids": claim["outbox_ids"], "sender": sender},
                        timeout, attempts, backoff, sleep, outcome)
    if accepted is None:
        return True
    outcome["sent"] += accepted["marked_sent"]
    return bool(claim["held"])


def _deliver(conn: psycopg.Connection, url: str, token: str, params: dict[str, str], body: dict[str, Any],
             delivery: dict[str, Any], timeout: float, attempts: int, backoff: float,
             sleep: Callable[[float], None], outcome: dict[str, Any]) -> dict[str, Any] | None:
    """POST ``body`` until the platform accepts it, refuses it (4xx) or ``attempts`` run out, recording every
    answer (ocs_record_delivery, with the fields of ``delivery``); the accepting record, or None."""
    for attempt in range(1, attempts + 1):
        status, answer_body, error = post(url, token, params, body, timeout)
        recorded = call(conn, "ocs_record_delivery", {**delivery, "attempt": attempt, "status": status,
                                                      "body": answer_body, "error": error})
        answer = {"delivery_id": recorded["delivery_id"], "status": status, "error": error, "body": answer_body}
        outcome["deliveries"].append(answer)
        if recorded["accepted"]:
            outcome["batches"] += 1
            return recorded
        if not worth_retrying(status):
            outcome["refused"] = answer
            return None
        if attempt < attempts:
            sleep(backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))
    outcome["failed"] = outcome["deliveries"][-1]
    return None
