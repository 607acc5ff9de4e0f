"""Upgrading a live stack to the release with the pending-holds index (issue 12 §5), through
the real checkout, sweeper and CLI: holds the earlier release placed (no index key, no record
of when the index began) are still released, `stockbridge migrate` indexes the ones left, and
the sweeper goes over to the index alone once every earlier hold has had time to expire.
docs/deploy.md "Upgrading a live stack" describes the same."""

from __future__ import annotations

import json
import time

from conftest import uid

SCHEMA = {"pk": {"S": "SCHEMA"}, "sk": {"S": "SCHEMA"}}


def hold(e2e, store: str, product: str, units: int) -> str:
    r = e2e.post_checkout({"store_id": store, "items": [{"product_id": product, "quantity": units}]})
    assert r.status_code == 200, f"{r.status_code} {r.text}\n{e2e.log_tail('checkout')}"
    return r.json()["hold_id"]


def as_the_earlier_release_wrote_it(e2e, hold_id: str) -> None:
    e2e.ddb.update_item(TableName=e2e.table, Key={"pk": {"S": f"ORDER#{hold_id}"}, "sk": {"S": "ORDER"}},
                        UpdateExpression="REMOVE hold_queue")


def indexed_since(e2e) -> int | None:
    got = e2e.ddb.get_item(TableName=e2e.table, Key=SCHEMA, ConsistentRead=True).get("Item")
    return None if got is None else int(got["holds_indexed_since"]["N"])


def test_holds_from_before_the_index_are_released_and_migrate_indexes_the_rest(checkout_stack):
    e2e = checkout_stack
    store, product = f"store_up_{uid()}", f"prod_up_{uid()}"
    e2e.sellable(store, {product: (5, 1500)})
    old_expired, old_pending = hold(e2e, store, product, 3), hold(e2e, store, product, 1)
    assert e2e.item(store, product)["available"] == 1
    for h in (old_expired, old_pending):
        as_the_earlier_release_wrote_it(e2e, h)
    e2e.ddb.delete_item(TableName=e2e.table, Key=SCHEMA)
    try:
        e2e.expire_hold(old_expired)
        first = e2e.sweep()
        # The first sweep of the new release records when the index began and scans.
        assert abs(indexed_since(e2e) - time.time() * 1000) < 120_000
        assert (first["expired"], first["released"]) == (1, 1), f"{first}\n{e2e.log_tail('sweeper')}"
        assert e2e.order(old_expired)["status"] == "released"

        dry = json.loads(e2e.cli("migrate", "--dry-run", "--json").stdout)
        assert dry["holds_indexed"] == 1, dry
        done = json.loads(e2e.cli("migrate", "--json").stdout)
        assert (done["holds_indexed"], done["changed_meanwhile"]) == (1, 0), done
        assert json.loads(e2e.cli("migrate", "--json").stdout)["holds_indexed"] == 0

        # A day and an hour later: the index alone, which now lists the migrated hold.
        e2e.ddb.put_item(TableName=e2e.table, Item={**SCHEMA, "kind": {"S": "schema"},
                                                    "holds_indexed_since": {"N": "0"}})
        e2e.expire_hold(old_pending)
        second = e2e.sweep()
        assert (second["expired"], second["released"]) == (1, 1), f"{second}\n{e2e.log_tail('sweeper')}"
        assert e2e.item(store, product)["available"] == 5
    finally:
        e2e.ddb.put_item(TableName=e2e.table, Item={**SCHEMA, "kind": {"S": "schema"},
                                                    "holds_indexed_since": {"N": "0"}})
