"""End-to-end: a checkout hold against Stripe's real PaymentIntent life cycle, through the real
`checkout` and `inventory` binaries and the fake Stripe.  Events are delivered by hand here (no
event sink), in the order a late or retried delivery would bring them.

- a cancel is terminal: the authorisation event that arrives after it takes no stock and nothing
  is captured;
- a capture Stripe refuses for good (the authorisation was cancelled) gives the sale's stock
  back and parks the order;
- a PaymentIntent Stripe refuses to create releases the hold at once (402, nothing held);
- a 503 names no internals, only a request id.
"""

from __future__ import annotations

import json
import uuid

import pytest

from test_checkout import Shop, envelope_of, order_status, pi_calls


@pytest.fixture
def quiet_shop(checkout_stack, ids) -> Shop:
    """A shop whose payment events wait to be delivered by the test."""
    checkout_stack.set_event_sink(None)
    return Shop(checkout_stack, ids["store"], ids["u"])


def cancel_at_stripe(e2e, pi: str) -> None:
    """What a person does in the Dashboard (or Stripe when an authorisation lapses)."""
    r = e2e.http.post(f"{e2e.stripe_url}/v1/payment_intents/{pi}/cancel",
                      headers={"Authorization": "Bearer sk_test_local_fake"})
    assert r.status_code == 200, r.text


def one_event(e2e, pi: str, type_: str) -> dict:
    (event,) = e2e.stripe_events_for(pi, type_)
    return event


def test_a_cancel_is_terminal_and_the_late_authorisation_takes_nothing(quiet_shop):
    shop, e2e = quiet_shop, quiet_shop.e2e
    product = shop.product("cancel", stock=2)
    hold = shop.checkout((product, 2))
    assert shop.available(product) == 0
    e2e.authorize(hold["pi"])
    cancel_at_stripe(e2e, hold["pi"])
    authorised = one_event(e2e, hold["pi"], "payment_intent.amount_capturable_updated")
    canceled = one_event(e2e, hold["pi"], "payment_intent.canceled")

    out = e2e.invoke(envelope_of(canceled))
    assert out["ok"], f"{out}\n{e2e.inventory_log_tail()}"
    assert order_status(e2e, hold["hold_id"]) == "canceled"
    assert shop.available(product) == 2

    late = e2e.invoke(envelope_of(authorised))  # older than the cancel, delivered after it
    assert late["ok"], f"{late}\n{e2e.inventory_log_tail()}"
    assert order_status(e2e, hold["hold_id"]) == "canceled"
    assert shop.available(product) == 2, "a cancelled PaymentIntent never takes stock again"
    assert pi_calls(e2e, hold["pi"], "capture") == []
    assert e2e.pi_status(hold["pi"]) == "canceled"


def test_a_capture_refused_for_good_returns_the_stock_and_parks_the_order(quiet_shop):
    shop, e2e = quiet_shop, quiet_shop.e2e
    product = shop.product("refused", stock=3)
    hold = shop.checkout((product, 2))
    e2e.authorize(hold["pi"])
    # The authorisation is cancelled before stockbridge captures; its cancel event is lost.
    cancel_at_stripe(e2e, hold["pi"])
    authorised = one_event(e2e, hold["pi"], "payment_intent.amount_capturable_updated")
    ledger_before = len(e2e.ledger(shop.store, product))

    out = e2e.invoke(envelope_of(authorised))

    assert out["ok"], f"not failed for ever: {out}\n{e2e.inventory_log_tail()}"
    captures = pi_calls(e2e, hold["pi"], "capture")
    assert [c["status"] for c in captures] == [400], captures
    assert order_status(e2e, hold["hold_id"]) == "capture_failed"
    assert shop.available(product) == 3, "the sale's stock came back"
    ledger = e2e.ledger(shop.store, product)
    # After the hold's -2: the sale (held 2 -> 0, available unchanged), then its return.
    assert [(e["delta"], e["held"]) for e in ledger[ledger_before:]] == [(0, 0), (2, 0)], ledger
    assert ledger[-1]["delta"] == 2 and ledger[-1]["actor"] == "capture-refused", ledger[-1]
    parked = json.loads(e2e.cli("parked", "list", "--json").stdout)
    (mine,) = [p for p in parked if p["id"] == f"capture:{hold['hold_id']}"]
    assert mine["state"] == "parked" and hold["pi"] in mine["reason"], mine

    again = e2e.invoke(envelope_of(authorised))
    assert again["ok"] and shop.available(product) == 3, again
    assert len(pi_calls(e2e, hold["pi"], "capture")) == 1, "a refused sale is not captured again"


def test_a_payment_intent_stripe_refuses_releases_the_hold_at_once(quiet_shop):
    shop, e2e = quiet_shop, quiet_shop.e2e
    product = shop.product("stripe400", stock=3)
    e2e.stripe_fault(400, r"^/v1/payment_intents$", 1, method="POST")
    key = f"e2e-{uuid.uuid4()}"
    r = e2e.post_checkout(shop.body((product, 3)), key=key)
    assert r.status_code == 402, r.text
    body = r.json()
    assert body["error"] == "payment_refused" and body.get("request_id"), body
    assert "stripe" not in body["message"].lower(), body
    assert shop.available(product) == 3, "nothing stays held"
    assert order_status(e2e, body["hold_id"]) == "released"
    again = e2e.post_checkout(shop.body((product, 3)), key=key)
    assert again.status_code == 410, again.text


def test_a_503_names_no_internals(quiet_shop):
    shop, e2e = quiet_shop, quiet_shop.e2e
    product = shop.product("opaque", stock=3)
    # One 500 that Stripe says not to retry: the adapter makes one attempt, the fault is used up.
    e2e.stripe("POST", "/_test/faults", {"status": 500, "path_regex": r"^/v1/payment_intents$",
                                         "count": 1, "method": "POST", "should_retry": False})
    r = e2e.post_checkout(shop.body((product, 1)), key=f"e2e-{uuid.uuid4()}")
    assert r.status_code == 503, r.text
    assert r.headers.get("retry-after"), r.headers
    body = r.json()
    assert set(body) == {"error", "message", "request_id"}, body
    for internal in ("Stripe", "stripe", "payment_intents", "arn:", "DynamoDB", "500"):
        assert internal not in json.dumps(body), body
    assert body["request_id"] in e2e.log_tail("checkout", lines=200), "the log has the details"


def test_held_units_are_kept_apart_so_a_recount_never_makes_phantom_stock(quiet_shop):
    shop, e2e = quiet_shop, quiet_shop.e2e
    product = shop.product("held", stock=3)
    hold = shop.checkout((product, 3))
    item = e2e.item(shop.store, product)
    assert (item["available"], item["held"], item["on_hand"]) == (0, 3, 3), item
    retained = e2e.retained(shop.store, product)
    assert (retained["available"], retained["held"]) == (0, 3), retained

    # The merchant counts the shelf: 3, the held units among them.
    e2e.cli("stock", "set", product, "--store", shop.store, "3")
    assert (e2e.item(shop.store, product)["available"], e2e.item(shop.store, product)["held"]) == (0, 3)
    below = e2e.cli("stock", "set", product, "--store", shop.store, "2", check=False)
    assert below.returncode != 0 and "held by pending checkouts" in below.stderr, below.stderr

    e2e.expire_hold(hold["hold_id"])
    assert e2e.sweep()["released"] == 1
    item = e2e.item(shop.store, product)
    assert (item["available"], item["held"], item["on_hand"]) == (3, 0, 3), "3 in all, not 6"
    history = e2e.history(shop.store, product)
    assert [(e["delta"], e["level"], e["held"]) for e in history["ledger"]][-3:] == \
        [(-3, 0, 3), (0, 0, 3), (3, 3, 0)], history["ledger"]
