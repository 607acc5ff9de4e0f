"""devstack/shop.py: the shop, locally, in one command -- the real inventory binary behind the
fake Stripe's hosted payment pages, simulated buyers racing for small stocks.

Needs target/debug/inventory and target/debug/stockbridge (skipped without them).

    .venv/bin/python -m pytest -q devstack/tests/test_shop.py
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import urljoin

import pytest
import requests

from devstack.shop import DEFAULT_CLI, DEMO_CATALOG, Shop
from devstack.stack import DEFAULT_INVENTORY_BINARY, REPO_ROOT, find_mosquitto

pytestmark = pytest.mark.skipif(
    not (DEFAULT_INVENTORY_BINARY.exists() and DEFAULT_CLI.exists() and find_mosquitto()),
    reason="needs target/debug/{inventory,stockbridge} and mosquitto")

TOTAL_STOCK = sum(stock for _, _, _, stock, _ in DEMO_CATALOG)
BUYERS = 20


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def check_summary(summary: dict, refunds_by_pi: Counter) -> None:
    assert summary["buyers"] == BUYERS
    assert summary["failed"] == 0 and summary["turned_away"] == 0, summary
    assert summary["confirmed"] + summary["refunded"] == BUYERS
    assert summary["confirmed"] <= TOTAL_STOCK
    assert summary["refunded"] >= BUYERS - TOTAL_STOCK
    for order in summary["orders"]:
        want = 1 if order["outcome"] == "refunded" else 0
        assert refunds_by_pi[order["payment_intent"]] == want, order
    sold = sum(s["before"] - s["after"] for s in summary["stock"].values())
    assert sold == summary["confirmed"]
    assert all(s["after"] >= 0 for s in summary["stock"].values())
    for pid, s in summary["stock"].items():  # confirmed orders per product == units sold
        n = sum(1 for o in summary["orders"] if o["product_id"] == pid
                and o["outcome"] == "confirmed")
        assert n == s["before"] - s["after"], (pid, s, n)


def test_shop_in_process_simulation_storefront_and_sold_out_links(tmp_path):
    with Shop(port=0, workers=4, state_dir=tmp_path / "state") as shop:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", shop.url)
        http = requests.Session()
        http.trust_env = False

        config = http.get(urljoin(shop.url, "config.json")).json()
        expected = {"store_id": "store_demo", "topic_prefix": "stockbridge",
                    "catalog_url": "catalog/store_demo.json",
                    "mqtt": {"auth": "none", "url": shop.stack.urls["mqtt_ws"]}}
        if "checkout" in shop.stack.urls:  # the checkout API runs when its binary is built
            expected.update(checkoutUrl=shop.stack.urls["checkout"],
                            stripePublishableKey="pk_test_local",
                            stripeApiBase=shop.stack.urls["stripe"])
        assert config == expected
        assert config["mqtt"]["url"].startswith("ws://127.0.0.1:")

        catalog = http.get(urljoin(shop.url, config["catalog_url"]))
        assert catalog.status_code == 200, catalog.text
        doc = catalog.json()
        assert (doc["store_id"], doc["topic_prefix"]) == ("store_demo", "stockbridge")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", doc["generated_at"])
        assert len(doc["products"]) == 4
        assert [p["product_id"] for p in doc["products"]] == sorted(shop.products)
        by_name = {p["name"]: p for p in doc["products"]}
        for name, description, amount, stock, image in DEMO_CATALOG:
            p = by_name[name]
            assert p["description"] == description
            assert p["price"] == {"amount": amount, "currency": "usd"}
            assert (p["available"], p["payment_link"]["active"]) == (stock, True)
            assert p["payment_link"]["url"] == f"{shop.stripe_url}/pay/{p['payment_link']['id']}"
            assert p["images"] == [f"{shop.url}assets/demo/{image}"]
            img = http.get(p["images"][0])
            assert img.status_code == 200 and img.headers["Content-Type"].startswith("image/svg")
            assert b"<svg" in img.content and name.encode() in img.content

        # `stockbridge catalog export` when the CLI has it; the fallback builds the same
        source = catalog.headers["X-Catalog-Source"]
        assert source in ("cli", "fallback")
        fallback = shop._catalog_fallback("store_demo")
        strip = lambda d: {k: v for k, v in d.items() if k != "generated_at"}  # noqa: E731
        assert strip(fallback) == strip(doc)

        page = http.get(shop.url)  # web/dist or the plain page
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        assert http.get(urljoin(shop.url, "nope/missing.js")).status_code == 404

        summary = shop.simulate(BUYERS, random.Random(7))
        state = http.get(f"{shop.stripe_url}/_test/state").json()
        check_summary(summary, Counter(r["payment_intent"] for r in state["refunds"]))
        # every payment went through the event destination, once
        # (the catalog events of the links the Lambda switched off are not payments)
        assert len([e for e in state["events"] if e["type"] == "checkout.session.completed"]) \
            == BUYERS
        assert all(d["ok"] for d in state["event_deliveries"])
        print("\n" + shop.format_summary(summary))

        # the storefront's catalog follows; sold-out links answer 410
        doc = http.get(urljoin(shop.url, config["catalog_url"])).json()
        sold_out = [p for p in doc["products"] if p["available"] == 0]
        assert sold_out, doc  # 20 buyers for 11 units
        for p in doc["products"]:
            assert p["available"] == summary["stock"][p["product_id"]]["after"]
            assert p["payment_link"]["active"] is (p["available"] > 0)
        for p in sold_out:
            r = http.get(p["payment_link"]["url"], params={"return": shop.url})
            assert r.status_code == 410
            assert 'data-testid="link-inactive"' in r.text
            assert http.post(p["payment_link"]["url"]).status_code == 410
        stack_pids = list(shop.stack.pids().values())
        workers = [w["pid"] for w in http.get(f"{shop.lambda_url}/_health").json()["workers"]]
    time.sleep(0.2)
    assert not [p for p in stack_pids + workers if _pid_alive(p)]
    with pytest.raises(requests.ConnectionError):
        requests.get(shop.url, timeout=2)


def test_shop_cli_simulate_and_exit(tmp_path):
    ready, summary_file = tmp_path / "ready.json", tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "devstack.shop", "--port", "0", "--simulate", str(BUYERS),
         "--exit-after-simulate", "--summary-json", str(summary_file),
         "--ready-file", str(ready), "--state-dir", str(tmp_path / "state")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    info = json.loads(ready.read_text())
    assert f"Storefront:  {info['url']}" in out and f"Fake Stripe: {info['stripe_url']}" in out
    summary = json.loads(summary_file.read_text())
    assert f"orders confirmed:                  {summary['confirmed']}" in out
    assert f"refunded (sold out while paying):  {summary['refunded']}" in out
    assert summary["confirmed"] + summary["refunded"] == BUYERS
    assert summary["confirmed"] <= TOTAL_STOCK and summary["failed"] == 0
    assert "# shop stopped" in out
    assert not [p for p in info["stack_pids"].values() if _pid_alive(p)]


def test_shop_cli_serves_until_sigterm(tmp_path):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.shop", "--port", "0", "--workers", "1",
         "--ready-file", str(ready), "--store", "store_cli"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        info = json.loads(ready.read_text())
        http = requests.Session()
        http.trust_env = False
        config = http.get(info["url"] + "config.json").json()
        assert config["store_id"] == "store_cli"
        doc = http.get(info["url"] + config["catalog_url"]).json()
        assert len(doc["products"]) == 4 and doc["store_id"] == "store_cli"
        # one real purchase through the payment page
        link = doc["products"][0]["payment_link"]
        r = http.post(link["url"], data={"return": info["url"]})
        assert 'data-testid="order-ok"' in r.text, r.text
        assert f'href="{info["url"]}"' in r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "# SIGTERM: stopping" in out and "# shop stopped" in out
    time.sleep(0.2)
    assert not [p for p in info["stack_pids"].values() if _pid_alive(p)]
