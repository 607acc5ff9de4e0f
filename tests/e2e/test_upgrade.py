"""Upgrading a live stack to the release with the pending-holds index and retention (issue 12
§5), through the real checkout, sweeper and CLI: a hold placed the way the earlier release
wrote it is found through the index (its keys are attributes every release wrote), and
`stockbridge migrate` gives records written before the retention their expiry, once, leaving
open orders alone. docs/deploy.md "Upgrading a live stack" describes the same."""

from __future__ import annotations

import json

from conftest import uid


def hold(e2e, store: str, product: str, units: int) -> str:
    r = e2e.post_checkout({"store_id": store, "items": [{"product_id": product, "quantity": units}]})
    assert r.status_code == 200, f"{r.status_code} {r.text}\n{e2e.log_tail('checkout')}"
    return r.json()["hold_id"]


def order_item(e2e, order_id: str) -> dict:
    return e2e.ddb.get_item(TableName=e2e.table, ConsistentRead=True,
                            Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "ORDER"}})["Item"]


def migrate(e2e, *args: str) -> dict:
    saved = dict(e2e.env)
    e2e.env["RETENTION_DAYS"] = "400"
    try:
        return json.loads(e2e.cli("migrate", "--json", *args).stdout)
    finally:
        e2e.env.clear()
        e2e.env.update(saved)


def test_an_earlier_releases_holds_are_swept_and_migrate_sets_expiries_once(checkout_stack):
    e2e = checkout_stack
    store, product = f"store_up_{uid()}", f"prod_up_{uid()}"
    e2e.sellable(store, {product: (5, 1500)})
    released, pending = hold(e2e, store, product, 3), hold(e2e, store, product, 1)
    # Written as the earlier release wrote them: the stack runs without RETENTION_DAYS, so no
    # record carries an expiry; the index's keys are attributes every release wrote.
    assert all("expires_at" not in order_item(e2e, h) for h in (released, pending))
    e2e.expire_hold(released)
    swept = e2e.sweep()
    # The table is the session's: other tests' holds may expire in the same sweep.
    assert swept["released"] >= 1 and swept["failed"] == 0, f"{swept}\n{e2e.log_tail('sweeper')}"
    assert json.loads(order_item(e2e, released)["record"]["S"])["status"] == "released"
    assert "index cannot be read" not in e2e.log_tail("sweeper", lines=200)

    dry = migrate(e2e, "--dry-run")
    assert dry["expiries_set"] >= 1, dry
    assert "expires_at" not in order_item(e2e, released), "a dry run changes nothing"
    migrate(e2e)
    closed = order_item(e2e, released)
    # 400 days after its last change, in epoch seconds.
    assert int(closed["expires_at"]["N"]) == int(closed["updated_at"]["N"]) // 1000 + 400 * 86_400
    assert "expires_at" not in order_item(e2e, pending), "an open hold never expires"
    assert migrate(e2e)["expiries_set"] == 0, "idempotent"
    assert e2e.item(store, product)["available"] == 4
