"""The fake Stripe's catalog API (products, prices, payment link lists), its catalog events
(GET /v1/events and the catalog event sink), Dashboard edits, the rate limiter and bulk seeding.

    .venv/bin/python -m pytest -q devstack/tests/test_fake_stripe_catalog.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack import fake_stripe
from devstack.fake_stripe import DEFAULT_FIXTURES, create_app
from devstack.tests.test_fake_stripe import stripe_error
from devstack.tests.test_fake_stripe_contract import RustSchema, _stripe_crates

REPO = fake_stripe.REPO_ROOT
AUTH = {"Authorization": "Bearer sk_test_51CatalogTestKey"}


@pytest.fixture(scope="module")
def app():
    return create_app(str(DEFAULT_FIXTURES))


@pytest.fixture()
def client(app):
    c = app.test_client()
    assert c.post("/_test/reset").status_code == 200
    assert c.post("/_test/rate_limit", json={}).status_code == 200
    assert c.post("/_test/catalog_event_sink", json={"url": None}).status_code == 200
    return c


def post(client, path: str, data: dict, key: str | None = None):
    headers = dict(AUTH, **({"Idempotency-Key": key} if key else {}))
    return client.post(path, headers=headers, data=data)


def get(client, path: str):
    return client.get(path, headers=AUTH)


def product(client, name: str = "Mug", **form: str) -> dict:
    rv = post(client, "/v1/products", {"name": name, **form})
    assert rv.status_code == 200, rv.json
    return rv.json


def price(client, product_id: str, amount: int = 1200, **form: str) -> dict:
    rv = post(client, "/v1/prices", {"product": product_id, "unit_amount": str(amount),
                                     "currency": "usd", **form})
    assert rv.status_code == 200, rv.json
    return rv.json


def events(client, type_: str | None = None) -> list[dict]:
    q = f"&type={type_}" if type_ else ""
    return get(client, f"/v1/events?limit=100{q}").json["data"]


def walk(client, path: str, limit: int = 100) -> list[str]:
    """Every id of a list, page by page forwards."""
    ids: list[str] = []
    after = None
    sep = "&" if "?" in path else "?"
    while True:
        rv = get(client, f"{path}{sep}limit={limit}" + (f"&starting_after={after}" if after else ""))
        assert rv.status_code == 200, rv.json
        body = rv.json
        assert body["object"] == "list" and body["url"] == path.split("?")[0]
        ids += [o["id"] for o in body["data"]]
        if not body["has_more"]:
            return ids
        after = body["data"][-1]["id"]


# --------------------------------------------------------------------------- products


def test_product_create_fields_and_errors(client):
    p = product(client, "Mug", id="prod_mug", description="Blue", **{
        "images[0]": "https://img/1.png", "images[1]": "https://img/2.png",
        "metadata[sku]": "M-1", "url": "https://shop/mug", "active": "true"})
    assert p["id"] == "prod_mug" and p["object"] == "product" and p["name"] == "Mug"
    assert p["description"] == "Blue" and p["images"] == ["https://img/1.png", "https://img/2.png"]
    assert p["metadata"] == {"sku": "M-1"} and p["url"] == "https://shop/mug"
    assert p["active"] is True and p["default_price"] is None and p["livemode"] is False
    assert p["created"] == p["updated"]
    assert get(client, "/v1/products/prod_mug").json == p

    err = stripe_error(post(client, "/v1/products", {"id": "prod_mug", "name": "Again"}), 400,
                       code="resource_already_exists")
    assert err["message"] == "Product already exists." and err["param"] == "id"
    stripe_error(post(client, "/v1/products", {"description": "x"}), 400,
                 code="parameter_missing")
    stripe_error(post(client, "/v1/products",
                      {"name": "x", **{f"images[{i}]": f"https://i/{i}" for i in range(9)}}), 400)
    stripe_error(post(client, "/v1/products", {"name": "x", "colour": "red"}), 400,
                 code="parameter_unknown")
    stripe_error(post(client, "/v1/products", {"name": "x", "metadata[" + "k" * 41 + "]": "v"}),
                 400)
    # default_price_data: the product gets a default price
    q = product(client, "Cup", **{"default_price_data[currency]": "usd",
                                  "default_price_data[unit_amount]": "900"})
    pr = get(client, f"/v1/prices/{q['default_price']}").json
    assert (pr["product"], pr["unit_amount"], pr["currency"], pr["active"]) == \
        (q["id"], 900, "usd", True)


def test_product_update(client, monkeypatch):
    p = product(client, "Mug", description="Blue", **{"images[0]": "https://i/1",
                                                       "metadata[a]": "1", "metadata[b]": "2"})
    real = time.time
    monkeypatch.setattr(fake_stripe.time, "time", lambda: real() + 100)
    rv = post(client, f"/v1/products/{p['id']}", {
        "name": "Big mug", "description": "", "images": "", "metadata[a]": "",
        "metadata[c]": "3", "active": "false"})
    assert rv.status_code == 200, rv.json
    u = rv.json
    assert (u["name"], u["description"], u["images"], u["active"]) == ("Big mug", None, [], False)
    assert u["metadata"] == {"b": "2", "c": "3"}
    assert u["updated"] > p["updated"] and u["created"] == p["created"]
    u = post(client, f"/v1/products/{p['id']}",
             {"images[0]": "https://i/2", "images[1]": "https://i/3"}).json
    assert u["images"] == ["https://i/2", "https://i/3"]
    err = stripe_error(post(client, f"/v1/products/{p['id']}", {"name": ""}), 400,
                       code="parameter_invalid_empty")
    assert err["param"] == "name"
    stripe_error(post(client, "/v1/products/prod_nope", {"name": "x"}), 404,
                 code="resource_missing")
    # default_price: a price of this product, or "" to unset
    pr = price(client, p["id"])
    other = price(client, product(client, "Other")["id"])
    assert post(client, f"/v1/products/{p['id']}", {"default_price": pr["id"]}).json[
        "default_price"] == pr["id"]
    stripe_error(post(client, f"/v1/products/{p['id']}", {"default_price": other["id"]}), 400)
    stripe_error(post(client, f"/v1/products/{p['id']}", {"default_price": "price_nope"}), 400,
                 code="resource_missing")
    expanded = get(client, f"/v1/products/{p['id']}?expand[]=default_price").json
    assert expanded["default_price"]["id"] == pr["id"]
    assert post(client, f"/v1/products/{p['id']}", {"default_price": ""}).json[
        "default_price"] is None


def test_product_list_pagination_over_1000(client):
    assert client.post("/_test/products/bulk", json={"count": 990, "prefix": "pg"}).json == \
        {"created": 990}
    mine = [product(client, f"P{i}")["id"] for i in range(10)]
    ids = walk(client, "/v1/products")
    assert len(ids) == 1000 == len(set(ids))
    assert ids[:10] == mine[::-1]  # newest first
    assert ids[10] == "prod_pg0000990" and ids[-1] == "prod_pg0000001"
    # pages of 7, backwards from the end with ending_before
    back: list[str] = []
    before = ids[-1]
    back_page = get(client, f"/v1/products?limit=7&ending_before={before}").json
    assert [o["id"] for o in back_page["data"]] == ids[-8:-1] and back_page["has_more"]
    while True:
        page = get(client, f"/v1/products?limit=100&ending_before={before}").json
        back = [o["id"] for o in page["data"]] + back
        if not page["has_more"]:
            break
        before = page["data"][0]["id"]
    assert back == ids[:-1]
    # default limit 10, limits, cursors
    assert len(get(client, "/v1/products").json["data"]) == 10
    for bad in ("0", "101", "x"):
        stripe_error(get(client, f"/v1/products?limit={bad}"), 400)
    stripe_error(get(client, "/v1/products?starting_after=prod_nope"), 400,
                 code="resource_missing")
    stripe_error(get(client, f"/v1/products?starting_after={ids[0]}&ending_before={ids[2]}"), 400)
    # filters
    post(client, f"/v1/products/{mine[3]}", {"active": "false"})
    assert walk(client, "/v1/products?active=false") == [mine[3]]
    assert len(walk(client, "/v1/products?active=true")) == 999
    got = get(client, f"/v1/products?ids[]={mine[1]}&ids[]=prod_pg0000005&ids[]=prod_nope").json
    assert [o["id"] for o in got["data"]] == [mine[1], "prod_pg0000005"]
    exp = get(client, "/v1/products?limit=3&starting_after=" + mine[0] +
              "&expand[]=data.default_price").json["data"]
    assert [o["default_price"]["object"] for o in exp] == ["price"] * 3
    assert exp[0]["default_price"]["product"] == exp[0]["id"]
    stripe_error(get(client, "/v1/products?expand[]=data.foo"), 400)


def test_list_pages_cost_their_size_not_the_list_size(app):
    """page_newest_first looks at limit + 1 objects per page wherever the cursor is."""
    fake = app.config["FAKE_STRIPE"]
    with fake.lock:
        fake.reset()
        fake.bulk_create(20_000, "big", 100, "usd", {})
        seen = []

        def keep(o: dict) -> bool:
            seen.append(o["id"])
            return True

        for cursor in (None, "prod_big0010000", "prod_big0000050"):
            seen.clear()
            q = {"limit": "100", **({"starting_after": cursor} if cursor else {})}
            page = fake.page_newest_first("product", fake.products, q, "/v1/products", keep)
            last = cursor == "prod_big0000050"
            assert len(page["data"]) == (49 if last else 100) and page["has_more"] is not last
            assert len(seen) <= 101
        seen.clear()
        fake.page_newest_first("product", fake.products,
                               {"limit": "100", "ending_before": "prod_big0010000"},
                               "/v1/products", keep)
        assert len(seen) <= 101
        fake.reset()


def test_idempotent_product_create_replays(client):
    form = {"name": "Mug", "metadata[sku]": "M1"}
    a = post(client, "/v1/products", form, key="create-mug")
    b = post(client, "/v1/products", form, key="create-mug")
    assert a.status_code == b.status_code == 200
    assert a.json == b.json and b.headers["Idempotent-Replayed"] == "true"
    assert len(walk(client, "/v1/products")) == 1
    assert len(events(client, "product.created")) == 1
    stripe_error(post(client, "/v1/products", {"name": "Cup"}, key="create-mug"), 400,
                 type_="idempotency_error")
    # a business error is replayed too; a validation error is not saved
    dup = {"id": a.json["id"], "name": "x"}
    e1, e2 = (post(client, "/v1/products", dup, key="dup") for _ in range(2))
    assert e1.status_code == e2.status_code == 400 and e2.headers.get("Idempotent-Replayed")
    bad = post(client, "/v1/prices", {"product": a.json["id"], "currency": "usd"}, key="p1")
    assert bad.status_code == 400
    ok = post(client, "/v1/prices", {"product": a.json["id"], "currency": "usd",
                                     "unit_amount": "5"}, key="p1")
    assert ok.status_code == 200 and not ok.headers.get("Idempotent-Replayed")


# --------------------------------------------------------------------------- prices


def test_price_create_update_and_immutability(client):
    p = product(client)
    pr = price(client, p["id"], 1500, nickname="std", **{"metadata[k]": "v"})
    assert (pr["object"], pr["product"], pr["unit_amount"], pr["currency"], pr["type"]) == \
        ("price", p["id"], 1500, "usd", "one_time")
    assert pr["nickname"] == "std" and pr["metadata"] == {"k": "v"} and pr["active"] is True
    assert get(client, f"/v1/products/{p['id']}").json["default_price"] is None  # not implied
    stripe_error(post(client, "/v1/prices", {"product": "prod_nope", "unit_amount": "1",
                                             "currency": "usd"}), 400, code="resource_missing")
    stripe_error(post(client, "/v1/prices", {"product": p["id"], "unit_amount": "-1",
                                             "currency": "usd"}), 400)
    stripe_error(post(client, "/v1/prices", {"product": p["id"], "unit_amount": "1"}), 400,
                 code="parameter_missing")
    stripe_error(post(client, "/v1/prices", {"unit_amount": "1", "currency": "usd"}), 400,
                 code="parameter_missing")

    u = post(client, f"/v1/prices/{pr['id']}", {"nickname": "", "metadata[k]": "",
                                               "metadata[n]": "1", "active": "false"}).json
    assert (u["nickname"], u["metadata"], u["active"]) == (None, {"n": "1"}, False)
    for immutable in ({"unit_amount": "1"}, {"currency": "eur"}, {"product": p["id"]}):
        err = stripe_error(post(client, f"/v1/prices/{pr['id']}", immutable), 400,
                           code="parameter_unknown")
        assert err["param"] == next(iter(immutable))
    assert get(client, f"/v1/prices/{pr['id']}").json["unit_amount"] == 1500
    # the default price cannot be archived
    d = price(client, p["id"], 1000)
    post(client, f"/v1/products/{p['id']}", {"default_price": d["id"]})
    err = stripe_error(post(client, f"/v1/prices/{d['id']}", {"active": "false"}), 400)
    assert "default price" in err["message"]
    post(client, f"/v1/products/{p['id']}", {"default_price": ""})
    assert post(client, f"/v1/prices/{d['id']}", {"active": "false"}).json["active"] is False


def test_price_list_filters_pagination_and_expand(client):
    a, b = product(client, "A"), product(client, "B")
    a_prices = [price(client, a["id"], 100 + i)["id"] for i in range(25)]
    b_prices = [price(client, b["id"], 7, currency="eur")["id"] for _ in range(3)]
    post(client, f"/v1/prices/{a_prices[0]}", {"active": "false"})
    assert walk(client, "/v1/prices", limit=4) == (a_prices + b_prices)[::-1]
    assert walk(client, f"/v1/prices?product={a['id']}", limit=10) == a_prices[::-1]
    assert walk(client, "/v1/prices?currency=eur") == b_prices[::-1]
    assert walk(client, "/v1/prices?active=false") == [a_prices[0]]
    assert walk(client, f"/v1/prices?product={a['id']}&active=true") == a_prices[:0:-1]
    page = get(client, f"/v1/prices?product={a['id']}&limit=5&starting_after={a_prices[10]}"
                       "&expand[]=data.product").json
    assert [o["id"] for o in page["data"]] == a_prices[9:4:-1] and page["has_more"]
    assert page["data"][0]["product"]["id"] == a["id"]
    stripe_error(get(client, "/v1/prices?expand[]=data.nope"), 400)


# --------------------------------------------------------------------------- payment links


def test_payment_link_list_and_events(client):
    p = product(client)
    pr = price(client, p["id"])
    links = []
    for i in range(12):
        rv = post(client, "/v1/payment_links", {"line_items[0][price]": pr["id"],
                                                "line_items[0][quantity]": "1",
                                                "metadata[store_id]": f"s{i}"})
        assert rv.status_code == 200, rv.json
        links.append(rv.json["id"])
    post(client, f"/v1/payment_links/{links[2]}", {"active": "false", "metadata[x]": "1"})
    assert walk(client, "/v1/payment_links", limit=5) == links[::-1]
    assert walk(client, "/v1/payment_links?active=false") == [links[2]]
    assert len(walk(client, "/v1/payment_links?active=true")) == 11
    page = get(client, "/v1/payment_links?limit=2&expand[]=data.line_items").json
    li = page["data"][0]["line_items"]
    assert li["object"] == "list" and li["url"] == f"/v1/payment_links/{links[-1]}/line_items"
    assert li["data"][0]["price"]["id"] == pr["id"] and li["data"][0]["quantity"] == 1
    assert li == get(client, f"/v1/payment_links/{links[-1]}/line_items").json
    created = events(client, "payment_link.created")
    assert len(created) == 12 and created[0]["data"]["object"]["id"] == links[-1]
    (upd,) = events(client, "payment_link.updated")
    assert upd["data"]["object"]["active"] is False
    assert upd["data"]["previous_attributes"] == {"active": True, "metadata": {"x": None}}
    # an archived price cannot go on a new link
    post(client, f"/v1/prices/{pr['id']}", {"active": "false"})
    stripe_error(post(client, "/v1/payment_links", {"line_items[0][price]": pr["id"],
                                                    "line_items[0][quantity]": "1"}), 400)


# --------------------------------------------------------------------------- events


def test_catalog_events_with_previous_attributes(client):
    p = product(client, "Mug", **{"metadata[a]": "1"})
    pr = price(client, p["id"])
    post(client, f"/v1/products/{p['id']}", {"name": "Cup", "metadata[a]": "2",
                                             "metadata[b]": "x"}, key="k-upd")
    post(client, f"/v1/products/{p['id']}", {"name": "Cup"})  # no change: no event
    post(client, f"/v1/prices/{pr['id']}", {"nickname": "n"})
    types = [e["type"] for e in events(client)]
    assert types == ["price.updated", "product.updated", "price.created", "product.created"]
    pu = events(client, "product.updated")[0]
    assert pu["data"]["object"]["name"] == "Cup"
    prev = pu["data"]["previous_attributes"]
    assert prev["name"] == "Mug" and prev["metadata"] == {"a": "1", "b": None}
    assert set(prev) <= {"name", "metadata", "updated"}
    assert pu["request"]["idempotency_key"] == "k-upd" and pu["request"]["id"].startswith("req_")
    assert events(client, "price.updated")[0]["data"]["previous_attributes"] == {"nickname": None}
    assert "previous_attributes" not in events(client, "product.created")[0]["data"]
    assert [e["type"] for e in get(client, "/v1/events?types[]=product.*").json["data"]] == \
        ["product.updated", "product.created"]


class RecordingSink:
    def __init__(self, status: int = 200) -> None:
        self.envelopes: list[dict] = []
        self.status = status
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def app(self, environ: dict, start_response: Any) -> Any:
        self.envelopes.append(json.loads(Request(environ).get_data()))
        return Response(json.dumps({"routed": True}), self.status,
                        mimetype="application/json")(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


def wait_delivered(client, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = client.get("/_test/catalog_event_sink").json
        if st["pending"] == 0:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.02)


def test_catalog_events_reach_the_catalog_sink_only(client):
    sink = RecordingSink()
    try:
        rv = client.post("/_test/catalog_event_sink", json={"url": sink.url})
        assert rv.json["url"] == sink.url
        assert client.post("/_test/catalog_event_sink", json={"url": "ftp://x"}).status_code == 400
        assert client.post("/_test/catalog_event_sink", json={}).status_code == 400
        p = product(client)
        post(client, f"/v1/products/{p['id']}", {"name": "Renamed"})
        pr = price(client, p["id"])
        link = post(client, "/v1/payment_links", {"line_items[0][price]": pr["id"],
                                                  "line_items[0][quantity]": "1"}).json
        client.post(f"/pay/{link['id']}")  # a checkout event: not for the catalog sink
        before = wait_delivered(client)["delivered"]
        assert [e["detail-type"] for e in sink.envelopes] == [
            "product.created", "product.updated", "price.created", "payment_link.created"]
        env = sink.envelopes[1]
        assert set(env) == {"version", "id", "detail-type", "source", "account", "time",
                            "region", "resources", "detail"}
        assert env["source"] == "aws.partner/stripe.com/ed_test_local"
        assert env["detail"]["type"] == "product.updated"
        assert env["detail"]["data"]["object"]["name"] == "Renamed"
        assert env["detail"]["id"] == events(client, "product.updated")[0]["id"]
        assert any(e["type"] == "checkout.session.completed" for e in events(client))
        client.post("/_test/reset")  # the sink is configuration: it survives a reset
        assert client.get("/_test/catalog_event_sink").json["url"] == sink.url
        assert before >= 4
    finally:
        sink.close()


def test_undeliverable_catalog_events_are_counted_and_logged(client, capfd):
    client.post("/_test/catalog_event_sink", json={"url": "http://127.0.0.1:1/events"})
    product(client)
    st = wait_delivered(client)
    assert st["failed"] >= 1 and st["failures"][-1]["type"] == "product.created"
    assert "not delivered" in capfd.readouterr().err


def test_dashboard_edits_emit_events_without_api_requests(client):
    p = product(client, "Mug", **{"metadata[a]": "1"})
    pr = price(client, p["id"])
    link = post(client, "/v1/payment_links", {"line_items[0][price]": pr["id"],
                                              "line_items[0][quantity]": "1"}).json
    n_requests = len(client.get("/_test/requests").json["requests"])
    rv = client.post(f"/_test/dashboard/products/{p['id']}",
                     json={"name": "Dash", "metadata": {"a": None, "b": "2"}, "images": ["https://i"]})
    assert rv.status_code == 200, rv.json
    assert (rv.json["name"], rv.json["metadata"], rv.json["images"]) == \
        ("Dash", {"b": "2"}, ["https://i"])
    assert client.post(f"/_test/dashboard/prices/{pr['id']}",
                       json={"active": False}).json["active"] is False
    assert client.post(f"/_test/dashboard/payment_links/{link['id']}",
                       json={"active": False, "metadata": {"x": "y"}}).json["active"] is False
    assert len(client.get("/_test/requests").json["requests"]) == n_requests
    pu = events(client, "product.updated")[0]
    assert pu["data"]["previous_attributes"]["name"] == "Mug"
    assert pu["request"] == {"id": None, "idempotency_key": None}
    assert events(client, "price.updated")[0]["data"]["previous_attributes"] == {"active": True}
    assert events(client, "payment_link.updated")[0]["data"]["previous_attributes"] == \
        {"active": True, "metadata": {"x": None}}
    assert get(client, f"/v1/products/{p['id']}").json["name"] == "Dash"
    # errors
    assert client.post(f"/_test/dashboard/prices/{pr['id']}",
                       json={"unit_amount": 5}).status_code == 400
    assert client.post("/_test/dashboard/products/prod_nope", json={"name": "x"}).status_code == 404
    assert client.post(f"/_test/dashboard/products/{p['id']}", json={"name": ""}).status_code == 400


# --------------------------------------------------------------------------- rate limit, bulk


def test_rate_limiter(client):
    assert client.get("/_test/rate_limit").json["per_second"] is None
    assert client.post("/_test/rate_limit", json={"per_second": 0}).status_code == 400
    rv = client.post("/_test/rate_limit", json={"per_second": 0.001, "burst": 3})
    assert rv.json == {"per_second": 0.001, "burst": 3, "retry_after": None, "allowed": 0,
                       "rejected": 0}
    statuses = [get(client, "/v1/products").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    limited = get(client, "/v1/products")
    err = stripe_error(limited, 429, code="rate_limit")
    assert "rate limit" in err["message"].lower() and "Retry-After" not in limited.headers
    assert client.get("/_test/rate_limit").json["rejected"] == 3
    assert client.get("/_test/state?summary=1").json["rate_limited"] == 3
    assert client.get("/_test/state").json["rate_limited"] == 3
    # checked before idempotency: the limited POST did not run, a retry with its key does
    client.post("/_test/rate_limit", json={"per_second": 0.001, "burst": 1, "retry_after": 2})
    assert post(client, "/v1/products", {"name": "A"}, key="rl").status_code == 200
    limited = post(client, "/v1/products", {"name": "B"}, key="rl2")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    client.post("/_test/rate_limit", json={"per_second": 50, "burst": 1})
    assert get(client, "/v1/products").status_code == 200
    assert get(client, "/v1/products").status_code == 429
    time.sleep(0.05)
    assert post(client, "/v1/products", {"name": "B"}, key="rl2").status_code == 200
    assert client.post("/_test/rate_limit", json={}).json["per_second"] is None
    assert all(get(client, "/v1/products").status_code == 200 for _ in range(10))


def test_bulk_products_and_state_counts(client):
    t0 = time.monotonic()
    assert client.post("/_test/products/bulk",
                       json={"count": 2000, "prefix": "b", "unit_amount": 700,
                             "currency": "EUR", "metadata": {"store_id": "s1"}}).json == \
        {"created": 2000}
    assert time.monotonic() - t0 < 10
    counts = client.get("/_test/state?summary=1").json["counts"]
    assert (counts["products"], counts["prices"], counts["payment_links"], counts["events"]) == \
        (2000, 2000, 0, 0)
    assert client.get("/_test/requests").json["requests"] == []
    p = get(client, "/v1/products/prod_b0000042?expand[]=default_price").json
    assert p["metadata"] == {"store_id": "s1"} and p["active"] is True
    assert (p["default_price"]["unit_amount"], p["default_price"]["currency"],
            p["default_price"]["active"], p["default_price"]["product"]) == \
        (700, "eur", True, "prod_b0000042")
    # a second batch does not collide; the objects are independent
    client.post("/_test/products/bulk", json={"count": 3, "prefix": "b"})
    assert client.get("/_test/state?summary=1").json["counts"]["products"] == 2003
    post(client, "/v1/products/prod_b0000001", {"metadata[x]": "1"})
    assert get(client, "/v1/products/prod_b0000002").json["metadata"] == {"store_id": "s1"}
    for bad in ({"count": 0}, {"count": "5"}, {"count": 5, "currency": "euro"},
                {"count": 5, "prefix": "a b"}):
        assert client.post("/_test/products/bulk", json=bad).status_code == 400


def test_catalog_event_sink_command_line_option(tmp_path):
    sink = RecordingSink()
    ready = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "devstack.fake_stripe", "--port", "0",
                             "--ready-file", str(ready), "--catalog-event-sink", sink.url],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while not ready.exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.05)
        base = f"http://127.0.0.1:{int(ready.read_text())}"
        assert requests.get(f"{base}/_test/catalog_event_sink").json()["url"] == sink.url
        r = requests.post(f"{base}/v1/products", headers=AUTH, data={"name": "Mug"})
        assert r.status_code == 200
        while requests.get(f"{base}/_test/catalog_event_sink").json()["pending"]:
            assert time.time() < deadline
            time.sleep(0.02)
        assert [e["detail-type"] for e in sink.envelopes] == ["product.created"]
    finally:
        proc.terminate()
        proc.wait(10)
        sink.close()


def test_catalog_responses_fit_async_stripe(client):
    root = _stripe_crates()
    if root is None:
        pytest.skip("async-stripe 1.0.0-rc.10 sources not in ~/.cargo/registry")
    schema = RustSchema(root)
    p = product(client, "Mug", description="d", **{"images[0]": "https://i"})
    pr = price(client, p["id"])
    post(client, f"/v1/products/{p['id']}", {"default_price": pr["id"]})
    link = post(client, "/v1/payment_links", {"line_items[0][price]": pr["id"],
                                              "line_items[0][quantity]": "1"}).json
    client.post("/_test/products/bulk", json={"count": 3})
    checks = [
        ("POST", "/v1/products", {"name": "X", "default_price_data[currency]": "usd",
                                  "default_price_data[unit_amount]": "1"}, "Product"),
        ("POST", f"/v1/products/{p['id']}", {"name": "Y", "description": ""}, "Product"),
        ("GET", "/v1/products?limit=5", None, "stripe_types::List<Product>"),
        ("GET", "/v1/products?expand[]=data.default_price", None, "stripe_types::List<Product>"),
        ("POST", "/v1/prices", {"product": p["id"], "unit_amount": "5", "currency": "usd"},
         "Price"),
        ("POST", f"/v1/prices/{pr['id']}", {"nickname": "n"}, "Price"),
        ("GET", "/v1/prices?expand[]=data.product", None, "stripe_types::List<Price>"),
        ("GET", "/v1/payment_links?expand[]=data.line_items", None,
         "stripe_types::List<PaymentLink>"),
        ("POST", f"/v1/prices/{pr['id']}", {"unit_amount": "5"}, "Error"),
        ("POST", "/v1/products", {"id": p["id"], "name": "dup"}, "Error"),
    ]
    problems: list = []
    for method, url, data, type_ in checks:
        rv = client.open(url, method=method, headers=AUTH, data=data)
        schema.check(rv.json, type_, f"{method} {url}", problems)
    client.post("/_test/rate_limit", json={"per_second": 0.001, "burst": 1})
    get(client, f"/v1/payment_links/{link['id']}")
    schema.check(get(client, "/v1/products").json, "Error", "rate limited", problems)
    for ev in client.get("/_test/state").json["events"]:
        schema.check(ev["data"]["object"], {"product": "Product", "price": "Price",
                                            "payment_link": "PaymentLink"}[ev["data"]["object"]["object"]],
                     ev["type"], problems)
    assert problems == []
