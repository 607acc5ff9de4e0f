"""Benchmark (not a test): does the local DynamoDB (moto) keep its pace as the table grows?

    .venv/bin/python -m bench.moto_scaling [--orders 10000] [--every 1000] [--binary target/debug/inventory]
    STOCKBRIDGE_MOTO_STOCK=1 .venv/bin/python -m bench.moto_scaling --orders 2000   # moto as released

Paid one-unit orders go through the real `inventory` binary (Runtime API driver, 4 instances,
16 concurrent invokers) into a table with its stream on, in chunks of ``--every``. After each
chunk it prints: orders so far, items in the table, TransactWriteItems per second over the
chunk (moto's own counter), the transactions per second moto alone serves at that size (a
probe straight from boto3, nothing else running) and moto's resident memory. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import time
from pathlib import Path

import boto3
import requests

from bench.shop_setup import one_product, paid_events, stock_show
from devstack.lambda_driver import invoke
from devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
TX = "DynamoDB_20120810.TransactWriteItems"


def dynamodb(env: dict):
    return boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
                        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def table_items(env: dict) -> int:
    ddb = dynamodb(env)
    count, kwargs = 0, {"TableName": env.get("TABLE_NAME", "stockbridge"), "Select": "COUNT"}
    while True:
        page = ddb.scan(**kwargs)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def probe_tx_per_s(env: dict, n: int = 300, threads: int = 4) -> float:
    """moto alone: ``n`` order-shaped transactions (a conditional Put and an Update) straight
    from boto3, over two probe items that do not grow the table."""
    ddb = dynamodb(env)
    table = env.get("TABLE_NAME", "stockbridge")

    def one(i: int) -> None:
        key = {"pk": {"S": "PROBE"}, "sk": {"S": f"P{i % 2}"}}
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": "PROBE"}, "sk": {"S": f"Q{i % 2}"}},
                     "ConditionExpression": "attribute_not_exists(probe_absent)"}},
            {"Update": {"TableName": table, "Key": key, "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}}])

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return round(n / (time.perf_counter() - t0), 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=1_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--binary", default=str(ROOT / "target" / "debug" / "inventory"))
    a = ap.parse_args()
    cli = str(Path(a.binary).with_name("stockbridge"))
    with Stack(workers=a.workers, inventory_binary=a.binary, lambda_timeout=600) as stack:
        env = {**os.environ, **stack.env}
        stripe, lam, moto = stack.urls["stripe"], stack.urls["lambda"], stack.urls["moto"]
        pid, link = one_product(cli, env, stripe, a.orders * 2)
        rows, done, failed = [], 0, 0
        while done < a.orders:
            n = min(a.every, a.orders - done)
            events = paid_events(stripe, pid, link, n)
            tx0 = requests.get(f"{moto}/_stats").json().get(TX, 0)
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(a.clients) as pool:
                results = list(pool.map(lambda e: invoke(lam, e, timeout=600), events))
            wall = time.perf_counter() - t0
            tx = requests.get(f"{moto}/_stats").json().get(TX, 0) - tx0
            done += n
            failed += sum(1 for r in results if not r["ok"])
            row = {"orders": done, "items": table_items(env), "tx_per_s": round(tx / wall, 1),
                   "moto_alone_tx_per_s": probe_tx_per_s(env),
                   "orders_per_s": round(n / wall, 1),
                   "moto_rss_mb": round(requests.get(f"{moto}/_health").json()["rss_kb"] / 1024, 1),
                   "failed_invocations": failed}
            rows.append(row)
            print(json.dumps(row), flush=True)
        show = stock_show(cli, env, pid)
        print(json.dumps({"final": rows[-1], "available": show["available"],
                          "expected_available": a.orders * 2 - a.orders, "moto_stock":
                          os.environ.get("STOCKBRIDGE_MOTO_STOCK") == "1"}, indent=2))


if __name__ == "__main__":
    main()
