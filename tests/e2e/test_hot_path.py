"""The hot path (issue 13), through the real catalog-sync and inventory binaries:
§1 an order paid through a Payment Link the catalog sync made is decided from the session's own
amounts, without listing its line items (the fake Stripe's hosted payment page);
§2 concurrent orders for one product are takes, which never conflict under the DynamoDB
model's conflicts (devstack/dynamo_model.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench.shop_setup import paid_events
from conftest import uid


def line_item_calls(e2e, seq: int) -> list[dict]:
    return [r for r in e2e.stripe_requests_since(seq) if r["path"].endswith("/line_items")]


def test_an_order_through_a_link_the_catalog_sync_made_costs_no_stripe_call(e2e):
    store, product = f"store_hot_{uid()}", f"prod_hot_{uid()}"
    e2e.sellable(store, {product: (10, 1500)})
    (link,) = e2e.item(store, product)["payment_links"]
    terms = e2e.ddb.get_item(TableName=e2e.table, ConsistentRead=True,
                             Key={"pk": {"S": f"LINK#{link}"}, "sk": {"S": "TERMS"}})["Item"]
    assert (terms["product_id"]["S"], terms["unit_amount"]["N"], terms["currency"]["S"],
            terms["max_quantity"]["N"]) == (product, "1500", "usd", "1")
    e2e.set_event_sink(f"{e2e.lambda_url}/_invoke")
    try:
        seq = e2e.stripe_seq()
        fast = e2e.pay_link(link)
        assert e2e.order(fast)["status"] == "fulfilled"
        assert e2e.item(store, product)["available"] == 9
        calls = [f"{r['method']} {r['path']}" for r in e2e.stripe_requests_since(seq)
                 if fast in r["path"] or r["path"] == "/v1/refunds"]
        assert calls == [], f"no Stripe call for the order: {calls}"

        # Terms the session's amounts do not match (as if the link's price had changed at
        # Stripe), on another product's link before any order went through it (a function
        # keeps terms once read: they never change): the line items decide, once.
        other = f"prod_hot_{uid()}"
        e2e.sellable(store, {other: (10, 1500)})
        (other_link,) = e2e.item(store, other)["payment_links"]
        e2e.ddb.update_item(TableName=e2e.table,
                            Key={"pk": {"S": f"LINK#{other_link}"}, "sk": {"S": "TERMS"}},
                            UpdateExpression="SET unit_amount = :a",
                            ExpressionAttributeValues={":a": {"N": "1400"}})
        seq = e2e.stripe_seq()
        slow = e2e.pay_link(other_link)
        assert e2e.order(slow)["status"] == "fulfilled"
        assert e2e.item(store, other)["available"] == 9
        assert len(line_item_calls(e2e, seq)) == 1
    finally:
        e2e.set_event_sink(None)


def test_concurrent_orders_for_one_product_are_takes_that_never_conflict(e2e):
    store, product = f"store_hot_{uid()}", f"prod_hot_{uid()}"
    e2e.sellable(store, {product: (100, 1500)})
    (link,) = e2e.item(store, product)["payment_links"]
    events = paid_events(e2e.stripe_url, product, link, 40, store=store)
    # Real DynamoDB's conflicts on this table: a transaction on an item any write holds is
    # cancelled, a single write on an item a transaction holds is refused.
    e2e.http.post(f"{e2e.moto_url}/_model", json={
        "conflicts": True, "service_ms": 20, "tables": [e2e.table]}).raise_for_status()
    try:
        with ThreadPoolExecutor(8) as pool:  # the stack's 4 inventory workers, all busy
            results = list(pool.map(e2e.invoke_ok, events))
        stats = e2e.http.get(f"{e2e.moto_url}/_model").json()["stats"]
    finally:
        e2e.http.post(f"{e2e.moto_url}/_model/reset").raise_for_status()

    assert [r["outcome"] for r in results] == ["Fulfilled"] * 40, results
    assert {k: v for k, v in stats.items() if k.startswith("conflict_")} == {}, stats
    assert stats["single_writes"] >= 40, stats  # one take per order (and nothing else refused)
    assert e2e.item(store, product)["available"] == 60
    takes = [e for e in e2e.ledger(store, product) if e["cause"] == "order"]
    assert sorted(e["version"] for e in takes) == list(range(2, 42)), takes
    assert sorted(e["order_id"] for e in takes) == sorted(
        e["detail"]["data"]["object"]["id"] for e in events)
