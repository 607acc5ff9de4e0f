"""End-to-end tests of catalog sync (import -> table stream -> pipe -> SQS -> `catalog-sync` ->
Stripe, and Stripe catalog events back), `stockbridge backfill`, the reconciler's catalog check,
`reconcile --notify` and `stockbridge status`, on the offline stack.

Each test has its own product / store ids (uid()) and asserts on the fake Stripe's state and
recorded requests, on the catalog records in DynamoDB and on the items the CLI shows.  The fake
Stripe, the catalog-sync queue and its DLQ are shared by the session: assertions are scoped to
the test's own ids (or to counts taken before and after).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any, Iterable, Optional

import pytest

from conftest import uid

AUTH = {"Authorization": "Bearer sk_test_e2e"}
CREATE_PATHS = ("/v1/products", "/v1/prices", "/v1/payment_links")


# ---------------------------------------------------------------------- helpers


def row(product: str, store: str, *, stock: int = 5, unit_amount: Optional[int] = 1500,
        name: Optional[str] = None, **extra: Any) -> dict:
    r = {"product_id": product, "store_id": store, "name": name or f"E2E {product}", "stock": stock,
         "payment_links": [], "description": f"about {product}",
         "images": [f"https://img.example/{product}.png"], "metadata": {"color": "red"}}
    if unit_amount is not None:
        r["unit_amount"] = unit_amount
    r.update(extra)
    return r


def v1(e2e, path: str, **params: Any) -> dict:
    r = e2e.http.get(e2e.stripe_url + path, params=params or None, headers=AUTH)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
    return r.json()


def prices_of(state: dict, product: str) -> list[dict]:
    return sorted((p for p in state["prices"].values() if p["product"] == product), key=lambda p: p["created"])


def links_of(state: dict, product: str) -> list[dict]:
    return [pl for pl in state["payment_links"].values() if (pl.get("metadata") or {}).get("product_id") == product]


def executed_creates(requests: Iterable[dict], products: Optional[set[str]] = None) -> list[tuple[str, str]]:
    """(kind, product) of every POST that created a product, price or payment link and really
    ran (not an idempotent replay, not refused), optionally only for ``products``."""
    out = []
    for r in requests:
        if r["method"] != "POST" or r["path"] not in CREATE_PATHS or r["status"] != 200 or r["replayed"]:
            continue
        form = r["form"]
        kind, product = {
            "/v1/products": ("product", form.get("id")),
            "/v1/prices": ("price", form.get("product")),
            "/v1/payment_links": ("link", form.get("metadata[product_id]")),
        }[r["path"]]
        if products is None or product in products:
            out.append((kind, product))
    return out


def link_price(e2e, link_id: str) -> tuple[str, int]:
    (line,) = v1(e2e, f"/v1/payment_links/{link_id}/line_items")["data"]
    return line["price"]["id"], line["quantity"]


def assert_synced_once(e2e, state: dict, product: str, stores: list[str], unit_amount: int) -> None:
    """One product, one active price (its default), one active link per store on the store's item."""
    assert product in state["products"], f"{product} not at Stripe\n{e2e.catalog_sync_log_tail()}"
    prices = prices_of(state, product)
    assert len(prices) == 1, prices
    (price,) = prices
    assert (price["unit_amount"], price["currency"], price["active"]) == (unit_amount, "usd", True), price
    assert price["metadata"].get("stockbridge") == "catalog", price
    assert state["products"][product]["default_price"] == price["id"]
    links = links_of(state, product)
    assert sorted(pl["metadata"]["store_id"] for pl in links) == sorted(stores), links
    for pl in links:
        assert pl["active"] is True, pl
        assert link_price(e2e, pl["id"]) == (price["id"], 1)
        item = e2e.item(pl["metadata"]["store_id"], product)
        assert item["payment_links"] == [pl["id"]], item
    entry = e2e.catalog_entry(product)
    details, mapping = entry["details"], entry["mapping"]
    assert details is not None and mapping is not None, entry
    assert mapping["synced_revision"] == details["revision"], entry
    assert mapping["price_id"] == price["id"] and mapping["price"] == {"amount": unit_amount, "currency": "usd"}
    assert mapping["links"] == {pl["metadata"]["store_id"]: pl["id"] for pl in links}, mapping


def dlq_bodies_mentioning(e2e, needles: Iterable[str]) -> list[str]:
    needles = list(needles)
    return [m["Body"] for m in e2e.dlq_messages() if any(n in m["Body"] for n in needles)]


def _message_kind(body: str) -> str:
    """'stream' for a table stream record, else the Stripe event's detail-type."""
    try:
        msg = json.loads(body)
    except ValueError:
        return "unparseable"
    return "stream" if msg.get("eventSource") == "aws:dynamodb" else str(msg.get("detail-type"))


def stream_record(product: str) -> str:
    return json.dumps({"eventSource": "aws:dynamodb", "eventName": "MODIFY",
                       "dynamodb": {"Keys": {"pk": {"S": f"PRODUCT#{product}"}, "sk": {"S": "DETAILS"}}}})


# ---------------------------------------------------------------------- 1. import -> Stripe


def test_import_creates_one_product_price_and_link_per_store_and_a_reimport_writes_nothing(e2e, ids):
    product = f"cat_import_{ids['u']}"
    stores = [f"{ids['store']}_a", f"{ids['store']}_b"]
    rows = [row(product, s, stock=4) for s in stores]
    seq = e2e.stripe_seq()

    e2e.import_catalog(rows)
    e2e.wait_catalog_idle()

    state = e2e.stripe_state()
    prod = state["products"].get(product)
    assert prod is not None, e2e.catalog_sync_log_tail()
    assert (prod["name"], prod["description"], prod["images"], prod["active"]) == \
        (f"E2E {product}", f"about {product}", [f"https://img.example/{product}.png"], True), prod
    assert prod["metadata"] == {"color": "red"}, prod["metadata"]
    assert_synced_once(e2e, state, product, stores, 1500)
    creates = Counter(executed_creates(e2e.stripe_requests_since(seq), {product}))
    assert creates == {("product", product): 1, ("price", product): 1, ("link", product): 2}, creates
    details = e2e.catalog_entry(product)["details"]
    assert details["price"] == {"amount": 1500, "currency": "usd"} and sorted(details["stores"]) == stores

    seq2 = e2e.stripe_seq()
    e2e.import_catalog(rows)
    e2e.wait_catalog_idle()

    posts = [(r["path"], r["form"]) for r in e2e.stripe_requests_since(seq2) if r["method"] == "POST"]
    assert posts == [], posts
    again = e2e.catalog_entry(product)
    assert again["details"]["revision"] == details["revision"], again
    assert again["mapping"]["synced_revision"] == details["revision"]


# ---------------------------------------------------------------------- 2. price change, twice delivered


def test_a_price_change_delivered_twice_creates_one_new_price_and_replaces_the_link(e2e, ids):
    product, store = f"cat_price_{ids['u']}", ids["store"]
    e2e.import_catalog([row(product, store, unit_amount=1500)])
    e2e.wait_catalog_idle()
    before = e2e.stripe_state()
    (old_price,) = prices_of(before, product)
    (old_link,) = links_of(before, product)
    dlq_before = e2e.queue_depth(e2e.dlq_url)

    e2e.import_catalog([row(product, store, unit_amount=1800)])
    e2e.send_to_catalog_queue(stream_record(product))  # the same change delivered again ...
    e2e.send_to_catalog_queue(stream_record(product))  # ... and again
    e2e.wait_catalog_idle()

    state = e2e.stripe_state()
    prices = prices_of(state, product)
    assert len(prices) == 2, [(p["id"], p["unit_amount"], p["active"]) for p in prices]
    new_price = next(p for p in prices if p["id"] != old_price["id"])
    assert (new_price["unit_amount"], new_price["active"]) == (1800, True), new_price
    assert state["prices"][old_price["id"]]["active"] is False, "the old price is archived"
    assert state["products"][product]["default_price"] == new_price["id"]
    item = e2e.item(store, product)
    (new_link,) = item["payment_links"]
    assert new_link != old_link["id"], item
    assert link_price(e2e, new_link) == (new_price["id"], 1)
    assert state["payment_links"][new_link]["active"] is True
    assert state["payment_links"][old_link["id"]]["active"] is False, "the old link is switched off"
    assert len(links_of(state, product)) == 2
    mapping = e2e.catalog_entry(product)["mapping"]
    assert (mapping["price_id"], mapping["links"]) == (new_price["id"], {store: new_link}), mapping
    assert mapping["synced_revision"] == e2e.catalog_entry(product)["details"]["revision"]
    assert e2e.queue_depth(e2e.dlq_url) == dlq_before
    assert dlq_bodies_mentioning(e2e, [product]) == []


# ---------------------------------------------------------------------- 3. 429 storm


def test_a_429_storm_is_retried_within_the_budget(e2e, ids):
    products = [f"cat_storm{i}_{ids['u']}" for i in range(10)]
    store = ids["store"]
    e2e.wait_catalog_idle()
    dlq_before = e2e.queue_depth(e2e.dlq_url)
    log_before = len(e2e.catalog_sync_log())
    e2e.stripe("POST", "/_test/rate_limit", {"per_second": 3, "burst": 3})
    try:
        rejected_before = e2e.stripe("GET", "/_test/rate_limit")["rejected"]
        e2e.import_catalog([row(p, store, unit_amount=1000 + i) for i, p in enumerate(products)])
        e2e.wait_catalog_idle(timeout=240)
        limiter = e2e.stripe("GET", "/_test/rate_limit")
    finally:
        e2e.stripe("POST", "/_test/rate_limit", {})
    assert limiter["rejected"] > rejected_before, f"no 429 storm happened: {limiter}"

    state = e2e.stripe_state()
    for i, p in enumerate(products):
        assert_synced_once(e2e, state, p, [store], 1000 + i)
    dead = Counter(_message_kind(m["Body"]) for m in e2e.dlq_messages()
                   if any(p in m["Body"] for p in products))
    assert e2e.queue_depth(e2e.dlq_url) == dlq_before, \
        f"dead-lettered: {dict(dead)}; limiter {limiter}; pipe {e2e.stack_stats()}"
    assert dlq_bodies_mentioning(e2e, products) == []
    log = e2e.catalog_sync_log()[log_before:]
    assert "retrying" in log or "will be retried" in log, log[-3000:]


# ---------------------------------------------------------------------- 4. Dashboard edit put back


def test_a_dashboard_rename_is_put_back_and_foreign_metadata_kept(e2e, ids):
    product, store = f"cat_dash_{ids['u']}", ids["store"]
    e2e.import_catalog([row(product, store, name="Catalog name")])
    e2e.wait_catalog_idle()

    e2e.stripe("POST", f"/_test/dashboard/products/{product}", {"name": "X", "metadata": {"theirs": "1"}})
    e2e.wait_catalog_idle()

    prod = v1(e2e, f"/v1/products/{product}")
    records = e2e.discrepancies(subject=f"{product}/name", what="catalog_field_at_stripe")
    assert len(records) >= 1, e2e.catalog_sync_log_tail()
    assert (records[0]["expected"], records[0]["found"], records[0]["repaired"]) == ("Catalog name", "X", True)
    assert prod["name"] == "Catalog name", f"not put back at Stripe\n{e2e.catalog_sync_log_tail()}"
    assert prod["metadata"] == {"color": "red", "theirs": "1"}, prod["metadata"]
    assert e2e.catalog_entry(product)["mapping"]["stripe_metadata"] == {"theirs": "1"}


# ---------------------------------------------------------------------- 5. poison message


def test_a_poison_message_is_dead_lettered_with_its_reason(e2e, ids):
    body = f"not json {ids['u']}"
    mid = e2e.send_to_catalog_queue(body)
    e2e.wait_catalog_idle()

    found: list[dict] = []
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        found = [m for m in e2e.dlq_messages() if m["Body"] == body]
        if not found:
            time.sleep(0.2)
    assert len(found) == 1, f"not in the DLQ\n{e2e.catalog_sync_log_tail()}"
    (msg,) = found
    e2e.dlq_messages(delete=lambda m: m["Body"] == body)  # leave the DLQ as it was
    attrs = msg.get("MessageAttributes") or {}
    assert "reason" in attrs, msg
    assert attrs["reason"]["DataType"] == "String"
    assert "json" in attrs["reason"]["StringValue"].lower(), attrs["reason"]
    assert attrs["source_message_id"]["StringValue"] == mid, attrs
    assert int(msg["Attributes"]["ApproximateReceiveCount"]) >= 1
    assert [m for m in e2e.dlq_messages() if m["Body"] == body] == []
    assert mid in e2e.catalog_sync_log(), "catalog-sync logs the dead-lettered message"


# ---------------------------------------------------------------------- 6. drift without an event


def test_drift_without_an_event_is_found_and_repaired_by_reconcile(e2e, ids):
    product, store = f"cat_drift_{ids['u']}", ids["store"]
    e2e.import_catalog([row(product, store, name="Right name")])
    e2e.wait_catalog_idle()
    sink = e2e.stripe("GET", "/_test/catalog_event_sink")["url"]
    assert sink, "the stack points the catalog sink at the pipe"
    e2e.stripe("POST", "/_test/catalog_event_sink", {"url": None})
    try:
        e2e.stripe("POST", f"/_test/dashboard/products/{product}", {"name": "Wrong name"})
    finally:
        e2e.stripe("POST", "/_test/catalog_event_sink", {"url": sink})
    e2e.wait_catalog_idle()
    assert v1(e2e, f"/v1/products/{product}")["name"] == "Wrong name", "no event: nothing repaired it"

    def reconcile(*extra: str) -> dict:
        return json.loads(e2e.cli("reconcile", "--session-grace-secs", "0", "--json", *extra,
                                  timeout=120).stdout)

    def mine(report: dict) -> list[dict]:
        return [d for d in report["catalog"]["discrepancies"] if d["subject"].startswith(f"{product}/")]

    seq = e2e.stripe_seq()
    dry = reconcile("--dry-run")
    assert [d["subject"] for d in mine(dry)] == [f"{product}/name"], dry["catalog"]
    (d,) = mine(dry)
    assert (d["what"], d["expected"], d["found"]) == ("catalog_matches_stripe", "Right name", "Wrong name"), d
    assert dry["summary"]["dry_run"] is True and dry["summary"]["by_check"].get("catalog_matches_stripe", 0) >= 1
    assert [r for r in e2e.stripe_requests_since(seq) if r["method"] == "POST"] == [], "a dry run changes nothing"
    assert v1(e2e, f"/v1/products/{product}")["name"] == "Wrong name"

    out = reconcile()
    assert [d["subject"] for d in mine(out)] == [f"{product}/name"], out["catalog"]
    assert out["catalog"]["repaired"] >= 1
    e2e.wait_catalog_idle()
    assert v1(e2e, f"/v1/products/{product}")["name"] == "Right name", e2e.catalog_sync_log_tail()
    assert any(r["repaired"] for r in e2e.discrepancies(subject=f"{product}/name", what="catalog_matches_stripe"))

    again = reconcile()
    assert mine(again) == [], again["catalog"]


# ---------------------------------------------------------------------- 7. backfill, interrupted


def test_an_interrupted_backfill_resumes_without_duplicates(e2e, ids):
    prefix, store, n = f"bf{ids['u']}_", ids["store"], 300
    created = e2e.stripe("POST", "/_test/products/bulk", {"count": n, "prefix": prefix, "unit_amount": 700,
                                                         "metadata": {"origin": "backfill-e2e"}})["created"]
    state = e2e.stripe_state()
    mine = sorted(p for p in state["products"] if p.startswith(f"prod_{prefix}"))
    assert len(mine) == n, (created, len(mine))
    # a few payment links: some say their store, some do not (they go to --store)
    linked = {p: e2e.stripe("POST", "/_test/payment_links",
                            {"id": f"plink_{prefix}{i}", "price": state["products"][p]["default_price"],
                             **({"metadata": {"store_id": store}} if i % 2 else {})})["id"]
              for i, p in enumerate(mine[::60])}
    # a checkout event exists, so backfill has one to set the replay cursor at (if none is set)
    paid_link = next(iter(linked.values()))
    page = e2e.http.get(f"{e2e.stripe_url}/pay/{paid_link}")
    assert page.status_code == 200, page.text
    session = re.search(r'name="session" value="([^"]+)"', page.text).group(1)
    assert e2e.http.post(f"{e2e.stripe_url}/pay/{paid_link}", data={"session": session}).status_code == 200
    e2e.wait_catalog_idle()
    e2e.ddb.delete_item(TableName=e2e.table, Key={"pk": {"S": "CHECKPOINT#backfill"}, "sk": {"S": "CHECKPOINT"}})
    seq = e2e.stripe_seq()
    e2e.stripe_fault(500, r"^/v1/products$", count=4, method="GET", skip=1)

    first = e2e.cli("backfill", "--default-stock", "5", "--store", store, check=False, timeout=300)

    assert first.returncode != 0, first.stdout + first.stderr
    assert "again" in (first.stdout + first.stderr).lower(), first.stderr
    assert e2e.stripe_state()["faults"] == [], "the fault was used up by the first run"
    half = [p for p in mine if e2e.catalog_entry(p)["details"] is not None]
    assert 0 < len(half) < n, len(half)
    checkpoint = e2e.ddb.get_item(TableName=e2e.table, ConsistentRead=True,
                                  Key={"pk": {"S": "CHECKPOINT#backfill"}, "sk": {"S": "CHECKPOINT"}}).get("Item")
    assert checkpoint is not None, "progress is checkpointed"

    second = e2e.cli("backfill", "--default-stock", "5", "--store", store, timeout=300)
    e2e.wait_catalog_idle(timeout=180)

    details = e2e.scan_prefix(f"PRODUCT#prod_{prefix}", sk="DETAILS")
    assert Counter(d["pk"] for d in details) == {f"PRODUCT#{p}": 1 for p in mine}, second.stdout
    for p in mine:
        entry = e2e.catalog_entry(p)
        assert entry["details"]["price"] == {"amount": 700, "currency": "usd"}, entry
        assert entry["mapping"]["synced_revision"] == entry["details"]["revision"], entry
        assert entry["mapping"]["price_id"] == state["products"][p]["default_price"], entry
    items = {i["pk"].split("#")[2]: i for i in e2e.scan_prefix(f"ITEM#{store}#prod_{prefix}", sk="ITEM")}
    assert sorted(items) == mine
    assert {i["available"] for i in items.values()} == {5}
    for p, link in linked.items():
        assert e2e.item(store, p)["payment_links"] == [link], p
    writes = [(r["method"], r["path"]) for r in e2e.stripe_requests_since(seq)
              if r["method"] == "POST" and any(r["path"].startswith(c) for c in CREATE_PATHS)]
    assert writes == [], f"backfilled products must cause no Stripe writes: {Counter(writes)}"
    cursor = e2e.ddb.get_item(TableName=e2e.table, ConsistentRead=True,
                              Key={"pk": {"S": "CURSOR#stripe-events"}, "sk": {"S": "CURSOR"}}).get("Item")
    assert cursor is not None, "backfill sets the replay cursor"


# ---------------------------------------------------------------------- 8. notify + status


def test_reconcile_notify_publishes_the_summary_and_status_shows_it(e2e, ids):
    store, u = ids["store"], ids["u"]
    product = f"cat_notify_{u}"
    link = e2e.stripe("POST", "/_test/payment_links", {"id": f"plink_notify_{u}", "product": product,
                                                       "unit_amount": 1500,
                                                       "metadata": {"store_id": store}})["id"]
    e2e.seed(store, [{"product_id": product, "stock": 0, "payment_links": [link]}])
    assert e2e.stripe_state()["payment_links"][link]["active"] is False
    r = e2e.http.post(f"{e2e.stripe_url}/v1/payment_links/{link}", data={"active": "true"}, headers=AUTH)
    assert r.status_code == 200, r.text

    queue_url = e2e.sqs.create_queue(QueueName=f"e2e-notify-{u}")["QueueUrl"]
    queue_arn = e2e.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"e2e-notify-{u}"
    e2e.events.put_rule(Name=rule, EventBusName="default", EventPattern=json.dumps({"source": ["stockbridge"]}))
    e2e.events.put_targets(Rule=rule, EventBusName="default", Targets=[{"Id": "q", "Arn": queue_arn}])
    try:
        out = json.loads(e2e.cli("reconcile", "--store", store, "--session-grace-secs", "0", "--notify",
                                 "--json", timeout=120).stdout)
        msgs: list[dict] = []
        deadline = time.monotonic() + 10
        while not msgs and time.monotonic() < deadline:
            msgs = e2e.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not msgs:
                time.sleep(0.2)
    finally:
        e2e.events.remove_targets(Rule=rule, EventBusName="default", Ids=["q"])
        e2e.events.delete_rule(Name=rule, EventBusName="default")

    assert len(msgs) == 1, msgs
    event = json.loads(msgs[0]["Body"])
    assert (event["source"], event["detail-type"]) == ("stockbridge", "stockbridge.reconciliation"), event
    detail = event["detail"]
    assert detail["discrepancies"] >= 1 and detail["by_check"].get("link_active_iff_in_stock", 0) >= 1, detail
    assert detail == out["summary"], (detail, out["summary"])
    assert e2e.stripe_state()["payment_links"][link]["active"] is False, "repaired"

    status = json.loads(e2e.cli("status", "--json").stdout)
    last = status["last_reconcile"]
    assert last is not None
    assert {k: last[k] for k in ("at", "discrepancies", "repaired", "by_check", "dry_run")} == \
        {k: detail[k] for k in ("at", "discrepancies", "repaired", "by_check", "dry_run")}, (last, detail)
    queues = {q["url"]: q for q in status["queues"]}
    for url in (e2e.queue_url, e2e.dlq_url):
        q = queues[url]
        assert q["error"] is None and isinstance(q["visible"], int) and isinstance(q["in_flight"], int), q
