"""Tests for devstack/fake_stripe/ (the local fake of the Stripe API).

Most tests use Flask's test client.  Two start the real threaded werkzeug server
(concurrency, ``python -m devstack.fake_stripe``).  The responses' fit to async-stripe's
deserializers is in ``test_fake_stripe_contract.py``.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from devstack.fake_stripe import DEFAULT_FIXTURES, create_app, nest_form

REPO = Path(__file__).resolve().parents[2]
KEY = "sk_test_51FakeSecretKeyDoNotLogMe"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def app():
    return create_app(str(DEFAULT_FIXTURES))


@pytest.fixture()
def client(app):
    c = app.test_client()
    assert c.post("/_test/reset").status_code == 200
    return c


def make_session(client, *, paid=True, lines=None, **extra):
    body = {"payment_status": "paid" if paid else "unpaid",
            "line_items": lines or [{"product": "prod_widget", "unit_amount": 1500,
                                     "quantity": 2}]}
    body.update(extra)
    rv = client.post("/_test/checkout_sessions", json=body)
    assert rv.status_code == 200, rv.json
    return rv.json


def stripe_error(rv, status, type_="invalid_request_error", code=None):
    assert rv.status_code == status, rv.get_data(as_text=True)
    err = rv.json["error"]
    assert err["type"] == type_
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err.get("code") == code
    return err


# --------------------------------------------------------------------------- basics


def test_nest_form_follows_serde_qs_shapes():
    assert nest_form({"metadata[store_id]": "s1", "active": "false",
                      "line_items[1][price]": "p2", "line_items[0][price]": "p1",
                      "line_items[0][quantity]": "3", "expand[0]": "a", "expand[1]": "b"}) == {
        "metadata": {"store_id": "s1"}, "active": "false",
        "line_items": [{"price": "p1", "quantity": "3"}, {"price": "p2"}],
        "expand": ["a", "b"]}


def test_auth_required_and_key_never_recorded(client):
    s = make_session(client)
    url = f"/v1/checkout/sessions/{s['id']}"
    stripe_error(client.get(url), 401)
    stripe_error(client.get(url, headers={"Authorization": "Bearer pk_test_123"}), 401)
    stripe_error(client.get(url, headers={"Authorization": KEY}), 401)
    assert client.get(url, headers=AUTH).status_code == 200
    # a live key does not see test-mode objects (as at Stripe)
    err = stripe_error(client.get(url, headers={"Authorization": "Bearer sk_live_x1"}), 404,
                       code="resource_missing")
    assert "test mode" in err["message"]
    reqs = client.get("/_test/requests").json["requests"]
    assert [r["auth"] for r in reqs] == ["missing", "invalid", "invalid", "ok", "ok"]
    dump = json.dumps(reqs) + json.dumps(client.get("/_test/state").json)
    assert KEY not in dump and "sk_live_x1" not in dump and "pk_test_123" not in dump


def test_unknown_url_and_unknown_object(client):
    stripe_error(client.get("/v1/nope", headers=AUTH), 404)
    stripe_error(client.get("/v1/checkout/sessions/cs_test_missing", headers=AUTH), 404,
                 code="resource_missing")
    stripe_error(client.get("/v1/payment_intents/pi_missing", headers=AUTH), 404,
                 code="resource_missing")


def test_session_and_payment_intent(client):
    s = make_session(client, metadata={"store_id": "st_1"},
                     lines=[{"product": "prod_a", "unit_amount": 1500, "quantity": 2},
                            {"product": "prod_b", "unit_amount": 250, "quantity": 1}])
    assert s["id"].startswith("cs_test_a1") and len(s["id"]) == len("cs_test_a1") + 56
    got = client.get(f"/v1/checkout/sessions/{s['id']}", headers=AUTH).json
    assert got == s
    assert (got["status"], got["payment_status"], got["amount_total"], got["currency"]) == (
        "complete", "paid", 3250, "usd")
    assert got["metadata"] == {"store_id": "st_1"} and got["object"] == "checkout.session"
    pi = client.get(f"/v1/payment_intents/{s['payment_intent']}", headers=AUTH).json
    assert (pi["status"], pi["amount"], pi["amount_received"]) == ("succeeded", 3250, 3250)
    unpaid = make_session(client, paid=False, payment_intent="pi_given123")
    pi = client.get("/v1/payment_intents/pi_given123", headers=AUTH).json
    assert unpaid["payment_intent"] == "pi_given123" and pi["status"] == "processing"
    expanded = client.get(f"/v1/checkout/sessions/{s['id']}?expand[0]=line_items"
                          f"&expand[1]=payment_intent", headers=AUTH).json
    assert expanded["payment_intent"]["id"] == s["payment_intent"]
    assert [li["quantity"] for li in expanded["line_items"]["data"]] == [2, 1]


# --------------------------------------------------------------------------- line items


def test_line_items_pagination(client):
    lines = [{"product": f"prod_{i:02d}", "unit_amount": 100 + i, "quantity": i + 1}
             for i in range(25)]
    s = make_session(client, lines=lines)
    url = f"/v1/checkout/sessions/{s['id']}/line_items"
    first = client.get(url, headers=AUTH).json
    assert first["object"] == "list" and first["url"] == url
    assert len(first["data"]) == 10 and first["has_more"] is True
    item = first["data"][0]
    assert item["object"] == "item" and item["id"].startswith("li_")
    assert item["price"]["object"] == "price" and item["price"]["product"] == "prod_00"
    assert (item["quantity"], item["amount_subtotal"], item["amount_total"],
            item["currency"]) == (1, 100, 100, "usd")
    seen, after = [], None
    while True:
        q = "?limit=7" + (f"&starting_after={after}" if after else "")
        page = client.get(url + q, headers=AUTH).json
        seen += page["data"]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert [it["price"]["product"] for it in seen] == [f"prod_{i:02d}" for i in range(25)]
    assert len({it["id"] for it in seen}) == 25
    assert len(client.get(url + "?limit=100", headers=AUTH).json["data"]) == 25
    last = client.get(url + f"?starting_after={seen[-1]['id']}", headers=AUTH).json
    assert last["data"] == [] and last["has_more"] is False
    back = client.get(url + f"?ending_before={seen[10]['id']}&limit=3", headers=AUTH).json
    assert [it["id"] for it in back["data"]] == [it["id"] for it in seen[7:10]]
    assert back["has_more"] is True
    stripe_error(client.get(url + "?limit=0", headers=AUTH), 400)
    stripe_error(client.get(url + "?limit=101", headers=AUTH), 400)
    stripe_error(client.get(url + "?starting_after=li_bogus", headers=AUTH), 400,
                 code="resource_missing")
    stripe_error(client.get(url + "?colour=red", headers=AUTH), 400, code="parameter_unknown")
    expanded = client.get(url + "?limit=1&expand[0]=data.price.product", headers=AUTH).json
    assert expanded["data"][0]["price"]["product"]["object"] == "product"
    stripe_error(client.get("/v1/checkout/sessions/cs_test_nope/line_items", headers=AUTH), 404,
                 code="resource_missing")


# --------------------------------------------------------------------------- payment links


def test_payment_link_deactivate_and_reactivate(client):
    client.post("/_test/products", json={"id": "prod_w", "name": "Widget", "unit_amount": 900,
                                         "currency": "eur"})
    pl = client.post("/_test/payment_links",
                     json={"product": "prod_w", "metadata": {"store_id": "s1"}}).json
    lid = pl["id"]
    assert lid.startswith("plink_") and pl["active"] is True and pl["currency"] == "eur"
    assert pl["url"] == f"http://localhost/pay/{lid}"
    assert client.get(f"/pay/{lid}").status_code == 200

    rv = client.post(f"/v1/payment_links/{lid}", headers=AUTH,
                     data={"active": "false", "inactive_message": "Sold out at this store",
                           "metadata[reason]": "stock_zero"})
    assert rv.status_code == 200
    assert rv.json["active"] is False and rv.json["inactive_message"] == "Sold out at this store"
    assert rv.json["metadata"] == {"store_id": "s1", "reason": "stock_zero"}
    page = client.get(f"/pay/{lid}")
    assert page.status_code == 410
    assert "This link is no longer active" in page.get_data(as_text=True)
    assert "Sold out at this store" in page.get_data(as_text=True)
    assert client.get(f"/v1/payment_links/{lid}", headers=AUTH).json["active"] is False

    rv = client.post(f"/v1/payment_links/{lid}", headers=AUTH,
                     data={"active": "true", "inactive_message": "", "metadata[reason]": ""})
    assert rv.json["active"] is True and rv.json["inactive_message"] is None
    assert rv.json["metadata"] == {"store_id": "s1"}
    assert client.get(f"/pay/{lid}").status_code == 200
    assert client.get("/_test/state").json["payment_links"][lid]["active"] is True

    stripe_error(client.post(f"/v1/payment_links/{lid}", headers=AUTH, data={"active": "no"}), 400)
    stripe_error(client.post(f"/v1/payment_links/{lid}", headers=AUTH,
                             data={"metadata.store_id": "x"}), 400, code="parameter_unknown")
    stripe_error(client.post("/v1/payment_links/plink_nope", headers=AUTH,
                             data={"active": "false"}), 404, code="resource_missing")
    stripe_error(client.post(f"/v1/payment_links/{lid}", headers=AUTH,
                             json={"active": False}), 400)
    assert client.get("/pay/plink_nope").status_code == 404


def test_payment_link_create(client):
    price = client.post("/_test/products", json={"name": "Gadget", "unit_amount": 2500,
                                                 "currency": "usd"}).json["price"]
    rv = client.post("/v1/payment_links", headers=AUTH,
                     data={"line_items[0][price]": price["id"], "line_items[0][quantity]": "2",
                           "metadata[store_id]": "s9"})
    assert rv.status_code == 200, rv.json
    pl = rv.json
    assert pl["id"].startswith("plink_") and pl["url"] == f"http://localhost/pay/{pl['id']}"
    assert pl["metadata"] == {"store_id": "s9"} and pl["active"] is True
    items = client.get(f"/v1/payment_links/{pl['id']}/line_items", headers=AUTH).json
    assert items["data"][0]["price"]["id"] == price["id"] and items["data"][0]["quantity"] == 2
    stripe_error(client.post("/v1/payment_links", headers=AUTH,
                             data={"line_items[0][price]": "price_nope",
                                   "line_items[0][quantity]": "1"}), 404, code="resource_missing")
    stripe_error(client.post("/v1/payment_links", headers=AUTH, data={}), 400,
                 code="parameter_missing")


# --------------------------------------------------------------------------- refunds


def test_refund_full_by_default_and_already_refunded(client):
    s = make_session(client)  # 2 x 1500
    pi = s["payment_intent"]
    rv = client.post("/v1/refunds", headers=AUTH,
                     data={"payment_intent": pi, "reason": "requested_by_customer",
                           "metadata[order_id]": "o1"})
    assert rv.status_code == 200, rv.json
    rf = rv.json
    assert rf["id"].startswith("re_") and rf["object"] == "refund"
    assert (rf["amount"], rf["status"], rf["payment_intent"], rf["currency"]) == (
        3000, "succeeded", pi, "usd")
    assert rf["metadata"] == {"order_id": "o1"} and rf["reason"] == "requested_by_customer"
    stripe_error(client.post("/v1/refunds", headers=AUTH, data={"payment_intent": pi}), 400,
                 code="charge_already_refunded")
    listed = client.get(f"/v1/refunds?payment_intent={pi}", headers=AUTH).json
    assert listed["url"] == "/v1/refunds" and [r["id"] for r in listed["data"]] == [rf["id"]]


def test_refund_partial_and_errors(client):
    s = make_session(client)
    pi = s["payment_intent"]
    assert client.post("/v1/refunds", headers=AUTH,
                       data={"payment_intent": pi, "amount": "1000"}).json["amount"] == 1000
    stripe_error(client.post("/v1/refunds", headers=AUTH,
                             data={"payment_intent": pi, "amount": "2001"}), 400,
                 code="amount_too_large")
    assert client.post("/v1/refunds", headers=AUTH,
                       data={"payment_intent": pi}).json["amount"] == 2000
    newest_first = client.get(f"/v1/refunds?payment_intent={pi}", headers=AUTH).json["data"]
    assert [r["amount"] for r in newest_first] == [2000, 1000]
    stripe_error(client.post("/v1/refunds", headers=AUTH, data={"payment_intent": "pi_nope"}),
                 404, code="resource_missing")
    stripe_error(client.post("/v1/refunds", headers=AUTH, data={}), 400,
                 code="parameter_missing")
    stripe_error(client.post("/v1/refunds", headers=AUTH,
                             data={"payment_intent": pi, "reason": "because"}), 400)
    unpaid = make_session(client, paid=False)
    stripe_error(client.post("/v1/refunds", headers=AUTH,
                             data={"payment_intent": unpaid["payment_intent"]}), 400)


def test_refund_idempotency(client):
    s = make_session(client)
    pi = s["payment_intent"]
    h = dict(AUTH, **{"Idempotency-Key": "refund-order-42"})
    data = {"payment_intent": pi, "amount": "500", "metadata[order_id]": "42"}
    first = client.post("/v1/refunds", headers=h, data=data)
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = client.post("/v1/refunds", headers=h, data=data)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert len(client.get("/_test/state").json["refunds"]) == 1

    # same key, other params -> idempotency_error, nothing created
    stripe_error(client.post("/v1/refunds", headers=h, data=dict(data, amount="600")), 400,
                 type_="idempotency_error")
    # same key, other endpoint -> idempotency_error too
    stripe_error(client.post("/v1/payment_links/plink_x", headers=h, data=data), 400,
                 type_="idempotency_error")
    assert len(client.get("/_test/state").json["refunds"]) == 1

    # a business error is saved and replayed like a success
    h2 = dict(AUTH, **{"Idempotency-Key": "refund-too-much"})
    e1 = client.post("/v1/refunds", headers=h2, data={"payment_intent": pi, "amount": "99999"})
    e2 = client.post("/v1/refunds", headers=h2, data={"payment_intent": pi, "amount": "99999"})
    assert e1.status_code == e2.status_code == 400 and e1.json == e2.json
    assert e2.headers["Idempotent-Replayed"] == "true"

    # a request failing parameter validation saves nothing: fix it, reuse the key
    h3 = dict(AUTH, **{"Idempotency-Key": "refund-typo"})
    stripe_error(client.post("/v1/refunds", headers=h3, data={"payment_intnt": pi}), 400,
                 code="parameter_unknown")
    ok = client.post("/v1/refunds", headers=h3, data={"payment_intent": pi})
    assert ok.status_code == 200 and ok.json["amount"] == 2500

    reqs = client.get("/_test/requests?path_prefix=/v1/refunds&method=POST").json["requests"]
    assert [(r["idempotency_key"], r["status"], r["replayed"]) for r in reqs[:2]] == [
        ("refund-order-42", 200, False), ("refund-order-42", 200, True)]
    stripe_error(client.post("/v1/refunds", headers=dict(AUTH, **{"Idempotency-Key": "k" * 256}),
                             data=data), 400)


# --------------------------------------------------------------------------- faults


def test_faults(client):
    s = make_session(client)
    url = f"/v1/checkout/sessions/{s['id']}/line_items"
    rv = client.post("/_test/faults", json={"path_regex": r"/line_items$", "status": 429,
                                            "count": 2, "retry_after": 3})
    assert rv.status_code == 200
    for _ in range(2):
        rv = client.get(url, headers=AUTH)
        err = stripe_error(rv, 429, code="rate_limit")
        assert rv.headers["Retry-After"] == "3" and rv.headers["Stripe-Should-Retry"] == "true"
        assert "rate limit" in err["message"]
    assert client.get(url, headers=AUTH).status_code == 200

    client.post("/_test/faults", json={"method": "POST", "path_regex": "^/v1/refunds$",
                                       "status": 500, "count": 1})
    assert client.get("/v1/refunds", headers=AUTH).status_code == 200  # method filter
    h = dict(AUTH, **{"Idempotency-Key": "retry-me"})
    rv = client.post("/v1/refunds", headers=h, data={"payment_intent": s["payment_intent"]})
    stripe_error(rv, 500, type_="api_error")
    assert "Retry-After" not in rv.headers
    # the fault came before the idempotency layer: the retry runs for real, once
    rv = client.post("/v1/refunds", headers=h, data={"payment_intent": s["payment_intent"]})
    assert rv.status_code == 200 and "Idempotent-Replayed" not in rv.headers
    rv = client.post("/v1/refunds", headers=h, data={"payment_intent": s["payment_intent"]})
    assert rv.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/_test/state").json["refunds"]) == 1

    client.post("/_test/faults", json={"path_regex": ".", "status": 503, "count": 1,
                                       "should_retry": False})
    rv = client.get(url, headers=AUTH)
    assert rv.status_code == 503 and rv.headers["Stripe-Should-Retry"] == "false"

    statuses = [r["status"] for r in client.get("/_test/requests").json["requests"]]
    assert statuses == [429, 429, 200, 200, 500, 200, 200, 503]
    assert client.post("/_test/faults", json={"path_regex": ".", "status": 418}).status_code == 400
    assert client.get("/_test/state").json["faults"] == []


def test_a_fault_after_the_work_does_it_and_loses_the_answer(client):
    s = make_session(client)
    client.post("/_test/faults", json={"method": "POST", "path_regex": "^/v1/refunds$",
                                       "status": 500, "after": True})
    h = dict(AUTH, **{"Idempotency-Key": "lost-answer"})
    rv = client.post("/v1/refunds", headers=h, data={"payment_intent": s["payment_intent"]})
    stripe_error(rv, 500, type_="api_error")
    assert len(client.get("/_test/state").json["refunds"]) == 1  # it was made
    # The retry with the same key gets the saved result: still one refund.
    rv = client.post("/v1/refunds", headers=h, data={"payment_intent": s["payment_intent"]})
    assert rv.status_code == 200 and rv.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/_test/state").json["refunds"]) == 1
    client.post("/_test/faults", json={"path_regex": ".", "status": 500, "count": 5})
    assert client.post("/_test/faults/clear").json == {"cleared": 1}
    assert client.get("/v1/refunds", headers=AUTH).status_code == 200


def test_fault_skip_lets_the_first_matching_requests_pass(client):
    s = make_session(client)
    url = f"/v1/checkout/sessions/{s['id']}/line_items"
    rv = client.post("/_test/faults", json={"method": "GET", "path_regex": r"/line_items$",
                                            "status": 500, "skip": 2, "count": 2})
    assert rv.status_code == 200 and rv.json["fault"]["skip"] == 2
    # requests that do not match neither consume the skip nor the count
    assert client.get(f"/v1/checkout/sessions/{s['id']}", headers=AUTH).status_code == 200
    statuses = [client.get(url, headers=AUTH).status_code for _ in range(5)]
    assert statuses == [200, 200, 500, 500, 200]
    assert client.get("/_test/state").json["faults"] == []
    # skip 0 is the default behaviour; bad values are rejected
    client.post("/_test/faults", json={"path_regex": r"/line_items$", "status": 503, "skip": 0})
    assert client.get(url, headers=AUTH).status_code == 503
    for bad in (-1, "1", True, 1.5):
        rv = client.post("/_test/faults", json={"path_regex": ".", "status": 500, "skip": bad})
        assert rv.status_code == 400, bad
    assert client.get("/_test/state").json["faults"] == []


# --------------------------------------------------------------------------- recording


def test_request_recording_and_reset(client):
    s = make_session(client)
    client.get(f"/v1/checkout/sessions/{s['id']}/line_items?limit=5", headers=AUTH)
    client.post("/v1/refunds", headers=dict(AUTH, **{"Idempotency-Key": "k1"}),
                data={"payment_intent": s["payment_intent"], "metadata[order_id]": "o 1+2"})
    reqs = client.get("/_test/requests").json["requests"]
    assert [r["seq"] for r in reqs] == [1, 2]
    get, post = reqs
    assert (get["method"], get["path"], get["query"], get["form"]) == (
        "GET", f"/v1/checkout/sessions/{s['id']}/line_items", {"limit": "5"}, {})
    assert get["idempotency_key"] is None and get["status"] == 200 and get["replayed"] is False
    assert post["form"] == {"payment_intent": s["payment_intent"], "metadata[order_id]": "o 1+2"}
    assert post["idempotency_key"] == "k1" and isinstance(post["time"], float)
    only = client.get("/_test/requests?path_prefix=/v1/refunds&method=post").json["requests"]
    assert [r["seq"] for r in only] == [2]
    client.post("/_test/reset")
    state = client.get("/_test/state").json
    assert state["refunds"] == [] and state["checkout_sessions"] == {}
    assert client.get("/_test/requests").json["requests"] == []


def test_test_api_validation(client):
    assert client.post("/_test/checkout_sessions", json={"payment_status": "maybe",
                                                         "line_items": []}).status_code == 400
    assert client.post("/_test/products", json={"name": "x"}).status_code == 400
    assert client.post("/_test/payment_links", json={}).status_code == 400


# --------------------------------------------------------------------------- real server


@pytest.fixture()
def live_server(app):
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{srv.server_port}"
    requests.post(f"{base}/_test/reset").raise_for_status()
    yield base
    srv.shutdown()
    t.join(5)


def test_concurrent_refunds_never_over_refund(live_server):
    base = live_server
    s = requests.post(f"{base}/_test/checkout_sessions", json={
        "payment_status": "paid",
        "line_items": [{"product": "prod_c", "unit_amount": 150, "quantity": 1}]}).json()
    pi = s["payment_intent"]

    def refund(i):
        with requests.Session() as sess:
            r = sess.post(f"{base}/v1/refunds", headers=AUTH,
                          data={"payment_intent": pi, "amount": "1"})
            return r.status_code, r.json().get("error", {}).get("code")

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(refund, range(200)))
    assert results.count((200, None)) == 150
    assert results.count((400, "charge_already_refunded")) == 50
    state = requests.get(f"{base}/_test/state").json()
    assert sum(r["amount"] for r in state["refunds"]) == 150
    seqs = [r["seq"] for r in requests.get(f"{base}/_test/requests").json()["requests"]]
    assert sorted(seqs) == list(range(1, 201))


def test_module_entry_point(tmp_path):
    ready = tmp_path / "stripe.port"
    proc = subprocess.Popen([sys.executable, "-m", "devstack.fake_stripe", "--port", "0",
                             "--ready-file", str(ready)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "fake_stripe did not become ready"
            time.sleep(0.05)
        port = int(ready.read_text())
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/_health", timeout=5).json() == {"ok": True}
        pl = requests.post(f"{base}/_test/payment_links",
                           json={"product": "prod_x", "unit_amount": 100}, timeout=5).json()
        assert pl["url"] == f"{base}/pay/{pl['id']}"
        assert requests.get(pl["url"], timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
        out = proc.stdout.read().decode() + proc.stderr.read().decode()
    assert KEY not in out
