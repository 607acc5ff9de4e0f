"""Refunds and disputes (issue 16 §4, docs/refunds.md) end to end: the real inventory binary
behind the local Lambda runtime, the fake Stripe sending `charge.refunded` and
`charge.dispute.closed` as Stripe does, moto's EventBridge routing stockbridge's own events.

- A merchant's refund in full of a paid order is recorded on it and, with the store's returns
  policy on, its units come back once (the same event delivered again changes nothing); a
  partial refund and, with the policy off, any refund only record.
- A lost dispute returns the units where the policy says so.
- An oversold order stockbridge refunds is announced with `stockbridge.order_refunded`, and the
  `charge.refunded` Stripe sends for it returns nothing.

    .venv/bin/python -m pytest -q tests/e2e/test_refunds.py
"""

from __future__ import annotations

import json
import time

from harness import UNIT_AMOUNT


def _sold(e2e, store: str, product: str, stock: int, u: str) -> tuple[str, str]:
    """`product` in `store` with `stock`, one unit bought (paid, its completed event applied by
    the inventory Lambda): (session, PaymentIntent)."""
    e2e.seed(store, [{"product_id": product, "stock": stock}])
    s = e2e.stripe_session([(product, 1)], store)
    e2e.invoke_ok(e2e.event("completed", cs_id=s["id"], evt_id=f"evt_{s['id']}",
                            store=store, payment_intent=s["payment_intent"]))
    assert e2e.order(s["id"])["status"] == "fulfilled"
    return s["id"], s["payment_intent"]


def _wait(ok, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _refund(e2e, pi: str, amount: int | None = None) -> dict:
    """The merchant refunds (the Dashboard calls the same API)."""
    body = {"payment_intent": pi}
    if amount is not None:
        body["amount"] = str(amount)
    r = e2e.http.post(f"{e2e.stripe_url}/v1/refunds", data=body,
                      headers={"Authorization": "Bearer sk_test_merchant"})
    assert r.status_code == 200, r.text
    e2e.wait_stripe_events()
    return r.json()


def _after_sale(e2e, session: str) -> dict | None:
    record = e2e.order(session)
    return (record or {}).get("record", {}).get("after_sale")


def test_a_merchants_refund_returns_the_units_once_where_the_store_says_so(paid_links, ids):
    e2e, store, u = paid_links, ids["store"], ids["u"]
    product = f"prod_ref_{u}"
    e2e.cli("store", "returns", "--store", store, "--refunds", "on")
    session, pi = _sold(e2e, store, product, 3, u)
    assert e2e.item(store, product)["available"] == 2

    _refund(e2e, pi, amount=UNIT_AMOUNT // 2)  # partial: recorded, no unit back
    _wait(lambda: (_after_sale(e2e, session) or {}).get("refunded") == UNIT_AMOUNT // 2,
          "the partial refund recorded")
    assert e2e.item(store, product)["available"] == 2
    _refund(e2e, pi)  # the rest: now in full
    _wait(lambda: (_after_sale(e2e, session) or {}).get("refunded_in_full"), "the full refund")
    assert e2e.item(store, product)["available"] == 3
    returns = [e for e in e2e.ledger(store, product) if e["cause"] == "return"]
    assert [(e["delta"], e["level"]) for e in returns] == [(1, 3)]

    # Stripe delivers the last charge.refunded again: nothing more.
    last = [e for e in e2e.stripe_state()["events"] if e["type"] == "charge.refunded"
            and e["data"]["object"]["payment_intent"] == pi][-1]
    e2e.invoke_ok({"version": "0", "id": f"redelivery-{u}", "detail-type": last["type"],
                   "source": "aws.partner/stripe.com/ed_test_local", "account": "000000000000",
                   "time": "2026-12-07T00:00:00Z", "region": "us-east-1", "resources": [],
                   "detail": last})
    assert e2e.item(store, product)["available"] == 3
    assert len([e for e in e2e.ledger(store, product) if e["cause"] == "return"]) == 1


def test_by_default_a_refund_only_records_and_a_lost_dispute_returns_when_set(paid_links, ids):
    e2e, store, u = paid_links, ids["store"], ids["u"]
    kept, returned = f"prod_keep_{u}", f"prod_disp_{u}"
    s1, pi1 = _sold(e2e, store, kept, 3, u)
    _refund(e2e, pi1)
    _wait(lambda: (_after_sale(e2e, s1) or {}).get("refunded_in_full"), "the refund recorded")
    assert e2e.item(store, kept)["available"] == 2, "the default policy keeps the stock"

    e2e.cli("store", "returns", "--store", store, "--lost-disputes", "on")
    shown = json.loads(e2e.cli("store", "returns", "--store", store, "--json").stdout)
    assert shown["returns"] == {"refunds": False, "lost_disputes": True}
    s2, pi2 = _sold(e2e, store, returned, 3, u)
    e2e.stripe("POST", "/_test/disputes", {"payment_intent": pi2, "status": "lost"})
    e2e.wait_stripe_events()
    _wait(lambda: (_after_sale(e2e, s2) or {}).get("dispute") == "lost", "the dispute recorded")
    assert e2e.item(store, returned)["available"] == 3


def test_stockbridges_own_refund_is_announced_and_returns_nothing(paid_links, ids):
    e2e, store, u = paid_links, ids["store"], ids["u"]
    product = f"prod_over_{u}"
    url, rule = e2e.merchant_events_queue("stockbridge.order_refunded", f"e2e-refunded-{u}")
    try:
        e2e.cli("store", "returns", "--store", store, "--refunds", "on")
        e2e.seed(store, [{"product_id": product, "stock": 0}])
        session = e2e.stripe_session([(product, 1)], store)
        e2e.invoke_ok(e2e.event("completed", cs_id=session["id"],
                                evt_id=f"evt_over_{u}", store=store,
                                payment_intent=session["payment_intent"]))
        record = e2e.order(session["id"])
        assert record["status"] == "oversold" and record.get("refund_id")
        e2e.wait_stripe_events()  # Stripe's charge.refunded for stockbridge's refund
        _wait(lambda: (_after_sale(e2e, session["id"]) or {}).get("refunded_in_full"),
              "stockbridge's own refund seen as a charge event")
        assert e2e.item(store, product)["available"] == 0
        got = []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got = [json.loads(m["Body"]) for m in e2e.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])]
            time.sleep(0.2)
        assert len(got) == 1, got
        detail = got[0]["detail"]
        assert (detail["order_id"], detail["reason"], detail["refund_id"]) == (
            session["id"], "oversold", record["refund_id"])
        assert detail["shortfalls"] == [{"product_id": product, "requested": 1, "available": 0}]
    finally:
        e2e.remove_rule(rule)
