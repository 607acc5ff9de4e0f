"""Benchmark (not a test): remote calls and latency per checkout hold, and per paid hold, through
the real `checkout` and `inventory` binaries on the local stack (moto behind one lock, fake
Stripe, IoT bridge).

    .venv/bin/python -m bench.checkout_calls [--holds 40] [--bin-dir target/debug] [--clients 4]

Makes ``--holds`` checkouts of one unit each (every one with an e-mail, from its own loopback
address, so the caps count but never refuse), then authorises every PaymentIntent so the
inventory function makes each hold a sale and captures it.  Reports, per hold and per paid
hold, the DynamoDB operations (moto's counters), the Stripe requests (the fake's log) and the
latency of ``POST /checkout``.  Run it with the binaries of two commits to compare (``--bin-dir``
of a worktree built with ``cargo build -p stockbridge-checkout -p stockbridge-inventory
-p stockbridge-cli``); figures go to docs/benchmarks.md with date and machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench.shop_setup import stock_show
from devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent


def post_from(url: str, source: str, body: dict) -> tuple[int, float]:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120, source_address=(source, 0))
    t = time.perf_counter()
    try:
        conn.request("POST", "/checkout", body=json.dumps(body),
                     headers={"Content-Type": "application/json",
                              "Idempotency-Key": f"bench-{uuid.uuid4()}"})
        r = conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - t
    finally:
        conn.close()


def ops_since(stack: Stack, stripe: str, seq: int) -> tuple[dict, dict]:
    moto = requests.get(f"{stack.urls['moto']}/_stats").json()
    reqs = requests.get(f"{stripe}/_test/requests").json()["requests"][seq:]
    by: dict[str, int] = {}
    for r in reqs:
        path = "/".join("{id}" if part.startswith(("pi_", "hold_")) else part
                        for part in r["path"].split("/"))
        by[f"{r['method']} {path}"] = by.get(f"{r['method']} {path}", 0) + 1
    return moto, by


def per(counts: dict, n: int) -> dict:
    return {k: round(v / n, 2) for k, v in sorted(counts.items()) if "DynamoDB" in k or "/v1/" in k}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--holds", type=int, default=40)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "debug"))
    a = ap.parse_args()
    bins = Path(a.bin_dir)
    with Stack(workers=4, inventory_binary=bins / "inventory", checkout_binary=bins / "checkout",
               lambda_timeout=120) as stack:
        env = {**os.environ, **stack.env}
        stripe = stack.env["STOCKBRIDGE_STRIPE_URL"]
        cli = str(bins / "stockbridge")
        subprocess.run([cli, "table", "create"], env=env, check=True, capture_output=True)
        pid = f"prod_bench_{uuid.uuid4().hex[:8]}"
        rows = [{"product_id": pid, "store_id": "bench", "name": "Bench", "stock": a.holds * 2,
                 "unit_amount": 1500, "currency": "usd", "payment_links": []}]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(rows, f)
        subprocess.run([cli, "catalog", "import", f.name], env=env, check=True, capture_output=True)
        requests.post(f"{stripe}/_test/event_sink", json={"url": None})
        url = stack.urls["checkout"]
        requests.post(f"{stack.urls['moto']}/_stats/reset")
        seq = len(requests.get(f"{stripe}/_test/requests").json()["requests"])

        def one(i: int) -> tuple[int, float]:
            body = {"store_id": "bench", "items": [{"product_id": pid, "quantity": 1}],
                    "customer_email": f"buyer{i}@example.com"}
            return post_from(url, f"127.0.1.{1 + i % 250}", body)

        with cf.ThreadPoolExecutor(a.clients) as pool:
            results = list(pool.map(one, range(a.holds)))
        held = [t for s, t in results if s == 200]
        moto_hold, stripe_hold = ops_since(stack, stripe, seq)

        # Pay every hold: the inventory function confirms (a sale) and captures.
        requests.post(f"{stripe}/_test/event_sink", json={"url": f"{stack.urls['lambda']}/_invoke"})
        requests.post(f"{stack.urls['moto']}/_stats/reset")
        seq = len(requests.get(f"{stripe}/_test/requests").json()["requests"])
        intents = [p for p, v in requests.get(f"{stripe}/_test/state").json()["payment_intents"].items()
                   if v.get("metadata", {}).get("store_id") == "bench"]
        for pi in intents:
            requests.post(f"{stripe}/_test/payment_intents/{pi}/authorize", json={})
        stack.wait_stripe_events(timeout=300)
        moto_pay, stripe_pay = ops_since(stack, stripe, seq)
        show = stock_show(cli, env, pid)
        print(json.dumps({
            "holds": len(held), "of": a.holds, "clients": a.clients,
            "checkout_p50_ms": round(statistics.median(held) * 1000, 1) if held else None,
            "checkout_max_ms": round(max(held) * 1000, 1) if held else None,
            "per_hold": {**per(moto_hold, max(1, len(held))), **per(stripe_hold, max(1, len(held)))},
            "per_paid_hold": {**per(moto_pay, max(1, len(intents))), **per(stripe_pay, max(1, len(intents)))},
            "final": {k: show.get(k) for k in ("available", "held", "version")},
        }, indent=2))


if __name__ == "__main__":
    main()
