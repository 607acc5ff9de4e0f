"""The back-in-stock waitlist (issue 16 §2, docs/waitlist.md) end to end: the real checkout,
broadcaster, inventory and CLI binaries on the local stack, moto's EventBridge routing
stockbridge's events to SQS queues that stand in for the merchant's mailer.

- The checkout's 409 for a sold-out product offers the waitlist; `POST /waitlist` answers 202
  and publishes a confirmation request; the confirm link's page (GET) confirms nobody, its
  button (POST) does; `stockbridge waitlist list` and `erase` see the entries.
- A merchant's restock from 0 (`stock set`) is announced once by the broadcaster with the
  count of confirmed addresses and a link that lists them; a change that is not from 0 is not
  announced; the unsubscribe link's one-click POST takes an address off.

    .venv/bin/python -m pytest -q tests/e2e/test_waitlist.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterable

import pytest
import requests

from conftest import CLI_BIN, E2E, INVENTORY_BIN, REPO_ROOT, _wait_workers_ready, uid
from harness import CHECKOUT_BIN, UNIT_AMOUNT
from devstack.stack import Stack

BROADCASTER_BIN = REPO_ROOT / "target" / "debug" / "broadcaster"
CONFIRMATION = "stockbridge.waitlist_confirmation_requested"
BACK_IN_STOCK = "stockbridge.back_in_stock"


def _received(e2e: E2E, url: str, want: int, timeout: float = 20.0) -> list[dict]:
    """At least `want` events from the queue (waits up to `timeout`), and whatever else came."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msgs = e2e.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])
        for m in msgs:
            got.append(json.loads(m["Body"]))
            e2e.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if len(got) >= want and not msgs:
            break
        time.sleep(0.2)
    return got


def _join(e2e: E2E, store: str, product: str, email: str) -> requests.Response:
    return e2e.post_checkout({"store_id": store, "product_id": product, "email": email},
                             key=None, path="/waitlist", headers={"Origin": "http://127.0.0.1"})


def _listed(e2e: E2E, store: str, product: str) -> list[str]:
    out = e2e.cli("waitlist", "list", product, "--store", store, "--json").stdout
    return [e["email"] for e in json.loads(out)["entries"]]


def _confirm(e2e: E2E, url: str) -> None:
    page = requests.get(url, timeout=30)
    assert page.status_code == 200 and '<form method="post">' in page.text, page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    done = requests.post(url, timeout=30)
    assert done.status_code == 200 and "You are on the list" in done.text, done.text


def test_a_sold_out_checkout_offers_the_waitlist_and_only_a_confirmed_address_counts(checkout_stack, ids):
    e2e, store, u = checkout_stack, ids["store"], ids["u"]
    product = f"prod_wait_{u}"
    e2e.sellable(store, {product: (0, UNIT_AMOUNT)})
    url, rule = e2e.merchant_events_queue(CONFIRMATION, f"e2e-confirm-{u}")
    try:
        r = e2e.post_checkout({"store_id": store, "items": [{"product_id": product, "quantity": 1}]})
        assert r.status_code == 409, r.text
        assert r.json()["waitlist"] == {"method": "POST", "path": "/waitlist", "store_id": store,
                                        "product_ids": [product]}
        bad = _join(e2e, store, product, "not-an-address")
        assert (bad.status_code, bad.json()["field"]) == (400, "email"), bad.text
        assert bad.headers["access-control-allow-origin"] == "http://127.0.0.1"
        r = _join(e2e, store, product, f"ana.{u}@example.com")
        assert r.status_code == 202, r.text
        [event] = _received(e2e, url, 1)
        detail = event["detail"]
        assert (detail["email"], detail["product_id"], detail["store_id"]) == (
            f"ana.{u}@example.com", product, store)
        assert detail["confirm_url"].startswith(e2e.checkout_url + "/waitlist/confirm?token=")
        # Unconfirmed: nobody waits yet; the page alone (a mail scanner) confirms nobody.
        assert _listed(e2e, store, product) == []
        assert requests.get(detail["confirm_url"], timeout=30).status_code == 200
        assert _listed(e2e, store, product) == []
        _confirm(e2e, detail["confirm_url"])
        assert _listed(e2e, store, product) == [f"ana.{u}@example.com"]
        # Joining again while waiting asks nothing, and answers the same.
        assert _join(e2e, store, product, f"ANA.{u}@example.com").status_code == 202
        assert _received(e2e, url, 0, timeout=3) == []
        # Erasure on request: the address is gone from the list.
        out = e2e.cli("waitlist", "erase", f"Ana.{u}@Example.com", "--json").stdout
        assert json.loads(out) == {"erased": 1}
        assert _listed(e2e, store, product) == []
        gone = requests.post(detail["confirm_url"], timeout=30)
        assert gone.status_code == 410, gone.text
    finally:
        e2e.remove_rule(rule)


@pytest.fixture(scope="module")
def restocks(tmp_path_factory) -> Iterable[E2E]:
    """A stack like the template's for this: the broadcaster on the table's stream beside the
    checkout and the inventory Lambda."""
    for binary in (BROADCASTER_BIN, CHECKOUT_BIN):
        assert Path(binary).exists(), f"{binary} is not built (cargo build --workspace)"
    s = Stack(state_dir=tmp_path_factory.mktemp("waitlist-stack"), inventory_binary=INVENTORY_BIN,
              workers=2, ready_timeout=60, lambda_timeout=120,
              broadcaster_binary=BROADCASTER_BIN, checkout_binary=CHECKOUT_BIN)
    s.start()
    try:
        assert s.broadcaster_started and s.checkout_started
        h = E2E(s, s.env["TABLE_NAME"], tmp_path_factory.mktemp("waitlist-work"))
        assert h.cli_ready(refresh=True), f"{CLI_BIN} is not the stockbridge CLI"
        h.create_table()
        _wait_workers_ready(h, 2)
        yield h
    finally:
        s.stop()


def test_a_restock_from_zero_is_announced_once_with_who_waits(restocks):
    h, u = restocks, uid()
    store, product = f"store_wait_{u}", f"prod_back_{u}"
    h.seed(store, [{"product_id": product, "name": "E2E cap", "stock": 0}])
    confirm_q, r1 = h.merchant_events_queue(CONFIRMATION, f"e2e-wconfirm-{u}")
    back_q, r2 = h.merchant_events_queue(BACK_IN_STOCK, f"e2e-back-{u}")
    try:
        for who in ("ana", "bob"):
            assert _join(h, store, product, f"{who}.{u}@example.com").status_code == 202
        requests_ = {e["detail"]["email"]: e["detail"] for e in _received(h, confirm_q, 2)}
        _confirm(h, requests_[f"ana.{u}@example.com"]["confirm_url"])  # bob never confirms

        h.cli("stock", "set", product, "5", "--store", store)
        h.stack.wait_broadcasts()
        [announced] = _received(h, back_q, 1)
        d = announced["detail"]
        assert (d["product_id"], d["available"], d["count"], d["name"]) == (product, 5, 1, "E2E cap")
        page = requests.get(d["entries_url"], timeout=30)
        assert page.status_code == 200, page.text
        entries = page.json()
        assert [e["email"] for e in entries["entries"]] == [f"ana.{u}@example.com"]
        assert entries["next"] is None

        # Not from 0: no announcement; sold out and restocked: one more (no one left waiting).
        h.cli("stock", "adjust", product, "2", "--store", store)
        h.stack.wait_broadcasts()
        assert _received(h, back_q, 0, timeout=3) == []
        h.cli("stock", "set", product, "0", "--store", store)
        h.cli("stock", "set", product, "3", "--store", store)
        h.stack.wait_broadcasts()
        [again] = _received(h, back_q, 1)
        assert (again["detail"]["count"], again["detail"]["restock"] > d["restock"]) == (0, True)

        # The one-click unsubscribe (RFC 8058) of an entry: off every later list.
        leave = entries["entries"][0]["unsubscribe_url"]
        r = requests.post(leave, data="List-Unsubscribe=One-Click", timeout=30,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.text
        gone = requests.post(requests_[f"ana.{u}@example.com"]["confirm_url"], timeout=30)
        assert gone.status_code == 410, "the entry is gone: its confirm link finds nothing"
    finally:
        h.remove_rule(r1)
        h.remove_rule(r2)
