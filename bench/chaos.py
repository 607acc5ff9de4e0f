"""The chaos run (issue 11 §3): many instances of the real `inventory` binary, everything that
goes wrong in production going wrong at once, and the invariants checked only from outside.

    .venv/bin/python -m bench.chaos [--orders 10000] [--workers 6] [--seed 1]   # the long run
    tests/e2e/test_chaos.py runs a CI-sized one (a few hundred orders) through run_chaos()

What happens:
* two stores, three products each, each product with its own Payment Link; stock for about
  half the units ordered, so products sell out, links switch off and orders are refunded;
* orders of one line (through the product's link) or two lines (no link), 1-2 units a line;
  a share pays later (``completed`` unpaid, then ``async_payment_succeeded`` or ``_failed``);
* every event shuffled, a share delivered twice; a delivery that fails retryably is delivered
  again, up to ``tries`` times (EventBridge and Lambda's asynchronous retries, bounded here); an
  answer that calls a good event invalid (refused, or ``stockbridge.Invalid``) is a violation;
* a killer SIGKILLs a random busy instance now and then (the driver restarts it and fails its
  invocation, which is retried); the killer and the Stripe and IoT faults stop once every event
  has had its first delivery, so the retries of the tail are not all aimed at one event;
* the DynamoDB model (devstack/dynamo_model.py) adds its conflicts and a share of throughput,
  transaction-conflict and 500 faults; the fake Stripe answers 429s, 500s before the work and
  500s after it; the IoT bridge fails publishes.

Invariants, from Stripe's state, `stockbridge stock show`, the Payment Links and the MQTT
broker only:
1. per product and store: units taken == units of orders neither refunded nor failed;
2. no payment refunded twice, nor a refund asked under two keys;  3. no refund asked for a
   failed payment;
4. every event eventually applied (each delivery ended with a success);
5. a Payment Link is off iff its product's stock ended at 0;
6. the retained message on each stock topic says the final level.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import queue
import random
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import paho.mqtt.client as mqtt
import requests

from bench.shop_setup import envelope, stock_show
from devstack.lambda_driver import invoke
from devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
STORES = ("chaos_a", "chaos_b")


@dataclass
class Settings:
    orders: int = 300
    workers: int = 4
    clients: int = 12
    seed: int = 1
    units_share: float = 0.5       # stock as a share of the units ordered
    multi_line: float = 0.25
    delayed: float = 0.2           # of which half fail
    duplicate: float = 0.15
    tries: int = 12
    kill_every_s: float = 2.0
    stripe_fault_every_s: float = 0.25
    iot_fault_every_s: float = 0.5
    dynamodb_faults: dict = field(default_factory=lambda: {
        "throughput": 0.03, "transaction_conflict": 0.03, "internal_error": 0.02})
    binary: str = str(ROOT / "target" / "debug" / "inventory")
    self_check: bool = False       # break the end state afterwards and report what is caught


def _event(kind: str, order: dict, link: Optional[str]) -> dict:
    e = envelope(kind, order["session"], order["pi"], link, order["store"])
    e["detail"]["data"]["object"]["payment_status"] = \
        "unpaid" if kind in ("checkout.session.completed.unpaid",
                             "checkout.session.async_payment_failed") else "paid"
    return e


def _setup(stack: Stack, s: Settings, rng: random.Random, cli: str, env: dict) -> tuple[dict, list]:
    stripe = stack.urls["stripe"]
    subprocess.run([cli, "table", "create"], env=env, check=True, capture_output=True)
    products: dict[tuple[str, str], dict] = {}
    for store in STORES:
        for n in range(3):
            p = requests.post(f"{stripe}/_test/products", json={
                "name": f"{store} {n}", "unit_amount": 500, "currency": "usd"}).json()
            link = requests.post(f"{stripe}/_test/payment_links",
                                 json={"price": p["price"]["id"]}).json()["id"]
            products[(store, p["product"]["id"])] = {"link": link, "ordered": 0}
    orders = []
    for i in range(s.orders):
        store = rng.choice(STORES)
        mine = [pid for (st, pid) in products if st == store]
        multi = rng.random() < s.multi_line
        lines = [{"product": pid, "quantity": rng.randint(1, 2)}
                 for pid in (rng.sample(mine, 2) if multi else [rng.choice(mine)])]
        for line in lines:
            products[(store, line["product"])]["ordered"] += line["quantity"]
        link = None if multi else products[(store, lines[0]["product"])]["link"]
        fate = rng.choice(["succeeds", "fails"]) if rng.random() < s.delayed else "paid"
        # Stripe's state is the final one (every event is generated before any is delivered):
        # a delayed payment that succeeds has its charge, one that fails has none.
        sess = requests.post(f"{stripe}/_test/checkout_sessions", json={
            "payment_status": "unpaid" if fate == "fails" else "paid", "payment_link": link,
            "metadata": {"store_id": store}, "line_items": lines}).json()
        orders.append({"store": store, "lines": lines, "link": link, "session": sess["id"],
                       "pi": sess["payment_intent"], "fate": fate})
    catalog = [{"product_id": pid, "store_id": st, "name": f"{st} {pid}",
                "stock": max(1, int(v["ordered"] * s.units_share)), "payment_links": [v["link"]]}
               for (st, pid), v in products.items()]
    for c in catalog:
        products[(c["store_id"], c["product_id"])]["stock"] = c["stock"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(catalog, f)
    subprocess.run([cli, "catalog", "import", f.name], env=env, check=True, capture_output=True)
    return products, orders


def _events(orders: list, s: Settings, rng: random.Random) -> list[dict]:
    events = []
    for o in orders:
        if o["fate"] == "paid":
            events.append(_event("checkout.session.completed.paid", o, o["link"]))
        else:
            events.append(_event("checkout.session.completed.unpaid", o, o["link"]))
            later = "succeeded" if o["fate"] == "succeeds" else "failed"
            events.append(_event(f"checkout.session.async_payment_{later}", o, o["link"]))
    events += [json.loads(json.dumps(e)) for e in events if rng.random() < s.duplicate]
    rng.shuffle(events)
    return events


class Troublemaker:
    """Background faults: SIGKILL a busy instance, Stripe faults, IoT publish faults."""

    def __init__(self, stack: Stack, s: Settings, rng: random.Random) -> None:
        self.stack, self.s, self.rng = stack, s, random.Random(rng.random())
        # Set when every event has had its first delivery: the tail (retries) runs in peace,
        # else the last slow event is the only busy instance and every kill lands on it.
        self.stop = threading.Event()
        self.counts = {"kills": 0, "stripe_faults": 0, "iot_faults": 0}
        self.threads = [threading.Thread(target=self._loop, args=(s.kill_every_s, self._kill), daemon=True),
                        threading.Thread(target=self._loop, args=(s.stripe_fault_every_s, self._stripe), daemon=True),
                        threading.Thread(target=self._loop, args=(s.iot_fault_every_s, self._iot), daemon=True)]

    def __enter__(self) -> "Troublemaker":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _loop(self, every: float, act) -> None:
        while every > 0 and not self.stop.wait(every * (0.5 + self.rng.random())):
            act()

    def _kill(self) -> None:
        workers = requests.get(f"{self.stack.urls['lambda']}/_health").json()["workers"]
        busy = [w["pid"] for w in workers if w.get("busy") and w.get("pid")]
        if busy:
            try:
                os.kill(self.rng.choice(busy), signal.SIGKILL)
                self.counts["kills"] += 1
            except ProcessLookupError:
                pass

    def _stripe(self) -> None:
        # Never more than two armed at once: unconsumed faults would pile up while traffic is
        # low and then fail every request in a row.
        if len(requests.get(f"{self.stack.urls['stripe']}/_test/state?summary=1").json()["faults"]) >= 2:
            return
        status, after = self.rng.choice([(429, False), (500, False), (500, True)])
        requests.post(f"{self.stack.urls['stripe']}/_test/faults", json={
            "path_regex": "^/v1/", "status": status, "after": after})
        self.counts["stripe_faults"] += 1

    def _iot(self) -> None:
        requests.post(f"{self.stack.urls['iot_bridge']}/_faults", json={"count": 1})
        self.counts["iot_faults"] += 1


def _deliver(lam: str, events: list, s: Settings, first_pass_done: threading.Event) -> dict:
    stats = {"deliveries": 0, "retries": 0, "gave_up": [], "invalid": []}
    lock = threading.Lock()
    first_left = [len(events)]

    def one(e: dict) -> None:
        history = []
        for attempt in range(s.tries):
            r = invoke(lam, e, timeout=300)
            history.append((r.get("error") or {}).get("errorMessage", "ok")[:160])
            with lock:
                stats["deliveries"] += 1
                stats["retries"] += attempt > 0
                if attempt == 0:
                    first_left[0] -= 1
                    if first_left[0] == 0:
                        first_pass_done.set()
            if r["ok"] and (r.get("response") or {}).get("status") == "refused":
                with lock:  # a good event refused as bad: it would sit in the DLQ
                    stats["invalid"].append({"event": e["detail"]["id"], "answer": r["response"]})
                return
            if r["ok"]:
                return
            if (r.get("error") or {}).get("errorType") == "stockbridge.Invalid":
                with lock:  # a transient failure called poison: Lambda would not retry it
                    stats["invalid"].append({"event": e["detail"]["id"], "error": r["error"]})
                return
            time.sleep(min(2.0, 0.05 * 2 ** attempt))
        with lock:
            stats["gave_up"].append({"event": e["detail"]["id"], "type": e["detail"]["type"],
                                     "session": e["detail"]["data"]["object"]["id"],
                                     "history": history})

    with cf.ThreadPoolExecutor(s.clients) as pool:
        list(pool.map(one, events))
    return stats


def _retained(stack: Stack, topics: list[str], timeout: float = 10.0) -> dict[str, dict]:
    got: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
    port = stack.mqtt_port
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"chaos-{uuid.uuid4().hex[:8]}")
    c.on_connect = lambda cl, u, f, rc, p: [cl.subscribe(t, qos=1) for t in topics]
    c.on_message = lambda cl, u, m: got.put(m)
    c.connect("127.0.0.1", port)
    c.loop_start()
    out: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(out) < len(topics) and time.monotonic() < deadline:
            try:
                m = got.get(timeout=0.2)
            except queue.Empty:
                continue
            out[m.topic] = json.loads(m.payload)
    finally:
        c.disconnect()
        c.loop_stop()
    return out


def _check(stack: Stack, products: dict, orders: list, cli: str, env: dict) -> tuple[list, dict]:
    stripe = stack.urls["stripe"]
    state = requests.get(f"{stripe}/_test/state").json()
    refunds: dict[str, int] = {}
    for r in state["refunds"]:
        refunds[r["payment_intent"]] = refunds.get(r["payment_intent"], 0) + 1
    # What was ASKED of Stripe, not only what it did: the fake refuses a second full refund and
    # any refund of an unpaid PaymentIntent, so its refunds alone could never show a violation.
    keys: dict[str, set] = {}
    for r in requests.get(f"{stripe}/_test/requests?path_prefix=/v1/refunds&method=POST").json()["requests"]:
        pi = (r.get("form") or {}).get("payment_intent")
        keys.setdefault(pi, set()).add(r.get("idempotency_key"))
    violations = []
    taken: dict[tuple[str, str], int] = {k: 0 for k in products}
    for o in orders:
        n, asked = refunds.get(o["pi"], 0), keys.get(o["pi"], set())
        if n > 1 or len(asked) > 1:
            violations.append(f"order {o['session']} refunded {n} times under {len(asked)} keys")
        if o["fate"] == "fails" and asked:
            violations.append(f"failed payment {o['pi']}: a refund was asked for")
        if o["fate"] != "fails" and not n:
            for line in o["lines"]:
                taken[(o["store"], line["product"])] += line["quantity"]
    links = {lk["id"]: lk for lk in state["payment_links"]} if isinstance(state["payment_links"], list) \
        else state["payment_links"]
    prefix = env.get("IOT_TOPIC_PREFIX", "stockbridge")
    topics = {f"{prefix}/{st}/products/{pid}/stock": (st, pid) for (st, pid) in products}
    retained = _retained(stack, list(topics))
    finals = {}
    for (store, pid), p in products.items():
        final = stock_show(cli, env, pid, store)["available"]
        finals[f"{store}/{pid}"] = final
        if p["stock"] - final != taken[(store, pid)]:
            violations.append(f"{store}/{pid}: took {p['stock'] - final} units, orders kept {taken[(store, pid)]}")
        active = links[p["link"]]["active"]
        if active == (final == 0):
            violations.append(f"{store}/{pid}: link active={active} with {final} left")
    for topic, (store, pid) in topics.items():
        msg = retained.get(topic)
        if msg is None or msg.get("available") != finals[f"{store}/{pid}"]:
            violations.append(f"{topic}: retained {msg and msg.get('available')}, final {finals[f'{store}/{pid}']}")
    return violations, {"finals": finals, "refunds": sum(refunds.values())}


def _self_check(stack: Stack, products: dict, orders: list, cli: str, env: dict) -> dict:
    """Break the end state on purpose, one invariant at a time, and return what the checks then
    report for each: a check that cannot fail would report nothing.
    * units: one unit more on a product, without an order (`stock adjust`);
    * refund_twice / failed_refunded: a refund asked under a new key for a refunded order, and
      for a failed payment (the fake refuses both; the request is what counts);
    * link: a link switched on again at 0 (or off with stock left) behind stockbridge's back;
    * topic: a retained message with a wrong level."""
    stripe, auth = stack.urls["stripe"], {"Authorization": f"Bearer {env['STRIPE_API_KEY']}"}
    requests.post(f"{stack.urls['iot_bridge']}/_faults", json={"count": 0})
    requests.post(f"{stripe}/_test/faults/clear")
    keys = list(products)
    broken: dict[str, str] = {}
    store, pid = keys[0]
    subprocess.run([cli, "stock", "adjust", pid, "1", "--store", store], env=env, check=True,
                   capture_output=True)
    broken["units"] = f"{store}/{pid}: took"
    refunded_pis = {r["payment_intent"] for r in requests.get(f"{stripe}/_test/state").json()["refunds"]}
    refunded = next((o for o in orders if o["fate"] != "fails" and o["pi"] in refunded_pis), None)
    failed = next((o for o in orders if o["fate"] == "fails"), None)
    for name, o in (("refund_twice", refunded), ("failed_refunded", failed)):
        if o is not None:
            requests.post(f"{stripe}/v1/refunds", headers={**auth, "Idempotency-Key": f"sabotage-{name}"},
                          data={"payment_intent": o["pi"]})
            broken[name] = o["session"] if name == "refund_twice" else o["pi"]
    store, pid = keys[1]
    link = products[keys[1]]["link"]
    final = stock_show(cli, env, pid, store)["available"]
    requests.post(f"{stripe}/v1/payment_links/{link}", headers=auth,
                  data={"active": "true" if final == 0 else "false"})
    broken["link"] = f"{store}/{pid}: link active"
    store, pid = keys[2]
    topic = f"{env.get('IOT_TOPIC_PREFIX', 'stockbridge')}/{store}/products/{pid}/stock"
    requests.post(f"{stack.urls['iot_bridge']}/topics/{topic.replace('/', '%2F')}?qos=1&retain=true",
                  data=json.dumps({"available": 987654}).encode())
    broken["topic"] = f"{topic}: retained 987654"
    caught = _check(stack, products, orders, cli, env)[0]
    return {"broken": broken, "caught": caught,
            "missed": [k for k, v in broken.items() if not any(v in c for c in caught)]}


def run_chaos(s: Settings) -> dict:
    rng = random.Random(s.seed)
    cli = str(Path(s.binary).with_name("stockbridge"))
    with Stack(workers=s.workers, inventory_binary=s.binary, lambda_timeout=300) as stack:
        env = {**os.environ, **stack.env}
        products, orders = _setup(stack, s, rng, cli, env)
        events = _events(orders, s, rng)
        moto = stack.urls["moto"]
        requests.post(f"{moto}/_model", json={"conflicts": True, "service_ms": 5, "seed": s.seed,
                                               "faults": s.dynamodb_faults,
                                               "tables": [env.get("TABLE_NAME", "stockbridge")]}).raise_for_status()
        t0 = time.perf_counter()
        with Troublemaker(stack, s, rng) as trouble:
            delivery = _deliver(stack.urls["lambda"], events, s, trouble.stop)
        requests.post(f"{stack.urls['stripe']}/_test/faults/clear")
        requests.post(f"{stack.urls['iot_bridge']}/_faults", json={"count": 0})
        wall = time.perf_counter() - t0
        model = requests.get(f"{moto}/_model").json()["stats"]
        requests.post(f"{moto}/_model/reset")
        violations, seen = _check(stack, products, orders, cli, env)
        violations += [f"event {g['event']} never applied: {g}" for g in delivery["gave_up"]]
        violations += [f"event {i['event']} answered as invalid: {i}" for i in delivery["invalid"]]
        caught = _self_check(stack, products, orders, cli, env) if s.self_check else None
        return {"orders": s.orders, "events": len(events), "workers": s.workers,
                "wall_s": round(wall, 1), "violations": violations, **trouble.counts,
                "deliveries": delivery["deliveries"], "retried_deliveries": delivery["retries"],
                "refunds": seen["refunds"], "finals": seen["finals"],
                "dynamodb": {k: v for k, v in model.items() if k != "requests"},
                "self_check_caught": caught}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--binary", default=str(ROOT / "target" / "debug" / "inventory"))
    a = ap.parse_args()
    report = run_chaos(Settings(orders=a.orders, workers=a.workers, clients=a.clients,
                                seed=a.seed, binary=a.binary))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
