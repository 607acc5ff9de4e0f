"""Benchmark (not a test): the hot-SKU baseline (issue 11 §4). N paid orders for ONE product
through the real `inventory` binary with K instances, under the DynamoDB model's conflicts.

    .venv/bin/python -m bench.hot_sku [--orders 300] [--instances 1 4 16] [--service-ms 10]
                                      [--time-scale 1] [--binary target/debug/inventory]
                                      [--levels functions stream] [--shards 0 8]

For each K: a fresh stack, stock for every order (nothing sells out: this is the hot path
itself), all orders invoked at once by 2K clients. Reports per order: TransactWriteItems tried,
refused as TransactionConflict, refused by their version condition; UpdateItems (the hot path's
takes, issue 13 §2) and single writes refused as TransactionConflictException; conflicts and
retries together; DynamoDB, Stripe and IoT calls; and throughput in wall and in the model's simulated time, with p50/p99 latency.
`--levels stream` runs the `broadcaster` from the table's stream (issue 13 §3) and counts, after
the stream has caught up, every IoT publish and every DynamoDB call, the broadcaster's included.
`--item-wcu N` sets the model's write ceiling per item (DynamoDB's 1,000 units a second per
partition, scaled down so that it binds below what moto serves here). `--shards K` spreads the
product over K shard items first (`stockbridge stock shard`, issue 13
§4; 0: not spread) and reports the writes to the stock item and to the shards per order.
Figures go to docs/benchmarks.md (the hot-path issue improves on them).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import requests

from bench.shop_setup import one_product, paid_events, stock_show, synced_product
from devstack.lambda_driver import invoke
from devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent


def restock_during(cli: str, env: dict, pid: str, n: int, done: threading.Event) -> list[dict]:
    """``n`` `stockbridge stock adjust PID +1` while the orders run (a merchant restocking a hot
    product mid-rush): each one's exit status, and the time it took. An adjust is a
    version-conditioned transaction (issue 13 §2 keeps those for every change but a take)."""
    out = []
    for _ in range(n):
        if done.is_set():
            break
        t = time.perf_counter()
        r = subprocess.run([cli, "stock", "adjust", pid, "1", "--store", "bench"], env=env,
                           capture_output=True, text=True)
        out.append({"ok": r.returncode == 0, "s": round(time.perf_counter() - t, 2),
                    "error": (r.stderr.strip().splitlines() or ["(no message)"])[-1]
                    if r.returncode else None})
    return out


def visible_after_ms(moto: str, table: str, pid: str, publishes: list[dict]) -> dict:
    """How long after its commit each order's level (or a newer one) reached the broker: per
    ledger entry of the run, the first publish whose version is at least the entry's, minus
    the entry's time. p50, p99 and max, in milliseconds."""
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=moto, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    entries, start = [], None
    while True:
        page = ddb.query(TableName=table, KeyConditionExpression="pk = :p AND begins_with(sk, :l)",
                         ExpressionAttributeValues={":p": {"S": f"ITEM#bench#{pid}"},
                                                    ":l": {"S": "LEDGER#"}},
                         **({"ExclusiveStartKey": start} if start else {}))
        entries += [(int(i["version"]["N"]), int(i["at"]["N"])) for i in page["Items"]
                    if i.get("cause", {}).get("S") == "order"]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    seen = sorted((json.loads(p["payload"])["version"], p["at_ms"]) for p in publishes)
    lags = []
    for version, at in entries:
        shown = [t for v, t in seen if v >= version]
        if shown:
            lags.append(min(shown) - at)
    if not lags:
        return {}
    lags.sort()
    return {"visible_p50_ms": lags[len(lags) // 2], "visible_p99_ms": lags[int(len(lags) * 0.99) - 1],
            "visible_max_ms": lags[-1], "never_shown": len(entries) - len(lags)}


def one_run(orders: int, instances: int, service_ms: float, time_scale: float, binary: str,
            links: str = "fake", restocks: int = 0, levels: str = "functions",
            shards: int = 0, item_wcu: int | None = None) -> dict:
    cli = str(Path(binary).with_name("stockbridge"))
    sync = Path(binary).with_name("catalog-sync") if links == "synced" else None
    broadcaster = Path(binary).with_name("broadcaster") if levels == "stream" else None
    with Stack(workers=instances, inventory_binary=binary, lambda_timeout=600,
               catalog_sync_binary=sync, broadcaster_binary=broadcaster) as stack:
        env = {**os.environ, **stack.env}
        stripe, lam, moto = stack.urls["stripe"], stack.urls["lambda"], stack.urls["moto"]
        if links == "synced":
            pid, link = synced_product(stack, cli, env, orders * 2, name="Hot")
        else:
            pid, link = one_product(cli, env, stripe, orders * 2, name="Hot")
        if shards:
            subprocess.run([cli, "stock", "shard", pid, "--store", "bench", "--shards", str(shards)],
                           env=env, check=True, capture_output=True)
        events = paid_events(stripe, pid, link, orders)
        if broadcaster:
            stack.wait_broadcasts()
            trigger = stack.urls["stream_trigger"] + "/_stats"
            invocations_before = requests.get(trigger).json()["invocations"]
        requests.post(f"{moto}/_stats/reset")
        requests.post(f"{stack.urls['iot_bridge']}/_publishes/reset")
        n_stripe = len(requests.get(f"{stripe}/_test/requests").json()["requests"])
        requests.post(f"{moto}/_model", json={
            "conflicts": True, "service_ms": service_ms, "time_scale": time_scale,
            "item_wcu_per_s": item_wcu,
            "tables": [env.get("TABLE_NAME", "stockbridge")]}).raise_for_status()

        def one(e: dict) -> tuple[float, dict]:
            t = time.perf_counter()
            r = invoke(lam, e, timeout=600)
            return time.perf_counter() - t, r

        t0 = time.perf_counter()
        done = threading.Event()
        with cf.ThreadPoolExecutor(2 * instances + 1) as pool:
            adjusts = pool.submit(restock_during, cli, env, pid, restocks, done)
            results = list(pool.map(one, events))
            done.set()
            restocked = adjusts.result()
        wall = time.perf_counter() - t0
        broadcasts = None
        if broadcaster:
            stack.wait_broadcasts()
            broadcasts = requests.get(trigger).json()["invocations"] - invocations_before
        model = requests.get(f"{moto}/_model").json()["stats"]
        ops = requests.get(f"{moto}/_stats").json()
        stripe_calls = len(requests.get(f"{stripe}/_test/requests").json()["requests"]) - n_stripe
        published = requests.get(f"{stack.urls['iot_bridge']}/_publishes").json()["publishes"]
        publishes = len(published)
        visible = visible_after_ms(moto, env.get("TABLE_NAME", "stockbridge"), pid, published)
        show = stock_show(cli, env, pid)
    lat = sorted(x for x, _ in results)
    tx_tried = model.get("transactions", 0)
    conflicts = model.get("conflict_transaction_canceled", 0)
    single_conflicts = model.get("conflict_single_write", 0)
    forwarded = ops.get("DynamoDB_20120810.TransactWriteItems", 0)  # moto ran it: committed or condition failed
    # The hot path's takes (issue 13 §2): one UpdateItem of the item per order that lands, so
    # those beyond one per order were refused by their stock condition and decided again.
    # (Nothing else updates this table during the run: no Stripe budget, no link switch.)
    updates = ops.get("DynamoDB_20120810.UpdateItem", 0)
    takes_refused = max(0, updates - orders) if updates else 0
    per = lambda n: round(n / orders, 2)  # noqa: E731
    return {
        "links": links, "levels": levels, "shards": shards, "broadcaster_invocations": broadcasts,
        "instances": instances, "orders": orders, "failed": sum(1 for _, r in results if not r["ok"]),
        "units_taken": orders * 2 + sum(1 for r in restocked if r["ok"]) - show["available"],
        "restocks_tried": len(restocked), "restocks_failed": sum(1 for r in restocked if not r["ok"]),
        "restock_s_max": max((r["s"] for r in restocked), default=None),
        "restock_errors": sorted({r["error"] for r in restocked if r["error"]})[:3],
        "tx_tried_per_order": per(tx_tried), "tx_conflicts_per_order": per(conflicts),
        "tx_condition_failed_per_order": per(max(0, forwarded - orders)),
        "updates_per_order": per(updates), "single_write_conflicts_per_order": per(single_conflicts),
        "conflicts_and_retries_per_order": per(conflicts + single_conflicts + max(0, forwarded - orders)
                                               + takes_refused),
        # DynamoDB data calls only (not the catalog pipe's stream and queue polls), counting
        # what the model refused (never reached moto) and the SDK's own retries among them.
        "dynamodb_calls_per_order": per(sum(v for k, v in ops.items() if k.startswith("DynamoDB_20120810."))
                                        + sum(v for k, v in model.items() if k.startswith(("conflict_", "throttled_")))),
        "sdk_retries_per_order": per(model.get("sdk_retries", 0)),
        "item_wcu_per_s": item_wcu,
        "throttled_per_order": per(sum(v for k, v in model.items() if k.startswith("throttled_"))),
        "stripe_calls_per_order": per(stripe_calls), "iot_publishes_per_order": per(publishes),
        "orders_per_s_wall": round(orders / wall, 1),
        "orders_per_s_simulated": round(orders / max(1e-9, wall / time_scale), 1),
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)] * 1000, 1),
        **visible,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--instances", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--service-ms", type=float, default=10.0)
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--binary", default=str(ROOT / "target" / "debug" / "inventory"))
    ap.add_argument("--restocks", type=int, default=0,
                    help="`stock adjust +1` runs, one after another, while the orders run")
    ap.add_argument("--links", nargs="+", choices=["fake", "synced"], default=["fake"],
                    help="fake: a link made in the fake Stripe (unknown to stockbridge: its line "
                         "items are listed); synced: made by the catalog sync (no Stripe call)")
    ap.add_argument("--item-wcu", type=int, default=None,
                    help="the model's write units per item per simulated second (DynamoDB: 1,000 "
                         "per partition); unset: no ceiling")
    ap.add_argument("--shards", type=int, nargs="+", default=[0],
                    help="spread the product over this many shard items first (0: not spread)")
    ap.add_argument("--levels", nargs="+", choices=["functions", "stream"], default=["functions"],
                    help="functions: each function publishes the levels it commits; stream: the "
                         "broadcaster publishes them from the table's stream")
    a = ap.parse_args()
    for shards in a.shards:
        for levels in a.levels:
            for links in a.links:
                for k in a.instances:
                    print(json.dumps(one_run(a.orders, k, a.service_ms, a.time_scale, a.binary,
                                             links, a.restocks, levels, shards,
                                             a.item_wcu)),
                          flush=True)


if __name__ == "__main__":
    main()
