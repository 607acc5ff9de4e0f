"""Benchmark (not a test): a burst of concurrent paid orders through the real `inventory` binary
and the local stack (moto behind one lock, IoT bridge + mosquitto, fake Stripe).

    .venv/bin/python -m bench.burst [--orders 2000] [--units 100] [--workers 8] [--binary target/release/inventory]

Reports orders/s, latency p50/p99 per invocation, fulfilled/refunded/duplicates, and remote
calls per paid order (DynamoDB operations from moto's counters, Stripe requests from the fake,
IoT publishes from the bridge). Figures go to docs/benchmarks.md with date and machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import time
from pathlib import Path

import requests

from bench.shop_setup import one_product, paid_events, stock_show
from devstack.lambda_driver import invoke
from devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--workers", type=int, default=8, help="concurrent Lambda instances")
    ap.add_argument("--clients", type=int, default=64, help="concurrent invokers")
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "inventory"))
    a = ap.parse_args()
    cli = str(Path(a.binary).with_name("stockbridge"))
    with Stack(workers=a.workers, inventory_binary=a.binary, lambda_timeout=600) as stack:
        env = {**os.environ, **stack.env}
        stripe, lam = stack.env["STOCKBRIDGE_STRIPE_URL"], stack.env["STOCKBRIDGE_LAMBDA_URL"]
        pid, link = one_product(cli, env, stripe, a.units)
        events = paid_events(stripe, pid, link, a.orders)
        requests.post(f"{stack.urls['moto']}/_stats/reset")
        requests.post(f"{stack.urls['iot_bridge']}/_publishes/reset")
        n_stripe_before = len(requests.get(f"{stripe}/_test/requests").json()["requests"])

        def one(e):
            t = time.perf_counter()
            r = invoke(lam, e, timeout=600)
            return time.perf_counter() - t, r

        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(a.clients) as pool:
            results = list(pool.map(one, events))
        wall = time.perf_counter() - t0
        lat = sorted(x for x, _ in results)
        failed = [r for _, r in results if not r["ok"]]
        outcomes: dict[str, int] = {}
        for _, r in results:
            k = (r.get("response") or {}).get("outcome", "error")
            outcomes[k.split("(")[0]] = outcomes.get(k.split("(")[0], 0) + 1
        stats = requests.get(f"{stack.urls['moto']}/_stats").json()
        pubs = len(requests.get(f"{stack.urls['iot_bridge']}/_publishes").json()["publishes"])
        reqs = requests.get(f"{stripe}/_test/requests").json()["requests"][n_stripe_before:]
        by_path: dict[str, int] = {}
        for r in reqs:
            key = r["method"] + " " + ("/v1/checkout/sessions/*/line_items" if "line_items" in r["path"] else r["path"].rsplit("/", 1)[0] if r["path"].startswith("/v1/payment_links/") else r["path"])
            by_path[key] = by_path.get(key, 0) + 1
        refunds = requests.get(f"{stripe}/_test/state").json()["refunds"]
        refunded_pis = [r["payment_intent"] for r in refunds]
        show = stock_show(cli, env, pid)
        print(json.dumps({
            "orders": a.orders, "units": a.units, "workers": a.workers, "clients": a.clients,
            "wall_s": round(wall, 2), "orders_per_s": round(a.orders / wall, 1),
            "p50_ms": round(statistics.median(lat) * 1000, 1), "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1),
            "failed_invocations": len(failed), "outcomes": outcomes,
            "refunds": len(refunds), "duplicate_refunds": len(refunded_pis) - len(set(refunded_pis)),
            "final_stock": show["available"],
            "dynamodb_ops": stats, "stripe_requests": by_path, "iot_publishes": pubs,
        }, indent=2))


if __name__ == "__main__":
    main()
