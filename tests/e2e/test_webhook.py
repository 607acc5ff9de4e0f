"""Every way Stripe delivers, through the real binaries (issue 15): a webhook endpoint (the
`webhook` function behind its Function URL) that the fake Stripe signs deliveries to as Stripe
does, thin events on the webhook and on EventBridge (the object read back from Stripe), the
destination ping, a catalog event by webhook, and Stripe's
`v2.core.health.event_generation_failure.resolved`.

    .venv/bin/python -m pytest -q tests/e2e/test_webhook.py
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from devstack.fake_stripe.webhooks import signature_header
from devstack.stack_base import WEBHOOK_SECRET
from harness import WEBHOOK_BIN
from test_catalog import AUTH, row, v1


@pytest.fixture
def webhook(e2e):
    """The webhook's URL; the fake Stripe's event sink is put back to none afterwards."""
    assert e2e.stack.webhook_started, f"the webhook did not start: is {WEBHOOK_BIN} built?"
    try:
        yield e2e.stack.urls["webhook"]
    finally:
        e2e.set_event_sink(None)


def sink(e2e, url: str, fmt: str = "webhook", payload: str = "snapshot", **extra) -> None:
    body = {"url": url, "format": fmt, "payload": payload, **extra}
    if fmt == "webhook":
        body.setdefault("secrets", [WEBHOOK_SECRET])
    e2e.stripe("POST", "/_test/event_sink", body)


def post(url: str, body: bytes, header: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return requests.post(url, data=body, headers=headers, timeout=60)


def signed(body: bytes, secret: str = WEBHOOK_SECRET, t: int | None = None) -> str:
    return signature_header([secret], body, t)


def last_event(e2e, type_: str) -> dict:
    events = e2e.http.get(f"{e2e.stripe_url}/v1/events", params={"type": type_, "limit": 1},
                          headers=AUTH).json()["data"]
    return events[0]


def test_a_paid_link_is_delivered_signed_applied_once_and_forgeries_change_nothing(e2e, cat, webhook):
    product, plink = cat.product("hook", 5)
    sink(e2e, webhook)
    session = e2e.pay_link(plink)
    assert e2e.item(cat.store, product)["available"] == 4
    assert e2e.order(session)["status"] == "fulfilled"

    event = last_event(e2e, "checkout.session.completed")
    assert event["data"]["object"]["id"] == session
    body = json.dumps(event).encode()
    replayed = post(webhook, body, signed(body))
    assert (replayed.status_code, replayed.json()["status"]) == (200, "applied")
    altered = body.replace(b'"paid"', b'"Paid"', 1)  # one byte
    assert altered != body and len(altered) == len(body)
    for name, req in {
        "wrong secret": (body, signed(body, "whsec_not_the_endpoints")),
        "stale": (body, signed(body, t=int(time.time()) - 301)),
        "unsigned": (body, None),
        "altered by one byte": (altered, signed(body)),
    }.items():
        r = post(webhook, *req)
        assert (r.status_code, r.json()["error"]) == (400, "bad_signature"), name
        assert "whsec" not in r.text and "Stripe-Signature header does not verify" in r.text
    huge = b'{"id": "evt_x", "pad": "' + b"x" * 300_000 + b'"}'
    assert post(webhook, huge, signed(huge)).status_code == 413
    assert e2e.item(cat.store, product)["available"] == 4


@pytest.mark.parametrize("fmt", ["webhook", "eventbridge"])
def test_a_thin_event_is_applied_from_the_object_read_back(e2e, cat, webhook, fmt):
    product, plink = cat.product(f"thin{fmt}", 5)
    sink(e2e, webhook if fmt == "webhook" else f"{e2e.lambda_url}/_invoke", fmt, "thin")
    seq = e2e.stripe_seq()
    session = e2e.pay_link(plink)
    assert e2e.item(cat.store, product)["available"] == 4
    assert e2e.order(session)["status"] == "fulfilled"
    reads = [r for r in e2e.stripe_requests_since(seq)
             if r["method"] == "GET" and r["path"] == f"/v1/checkout/sessions/{session}"]
    assert len(reads) == 1, "one Stripe read per thin event: its object"


def test_the_ping_is_healthy(e2e, webhook):
    ping = json.dumps({"id": "evt_ping_e2e", "object": "v2.core.event",
                       "type": "v2.core.event_destination.ping",
                       "created": "2026-12-07T10:00:00.000Z", "livemode": False,
                       "related_object": {"id": "ed_1", "type": "v2.core.event_destination",
                                          "url": "/v2/core/event_destinations/ed_1"}}).encode()
    r = post(webhook, ping, signed(ping))
    assert (r.status_code, r.json()) == (200, {"status": "healthy"})


def test_an_event_stripe_never_generated_is_rechecked_applied_once_and_recorded(e2e, cat, webhook):
    product, _ = cat.product("lost", 5)
    session = e2e.stripe_session([(product, 2)], cat.store)  # paid, and no event at all
    old = e2e.stripe_session([(product, 1)], cat.store, created=int(time.time()) - 86_400)
    sink(e2e, webhook)

    def failed(session_id: str) -> dict:
        return e2e.stripe("POST", "/_test/event_generation_failure", {
            "related_object": {"id": session_id, "type": "checkout.session"},
            "event_type": "checkout.session.completed"})

    first = failed(session["id"])
    assert first["delivery"]["ok"] and first["delivery"]["result"] == {"status": "rechecked"}
    assert e2e.item(cat.store, product)["available"] == 3
    assert e2e.order(session["id"])["status"] == "fulfilled"
    assert failed(session["id"])["delivery"]["ok"]  # again: nothing more
    assert e2e.item(cat.store, product)["available"] == 3
    # A session from before stockbridge managed the product: history, left alone.
    assert failed(old["id"])["delivery"]["ok"]
    assert e2e.order(old["id"]) is None and e2e.item(cat.store, product)["available"] == 3
    records = e2e.discrepancies(what="stripe_generated_every_event")
    def about(s: dict) -> list[dict]:
        return [r for r in records if r["subject"] == f"checkout.session {s['id']}"]

    assert [r["repaired"] for r in about(session)] == [True, False]  # repaired, then nothing to do
    assert [r["repaired"] for r in about(old)] == [False]
    assert "left alone" in about(old)[0]["found"]


def test_a_catalog_event_by_webhook_reaches_the_catalog_sync(e2e, ids, webhook):
    product, store = f"hook_cat_{ids['u']}", ids["store"]
    e2e.import_catalog([row(product, store, name="Catalog name")])
    e2e.wait_catalog_idle()
    pipe = e2e.stripe("GET", "/_test/catalog_event_sink")["url"]
    e2e.stripe("POST", "/_test/catalog_event_sink", {"url": None})  # only the webhook hears it
    try:
        e2e.stripe("POST", f"/_test/dashboard/products/{product}", {"name": "Dashboard name"})
    finally:
        e2e.stripe("POST", "/_test/catalog_event_sink", {"url": pipe})
    event = last_event(e2e, "product.updated")
    assert event["data"]["object"]["id"] == product
    body = json.dumps(event).encode()
    r = post(webhook, body, signed(body))
    assert (r.status_code, r.json()["status"]) == (200, "queued_for_catalog_sync")
    e2e.wait_catalog_idle()
    assert v1(e2e, f"/v1/products/{product}")["name"] == "Catalog name", e2e.catalog_sync_log_tail()


def test_a_thin_event_stripe_cannot_answer_for_is_parked_then_retried_by_the_cli(e2e, cat, webhook):
    product, _ = cat.product("parkedthin", 5)
    later = f"cs_test_later_{cat.u}"
    thin = json.dumps({"id": f"evt_thin_parked_{cat.u}", "object": "v2.core.event",
                       "type": "v1.checkout.session.completed",
                       "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                       "livemode": False,
                       "related_object": {"id": later, "type": "checkout.session",
                                          "url": f"/v1/checkout/sessions/{later}"}}).encode()
    r = post(webhook, thin, signed(thin))
    assert (r.status_code, r.json()["status"]) == (200, "parked"), r.text
    listed = e2e.cli("parked", "list").stdout
    assert f"event:evt_thin_parked_{cat.u}" in listed and "No such" in listed, listed
    # Stripe has the session now (a person looked into it): the retry applies it, once.
    e2e.stripe_session([(product, 2)], cat.store, cs_id=later)
    out = e2e.cli("parked", "retry", f"event:evt_thin_parked_{cat.u}").stdout
    assert "applied" in out, out
    assert e2e.item(cat.store, product)["available"] == 3
    assert f"event:evt_thin_parked_{cat.u}" not in e2e.cli("parked", "list").stdout
