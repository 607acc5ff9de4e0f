"""The fake Stripe as an Event Destination: the hosted payment page, the event sink (the
EventBridge envelope POSTed to e.g. the Lambda driver's /_invoke) and GET /v1/events.

A real threaded fake (werkzeug) and a small recording sink stand in for Stripe and the Lambda;
the sink can refund the PaymentIntent before it answers, like the inventory function does
for an order it cannot fill.

    .venv/bin/python -m pytest -q devstack/tests/test_fake_stripe_events.py
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack.fake_stripe import DEFAULT_FIXTURES, create_app, format_price
from devstack.tests.test_fake_stripe_contract import RustSchema, _stripe_crates

REPO = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": "Bearer sk_test_51EventsTestKey"}
LIVE_AUTH = {"Authorization": "Bearer sk_live_51EventsTestKey"}
STORE = "store_events"


class Sink:
    """Records every envelope; answers like the Lambda driver's /_invoke."""

    def __init__(self) -> None:
        self.envelopes: list[dict] = []
        self.stripe: Optional[str] = None
        self.refund_products: set[str] = set()  # refund orders of these (sold out)
        self.fail_with: Optional[int] = None
        self.delay = 0.0
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/_invoke"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def app(self, environ: dict, start_response: Any) -> Any:
        req = Request(environ)
        envelope = json.loads(req.get_data())
        with self.lock:
            self.envelopes.append(envelope)
        time.sleep(self.delay)
        if self.fail_with:
            body = {"ok": False, "error": {"errorType": "Boom", "errorMessage": "sink failed"}}
            return Response(json.dumps(body), self.fail_with,
                            mimetype="application/json")(environ, start_response)
        session = envelope["detail"]["data"]["object"]
        items = requests.get(f"{self.stripe}/v1/checkout/sessions/{session['id']}/line_items",
                             headers=AUTH).json()["data"]
        outcome = "Fulfilled"
        if any(it["price"]["product"] in self.refund_products for it in items):
            r = requests.post(f"{self.stripe}/v1/refunds", headers=AUTH,
                              data={"payment_intent": session["payment_intent"]})
            assert r.status_code == 200, r.text
            outcome = "Oversold"
        body = {"request_id": "r", "ok": True, "response": {"outcome": outcome}, "error": None}
        return Response(json.dumps(body), 200, mimetype="application/json")(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


@pytest.fixture()
def stripe():
    app = create_app(str(DEFAULT_FIXTURES))
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    t.join(5)
    srv.server_close()


@pytest.fixture()
def sink(stripe):
    s = Sink()
    s.stripe = stripe
    r = requests.post(f"{stripe}/_test/event_sink", json={"url": s.url})
    assert r.json() == {"url": s.url, "timeout": 120.0, "format": "eventbridge",
                        "payload": "snapshot"}
    yield s
    s.close()


def product_and_link(stripe: str, name: str = "Mug", amount: int = 1200,
                     **product: Any) -> tuple[str, dict]:
    p = requests.post(f"{stripe}/_test/products", json={
        "name": name, "unit_amount": amount, "currency": "usd", **product}).json()
    link = requests.post(f"{stripe}/_test/payment_links", json={
        "price": p["price"]["id"], "metadata": {"store_id": STORE}}).json()
    return p["product"]["id"], link


def open_checkout(stripe: str, link_id: str, **params: str) -> tuple[requests.Response, str]:
    r = requests.get(f"{stripe}/pay/{link_id}", params=params)
    assert r.status_code == 200, r.text
    return r, re.search(r'name="session" value="([^"]+)"', r.text).group(1)


def result_of(page: requests.Response) -> tuple[str, str, str]:
    m = re.search(r'data-testid="(order-[a-z-]+)"[^>]*data-order-id="([^"]*)"'
                  r'[^>]*data-payment-intent="([^"]*)"', page.text)
    assert m, page.text
    return m.group(1), m.group(2), m.group(3)


def state(stripe: str) -> dict:
    return requests.get(f"{stripe}/_test/state").json()


# --------------------------------------------------------------------------- the page


def test_payment_page_is_accessible_and_complete(stripe):
    pid, link = product_and_link(stripe, "Stockbridge mug", 1200,
                                 images=["http://127.0.0.1:9/assets/demo/mug.svg"],
                                 description="Stoneware")
    assert link["url"] == f"{stripe}/pay/{link['id']}"  # /_test links get the real URL too
    page, sid = open_checkout(stripe, link["id"], **{"return": "http://127.0.0.1:9/shop/"})
    html = page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert '<html lang="en">' in html and "<title>Pay store_events</title>" in html
    assert 'data-testid="product-name">Stockbridge mug<' in html
    assert '<img src="http://127.0.0.1:9/assets/demo/mug.svg" alt="Stockbridge mug"' in html
    assert 'data-testid="price">$12.00<' in html and 'data-testid="quantity">1<' in html
    assert re.search(rf'<form method="post" action="/pay/{link["id"]}">', html)
    assert '<button type="submit" data-testid="pay-button">Pay</button>' in html
    assert '<input type="hidden" name="return" value="http://127.0.0.1:9/shop/">' in html
    assert 'href="http://127.0.0.1:9/shop/" data-testid="back-to-store"' in html
    # visiting opened a checkout session for the link (no PaymentIntent yet)
    s = requests.get(f"{stripe}/v1/checkout/sessions/{sid}", headers=AUTH).json()
    assert (s["status"], s["payment_status"], s["payment_intent"], s["payment_link"]) == (
        "open", "unpaid", None, link["id"])
    # reopening with ?session= shows the same one
    _, again = open_checkout(stripe, link["id"], session=sid)
    assert again == sid
    # a javascript: return URL is dropped
    r = requests.get(f"{stripe}/pay/{link['id']}", params={"return": "javascript:alert(1)"})
    assert "javascript:" not in r.text and "back-to-store" not in r.text
    assert requests.get(f"{stripe}/pay/plink_nope").status_code == 404


def test_format_price():
    assert format_price(1200, "usd") == "$12.00"
    assert format_price(123456, "eur") == "€1,234.56"
    assert format_price(500, "jpy") == "¥500"
    assert format_price(5, "sek") == "0.05 SEK"


def test_inactive_link_answers_410_with_its_message(stripe):
    _, link = product_and_link(stripe)
    _, open_sid = open_checkout(stripe, link["id"])
    r = requests.post(f"{stripe}/v1/payment_links/{link['id']}", headers=AUTH,
                      data={"active": "false", "inactive_message": "Sold out, back soon"})
    assert r.status_code == 200
    page = requests.get(f"{stripe}/pay/{link['id']}", params={"return": "http://127.0.0.1:9/"})
    assert page.status_code == 410
    assert '<p data-testid="link-inactive" role="alert">Sold out, back soon</p>' in page.text
    assert 'data-testid="back-to-store"' in page.text
    # paying without an open session: 410 too, nothing charged
    assert requests.post(f"{stripe}/pay/{link['id']}").status_code == 410
    assert state(stripe)["payment_intents"] == {}
    # a checkout opened before the link went off can still be paid (as at Stripe)
    r = requests.post(f"{stripe}/pay/{link['id']}", data={"session": open_sid})
    assert r.status_code == 200 and result_of(r)[0] == "order-no-sink"
    # an unknown session is refused
    r = requests.post(f"{stripe}/pay/{link['id']}", data={"session": "cs_test_nope"})
    assert r.status_code == 400


# --------------------------------------------------------------------------- the sink


def test_paying_emits_the_eventbridge_envelope_and_confirms(stripe, sink):
    pid, link = product_and_link(stripe)
    _, sid = open_checkout(stripe, link["id"])
    r = requests.post(f"{stripe}/pay/{link['id']}",
                      data={"session": sid, "return": "http://127.0.0.1:9/"})
    assert r.status_code == 200
    kind, order, pi = result_of(r)
    assert kind == "order-ok" and order == sid
    assert f"Thank you — order {sid} confirmed" in r.text
    assert 'data-testid="back-to-store"' in r.text

    assert len(sink.envelopes) == 1
    env = sink.envelopes[0]
    sample = json.loads((REPO / "events" / "checkout.session.completed.paid.json").read_text())
    assert set(env) == set(sample)
    assert env["version"] == "0" and re.fullmatch(r"[0-9a-f-]{36}", env["id"])
    assert env["detail-type"] == "checkout.session.completed"
    assert env["source"] == "aws.partner/stripe.com/ed_test_local"
    assert (env["account"], env["region"], env["resources"]) == ("000000000000", "us-east-1", [])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", env["time"])
    ev = env["detail"]
    assert set(sample["detail"]) <= set(ev)
    assert ev["id"].startswith("evt_") and ev["object"] == "event"
    assert ev["type"] == "checkout.session.completed"
    assert ev["api_version"] == "2026-09-30.endive" and ev["livemode"] is False
    assert ev["pending_webhooks"] == 1 and ev["request"] == {"id": None, "idempotency_key": None}
    assert abs(ev["created"] - time.time()) < 60
    session = ev["data"]["object"]
    assert session == requests.get(f"{stripe}/v1/checkout/sessions/{sid}", headers=AUTH).json()
    assert set(sample["detail"]["data"]["object"]) <= set(session)
    assert (session["status"], session["payment_status"], session["mode"]) == (
        "complete", "paid", "payment")
    assert session["payment_link"] == link["id"] and session["metadata"] == {"store_id": STORE}
    assert session["payment_intent"] == pi and session["amount_total"] == 1200
    pi_obj = requests.get(f"{stripe}/v1/payment_intents/{pi}", headers=AUTH).json()
    assert (pi_obj["status"], pi_obj["amount_received"]) == ("succeeded", 1200)
    items = requests.get(f"{stripe}/v1/checkout/sessions/{sid}/line_items", headers=AUTH).json()
    assert [(it["price"]["product"], it["quantity"]) for it in items["data"]] == [(pid, 1)]

    st = state(stripe)
    assert [d["ok"] for d in st["event_deliveries"]] == [True]
    assert st["events"][0]["pending_webhooks"] == 0  # delivered
    # paying the same checkout again (double submit) sends nothing more
    again = requests.post(f"{stripe}/pay/{link['id']}", data={"session": sid})
    assert result_of(again)[:2] == ("order-ok", sid) and len(sink.envelopes) == 1
    # POST without a session (no page visited) creates and pays a new checkout
    direct = requests.post(f"{stripe}/pay/{link['id']}")
    assert result_of(direct)[0] == "order-ok" and result_of(direct)[1] != sid
    assert len(sink.envelopes) == 2


def test_refund_by_the_function_shows_sold_out_page(stripe, sink):
    pid, link = product_and_link(stripe)
    sink.refund_products.add(pid)
    r = requests.post(f"{stripe}/pay/{link['id']}")
    kind, order, pi = result_of(r)
    assert kind == "order-refunded"
    assert "Sorry, it sold out while you were paying — you have been refunded in full" in r.text
    refunds = [x for x in state(stripe)["refunds"] if x["payment_intent"] == pi]
    assert len(refunds) == 1 and refunds[0]["amount"] == 1200


@pytest.mark.parametrize("failure", ["http500", "unreachable"])
def test_failed_delivery_says_the_order_is_pending(stripe, sink, failure):
    _, link = product_and_link(stripe)
    if failure == "http500":
        sink.fail_with = 500
    else:
        requests.post(f"{stripe}/_test/event_sink", json={"url": "http://127.0.0.1:9/_invoke",
                                                          "timeout": 2})
    r = requests.post(f"{stripe}/pay/{link['id']}")
    assert r.status_code == 200 and result_of(r)[0] == "order-pending"
    d = state(stripe)["event_deliveries"][-1]
    assert d["ok"] is False and d["error"]


def test_event_sink_api(stripe):
    assert requests.get(f"{stripe}/_test/event_sink").json()["url"] is None
    assert requests.post(f"{stripe}/_test/event_sink", json={"url": "ftp://x"}).status_code == 400
    assert requests.post(f"{stripe}/_test/event_sink", json={}).status_code == 400
    assert requests.post(f"{stripe}/_test/event_sink",
                         json={"url": "http://127.0.0.1:1/x", "timeout": 0}).status_code == 400
    assert requests.post(f"{stripe}/_test/event_sink",
                         json={"url": "http://127.0.0.1:1/x"}).status_code == 200
    requests.post(f"{stripe}/_test/reset")  # configuration survives a state reset
    assert requests.get(f"{stripe}/_test/event_sink").json()["url"] == "http://127.0.0.1:1/x"
    assert requests.post(f"{stripe}/_test/event_sink", json={"url": None}).json()["url"] is None
    _, link = product_and_link(stripe)
    assert result_of(requests.post(f"{stripe}/pay/{link['id']}"))[0] == "order-no-sink"


def test_event_sink_command_line_option(tmp_path):
    sink = Sink()
    ready = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "devstack.fake_stripe", "--port", "0",
                             "--ready-file", str(ready), "--event-sink", sink.url],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while not ready.exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.05)
        base = f"http://127.0.0.1:{int(ready.read_text())}"
        sink.stripe = base
        assert requests.get(f"{base}/_test/event_sink").json()["url"] == sink.url
        _, link = product_and_link(base)
        assert result_of(requests.post(f"{base}/pay/{link['id']}"))[0] == "order-ok"
        assert len(sink.envelopes) == 1
    finally:
        proc.terminate()
        proc.wait(10)
        sink.close()
    bad = subprocess.run([sys.executable, "-m", "devstack.fake_stripe", "--event-sink", "nope"],
                         cwd=REPO, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "event sink" in bad.stderr


def test_concurrent_buyers_each_get_one_event(stripe, sink):
    _, link = product_and_link(stripe)
    sink.delay = 0.2  # the function takes a while: payments overlap
    results: list = []

    def buy() -> None:
        results.append(result_of(requests.post(f"{stripe}/pay/{link['id']}")))

    threads = [threading.Thread(target=buy) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(k for k, _, _ in results) == ["order-ok"] * 8
    assert len({o for _, o, _ in results}) == 8
    assert sorted(e["detail"]["data"]["object"]["id"] for e in sink.envelopes) == \
        sorted(o for _, o, _ in results)


# --------------------------------------------------------------------------- GET /v1/events


def _pay(stripe: str, n: int) -> list[str]:
    _, link = product_and_link(stripe)
    for _ in range(n):
        requests.post(f"{stripe}/pay/{link['id']}")
    return [e["id"] for e in reversed(state(stripe)["events"])]  # newest first


def test_list_events_newest_first_with_cursors(stripe):
    ids = _pay(stripe, 5)
    get = lambda q="": requests.get(f"{stripe}/v1/events{q}", headers=AUTH)  # noqa: E731
    page = get().json()
    assert page["object"] == "list" and page["url"] == "/v1/events"
    assert [e["id"] for e in page["data"]] == ids and page["has_more"] is False
    p1 = get("?limit=2").json()
    assert [e["id"] for e in p1["data"]] == ids[:2] and p1["has_more"] is True
    p2 = get(f"?limit=2&starting_after={ids[1]}").json()
    assert [e["id"] for e in p2["data"]] == ids[2:4] and p2["has_more"] is True
    p3 = get(f"?limit=2&starting_after={ids[3]}").json()
    assert [e["id"] for e in p3["data"]] == ids[4:] and p3["has_more"] is False
    back = get(f"?limit=2&ending_before={ids[4]}").json()
    assert [e["id"] for e in back["data"]] == ids[2:4] and back["has_more"] is True
    assert get(f"/{ids[0]}").json()["id"] == ids[0]
    assert get("/evt_nope").status_code == 404
    assert get("?starting_after=evt_nope").status_code == 400
    assert get("?limit=0").status_code == 400
    assert get("?bogus=1").json()["error"]["code"] == "parameter_unknown"
    # test-mode events are invisible to a live key, as at Stripe
    assert requests.get(f"{stripe}/v1/events", headers=LIVE_AUTH).json()["data"] == []
    assert requests.get(f"{stripe}/v1/events").status_code == 401


def test_list_events_filters(stripe):
    ids = _pay(stripe, 3)
    get = lambda q: requests.get(f"{stripe}/v1/events{q}", headers=AUTH).json()  # noqa: E731
    assert [e["id"] for e in get("?types[]=checkout.session.completed")["data"]] == ids
    assert [e["id"] for e in get("?types[0]=checkout.session.*")["data"]] == ids
    assert get("?type=checkout.session.completed")["data"][0]["id"] == ids[0]
    assert get("?types[]=charge.refunded")["data"] == []
    created = state(stripe)["events"][0]["created"]
    assert len(get(f"?created[gte]={created}")["data"]) == 3
    assert get(f"?created[gt]={created + 3600}")["data"] == []
    assert len(get(f"?created={created}")["data"]) == sum(
        1 for e in state(stripe)["events"] if e["created"] == created)
    bad = requests.get(f"{stripe}/v1/events?type=a&types[]=b", headers=AUTH)
    assert bad.status_code == 400


def test_events_fit_async_stripe(stripe):
    root = _stripe_crates()
    if root is None:
        pytest.skip("async-stripe 1.0.0-rc.10 sources not in ~/.cargo/registry")
    schema = RustSchema(root)
    if "Event" not in schema.structs or "keys" not in schema.structs["Event"]:
        pytest.skip("this check does not understand async-stripe's Event")
    _pay(stripe, 2)
    page = requests.get(f"{stripe}/v1/events", headers=AUTH).json()
    errs: list = []
    schema.check(copy.deepcopy(page), "stripe_types::List<Event>", "GET /v1/events", errs)
    # data.object is free-form JSON in the crate (checked as a CheckoutSession below)
    errs = [e for e in errs if "data.object" not in e and "not understood" not in e]
    for ev in page["data"]:
        schema.check(ev["data"]["object"], "CheckoutSession", "event data.object", errs)
    assert errs == []
