"""End-to-end tests of the `inventory` Lambda (and the `stockbridge` CLI) on the offline stack.

Each test has its own store and product / session / event ids (see conftest.py) and asserts on
the stored state (DynamoDB through the CLI or boto3), on the calls the fake Stripe recorded and,
where a level changes, on the retained MQTT message a storefront would receive.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from conftest import EVENTS_DIR, UNIT_AMOUNT, load_event, stock_topic, uid


RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


# ---------------------------------------------------------------------- helpers


def line_items_path(cs_id: str) -> str:
    return f"/v1/checkout/sessions/{cs_id}/line_items"


def order_entries(ledger: list[dict]) -> list[dict]:
    return [e for e in ledger if e["cause"] == "order"]


def assert_level_message(msg: dict | None, store: str, product: str, available: int, version: int) -> None:
    assert msg is not None, f"no retained message on {stock_topic(store, product)}"
    assert set(msg) >= {"product_id", "store_id", "available", "version", "sold_out", "updated_at"}, msg
    assert msg["product_id"] == product and msg["store_id"] == store, msg
    assert (msg["available"], msg["version"], msg["sold_out"]) == (available, version, available == 0), msg
    assert RFC3339_MS.match(msg["updated_at"]), msg
    datetime.fromisoformat(msg["updated_at"].replace("Z", "+00:00"))


def path_template(path: str) -> str:
    path = re.sub(r"^/v1/checkout/sessions/[^/]+", "/v1/checkout/sessions/{id}", path)
    path = re.sub(r"^/v1/payment_links/[^/]+", "/v1/payment_links/{id}", path)
    path = re.sub(r"^/v1/(payment_intents|refunds|products|prices)/[^/]+", r"/v1/\1/{id}", path)
    return path




# ---------------------------------------------------------------------- (a) one paid order


def test_one_paid_order_takes_stock_publishes_and_lists_line_items_once(e2e, cat):
    product, link = cat.product("a", stock=10)
    before = e2e.item(cat.store, product)
    assert (before["available"], before["version"]) == (10, 1)
    session, ev = cat.checkout([(product, 3)], link=link)
    seq = e2e.stripe_seq()

    resp = e2e.invoke_ok(ev)

    assert resp == {"status": "applied", "order_id": session["id"], "outcome": "Fulfilled"}
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"], item["sold_out"]) == (7, 2, False)
    assert item["deactivated_links"] == []
    order = e2e.order(session["id"])
    assert order["status"] == "fulfilled" and order["refund_id"] is None
    assert order["record"]["lines"] == [{"product_id": product, "quantity": 3}]
    assert order["record"]["payment_intent"] == session["payment_intent"]
    ledger = e2e.ledger(cat.store, product)
    assert len(ledger) == 2, ledger  # the import + this order
    [entry] = order_entries(ledger)
    assert entry["stripe_event_id"] == ev["detail"]["id"]
    assert entry["order_id"] == session["id"]
    assert (entry["delta"], entry["level"], entry["version"]) == (-3, 7, 2)
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=7, version=2)
    calls = [(r["method"], r["path"], r["status"]) for r in e2e.stripe_requests_since(seq)]
    assert calls == [("GET", line_items_path(session["id"]), 200)], calls
    assert e2e.stripe_state()["payment_links"][link]["active"] is True
    if e2e.cli_ready():
        hist = e2e.history(cat.store, product)
        assert [e["cause"] for e in hist["ledger"]] == ["set", "order"]
        assert hist["ledger"][1]["stripe_event_id"] == ev["detail"]["id"]
        assert [o["order_id"] for o in hist["orders"]] == [session["id"]]
        assert hist["orders"][0]["status"] == "fulfilled"


# ---------------------------------------------------------------------- (b) redelivery


def test_same_event_three_times_changes_stock_once(e2e, cat):
    product, link = cat.product("b", stock=4)
    session, ev = cat.checkout([(product, 1)], link=link)
    # Third delivery: the sample of a redelivery (same Stripe event, another EventBridge envelope).
    redelivered = e2e.event("completed_redelivered", cs_id=session["id"], evt_id=ev["detail"]["id"],
                            store=cat.store, payment_intent=session["payment_intent"], payment_link=link,
                            envelope_id=load_event("checkout.session.completed.paid.redelivered.json")["id"])
    assert redelivered["id"] != ev["id"] and redelivered["detail"]["id"] == ev["detail"]["id"]

    outcomes = [e2e.invoke_ok(ev)["outcome"], e2e.invoke_ok(ev)["outcome"], e2e.invoke_ok(redelivered)["outcome"]]

    assert outcomes == ["Fulfilled", "AlreadyApplied(Fulfilled)", "AlreadyApplied(Fulfilled)"]
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (3, 2)
    [entry] = order_entries(e2e.ledger(cat.store, product))
    assert entry["stripe_event_id"] == ev["detail"]["id"] and entry["delta"] == -1
    assert e2e.order(session["id"])["status"] == "fulfilled"
    assert e2e.refunds_for([session["payment_intent"]]) == []
    assert not [r for r in e2e.stripe_requests("/v1/refunds", "POST")
                if r["form"].get("payment_intent") == session["payment_intent"]]
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=3, version=2)


# ---------------------------------------------------------------------- (c) burst


def test_burst_200_orders_for_50_units(e2e, cat, capsys):
    n_orders, stock, threads = 200, 50, 32
    product, link = cat.product("burst", stock=stock)
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: cat.checkout([(product, 1)], link=link), range(n_orders)))
    sessions = [s for s, _ in made]
    events = [ev for _, ev in made]
    cs_ids = [s["id"] for s in sessions]
    pis = [s["payment_intent"] for s in sessions]
    assert len(set(cs_ids)) == n_orders and len(set(pis)) == n_orders

    moto_before = e2e.moto_stats()
    stripe_seq = e2e.stripe_seq()
    pubs_before = len(e2e.publishes())
    health_before = e2e.http.get(f"{e2e.lambda_url}/_health").json()["stats"]

    def call(ev):
        t = time.perf_counter()
        out = e2e.invoke(ev)
        return out, time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(call, events))
    wall = time.perf_counter() - t0

    failed = [out for out, _ in results if not out["ok"]]
    assert not failed, f"{len(failed)} invocations failed, e.g. {json.dumps(failed[:3])[:2000]}\n{e2e.inventory_log_tail()}"
    outcomes = Counter(out["response"]["outcome"].split("(")[0] for out, _ in results)

    # -- figures (printed, not asserted) --
    moto_after = e2e.moto_stats()
    moto_diff = {k: moto_after.get(k, 0) - moto_before.get(k, 0) for k in sorted(set(moto_after) | set(moto_before))
                 if moto_after.get(k, 0) - moto_before.get(k, 0)}
    stripe_new = e2e.stripe_requests_since(stripe_seq)
    stripe_counts = Counter(f"{r['method']} {path_template(r['path'])} -> {r['status']}" for r in stripe_new)
    pubs = e2e.publishes()[pubs_before:]
    lat = sorted(d for _, d in results)
    dur = sorted(out["duration_ms"] for out, _ in results)
    health_after = e2e.http.get(f"{e2e.lambda_url}/_health").json()["stats"]

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

    with capsys.disabled():
        print(f"\n--- burst: {n_orders} orders x 1 unit for {stock} units, {threads} client threads, "
              f"{e2e.stack.workers} Lambda workers ---")
        print(f"wall {wall:.2f}s, {n_orders / wall:.1f} orders/s; outcomes {dict(outcomes)}")
        print(f"client latency s: p50 {pct(lat, 50):.3f} p95 {pct(lat, 95):.3f} max {lat[-1]:.3f}; "
              f"in-worker ms: p50 {pct(dur, 50):.0f} p95 {pct(dur, 95):.0f} max {dur[-1]:.0f} "
              f"mean {statistics.mean(dur):.0f}")
        print(f"moto ops: {json.dumps(moto_diff)} (total {sum(moto_diff.values())})")
        print(f"fake Stripe requests: {json.dumps(dict(sorted(stripe_counts.items())))} (total {len(stripe_new)})")
        print(f"IoT publishes: {len(pubs)}; driver stats delta: "
              f"{ {k: health_after[k] - health_before.get(k, 0) for k in health_after} }")

    # -- assertions --
    assert outcomes == {"Fulfilled": stock, "Oversold": n_orders - stock}, outcomes
    orders = e2e.orders(cs_ids)
    assert len(orders) == n_orders
    statuses = Counter(o["status"] for o in orders.values())
    assert statuses == {"fulfilled": stock, "oversold": n_orders - stock}, statuses
    oversold = [o for o in orders.values() if o["status"] == "oversold"]
    assert all(o["refund_id"] for o in oversold), [o["order_id"] for o in oversold if not o["refund_id"]]
    assert all(o["refund_id"] is None for o in orders.values() if o["status"] == "fulfilled")

    refunds = e2e.refunds_for(pis)
    assert len(refunds) == n_orders - stock, len(refunds)
    refunded_pis = Counter(r["payment_intent"] for r in refunds)
    assert all(c == 1 for c in refunded_pis.values()), [p for p, c in refunded_pis.items() if c > 1]
    oversold_pis = {o["record"]["payment_intent"] for o in oversold}
    assert set(refunded_pis) == oversold_pis
    assert {r["id"] for r in refunds} == {o["refund_id"] for o in oversold}
    assert all(r["amount"] == UNIT_AMOUNT for r in refunds)
    refund_posts = [r for r in stripe_new if r["method"] == "POST" and r["path"] == "/v1/refunds"]
    assert {r["idempotency_key"] for r in refund_posts} == {f"stockbridge-refund-{o['order_id']}" for o in oversold}

    item = e2e.item(cat.store, product)
    assert (item["available"], item["sold_out"]) == (0, True), item
    assert item["version"] == 1 + stock, item  # one movement per fulfilled order, none for oversold ones
    assert item["deactivated_links"] == [link], item
    ledger = e2e.ledger(cat.store, product)
    assert len(order_entries(ledger)) == stock
    assert {e["order_id"] for e in order_entries(ledger)} == {o["order_id"] for o in orders.values()
                                                             if o["status"] == "fulfilled"}
    assert [e["level"] for e in order_entries(ledger)] == list(range(stock - 1, -1, -1))
    pl = e2e.stripe_state()["payment_links"][link]
    assert pl["active"] is False and pl["inactive_message"], pl
    msg = e2e.retained(cat.store, product)
    assert msg is not None and (msg["available"], msg["sold_out"]) == (0, True), msg
    assert_level_message(msg, cat.store, product, available=0, version=1 + stock)


# ---------------------------------------------------------------------- (d) delayed payments


def test_async_success_overtaking_completed_takes_stock_once(e2e, cat):
    product, link = cat.product("d1", stock=5)
    session, completed = cat.checkout([(product, 1)], paid=False, link=link, kind="completed_unpaid")
    succeeded = e2e.event("async_succeeded", cs_id=session["id"], evt_id=f"evt_e2e_{uid()}", store=cat.store,
                          payment_intent=session["payment_intent"], payment_link=link)
    assert succeeded["detail"]["data"]["object"]["payment_status"] == "paid"

    assert e2e.invoke_ok(succeeded)["outcome"] == "Fulfilled"
    assert e2e.invoke_ok(completed)["outcome"] == "AlreadyApplied(Fulfilled)"

    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (4, 2)
    order = e2e.order(session["id"])
    assert order["status"] == "fulfilled" and order["record"]["payment"] == "paid"
    [entry] = order_entries(e2e.ledger(cat.store, product))
    assert entry["stripe_event_id"] == succeeded["detail"]["id"] and entry["delta"] == -1
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=4, version=2)


def test_unpaid_completed_holds_then_async_failure_releases(e2e, cat):
    product, link = cat.product("d2", stock=5)
    session, completed = cat.checkout([(product, 2)], paid=False, link=link, kind="completed_unpaid")
    failed = e2e.event("async_failed", cs_id=session["id"], evt_id=f"evt_e2e_{uid()}", store=cat.store,
                       payment_intent=session["payment_intent"], payment_link=link)

    assert e2e.invoke_ok(completed)["outcome"] == "AwaitingPayment"
    held = e2e.item(cat.store, product)
    assert (held["available"], held["version"]) == (3, 2)
    order = e2e.order(session["id"])
    assert order["status"] == "pending" and order["record"]["payment"] == "awaiting"
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=3, version=2)

    assert e2e.invoke_ok(failed)["outcome"] == "Released"
    assert e2e.invoke_ok(failed)["outcome"] == "AlreadyApplied(Released)"  # redelivery: no second release

    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (5, 3)
    order = e2e.order(session["id"])
    assert order["status"] == "released" and order["record"]["payment"] == "failed"
    ledger = e2e.ledger(cat.store, product)
    assert [(e["cause"], e["delta"], e["level"]) for e in ledger[1:]] == [("order", -2, 3), ("release", 2, 5)]
    assert ledger[2]["stripe_event_id"] == failed["detail"]["id"]
    assert ledger[2]["order_id"] == session["id"]
    assert e2e.refunds_for([session["payment_intent"]]) == []
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=5, version=3)


def test_unpaid_completed_holds_then_async_success_confirms(e2e, cat):
    product, link = cat.product("d3", stock=2)
    session, completed = cat.checkout([(product, 2)], paid=False, link=link, kind="completed_unpaid")
    succeeded = e2e.event("async_succeeded", cs_id=session["id"], evt_id=f"evt_e2e_{uid()}", store=cat.store,
                          payment_intent=session["payment_intent"], payment_link=link)

    assert e2e.invoke_ok(completed)["outcome"] == "AwaitingPayment"
    sold_out = e2e.item(cat.store, product)
    assert (sold_out["available"], sold_out["sold_out"], sold_out["deactivated_links"]) == (0, True, [link])
    assert e2e.stripe_state()["payment_links"][link]["active"] is False  # held stock counts as sold
    assert e2e.invoke_ok(succeeded)["outcome"] == "Confirmed"

    item = e2e.item(cat.store, product)
    # Taken from `available` once, at the hold; the confirmation sells the held units.
    assert (item["available"], item["held"], item["version"]) == (0, 0, 3)
    assert e2e.order(session["id"])["status"] == "fulfilled"
    entries = order_entries(e2e.ledger(cat.store, product))
    assert [(e["delta"], e["level"], e["held"]) for e in entries] == [(-2, 0, 2), (0, 0, 0)], entries


# ---------------------------------------------------------------------- (e) crash after commit


def test_crash_after_commit_is_finished_by_the_redelivery(e2e, cat, crash_driver):
    product, link = cat.product("e", stock=5)
    session, ev = cat.checkout([(product, 2)], link=link)
    topic = stock_topic(cat.store, product)

    code, first = crash_driver.invoke(json.dumps(ev).encode())

    assert code == 200 and first["ok"] is False, first
    assert first["error"]["errorType"] == "Runtime.ExitError", first
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (3, 2)  # committed before the crash
    assert e2e.order(session["id"])["status"] == "fulfilled"
    assert [p["json"]["version"] for p in e2e.publishes(topic)] == [1]  # only the import's level
    assert e2e.retained(cat.store, product)["version"] == 1  # storefronts still see the import

    resp = e2e.invoke_ok(ev)  # the redelivery, on a normal worker

    assert resp["outcome"] == "AlreadyApplied(Fulfilled)"
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (3, 2)
    [entry] = order_entries(e2e.ledger(cat.store, product))
    assert entry["delta"] == -2 and entry["stripe_event_id"] == ev["detail"]["id"]
    v2 = [p for p in e2e.publishes(topic) if p["json"]["version"] == 2]
    assert len(v2) == 1 and v2[0]["retain"] and v2[0]["qos"] == 1 and v2[0]["json"]["available"] == 3, v2
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=3, version=2)


def test_crash_between_a_take_and_its_record_is_finished_by_the_redelivery(
        e2e, cat, take_crash_driver):
    product, link = cat.product("e2", stock=5)
    session, ev = cat.checkout([(product, 2)], link=link)
    topic = stock_topic(cat.store, product)

    code, first = take_crash_driver.invoke(json.dumps(ev).encode())

    assert code == 200 and first["ok"] is False, first
    assert first["error"]["errorType"] == "Runtime.ExitError", first
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (3, 2)  # taken before the crash
    raw = e2e.ddb.get_item(TableName=e2e.table, ConsistentRead=True, Key={
        "pk": {"S": f"ITEM#{cat.store}#{product}"}, "sk": {"S": "ITEM"}})["Item"]
    marks = [k for k in raw if k.startswith("t") and k.endswith("v") and len(k) == 18]
    assert len(marks) == 1 and raw[marks[0]] == {"N": "2"}, raw  # the take's mark: its version
    assert e2e.order(session["id"]) is None  # not recorded
    assert order_entries(e2e.ledger(cat.store, product)) == []

    resp = e2e.invoke_ok(ev)  # the redelivery, on a normal worker

    assert resp["outcome"] == "Fulfilled", resp  # recorded now, taken nothing again
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (3, 2)
    assert e2e.order(session["id"])["status"] == "fulfilled"
    [entry] = order_entries(e2e.ledger(cat.store, product))
    assert (entry["delta"], entry["level"], entry["version"]) == (-2, 3, 2), entry
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=3, version=2)
    assert e2e.invoke_ok(ev)["outcome"] == "AlreadyApplied(Fulfilled)"
    assert e2e.item(cat.store, product)["available"] == 3


# ---------------------------------------------------------------------- (f) multi-line shortfall


def test_two_line_order_with_one_line_short_is_refunded_once(e2e, cat):
    plenty, plenty_link = cat.product("f1", stock=5)
    short, short_link = cat.product("f2", stock=1)
    session, ev = cat.checkout([(plenty, 2), (short, 2)], link=plenty_link)
    cs = session["id"]
    seq = e2e.stripe_seq()

    resp = e2e.invoke_ok(ev)

    assert resp["status"] == "applied" and resp["outcome"].startswith("Oversold"), resp
    for product, stock in ((plenty, 5), (short, 1)):
        item = e2e.item(cat.store, product)
        assert (item["available"], item["version"]) == (stock, 1), item
        assert order_entries(e2e.ledger(cat.store, product)) == []
    order = e2e.order(cs)
    assert order["status"] == "oversold" and order["refund_id"], order
    assert order["record"]["shortfalls"] == [{"product_id": short, "requested": 2, "available": 1}]
    refund_posts = [r for r in e2e.stripe_requests_since(seq) if (r["method"], r["path"]) == ("POST", "/v1/refunds")]
    assert len(refund_posts) == 1, refund_posts
    assert refund_posts[0]["idempotency_key"] == f"stockbridge-refund-{cs}"
    assert refund_posts[0]["form"]["payment_intent"] == session["payment_intent"]
    [refund] = e2e.refunds_for([session["payment_intent"]])
    assert refund["id"] == order["refund_id"] and refund["amount"] == 4 * UNIT_AMOUNT
    links = e2e.stripe_state()["payment_links"]
    assert links[plenty_link]["active"] and links[short_link]["active"]  # nothing sold out

    again = e2e.invoke_ok(ev)
    other_envelope = dict(ev, id=f"redelivery-{uid()}")
    again2 = e2e.invoke_ok(other_envelope)

    assert again["outcome"].startswith("AlreadyApplied(Oversold") and again2["outcome"] == again["outcome"]
    assert len(e2e.refunds_for([session["payment_intent"]])) == 1
    assert e2e.stripe_state()["refunded"][session["payment_intent"]] == 4 * UNIT_AMOUNT
    assert e2e.order(cs)["refund_id"] == order["refund_id"]
    for product, stock in ((plenty, 5), (short, 1)):
        assert e2e.item(cat.store, product)["available"] == stock


# ---------------------------------------------------------------------- (g) bad input


BAD_EVENTS = {
    "malformed.json": ("error", None),
    "foreign-source.json": ("ok", {"status": "refused"}),
    "livemode-mismatch.json": ("ok", {"status": "refused"}),
    "missing-field.json": ("error", None),
    "unknown-type.json": ("ok", {"status": "ignored"}),
}


@pytest.mark.parametrize("name", list(BAD_EVENTS))
def test_bad_events_have_no_effect(e2e, cat, name):
    product, link = cat.product("g", stock=5)
    session = e2e.stripe_session([(product, 1)], cat.store, payment_link=link)
    cs = session["id"]
    raw = (EVENTS_DIR / name).read_text()
    # This test's ids, by text substitution (keeps malformed.json malformed).
    raw = (raw.replace("cs_test_events_demo", cs).replace("store_demo", cat.store)
           .replace("pi_events_demo", session["payment_intent"]).replace("plink_events_demo", link))
    seq = e2e.stripe_seq()
    pubs = len(e2e.publishes())

    out = e2e.invoke(raw.encode())

    expect, response = BAD_EVENTS[name]
    if expect == "ok":
        assert out["ok"] is True and out["response"] == response, out
    else:
        assert out["ok"] is False, out
        message = f"{out['error'].get('errorType')}: {out['error'].get('errorMessage')}"
        if name == "missing-field.json":
            assert "detail.data.object" in message and "`id`" in message, message
            assert "malformed event" in message, message
        else:
            # serde_json's own words, passed on by the runtime: the text is cut in half.
            assert "deserialize" in message and "EOF while parsing" in message, message
    assert e2e.order(cs) is None
    assert e2e.order("cs_test_events_demo") is None
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (5, 1)
    assert len(e2e.ledger(cat.store, product)) == 1
    assert e2e.stripe_requests_since(seq) == []
    assert len(e2e.publishes()) == pubs


# ---------------------------------------------------------------------- more


def test_unknown_product_is_recorded_unmatched_and_not_refunded(e2e, cat):
    known, link = cat.product("known", stock=3)
    stranger = f"prod_stranger_{cat.u}"  # sold by Stripe, not in this store's catalog
    session, ev = cat.checkout([(stranger, 1)], link=None)
    seq = e2e.stripe_seq()

    assert e2e.invoke_ok(ev)["outcome"] == "Unmatched"

    order = e2e.order(session["id"])
    assert order["status"] == "unmatched" and order["refund_id"] is None
    assert order["record"]["unmatched"] == [{"product_id": stranger, "quantity": 1}]
    assert [(r["method"], r["path"]) for r in e2e.stripe_requests_since(seq)] == \
        [("GET", line_items_path(session["id"]))]
    assert e2e.refunds_for([session["payment_intent"]]) == []
    assert e2e.raw_item(cat.store, stranger) is None
    assert e2e.item(cat.store, known)["version"] == 1


def test_stripe_5xx_on_line_items_is_retried(e2e, cat):
    product, link = cat.product("r", stock=3)
    session, ev = cat.checkout([(product, 1)], link=link)
    path = line_items_path(session["id"])
    e2e.stripe_fault(500, f"^{re.escape(path)}$", count=2, method="GET")

    out = e2e.invoke(ev)

    assert out["ok"] is True and out["response"]["outcome"] == "Fulfilled", out
    assert [r["status"] for r in e2e.stripe_requests(path, "GET")] == [500, 500, 200]
    assert not [f for f in e2e.stripe_state()["faults"] if path in f["path_regex"]]
    assert e2e.item(cat.store, product)["available"] == 2
    assert e2e.order(session["id"])["status"] == "fulfilled"


def test_restock_with_the_cli_reactivates_the_link_and_publishes(e2e, cat):
    product, link = cat.product("restock", stock=1)
    session, ev = cat.checkout([(product, 1)], link=link)
    assert e2e.invoke_ok(ev)["outcome"] == "Fulfilled"
    sold_out = e2e.item(cat.store, product)
    assert (sold_out["available"], sold_out["sold_out"], sold_out["deactivated_links"]) == (0, True, [link])
    pl = e2e.stripe_state()["payment_links"][link]
    assert pl["active"] is False and pl["inactive_message"], pl
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=0, version=2)
    seq = e2e.stripe_seq()

    e2e.cli("stock", "set", product, "--store", cat.store, "10")

    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"], item["sold_out"]) == (10, 3, False)
    assert item["deactivated_links"] == [] and item["payment_links"] == [link]
    assert e2e.stripe_state()["payment_links"][link]["active"] is True
    # Writes only: catalog-sync reads the link when its payment_link.updated event arrives.
    updates = [r for r in e2e.stripe_requests_since(seq)
               if r["path"] == f"/v1/payment_links/{link}" and r["method"] == "POST"]
    assert [(r["method"], r["form"].get("active")) for r in updates] == [("POST", "true")]
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=10, version=3)
    last = e2e.ledger(cat.store, product)[-1]
    assert (last["cause"], last["delta"], last["level"], last.get("actor")) == ("set", 10, 10, "cli")

    # Compare-and-set and adjust.
    stale = e2e.cli("stock", "set", product, "--store", cat.store, "4", "--expect-version", "2", check=False)
    assert stale.returncode != 0 and "version" in stale.stderr, stale.stderr
    e2e.cli("stock", "adjust", product, "--store", cat.store, "--", "-3")
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (7, 4)
    below = e2e.cli("stock", "adjust", product, "--store", cat.store, "--", "-8", check=False)
    assert below.returncode != 0 and "below zero" in below.stderr, below.stderr
    assert e2e.item(cat.store, product)["available"] == 7
    assert_level_message(e2e.retained(cat.store, product), cat.store, product, available=7, version=4)


def test_cli_csv_import_creates_and_updates(e2e, cat):
    p1, p2 = f"prod_csv1_{cat.u}", f"prod_csv2_{cat.u}"
    csv = e2e.workdir / f"catalog-{cat.u}.csv"
    csv.write_text("product_id,store_id,name,stock,payment_links\n"
                   f"{p1},{cat.store},Mug,5,plink_x_{cat.u};plink_y_{cat.u}\n"
                   f"{p2},{cat.store},Tee,0,\n")
    e2e.cli("catalog", "import", str(csv))
    one, two = e2e.item(cat.store, p1), e2e.item(cat.store, p2)
    assert (one["available"], one["version"], one["payment_links"]) == (5, 1, [f"plink_x_{cat.u}", f"plink_y_{cat.u}"])
    assert (two["available"], two["sold_out"], two["payment_links"]) == (0, True, [])
    assert_level_message(e2e.retained(cat.store, p1), cat.store, p1, available=5, version=1)

    csv.write_text("product_id,store_id,name,stock,payment_links\n"
                   f"{p1},{cat.store},Mug v2,8,plink_x_{cat.u}\n")
    # A re-import updates name and links but never puts back stock by itself...
    r = e2e.cli("catalog", "import", str(csv))
    assert "stock left at 5" in r.stderr, r.stderr
    one = e2e.item(cat.store, p1)
    assert (one["available"], one["version"], one["name"], one["payment_links"]) == (5, 1, "Mug v2", [f"plink_x_{cat.u}"])
    # ... only when asked to, compare-and-set against the level it read.
    e2e.cli("catalog", "import", "--set-stock", str(csv))
    one = e2e.item(cat.store, p1)
    assert (one["available"], one["version"], one["name"], one["payment_links"]) == (8, 2, "Mug v2", [f"plink_x_{cat.u}"])
    assert_level_message(e2e.retained(cat.store, p1), cat.store, p1, available=8, version=2)


def test_an_operator_operation_rerun_with_its_id_is_applied_once(e2e, cat):
    product, _ = cat.product("op", stock=5)
    op = f"op-e2e-{uid()}"
    first = e2e.cli("stock", "adjust", product, "--store", cat.store, "--op-id", op, "--", "2")
    assert "already applied" not in first.stdout, first.stdout
    # The operator did not see the answer (a timeout) and runs the same command again.
    again = e2e.cli("stock", "adjust", product, "--store", cat.store, "--op-id", op, "--", "2")
    assert "already applied" in again.stdout, again.stdout
    item = e2e.item(cat.store, product)
    assert (item["available"], item["version"]) == (7, 2), item
    ledger = e2e.ledger(cat.store, product)
    assert [(e["delta"], e.get("operation")) for e in ledger[1:]] == [(2, op)], ledger
    # Without an id, one is made and printed, so the operator can rerun with it.
    made = e2e.cli("stock", "set", product, "--store", cat.store, "9")
    assert "--op-id op_" in made.stderr, made.stderr
