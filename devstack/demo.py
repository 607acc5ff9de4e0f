"""The local shop demo: the whole pipeline offline, through the real `inventory` binary.

Starts the stack (moto behind one lock, mosquitto, the IoT bridge, the fake Stripe and the
inventory Lambda through the Runtime API), creates the table, seeds a small catalog (products
and payment links in the fake Stripe, stock in DynamoDB via the `stockbridge` CLI), then plays
customers: each purchase is a completed Checkout Session in the fake Stripe whose
`checkout.session.completed` EventBridge envelope goes to the real binary. It prints every stock
message received over MQTT, sells a product out (its link goes dead), races buyers for the last
units (the losers are refunded exactly once), restocks (the link comes back), and stops
everything on exit or Ctrl-C.

    scripts/demo [--buyers 12] [--keep-running]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import requests

from devstack.lambda_driver import invoke
from devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
STORE = "store_demo"
CATALOG = [
    ("Stockbridge mug", 1200, 5),
    ("Tote bag", 1800, 3),
    ("Enamel pin", 500, 2),
]


def envelope(session: dict) -> dict:
    e = json.loads((ROOT / "events" / "checkout.session.completed.paid.json").read_text())
    e["id"] = str(uuid.uuid4())
    e["detail"]["id"] = "evt_demo_" + uuid.uuid4().hex[:16]
    obj = e["detail"]["data"]["object"]
    for k in ("id", "payment_intent", "payment_link", "payment_status", "amount_total", "currency"):
        obj[k] = session.get(k)
    obj["metadata"] = {"store_id": STORE}
    return e


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=12, help="buyers racing for the last units")
    ap.add_argument("--keep-running", action="store_true", help="keep the stack up until Ctrl-C")
    args = ap.parse_args()

    binary = ROOT / "target" / "debug" / "inventory"
    cli = ROOT / "target" / "debug" / "stockbridge"
    with Stack(workers=4) as stack:
        env = {**os.environ, **stack.env}
        stripe = stack.env["STOCKBRIDGE_STRIPE_URL"]
        lam = stack.env["STOCKBRIDGE_LAMBDA_URL"]
        run = lambda *a: subprocess.run([str(cli), *a], env=env, check=True, capture_output=True, text=True).stdout.strip()  # noqa: E731
        print(run("table", "create"))

        # MQTT: print every stock message, as a storefront would receive it.
        seen: dict[str, int] = {}
        lock = threading.Lock()

        def on_message(_c, _u, msg):
            m = json.loads(msg.payload)
            with lock:
                if m["version"] <= seen.get(m["product_id"], -1):
                    return  # stale: a storefront drops it
                seen[m["product_id"]] = m["version"]
            flag = "  SOLD OUT" if m["sold_out"] else ""
            print(f"  [mqtt] {names.get(m['product_id'], m['product_id'])}: {m['available']} left (v{m['version']}){flag}")

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        sub.on_message = on_message
        sub.connect(stack.env["MQTT_HOST"], int(stack.env["MQTT_PORT"]))
        sub.subscribe(f"stockbridge/{STORE}/products/+/stock", qos=1)
        sub.loop_start()

        names: dict[str, str] = {}
        links: dict[str, str] = {}
        rows = []
        for name, amount, stock in CATALOG:
            p = requests.post(f"{stripe}/_test/products", json={"name": name, "unit_amount": amount, "currency": "usd"}).json()
            pid, price = p["product"]["id"], p["price"]["id"]
            link = requests.post(f"{stripe}/_test/payment_links", json={"price": price, "metadata": {"store_id": STORE}}).json()
            names[pid], links[pid] = name, link["id"]
            rows.append({"product_id": pid, "store_id": STORE, "name": name, "stock": stock, "payment_links": [link["id"]]})
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(rows, f)
        print(run("catalog", "import", f.name))
        time.sleep(0.3)

        def buy(pid: str, qty: int = 1) -> dict:
            s = requests.post(
                f"{stripe}/_test/checkout_sessions",
                json={"payment_status": "paid", "payment_link": links[pid], "metadata": {"store_id": STORE},
                      "line_items": [{"product": pid, "quantity": qty}]},
            ).json()
            r = invoke(lam, envelope(s))
            if not r["ok"]:
                print(f"  invocation failed: {r['error']}")
            return r.get("response") or {}

        mug, tote, pin = list(names)
        print("\n== three customers buy a mug")
        for _ in range(3):
            print(f"  order -> {buy(mug).get('outcome')}")
        print("\n== the last three totes sell out: the tote's payment link is switched off")
        print(f"  order -> {buy(tote, 3).get('outcome')}")
        state = requests.get(f"{stripe}/_test/state").json()
        print(f"  tote link active: {state['payment_links'][links[tote]]['active']}")
        print(f"\n== {args.buyers} buyers race for the last {CATALOG[2][2]} pins")
        with cf.ThreadPoolExecutor(args.buyers) as pool:
            outcomes = list(pool.map(lambda _: buy(pin).get("outcome", "error"), range(args.buyers)))
        won = sum(1 for o in outcomes if o == "Fulfilled")
        refunds = requests.get(f"{stripe}/_test/state").json()["refunds"]
        print(f"  fulfilled: {won}, oversold and refunded: {len(refunds)} (each exactly once)")
        print("\n== restock the totes: the link comes back")
        print("  " + run("stock", "set", tote, "--store", STORE, "10"))
        state = requests.get(f"{stripe}/_test/state").json()
        print(f"  tote link active: {state['payment_links'][links[tote]]['active']}")
        time.sleep(0.5)
        print("\n== history of the pin")
        print(run("history", pin, "--store", STORE))
        if args.keep_running:
            print("\nstack running; env:")
            print(stack.env_lines())
            print("Ctrl-C to stop")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        sub.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
