"""Stock levels from the table's stream (issue 13 §3), through the real binaries on a stack of
its own that runs like the template: the `broadcaster` behind the stream trigger
(devstack/stream_trigger.py), every other function with STOCK_LEVELS_FROM_STREAM=true.

- The inventory function publishes nothing: with the trigger paused, a burst of orders reaches
  the table and not one message reaches the broker.
- A burst read in one batch is ONE message, with the newest level, and the retained message is
  the level in the table.
- A sell-out still switches its link off (the decision's effect) and the storefront sees 0.
- A publish IoT refuses is retried from the stream until it lands.
- A low-stock threshold alerts (stockbridge.low_stock on EventBridge) once per crossing."""

from __future__ import annotations

import json
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import paho.mqtt.client as mqtt
import pytest

from conftest import (CLI_BIN, E2E, INVENTORY_BIN, REPO_ROOT, _wait_workers_ready, stock_topic,
                      uid)
from devstack.stack import Stack
from conftest import Catalog

BROADCASTER_BIN = Path(os.environ.get("STOCKBRIDGE_E2E_BROADCASTER",
                                      REPO_ROOT / "target" / "debug" / "broadcaster"))


@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> Iterable[E2E]:
    assert BROADCASTER_BIN.exists(), f"{BROADCASTER_BIN} is not built (cargo build --workspace)"
    s = Stack(state_dir=tmp_path_factory.mktemp("stream-stack"), inventory_binary=INVENTORY_BIN,
              workers=4, ready_timeout=60, lambda_timeout=120,
              broadcaster_binary=BROADCASTER_BIN)
    s.start()
    try:
        assert s.broadcaster_started and s.lambda_started
        assert s.env["STOCK_LEVELS_FROM_STREAM"] == "true"
        h = E2E(s, s.env["TABLE_NAME"], tmp_path_factory.mktemp("stream-work"))
        assert h.cli_ready(refresh=True), f"{CLI_BIN} is not the stockbridge CLI"
        h.create_table()
        _wait_workers_ready(h, 4)
        yield h
    finally:
        s.stop()


def trigger(h: E2E, action: str) -> None:
    h.http.post(f"{h.stack.urls['stream_trigger']}/_{action}").raise_for_status()


def trigger_stats(h: E2E) -> dict:
    return h.http.get(f"{h.stack.urls['stream_trigger']}/_stats").json()


def levels(h: E2E, store: str, product: str) -> list[tuple[int, int]]:
    return [(p["json"]["available"], p["json"]["version"])
            for p in h.publishes(stock_topic(store, product))]


class Listener:
    """A storefront's live subscription: every message on one topic, in arrival order."""

    def __init__(self, h: E2E, store: str, product: str) -> None:
        self.got: "queue.Queue[dict]" = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-{uid()}")
        topic = stock_topic(store, product)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = lambda c, u, m: self.got.put(m)
        self.client.connect("127.0.0.1", h.stack.mqtt_port)
        self.client.loop_start()

    def versions(self, until: int, timeout: float = 20.0) -> list[int]:
        import json
        out: list[int] = []
        deadline = time.monotonic() + timeout
        while not out or out[-1] < until:
            out.append(json.loads(self.got.get(timeout=max(0.1, deadline - time.monotonic()))
                                  .payload)["version"])
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_burst_is_one_message_with_the_newest_level_and_the_inventory_publishes_none(streamed):
    h = streamed
    cat = Catalog(h, f"store_stream_{uid()}", uid())
    product, link = cat.product("tee", stock=30)
    h.stack.wait_broadcasts()
    assert levels(h, cat.store, product) == [(30, 1)], "the import is published by the stream"
    listener = Listener(h, cat.store, product)
    try:
        assert listener.versions(until=1) == [1]  # the retained message
        trigger(h, "pause")
        try:
            events = [cat.checkout([(product, 1)], link=link)[1] for _ in range(20)]
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(h.invoke_ok, events))
            assert [r["outcome"] for r in results] == ["Fulfilled"] * 20
            item = h.item(cat.store, product)
            assert (item["available"], item["version"]) == (10, 21)
            time.sleep(0.5)  # anything a function had published would have reached the bridge
            assert levels(h, cat.store, product) == [(30, 1)], "a function published a level"
        finally:
            trigger(h, "resume")
        h.stack.wait_broadcasts()
        assert levels(h, cat.store, product) == [(30, 1), (10, 21)]
        assert listener.versions(until=21) == [21]
    finally:
        listener.close()
    retained = h.retained(cat.store, product)
    assert (retained["available"], retained["version"]) == (10, 21)


def test_a_sell_out_switches_its_link_off_and_the_storefront_sees_zero(streamed):
    h = streamed
    cat = Catalog(h, f"store_stream_{uid()}", uid())
    product, link = cat.product("mug", stock=2)
    for _ in range(2):
        h.invoke_ok(cat.checkout([(product, 1)], link=link)[1])
    h.stack.wait_broadcasts()
    item = h.item(cat.store, product)
    assert (item["available"], item["deactivated_links"]) == (0, [link])
    assert h.stripe_state()["payment_links"][link]["active"] is False
    retained = h.retained(cat.store, product)
    assert (retained["available"], retained["version"], retained["sold_out"]) == (0, 3, True)
    assert [v for _, v in levels(h, cat.store, product)] == sorted(
        v for _, v in levels(h, cat.store, product)), "messages in version order"


def test_a_publish_iot_refuses_is_retried_from_the_stream_until_it_lands(streamed):
    h = streamed
    cat = Catalog(h, f"store_stream_{uid()}", uid())
    product, link = cat.product("cap", stock=5)
    h.stack.wait_broadcasts()
    before = trigger_stats(h)
    # More refusals in a row than the SDK's own attempts (3): the invocation reports the item.
    h.http.post(f"{h.bridge_url}/_faults", json={"count": 4}).raise_for_status()
    h.invoke_ok(cat.checkout([(product, 1)], link=link)[1])
    h.stack.wait_broadcasts()
    after = trigger_stats(h)
    assert after["item_failures"] > before["item_failures"], (before, after)
    assert after["batches_discarded"] == before["batches_discarded"]
    retained = h.retained(cat.store, product)
    assert (retained["available"], retained["version"]) == (4, 2)


def test_stock_publish_shows_levels_the_stream_did_not(streamed):
    h = streamed
    cat = Catalog(h, f"store_stream_{uid()}", uid())
    tee, _ = cat.product("tee", stock=5)
    mug, _ = cat.product("mug", stock=7)
    h.stack.wait_broadcasts()
    trigger(h, "pause")  # as if the broadcaster's batches had failed
    try:
        h.cli("stock", "adjust", tee, "--store", cat.store, "--", "-2")
        time.sleep(0.3)
        assert levels(h, cat.store, tee) == [(5, 1)], "the CLI publishes nothing in stream mode"
        out = h.cli("stock", "publish", "--store", cat.store).stdout
        assert "2 published" in out, out
        assert levels(h, cat.store, tee) == [(5, 1), (3, 2)]
        assert levels(h, cat.store, mug) == [(7, 1), (7, 1)]
        missing = h.cli("stock", "publish", "prod_nowhere", "--store", cat.store, check=False)
        assert missing.returncode != 0 and "not in the catalog" in missing.stderr, missing.stderr
    finally:
        trigger(h, "resume")
    h.stack.wait_broadcasts()


def test_a_sharded_product_sells_from_its_shards_and_the_last_units_through_its_item(streamed):
    """Issue 13 §4 through the real binaries: `stock shard` spreads a product over 4 shard
    items; a burst of link orders never writes its stock item; storefronts see the sum; the
    last units sell through the item, which switches the link off."""
    h = streamed
    cat = Catalog(h, f"store_stream_{uid()}", uid())
    product, link = cat.product("hoodie", stock=40)
    out = h.cli("stock", "shard", product, "--store", cat.store, "--shards", "4").stdout
    assert "40 available over 4 shards" in out, out
    spread = h.raw_item(cat.store, product)
    assert (spread["available"], spread["shards"]) == (0, 4)
    events = [cat.checkout([(product, 1)], link=link)[1] for _ in range(30)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(h.invoke_ok, events))
    assert [r["outcome"] for r in results] == ["Fulfilled"] * 30
    raw = h.raw_item(cat.store, product)
    assert raw["version"] == spread["version"], "the orders never wrote the stock item"
    shown = h.item(cat.store, product)
    assert (shown["available"], shown["shards"]) == (10, 4)
    h.stack.wait_broadcasts()
    retained = h.retained(cat.store, product)
    assert retained["available"] == 10 and retained["version"] == shown["version"], retained
    # The reconciler finds the item and every shard where their own ledgers say.
    report = json.loads(h.cli("reconcile", "--store", cat.store, "--dry-run", "--json").stdout)
    assert (report["links"]["items"], report["links"]["discrepancies"]) == (1, []), report
    # The rest, and two more than there are: the last units go through the item.
    events = [cat.checkout([(product, 1)], link=link)[1] for _ in range(12)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(h.invoke_ok, events))
    outcomes = sorted(r["outcome"].split("(")[0] for r in results)
    assert outcomes == ["Fulfilled"] * 10 + ["Oversold"] * 2, outcomes
    collected = h.item(cat.store, product)
    assert (collected["available"], collected["shards"]) == (0, 0)
    assert collected["deactivated_links"] == [link]
    assert h.stripe_state()["payment_links"][link]["active"] is False
    h.stack.wait_broadcasts()
    retained = h.retained(cat.store, product)
    assert (retained["available"], retained["sold_out"]) == (0, True), retained
    report = json.loads(h.cli("reconcile", "--store", cat.store, "--dry-run", "--json").stdout)
    assert (report["links"]["items"], report["links"]["discrepancies"]) == (1, []), report


def low_stock_alerts(h: E2E, u: str) -> tuple[str, list[str]]:
    """An SQS queue behind a rule on the default bus for stockbridge.low_stock: its URL, and the
    rule's name (to remove it)."""
    url, rule = h.merchant_events_queue("stockbridge.low_stock", f"e2e-low-{u}")
    return url, [rule]


def received(h: E2E, url: str, product: str, want: int, timeout: float = 10.0) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in h.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", []):
            h.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            event = json.loads(m["Body"])
            if event["detail"]["product_id"] == product:
                got.append(event)
        if len(got) >= want:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # and nothing more arrives
    for m in h.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                   WaitTimeSeconds=0).get("Messages", []):
        event = json.loads(m["Body"])
        if event["detail"]["product_id"] == product:
            got.append(event)
    return got


def test_a_low_stock_alert_goes_out_once_per_crossing_from_the_broadcaster(streamed):
    h = streamed
    u = uid()
    cat = Catalog(h, f"store_low_{u}", u)
    product, link = cat.product("cap", stock=8)
    h.cli("stock", "set", product, "8", "--store", cat.store, "--low-stock", "5")
    url, rules = low_stock_alerts(h, u)
    try:
        for _ in range(5):  # 8 -> 3: crosses at 5, stays low at 4 and 3
            h.invoke_ok(cat.checkout([(product, 1)], link=link)[1])
        h.stack.wait_broadcasts()
        first = received(h, url, product, want=1)
        assert [e["detail"]["crossing"] for e in first] == [1], first
        assert first[0]["source"] == "stockbridge"
        assert first[0]["detail"]["threshold"] == 5 and first[0]["detail"]["available"] <= 5
        # A restock re-arms it; the next fall alerts again, numbered 2.
        h.cli("stock", "set", product, "12", "--store", cat.store)
        h.stack.wait_broadcasts()
        for _ in range(7):  # 12 -> 5
            h.invoke_ok(cat.checkout([(product, 1)], link=link)[1])
        h.stack.wait_broadcasts()
        second = received(h, url, product, want=1)
        assert [e["detail"]["crossing"] for e in second] == [2], second
        shown = json.loads(h.cli("stock", "show", product, "--store", cat.store, "--json").stdout)
        assert (shown["low_stock"], shown["low"]) == (5, True), shown
    finally:
        for rule in rules:
            h.remove_rule(rule)
