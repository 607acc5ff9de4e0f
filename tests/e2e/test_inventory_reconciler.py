"""What the reconciler repairs for the inventory, through the real CLI and binaries: a dropped
event replayed once, a link left on at zero, a refund that failed, a paid session without any
event."""

from __future__ import annotations

import json
import time

from conftest import UNIT_AMOUNT, uid

SETTLE_SECS = 5  # stockbridge_app::reconcile::recovery::SETTLE_SECS


def test_a_dropped_event_is_recovered_by_the_reconciler_exactly_once(e2e, cat):
    """A Stripe event lost on the way to EventBridge is replayed from /v1/events by
    `stockbridge reconcile` (the scheduled reconciler's code) exactly once."""
    product = f"prod_recover_{cat.u}"
    link = e2e.stripe("POST", "/_test/payment_links",
                      {"id": f"plink_recover_{cat.u}", "product": product, "unit_amount": UNIT_AMOUNT,
                       "metadata": {"store_id": cat.store}})["id"]
    e2e.seed(cat.store, [{"product_id": product, "name": "E2E recover", "stock": 5, "payment_links": [link]}])

    def pay() -> str:
        return e2e.pay_link(link)

    def reconcile() -> dict:
        return json.loads(e2e.cli("reconcile", "--store", cat.store, "--json").stdout)["events"]

    def sink(url):
        e2e.stripe("POST", "/_test/event_sink", {"url": url})

    sink(f"{e2e.lambda_url}/_invoke")
    try:
        delivered = pay()  # Stripe -> "EventBridge" -> inventory
        assert e2e.item(cat.store, product)["available"] == 4
        # Sets the cursor at the newest event, or replays what is new: other tests' events that
        # went to no sink (Stripe's charge.refunded for their refunds) until none is left.
        first = reconcile()
        while first.get("more"):
            first = reconcile()
        assert delivered not in first["recovered_orders"], first

        sink(None)  # the delivery path drops the next event
        dropped = pay()
        assert e2e.item(cat.store, product)["available"] == 4
        assert e2e.order(dropped) is None

        time.sleep(SETTLE_SECS + 1)  # the replay never reads the newest seconds of the log
        out = reconcile()
        assert (out["recovered"], out["recovered_orders"]) == (1, [dropped]), out
        assert e2e.item(cat.store, product)["available"] == 3
        assert e2e.order(dropped)["status"] == "fulfilled"
        assert e2e.order(delivered)["status"] == "fulfilled"

        again = reconcile()  # re-lists its overlap: both again, each a no-op
        assert again["recovered"] == 0 and again["already_applied"] >= 2, again
        assert e2e.item(cat.store, product)["available"] == 3
        orders = [e["order_id"] for e in e2e.ledger(cat.store, product) if e.get("order_id")]
        assert sorted(orders) == sorted([delivered, dropped]), "each order moved stock exactly once"
    finally:
        sink(None)


def test_a_link_left_active_at_zero_is_switched_off_and_recorded_by_the_reconciler(e2e, cat):
    product, link = cat.product("drift", stock=1)
    e2e.cli("stock", "set", product, "--store", cat.store, "0")
    assert e2e.stripe_state()["payment_links"][link]["active"] is False
    # Someone switches the link back on in the Dashboard while the product is sold out.
    r = e2e.http.post(f"{e2e.stripe_url}/v1/payment_links/{link}", data={"active": "true"},
                      headers={"Authorization": "Bearer sk_test_e2e"})
    assert r.status_code == 200, r.text
    assert e2e.stripe_state()["payment_links"][link]["active"] is True

    dry = json.loads(e2e.cli("reconcile", "--store", cat.store, "--dry-run", "--json").stdout)
    assert dry["events"] is None and len(dry["links"]["discrepancies"]) == 1 and dry["links"]["repaired"] == 0, dry
    assert e2e.stripe_state()["payment_links"][link]["active"] is True, "a dry run repairs nothing"

    out = json.loads(e2e.cli("reconcile", "--store", cat.store, "--json").stdout)["links"]
    (d,) = out["discrepancies"]
    assert d["what"] == "link_active_iff_in_stock" and link in d["subject"], d
    assert (d["expected"].startswith("active=false"), d["found"], out["repaired"]) == (True, "active=true", 1)
    assert e2e.stripe_state()["payment_links"][link]["active"] is False
    records = [_r for _r in e2e.ddb.scan(TableName=e2e.table, ConsistentRead=True,
                                         FilterExpression="kind = :k AND subject = :s",
                                         ExpressionAttributeValues={":k": {"S": "discrepancy"},
                                                                    ":s": {"S": d["subject"]}})["Items"]]
    assert sorted(r["repaired"]["BOOL"] for r in records) == [False, True], records
    again = json.loads(e2e.cli("reconcile", "--store", cat.store, "--json").stdout)["links"]
    assert again["discrepancies"] == [], again


def test_an_oversold_order_whose_refund_failed_is_refunded_by_the_reconciler(e2e, cat):
    product, link = cat.product("refundfix", stock=0)
    session, ev = cat.checkout([(product, 1)], link=link)
    # Stripe refuses every refund attempt of this invocation (the adapter tries 4 times).
    e2e.stripe_fault(500, r"^/v1/refunds$", 4, method="POST")
    out = e2e.invoke(ev)
    assert out["ok"] is False and "refund" in json.dumps(out["error"]).lower(), out
    order = e2e.order(session["id"])
    assert order["status"] == "oversold" and not order.get("refund_id"), order
    assert e2e.refunds_for([session["payment_intent"]]) == []

    report = json.loads(e2e.cli("reconcile", "--store", cat.store, "--json").stdout)["links"]
    assert report["oversold_orders"] == 1 and report["repaired"] >= 1, report
    assert [d["what"] for d in report["discrepancies"]].count("oversold_order_refunded") == 1, report
    refunds = e2e.refunds_for([session["payment_intent"]])
    assert len(refunds) == 1, refunds
    assert e2e.order(session["id"]).get("refund_id") == refunds[0]["id"]
    again = json.loads(e2e.cli("reconcile", "--store", cat.store, "--json").stdout)["links"]
    assert again["discrepancies"] == [] and len(e2e.refunds_for([session["payment_intent"]])) == 1, again


def test_a_paid_session_without_any_event_is_applied_by_the_reconciler(e2e, cat):
    product, link = cat.product("noevent", stock=4)
    # Paid at Stripe, but no event ever reached stockbridge (not even /v1/events).
    session = e2e.stripe_session([(product, 1)], cat.store, payment_link=link)
    assert e2e.order(session["id"]) is None

    young = json.loads(e2e.cli("reconcile", "--store", cat.store, "--dry-run", "--json").stdout)["links"]
    assert young["discrepancies"] == [], "a session younger than the grace period is left to its event"
    dry = json.loads(e2e.cli("reconcile", "--store", cat.store, "--dry-run", "--session-grace-secs", "0",
                             "--json").stdout)["links"]
    assert [d["what"] for d in dry["discrepancies"]] == ["paid_session_has_order"], dry
    assert e2e.order(session["id"]) is None and e2e.item(cat.store, product)["available"] == 4

    out = json.loads(e2e.cli("reconcile", "--store", cat.store, "--session-grace-secs", "0", "--json").stdout)["links"]
    assert out["repaired"] == 1 and out["sessions"] == 1, out
    assert e2e.order(session["id"])["status"] == "fulfilled"
    assert e2e.item(cat.store, product)["available"] == 3
    (entry,) = [e for e in e2e.ledger(cat.store, product) if e.get("order_id") == session["id"]]
    assert entry["stripe_event_id"] == f"reconcile_{session['id']}", entry
    again = json.loads(e2e.cli("reconcile", "--store", cat.store, "--session-grace-secs", "0", "--json").stdout)["links"]
    assert again["discrepancies"] == [] and e2e.item(cat.store, product)["available"] == 3, again
