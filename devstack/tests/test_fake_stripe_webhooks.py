"""The fake Stripe as a webhook endpoint's sender and as a source of thin events: the
``Stripe-Signature`` it makes (checked here the way Stripe's libraries check it), the thin
notifications it sends, ``GET /v2/core/events/{id}`` and the health event
``v2.core.health.event_generation_failure.resolved``.

    .venv/bin/python -m pytest -q devstack/tests/test_fake_stripe_webhooks.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack.fake_stripe import DEFAULT_FIXTURES, create_app
from devstack.fake_stripe.webhooks import sign

AUTH = {"Authorization": "Bearer sk_test_51WebhookTestKey"}
SECRET = "whsec_test_fake"


def verify(header: str, body: bytes, secret: str, tolerance: int = 300) -> bool:
    """stripe-python's check (stripe/_webhook.py), written out."""
    items = [part.split("=", 1) for part in header.split(",")]
    t = int(next(v for k, v in items if k == "t"))
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - t) <= tolerance and any(
        hmac.compare_digest(expected, v) for k, v in items if k == "v1")


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def app(self, environ, start_response):
        req = Request(environ)
        self.requests.append((dict(req.headers), req.get_data()))
        return Response('{"status": "applied"}', 200,
                        mimetype="application/json")(environ, start_response)


@pytest.fixture()
def stripe():
    app = create_app(str(DEFAULT_FIXTURES))
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def pay(stripe: str) -> str:
    p = requests.post(f"{stripe}/_test/products", json={
        "name": "Mug", "unit_amount": 1200, "currency": "usd"}).json()
    link = requests.post(f"{stripe}/_test/payment_links", json={
        "price": p["price"]["id"], "metadata": {"store_id": "s"}}).json()
    page = requests.get(f"{stripe}/pay/{link['id']}")
    sid = re.search(r'name="session" value="([^"]+)"', page.text).group(1)
    requests.post(f"{stripe}/pay/{link['id']}", data={"session": sid})
    return sid


def test_the_signature_is_stripes_scheme_and_the_rust_tests_vector():
    assert sign("whsec_test_secret", 1_700_000_000, b'{"id":"evt_1"}') == \
        "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"


def test_a_webhook_delivery_is_the_bare_event_signed_with_every_secret(stripe):
    rec = Recorder()
    r = requests.post(f"{stripe}/_test/event_sink", json={
        "url": rec.url, "format": "webhook", "secrets": [SECRET, "whsec_previous"]})
    assert r.json()["format"] == "webhook"
    sid = pay(stripe)
    headers, body = rec.requests[-1]
    event = json.loads(body)
    assert (event["object"], event["type"]) == ("event", "checkout.session.completed")
    assert event["data"]["object"]["id"] == sid
    header = headers["Stripe-Signature"]
    assert verify(header, body, SECRET) and verify(header, body, "whsec_previous")
    assert not verify(header, body, "whsec_other")
    assert not verify(header, body + b" ", SECRET)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64},v0=[0-9a-f]{64}", header)
    # A sink told to sign in the past (a stale delivery).
    requests.post(f"{stripe}/_test/event_sink", json={
        "url": rec.url, "format": "webhook", "secrets": [SECRET], "timestamp_offset": -600})
    pay(stripe)
    headers, body = rec.requests[-1]
    assert not verify(headers["Stripe-Signature"], body, SECRET)


def test_a_thin_event_names_its_object_and_can_be_fetched(stripe):
    rec = Recorder()
    requests.post(f"{stripe}/_test/event_sink", json={
        "url": rec.url, "format": "eventbridge", "payload": "thin"})
    sid = pay(stripe)
    _, body = rec.requests[-1]
    envelope = json.loads(body)
    thin = envelope["detail"]
    assert envelope["detail-type"] == thin["type"] == "v1.checkout.session.completed"
    assert thin["object"] == "v2.core.event" and "data" not in thin
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", thin["created"])
    assert thin["related_object"] == {"id": sid, "type": "checkout.session",
                                      "url": f"/v1/checkout/sessions/{sid}"}
    fetched = requests.get(f"{stripe}/v2/core/events/{thin['id']}", headers=AUTH).json()
    assert fetched == thin
    assert requests.get(f"{stripe}/v2/core/events/{thin['id']}").status_code == 401
    live = {"Authorization": "Bearer sk_live_51WebhookTestKey"}
    assert requests.get(f"{stripe}/v2/core/events/{thin['id']}", headers=live).status_code == 404


def test_the_health_event_goes_only_to_a_webhook_and_its_data_names_the_object(stripe):
    rec = Recorder()
    requests.post(f"{stripe}/_test/event_sink", json={"url": rec.url})
    r = requests.post(f"{stripe}/_test/event_generation_failure", json={
        "related_object": {"id": "cs_1", "type": "checkout.session"},
        "event_type": "checkout.session.completed"}).json()
    assert r["delivery"] is None and rec.requests == []
    requests.post(f"{stripe}/_test/event_sink", json={
        "url": rec.url, "format": "webhook", "secrets": [SECRET]})
    r = requests.post(f"{stripe}/_test/event_generation_failure", json={
        "related_object": {"id": "cs_1", "type": "checkout.session"},
        "event_type": "checkout.session.completed"}).json()
    assert r["delivery"]["ok"]
    headers, body = rec.requests[-1]
    assert verify(headers["Stripe-Signature"], body, SECRET)
    note = json.loads(body)
    assert note["type"] == "v2.core.health.event_generation_failure.resolved"
    assert note["id"] == r["event"] and "data" not in note
    fetched = requests.get(f"{stripe}/v2/core/events/{r['event']}", headers=AUTH).json()
    assert fetched["data"]["impact"]["related_object"]["id"] == "cs_1"
    assert fetched["data"]["impact"]["event_type"] == "checkout.session.completed"
