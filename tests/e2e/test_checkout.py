"""End-to-end tests of checkout with reservations on the offline stack: the `checkout` function
behind its Function URL (`POST /checkout`), the `inventory` function handling the fake Stripe's
payment_intent.* events (through its event sink, in the background) and the `sweeper`.

Each test has its own store and product ids and asserts on the stored state (stock through the
CLI, order records through boto3), on the calls the fake Stripe recorded (its request log and
its PaymentIntents) and, where a level changes, on the retained MQTT message.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from conftest import stock_topic

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
HOLD_SECONDS = 900  # CHECKOUT_HOLD_SECONDS in the stack
PRICE = 1500


# ---------------------------------------------------------------------- helpers


class Shop:
    """One test's store, its products and checkouts."""

    def __init__(self, e2e, store: str, u: str) -> None:
        self.e2e, self.store, self.u = e2e, store, u

    def product(self, name: str, stock: int, unit_amount: int = PRICE, store: str | None = None) -> str:
        product = f"prod_{name}_{self.u}"
        self.e2e.sellable(store or self.store, {product: (stock, unit_amount)})
        item = self.e2e.item(store or self.store, product)
        assert item is not None and item["available"] == stock, item
        return product

    def body(self, *lines: tuple[str, int], **extra) -> dict:
        return {"store_id": self.store, "items": [{"product_id": p, "quantity": q} for p, q in lines], **extra}

    def checkout(self, *lines: tuple[str, int], key: str | None = None) -> dict:
        """A checkout that must succeed: the 200 body plus "key" and "pi"."""
        key = key or f"e2e-{uuid.uuid4()}"
        r = self.e2e.post_checkout(self.body(*lines), key=key)
        assert r.status_code == 200, f"{r.status_code} {r.text}\n{self.e2e.log_tail('checkout')}"
        out = r.json()
        out["key"], out["pi"] = key, pi_of(out["client_secret"])
        return out

    def available(self, product: str) -> int:
        return self.e2e.item(self.store, product)["available"]


@pytest.fixture
def shop(payment_events, ids) -> Shop:
    return Shop(payment_events, ids["store"], ids["u"])


def pi_of(client_secret: str) -> str:
    assert "_secret_" in client_secret, client_secret
    pi = client_secret.split("_secret_", 1)[0]
    assert pi.startswith("pi_"), client_secret
    return pi


def parse_time(s: str) -> datetime:
    assert RFC3339.match(s), s
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def assert_held_reply(out: dict, amount: int, currency: str = "usd") -> None:
    assert set(out) >= {"client_secret", "hold_id", "expires_at", "amount", "currency"}, out
    assert (out["amount"], out["currency"]) == (amount, currency), out
    assert out["hold_id"].startswith("hold_"), out
    left = (parse_time(out["expires_at"]) - datetime.now(timezone.utc)).total_seconds()
    assert HOLD_SECONDS - 120 < left <= HOLD_SECONDS + 5, out


def assert_retained(e2e, store: str, product: str, available: int) -> None:
    """The retained stock message a storefront gets shows ``available`` and the stored version."""
    item = e2e.item(store, product)
    msg = e2e.retained(store, product)
    assert msg is not None, f"no retained message on {stock_topic(store, product)}"
    assert (msg["product_id"], msg["store_id"]) == (product, store), msg
    assert (msg["available"], msg["sold_out"]) == (available, available == 0), msg
    assert msg["version"] == item["version"], (msg, item)


def pi_creates(e2e, seq: int, store: str) -> list[dict]:
    """POST /v1/payment_intents since ``seq`` for ``store`` that really ran (200, not replays)."""
    return [r for r in e2e.stripe_requests_since(seq)
            if r["method"] == "POST" and r["path"] == "/v1/payment_intents" and r["status"] == 200
            and not r["replayed"] and r["form"].get("metadata[store_id]") == store]


def pi_calls(e2e, pi: str, action: str) -> list[dict]:
    """POST /v1/payment_intents/{pi}/{action} requests (capture, cancel, confirm)."""
    return e2e.stripe_requests(f"/v1/payment_intents/{pi}/{action}", "POST")


def refund_posts(e2e, pi: str) -> list[dict]:
    return [r for r in e2e.stripe_requests("/v1/refunds", "POST") if r["form"].get("payment_intent") == pi]


def order_status(e2e, hold_id: str) -> str | None:
    o = e2e.order(hold_id)
    return o["status"] if o else None


def envelope_of(event: dict) -> dict:
    """The EventBridge envelope an Event Destination delivers for ``event`` (a new envelope id,
    as a redelivery has)."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": event["type"],
            "source": "aws.partner/stripe.com/ed_test_local", "account": "123456789012",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["created"])),
            "region": "us-east-1", "resources": [], "detail": event}


# ---------------------------------------------------------------------- 1. reservation race


def test_100_concurrent_checkouts_for_10_units_hold_exactly_10(shop, capsys):
    e2e = shop.e2e
    product = shop.product("race", stock=10)
    seq = e2e.stripe_seq()
    body = shop.body((product, 1))
    retried_503: list[str] = []

    def call(i: int):
        key = f"race-{shop.u}-{i}"
        for _ in range(10):  # 503 means "retry with the same Idempotency-Key"
            r = e2e.post_checkout(body, key=key)
            if r.status_code != 503:
                return key, r
            retried_503.append(r.text)
            time.sleep(float(r.headers.get("retry-after", "1")))
        return key, r

    t0 = time.perf_counter()
    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(call, range(100)))
    wall = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n--- race: 100 checkouts for 10 units in {wall:.1f}s, {len(retried_503)} 503s retried ---")

    statuses = Counter(r.status_code for _, r in results)
    assert statuses == {200: 10, 409: 90}, (statuses, [r.text for _, r in results if r.status_code not in (200, 409)][:3],
                                            e2e.log_tail("checkout"))
    held = {key: r.json() for key, r in results if r.status_code == 200}
    for out in held.values():
        assert_held_reply(out, PRICE)
    hold_ids = {out["hold_id"] for out in held.values()}
    pis = {pi_of(out["client_secret"]) for out in held.values()}
    assert len(hold_ids) == 10 and len(pis) == 10, held
    for _, r in results:
        if r.status_code == 409:
            assert r.json()["error"] == "insufficient_stock", r.text
            assert r.json()["available"] == [{"product_id": product, "requested": 1, "available": 0}], r.text

    item = e2e.item(shop.store, product)
    assert (item["available"], item["sold_out"]) == (0, True), item
    orders = e2e.hold_orders(shop.store)
    assert sorted(o["order_id"] for o in orders) == sorted(hold_ids), orders
    assert all(o["status"] == "pending" for o in orders), [o["status"] for o in orders]

    creates = pi_creates(e2e, seq, shop.store)
    assert len(creates) == 10, [(r["form"], r["idempotency_key"]) for r in creates]
    assert {r["form"]["metadata[hold_id]"] for r in creates} == hold_ids
    for r in creates:
        f = r["form"]
        assert (f["amount"], f["currency"], f["capture_method"]) == (str(PRICE), "usd", "manual"), f
        assert r["idempotency_key"] == f"stockbridge-checkout-{f['metadata[hold_id]']}", r
    state = e2e.stripe_state()["payment_intents"]
    for out in held.values():
        pi = state[pi_of(out["client_secret"])]
        assert pi["client_secret"] == out["client_secret"]
        assert (pi["status"], pi["capture_method"], pi["amount"]) == ("requires_payment_method", "manual", PRICE), pi
        assert pi["metadata"] == {"hold_id": out["hold_id"], "store_id": shop.store}, pi["metadata"]
    assert_retained(e2e, shop.store, product, available=0)


# ---------------------------------------------------------------------- 2. expiry


def test_an_expired_hold_is_released_by_the_sweeper_and_its_stock_returns(shop):
    e2e = shop.e2e
    product = shop.product("expire", stock=5)
    hold = shop.checkout((product, 3))
    assert_held_reply(hold, 3 * PRICE)
    assert shop.available(product) == 2
    assert order_status(e2e, hold["hold_id"]) == "pending"
    assert_retained(e2e, shop.store, product, available=2)

    not_yet = e2e.sweep()
    assert not_yet["released"] == 0 and order_status(e2e, hold["hold_id"]) == "pending", not_yet
    e2e.expire_hold(hold["hold_id"])
    pubs_before = len(e2e.publishes(stock_topic(shop.store, product)))

    report = e2e.sweep()

    assert report == {"expired": 1, "released": 1, "raced": 0, "failed": 0, "more": False}, \
        f"{report}\n{e2e.log_tail('sweeper')}"
    item = e2e.item(shop.store, product)
    assert (item["available"], item["sold_out"]) == (5, False), item
    order = e2e.order(hold["hold_id"])
    assert order["status"] == "released", order
    pubs = e2e.publishes(stock_topic(shop.store, product))[pubs_before:]
    assert [p["json"]["available"] for p in pubs] == [5], pubs
    assert_retained(e2e, shop.store, product, available=5)
    assert pi_calls(e2e, hold["pi"], "capture") == []
    again = e2e.sweep()
    assert again["released"] == 0 and shop.available(product) == 5, again


# ---------------------------------------------------------------------- 3. late authorisation


def test_a_payment_authorised_after_its_hold_expired_and_the_stock_sold_is_cancelled_not_captured(shop):
    e2e = shop.e2e
    product = shop.product("late", stock=2)
    a = shop.checkout((product, 2))
    assert shop.available(product) == 0
    e2e.expire_hold(a["hold_id"])
    assert e2e.sweep()["released"] == 1
    assert shop.available(product) == 2 and order_status(e2e, a["hold_id"]) == "released"

    b = shop.checkout((product, 2))
    assert shop.available(product) == 0
    e2e.authorize(b["pi"])
    e2e.wait_stripe_events()
    assert order_status(e2e, b["hold_id"]) == "fulfilled", e2e.logs_about(b["hold_id"])
    assert e2e.pi_status(b["pi"]) == "succeeded", e2e.logs_about(b["hold_id"])
    assert len([r for r in pi_calls(e2e, b["pi"], "capture") if r["status"] == 200 and not r["replayed"]]) == 1

    late = e2e.authorize(a["pi"])  # the buyer of A pays late
    assert late["status"] == "requires_capture", late
    e2e.wait_stripe_events()

    assert e2e.pi_status(a["pi"]) == "canceled", e2e.logs_about(a["hold_id"])
    assert pi_calls(e2e, a["pi"], "capture") == [], "A's PaymentIntent must never be captured"
    cancels = pi_calls(e2e, a["pi"], "cancel")
    assert [c["status"] for c in cancels if not c["replayed"]] == [200], cancels
    assert order_status(e2e, a["hold_id"]) == "oversold", e2e.logs_about(a["hold_id"])
    assert refund_posts(e2e, a["pi"]) == [] and e2e.refunds_for([a["pi"]]) == []
    assert order_status(e2e, b["hold_id"]) == "fulfilled"
    item = e2e.item(shop.store, product)
    assert (item["available"], item["sold_out"]) == (0, True), item
    assert_retained(e2e, shop.store, product, available=0)


# ---------------------------------------------------------------------- 4. duplicate authorisation event


def test_a_duplicate_amount_capturable_updated_captures_once(shop):
    e2e = shop.e2e
    product = shop.product("dup", stock=3)
    hold = shop.checkout((product, 1))
    e2e.authorize(hold["pi"])
    e2e.wait_stripe_events()
    assert order_status(e2e, hold["hold_id"]) == "fulfilled", e2e.logs_about(hold["hold_id"])
    assert e2e.pi_status(hold["pi"]) == "succeeded", e2e.logs_about(hold["hold_id"])
    (event,) = e2e.stripe_events_for(hold["pi"], "payment_intent.amount_capturable_updated")
    delivered = [d for d in e2e.event_deliveries_for(hold["pi"]) if d["event"] == event["id"]]
    assert [d["ok"] for d in delivered] == [True], delivered
    before = e2e.item(shop.store, product)
    assert before["available"] == 2, before
    ledger_before = e2e.ledger(shop.store, product)

    outs = [e2e.invoke(envelope_of(event)) for _ in range(2)]

    assert all(o["ok"] for o in outs), f"{outs}\n{e2e.inventory_log_tail()}"
    assert all("AlreadyApplied" in json.dumps(o["response"]) for o in outs), outs
    captures = pi_calls(e2e, hold["pi"], "capture")
    assert len([c for c in captures if c["status"] == 200 and not c["replayed"]]) == 1, captures
    for c in captures:
        assert c["idempotency_key"] == f"stockbridge-capture-{hold['hold_id']}", c
        assert c["replayed"] or c is captures[0], captures
    assert e2e.pi_status(hold["pi"]) == "succeeded"
    assert order_status(e2e, hold["hold_id"]) == "fulfilled"
    after = e2e.item(shop.store, product)
    assert (after["available"], after["version"]) == (2, before["version"]), (before, after)
    assert e2e.ledger(shop.store, product) == ledger_before
    assert refund_posts(e2e, hold["pi"]) == []


# ---------------------------------------------------------------------- 5. client retries


def test_a_retry_with_the_same_idempotency_key_finds_the_same_hold(shop):
    e2e = shop.e2e
    product = shop.product("retry", stock=5)
    seq = e2e.stripe_seq()
    key = f"e2e-retry-{shop.u}"

    first = shop.checkout((product, 2), key=key)
    again = shop.checkout((product, 2), key=key)

    assert_held_reply(first, 2 * PRICE)
    for k in ("hold_id", "client_secret", "amount", "currency", "expires_at"):
        assert again[k] == first[k], (k, first, again)
    assert shop.available(product) == 3
    (order,) = e2e.hold_orders(shop.store)
    assert (order["order_id"], order["status"]) == (first["hold_id"], "pending"), order
    creates = pi_creates(e2e, seq, shop.store)
    assert len(creates) == 1, creates
    assert creates[0]["form"]["metadata[hold_id]"] == first["hold_id"]
    replays = [r for r in e2e.stripe_requests_since(seq)
               if r["path"] == "/v1/payment_intents" and r["method"] == "POST" and r["replayed"]]
    assert all(r["idempotency_key"] == f"stockbridge-checkout-{first['hold_id']}" for r in replays), replays

    other = e2e.post_checkout(shop.body((product, 3)), key=key)

    assert other.status_code == 400, other.text
    assert (other.json()["error"], other.json()["field"]) == ("invalid_request", "Idempotency-Key"), other.text
    assert shop.available(product) == 3
    assert [o["order_id"] for o in e2e.hold_orders(shop.store)] == [first["hold_id"]]
    assert len(pi_creates(e2e, seq, shop.store)) == 1


# ---------------------------------------------------------------------- 6. bad input


@pytest.fixture
def bad_shop(shop):
    """A product for sale in the test's store, one for sale only in another store, and the
    state that no refused request may change."""
    shop.p = shop.product("bad", stock=5)
    shop.elsewhere = shop.product("elsewhere", stock=5, store=f"{shop.store}_other")
    shop.before = shop.e2e.item(shop.store, shop.p)
    shop.seq = shop.e2e.stripe_seq()
    yield shop
    e2e = shop.e2e
    after = e2e.item(shop.store, shop.p)
    assert (after["available"], after["version"]) == (shop.before["available"], shop.before["version"]), \
        ("a refused request changed the stock", shop.before, after)
    assert e2e.item(f"{shop.store}_other", shop.elsewhere)["available"] == 5
    assert e2e.hold_orders(shop.store) == [], "a refused request left a hold"
    assert [r for r in e2e.stripe_requests_since(shop.seq) if r["path"].startswith("/v1/payment_intents")] == []


def _line(p: str, q) -> dict:
    return {"product_id": p, "quantity": q}


# name -> (request kwargs for E2E.post_checkout built from the shop, the field the 400 names)
BAD_REQUESTS = {
    "missing Idempotency-Key": (lambda s: dict(body=s.body((s.p, 1)), key=None), "Idempotency-Key"),
    "not JSON": (lambda s: dict(data=b'{"store_id": "x", "items": ['), "body"),
    "missing store_id": (lambda s: dict(body={"items": [_line(s.p, 1)]}), "store_id"),
    "empty items": (lambda s: dict(body=s.body()), "items"),
    "quantity 0": (lambda s: dict(body=s.body((s.p, 0))), "items[0].quantity"),
    "quantity 11": (lambda s: dict(body=s.body((s.p, 11))), "items[0].quantity"),
    "quantity as a string": (lambda s: dict(body={"store_id": s.store, "items": [_line(s.p, "1")]}),
                             "items[0].quantity"),
    "second line quantity -1": (lambda s: dict(body=s.body((s.p, 1), (s.elsewhere, -1))), "items[1].quantity"),
    "unknown product": (lambda s: dict(body=s.body((f"prod_nope_{s.u}", 1))), "items[0].product_id"),
    "product not sold in the store": (lambda s: dict(body=s.body((s.elsewhere, 1))), "items[0].product_id"),
    "a price from the client": (lambda s: dict(body=s.body((s.p, 1), amount=1)), "amount"),
    "21 lines": (lambda s: dict(body=s.body(*[(f"{s.p}_{i}", 1) for i in range(21)])), "items"),
}
XFAIL_BAD: dict[str, str] = {}


@pytest.mark.parametrize("case", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=XFAIL_BAD[name])) if name in XFAIL_BAD else name
    for name in BAD_REQUESTS])
def test_a_bad_request_is_a_400_naming_the_field_and_holds_nothing(bad_shop, case):
    build, field = BAD_REQUESTS[case]
    r = bad_shop.e2e.post_checkout(**build(bad_shop))
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json"), dict(r.headers)
    out = r.json()
    assert (out["error"], out["field"]) == ("invalid_request", field), out
    assert isinstance(out.get("message"), str) and out["message"], out


def test_too_large_wrong_type_method_path_and_a_preflight(bad_shop):
    e2e, shop = bad_shop.e2e, bad_shop
    big = e2e.post_checkout(data=json.dumps(shop.body((shop.p, 1), customer_email="a@b.example" + " " * 16400)).encode())
    assert big.status_code == 413, big.text
    text = e2e.post_checkout(data=json.dumps(shop.body((shop.p, 1))).encode(), headers={"Content-Type": "text/plain"})
    assert text.status_code == 415, text.text
    get = e2e.post_checkout(method="GET")
    assert get.status_code == 405, get.text
    nowhere = e2e.post_checkout(shop.body((shop.p, 1)), path="/nowhere")
    assert nowhere.status_code == 404, nowhere.text
    origin = "https://shop.example"
    pre = e2e.post_checkout(method="OPTIONS", key=None, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, idempotency-key", "Content-Type": None})
    assert pre.status_code == 204, pre.text
    assert pre.headers.get("access-control-allow-origin") in (origin, "*"), dict(pre.headers)
    assert "POST" in pre.headers.get("access-control-allow-methods", ""), dict(pre.headers)
    assert "idempotency-key" in pre.headers.get("access-control-allow-headers", "").lower(), dict(pre.headers)
    # A real cross-origin POST gets the header too (here refused: nothing is held).
    cross = e2e.post_checkout(shop.body((shop.p, 0)), headers={"Origin": origin})
    assert cross.status_code == 400 and cross.headers.get("access-control-allow-origin") in (origin, "*"), \
        (cross.status_code, dict(cross.headers))


# ---------------------------------------------------------------------- 7. declined payment


def test_a_declined_payment_releases_the_hold(shop):
    e2e = shop.e2e
    product = shop.product("decline", stock=4)
    hold = shop.checkout((product, 1))
    assert shop.available(product) == 3

    r = e2e.confirm_as_browser(hold["pi"], hold["client_secret"], "pm_card_chargeDeclined")
    assert r.status_code == 402 and r.json()["error"]["type"] == "card_error", r.text
    e2e.wait_stripe_events()

    assert order_status(e2e, hold["hold_id"]) == "released", e2e.logs_about(hold["hold_id"])
    item = e2e.item(shop.store, product)
    assert (item["available"], item["sold_out"]) == (4, False), item
    assert pi_calls(e2e, hold["pi"], "capture") == []
    assert e2e.pi_status(hold["pi"]) == "requires_payment_method"
    (failed,) = e2e.stripe_events_for(hold["pi"], "payment_intent.payment_failed")
    assert [d["ok"] for d in e2e.event_deliveries_for(hold["pi"]) if d["event"] == failed["id"]] == [True]
    assert_retained(e2e, shop.store, product, available=4)
