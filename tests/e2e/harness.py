"""The end-to-end harness: `E2E`, helpers over one running stack (its table, the fake Stripe,
the broker, the Lambda drivers, the CLI), and the paths and sample events the tests share.
`conftest.py` builds the session's stack and hands an `E2E` to the tests."""

from __future__ import annotations

import copy
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import boto3
import paho.mqtt.client as mqtt
import requests
from boto3.dynamodb.types import TypeDeserializer

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devstack.lambda_driver import invoke  # noqa: E402
from devstack.stack import SCRUBBED_ENV, Stack  # noqa: E402

EVENTS_DIR = REPO_ROOT / "events"
INVENTORY_BIN = Path(os.environ.get("STOCKBRIDGE_E2E_INVENTORY", REPO_ROOT / "target" / "debug" / "inventory"))
INVENTORY_CRASH_BIN = INVENTORY_BIN.with_name("inventory-crash-hook")
CLI_BIN = Path(os.environ.get("STOCKBRIDGE_E2E_CLI", REPO_ROOT / "target" / "debug" / "stockbridge"))
CATALOG_SYNC_BIN = Path(os.environ.get("STOCKBRIDGE_E2E_CATALOG_SYNC",
                                       REPO_ROOT / "target" / "debug" / "catalog-sync"))
CHECKOUT_BIN = Path(os.environ.get("STOCKBRIDGE_E2E_CHECKOUT", REPO_ROOT / "target" / "debug" / "checkout"))
SWEEPER_BIN = Path(os.environ.get("STOCKBRIDGE_E2E_SWEEPER", REPO_ROOT / "target" / "debug" / "sweeper"))
WEBHOOK_BIN = Path(os.environ.get("STOCKBRIDGE_E2E_WEBHOOK", REPO_ROOT / "target" / "debug" / "webhook"))
RECONCILER_BIN = Path(os.environ.get("STOCKBRIDGE_E2E_RECONCILER", REPO_ROOT / "target" / "debug" / "reconciler"))
MOTO_ACCOUNT = "123456789012"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOPIC_PREFIX = "stockbridge"
UNIT_AMOUNT = 1500

EVENT_FILES = {
    "completed": "checkout.session.completed.paid.json",
    "completed_redelivered": "checkout.session.completed.paid.redelivered.json",
    "completed_unpaid": "checkout.session.completed.unpaid.json",
    "async_succeeded": "checkout.session.async_payment_succeeded.json",
    "async_failed": "checkout.session.async_payment_failed.json",
}

_deser = TypeDeserializer()


def uid() -> str:
    return uuid.uuid4().hex[:12]


def load_event(name: str) -> dict:
    return json.loads((EVENTS_DIR / name).read_text())


def _num(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, list):
        return [_num(x) for x in v]
    if isinstance(v, dict):
        return {k: _num(x) for k, x in v.items()}
    return v


def _plain(attrs: dict) -> dict:
    """DynamoDB attribute map -> plain Python (numbers as int)."""
    return {k: _num(_deser.deserialize(v)) for k, v in attrs.items()}


def stock_topic(store: str, product: str) -> str:
    return f"{TOPIC_PREFIX}/{store}/products/{product}/stock"


class E2E:
    """Helpers over one running stack.  All methods are safe to call from several threads."""

    def __init__(self, stack: Stack, table: str, workdir: Path) -> None:
        self.stack = stack
        self.env = dict(stack.env)
        self.table = table
        self.workdir = workdir
        self.lambda_url = stack.urls["lambda"]
        self.stripe_url = stack.urls["stripe"]
        self.moto_url = stack.urls["moto"]
        self.bridge_url = stack.urls["iot_bridge"]
        self.ddb = boto3.client(
            "dynamodb", endpoint_url=self.moto_url, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test")
        self.sqs = boto3.client(
            "sqs", endpoint_url=self.moto_url, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test")
        self.events = boto3.client(
            "events", endpoint_url=self.moto_url, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test")
        self.queue_url = self.env.get("CATALOG_SYNC_QUEUE_URL", "")
        self.dlq_url = self.env.get("CATALOG_SYNC_DLQ_URL", "")
        self.http = requests.Session()
        self._cli_ok: Optional[bool] = None
        self._cli_lock = threading.Lock()

    # ------------------------------------------------------------------ CLI
    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(self.env)
        return env

    def cli_ready(self, refresh: bool = False) -> bool:
        """True when target/debug/stockbridge is the real CLI (not a stub still being built)."""
        with self._cli_lock:
            if self._cli_ok and not refresh:
                return True
            ok = False
            if CLI_BIN.exists() and os.access(CLI_BIN, os.X_OK):
                try:
                    r = subprocess.run([str(CLI_BIN), "--help"], capture_output=True, text=True,
                                       timeout=20, env=self.cli_env())
                    help_text = r.stdout + r.stderr
                    ok = r.returncode == 0 and all(w in help_text for w in ("table", "catalog", "stock", "history"))
                except (OSError, subprocess.TimeoutExpired):
                    ok = False
            self._cli_ok = ok
            return ok

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run([str(CLI_BIN), *args], capture_output=True, text=True, timeout=timeout,
                           env=self.cli_env(), cwd=str(self.workdir))
        if check and r.returncode != 0:
            raise AssertionError(f"stockbridge {' '.join(args)} failed ({r.returncode}):\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    # ------------------------------------------------------------------ table and catalog
    def create_table(self) -> str:
        self.cli("table", "create")
        return "cli"

    def seed(self, store: str, items: Iterable[dict]) -> str:
        """Creates catalog items: [{"product_id", "name"?, "stock", "payment_links"?}] in `store`
        through `stockbridge catalog import` (the real interface)."""
        rows = [{"product_id": it["product_id"], "store_id": store, "name": it.get("name", it["product_id"]),
                 "stock": it["stock"], "payment_links": list(it.get("payment_links", []))} for it in items]
        path = self.workdir / f"catalog-{uid()}.json"
        path.write_text(json.dumps(rows))
        self.cli("catalog", "import", str(path))
        return "cli"

    # ------------------------------------------------------------------ reading state
    def item(self, store: str, product: str, via_cli: Optional[bool] = None) -> Optional[dict]:
        """{"available","version","sold_out","payment_links","deactivated_links",...} or None."""
        if via_cli is None:
            via_cli = self.cli_ready()
        if via_cli:
            r = self.cli("stock", "show", product, "--store", store, "--json", check=False)
            if r.returncode != 0:
                if "not in the catalog" in r.stderr:
                    return None
                raise AssertionError(f"stock show failed: {r.stderr}")
            return json.loads(r.stdout)
        got = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                Key={"pk": {"S": f"ITEM#{store}#{product}"}, "sk": {"S": "ITEM"}}).get("Item")
        if got is None:
            return None
        it = _plain(got)
        it["sold_out"] = it["available"] == 0
        it.setdefault("payment_links", [])
        it.setdefault("deactivated_links", [])
        return it

    def raw_item(self, store: str, product: str) -> Optional[dict]:
        return self.item(store, product, via_cli=False)

    def ledger(self, store: str, product: str) -> list[dict]:
        """Ledger entries, oldest first: {"version","delta","level","cause","stripe_event_id","order_id",..}."""
        out: list[dict] = []
        kwargs: dict[str, Any] = dict(
            TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :l)",
            ExpressionAttributeValues={":pk": {"S": f"ITEM#{store}#{product}"}, ":l": {"S": "LEDGER#"}})
        while True:
            page = self.ddb.query(**kwargs)
            out.extend(_plain(a) for a in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        for e in out:
            e.setdefault("stripe_event_id", None)
            e.setdefault("order_id", None)
        return sorted(out, key=lambda e: e["version"])

    def history(self, store: str, product: str) -> dict:
        """`stockbridge history --json` ({"ledger": [...], "orders": [...]})."""
        return json.loads(self.cli("history", product, "--store", store, "--json").stdout)

    def order(self, cs_id: str) -> Optional[dict]:
        got = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                Key={"pk": {"S": f"ORDER#{cs_id}"}, "sk": {"S": "ORDER"}}).get("Item")
        return self._order(got) if got else None

    def orders(self, cs_ids: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for i in range(0, len(cs_ids), 100):
            keys = [{"pk": {"S": f"ORDER#{c}"}, "sk": {"S": "ORDER"}} for c in cs_ids[i:i + 100]]
            req = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while req:
                r = self.ddb.batch_get_item(RequestItems=req)
                for a in r["Responses"].get(self.table, []):
                    o = self._order(a)
                    out[o["order_id"]] = o
                req = r.get("UnprocessedKeys") or None
        return out

    @staticmethod
    def _order(attrs: dict) -> dict:
        o = _plain(attrs)
        o["record"] = json.loads(o["record"])
        o["order_id"] = o["pk"].split("#", 1)[1]
        o.setdefault("refund_id", None)
        return o

    def item_keys_count(self, store: str) -> int:
        """How many records exist under any ITEM#{store}# partition (scan; tests keep it small)."""
        n = 0
        kwargs: dict[str, Any] = dict(TableName=self.table, Select="COUNT",
                                      FilterExpression="begins_with(pk, :p)",
                                      ExpressionAttributeValues={":p": {"S": f"ITEM#{store}#"}})
        while True:
            r = self.ddb.scan(**kwargs)
            n += r["Count"]
            if "LastEvaluatedKey" not in r:
                return n
            kwargs["ExclusiveStartKey"] = r["LastEvaluatedKey"]

    # ------------------------------------------------------------------ catalog sync
    def wait_catalog_idle(self, timeout: float = 90.0) -> dict:
        """Every catalog event delivered by the fake Stripe, the stream read, the queue drained
        and no catalog-sync invocation running (``Stack.wait_catalog_idle``)."""
        return self.stack.wait_catalog_idle(timeout=timeout)

    def import_catalog(self, rows: list[dict], check: bool = True) -> subprocess.CompletedProcess:
        """`stockbridge catalog import` of JSON rows (merchandising fields allowed)."""
        path = self.workdir / f"catalog-{uid()}.json"
        path.write_text(json.dumps(rows))
        return self.cli("catalog", "import", str(path), check=check)

    def catalog_entry(self, product: str) -> dict[str, Optional[dict]]:
        """{"details": DETAILS doc | None, "mapping": STRIPE doc | None} (docs parsed from JSON)."""
        out: dict[str, Optional[dict]] = {}
        for key, sk in (("details", "DETAILS"), ("mapping", "STRIPE")):
            got = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                    Key={"pk": {"S": f"PRODUCT#{product}"}, "sk": {"S": sk}}).get("Item")
            out[key] = json.loads(got["doc"]["S"]) if got else None
        return out

    def scan_prefix(self, prefix: str, **filters: str) -> list[dict]:
        """Every record whose pk begins with ``prefix`` (and whose attributes equal ``filters``)."""
        names = {f"#a{i}": k for i, k in enumerate(filters)}
        values = {":p": {"S": prefix}}
        cond = ["begins_with(pk, :p)"]
        for i, (k, v) in enumerate(filters.items()):
            values[f":v{i}"] = {"S": v}
            cond.append(f"#a{i} = :v{i}")
        kwargs: dict[str, Any] = dict(TableName=self.table, ConsistentRead=True,
                                      FilterExpression=" AND ".join(cond),
                                      ExpressionAttributeValues=values)
        if names:
            kwargs["ExpressionAttributeNames"] = names
        out: list[dict] = []
        while True:
            page = self.ddb.scan(**kwargs)
            out.extend(_plain(a) for a in page["Items"])
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def discrepancies(self, subject: Optional[str] = None, what: Optional[str] = None) -> list[dict]:
        """Discrepancy records (pk ``RECON#{day}``): {what, subject, expected, found, action,
        repaired, at, ...}, oldest first."""
        filters = {k: v for k, v in (("subject", subject), ("what", what)) if v is not None}
        return sorted(self.scan_prefix("RECON#", **filters), key=lambda d: d["sk"])

    def stack_stats(self) -> dict:
        """The catalog pipe's counters (``/_stats``)."""
        return self.http.get(self.stack.urls["catalog_pipe"] + "/_stats").json()

    def queue_depth(self, url: str) -> int:
        """Messages in a queue: visible + in flight + delayed."""
        a = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return sum(int(v) for v in a.values())

    def dlq_messages(self, delete: Optional[Callable[[dict], bool]] = None) -> list[dict]:
        """Every message in the catalog-sync DLQ, with all attributes.  Reads them all (each
        hidden while reading), then makes them visible again; the ones ``delete`` accepts are
        deleted instead."""
        seen: dict[str, dict] = {}
        handles: list[tuple[dict, str]] = []
        try:
            while True:
                got = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10,
                                               VisibilityTimeout=60, WaitTimeSeconds=0,
                                               MessageAttributeNames=["All"],
                                               AttributeNames=["All"]).get("Messages", [])
                if not got:
                    break
                for m in got:
                    seen.setdefault(m["MessageId"], m)
                    handles.append((m, m["ReceiptHandle"]))
        finally:
            for m, handle in handles:
                if delete is not None and delete(m):
                    self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=handle)
                else:
                    self.sqs.change_message_visibility(QueueUrl=self.dlq_url, ReceiptHandle=handle,
                                                       VisibilityTimeout=0)
        return list(seen.values())

    def send_to_catalog_queue(self, body: str) -> str:
        return self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]

    def catalog_sync_log(self) -> str:
        """The catalog-sync workers' log, without ANSI colours."""
        path = self.stack.logs.get("catalog-sync")
        if not path or not Path(path).exists():
            return ""
        return ANSI.sub("", Path(path).read_text(errors="replace"))

    def catalog_sync_log_tail(self, lines: int = 40) -> str:
        return "catalog-sync log tail:\n" + "\n".join(self.catalog_sync_log().splitlines()[-lines:])

    def merchant_events_queue(self, detail_type: str, name: str) -> tuple[str, str]:
        """An SQS queue behind a rule on the default bus for stockbridge's `detail_type`
        events: (queue URL, rule name; remove it with `remove_rule`)."""
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name=name, EventBusName="default", EventPattern=json.dumps(
            {"source": ["stockbridge"], "detail-type": [detail_type]}))
        self.events.put_targets(Rule=name, EventBusName="default", Targets=[{"Id": "q", "Arn": arn}])
        return url, name

    def remove_rule(self, rule: str) -> None:
        self.events.remove_targets(Rule=rule, EventBusName="default", Ids=["q"])
        self.events.delete_rule(Name=rule, EventBusName="default")

    # ------------------------------------------------------------------ fake Stripe
    def stripe(self, http_method: str, path: str, body: Optional[dict] = None, **params: Any) -> Any:
        r = self.http.request(http_method, self.stripe_url + path, json=body, params=params or None)
        assert r.status_code < 400, f"{http_method} {path}: {r.status_code} {r.text}"
        return r.json()

    def stripe_payment_link(self, product: str, link_id: Optional[str] = None) -> str:
        return self.stripe("POST", "/_test/payment_links",
                           {"id": link_id or f"plink_{uid()}", "product": product,
                            "unit_amount": UNIT_AMOUNT})["id"]

    def stripe_session(self, lines: list[tuple[str, int]], store: str, paid: bool = True,
                       payment_link: Optional[str] = None, cs_id: Optional[str] = None,
                       pi_id: Optional[str] = None, created: Optional[int] = None,
                       event: bool = False) -> dict:
        """A session at the fake Stripe; `created` backdates it (history), `event` also stores
        its completed event for /v1/events without delivering it."""
        body = {
            "id": cs_id or f"cs_test_e2e_{uid()}",
            "payment_intent": pi_id or f"pi_e2e_{uid()}",
            "payment_status": "paid" if paid else "unpaid",
            "metadata": {"store_id": store},
            "line_items": [{"product": p, "quantity": q, "unit_amount": UNIT_AMOUNT} for p, q in lines],
        }
        if payment_link:
            body["payment_link"] = payment_link
        if created is not None:
            body["created"] = created
        if event:
            body["event"] = True
        return self.stripe("POST", "/_test/checkout_sessions", body)

    def stripe_requests(self, path_prefix: str = "", method: str = "") -> list[dict]:
        return self.stripe("GET", "/_test/requests", path_prefix=path_prefix, method=method)["requests"]

    def stripe_seq(self) -> int:
        reqs = self.stripe_requests()
        return reqs[-1]["seq"] if reqs else 0

    def stripe_requests_since(self, seq: int) -> list[dict]:
        return [r for r in self.stripe_requests() if r["seq"] > seq]

    def stripe_state(self) -> dict:
        return self.stripe("GET", "/_test/state")

    def refunds_for(self, payment_intents: Iterable[str]) -> list[dict]:
        pis = set(payment_intents)
        return [r for r in self.stripe_state()["refunds"] if r["payment_intent"] in pis]

    def stripe_fault(self, status: int, path_regex: str, count: int, method: str = "GET",
                     skip: int = 0) -> dict:
        return self.stripe("POST", "/_test/faults",
                           {"status": status, "path_regex": path_regex, "count": count, "method": method,
                            "skip": skip})

    # ------------------------------------------------------------------ moto, bridge, MQTT
    def moto_stats(self) -> dict[str, int]:
        return self.http.get(f"{self.moto_url}/_stats").json()

    def publishes(self, topic: Optional[str] = None) -> list[dict]:
        pubs = self.http.get(f"{self.bridge_url}/_publishes").json()["publishes"]
        out = [p for p in pubs if topic is None or p["topic"] == topic]
        for p in out:
            try:
                p["json"] = json.loads(p["payload"])
            except ValueError:
                p["json"] = None
        return out

    def retained(self, store: str, product: str, timeout: float = 5.0) -> Optional[dict]:
        """Subscribes after the fact and returns the retained stock message (JSON), or None."""
        topic = stock_topic(store, product)
        got: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-{uid()}")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        client.on_message = lambda c, u, m: got.put(m)
        client.connect("127.0.0.1", self.stack.mqtt_port)
        client.loop_start()
        try:
            msg = got.get(timeout=timeout)
        except queue.Empty:
            return None
        finally:
            client.disconnect()
            client.loop_stop()
        assert msg.retain, f"message on {topic} is not a retained one"
        assert msg.topic == topic
        return json.loads(msg.payload)

    # ------------------------------------------------------------------ events and invocations
    @staticmethod
    def event(kind: str, *, cs_id: str, evt_id: str, store: Optional[str],
              payment_intent: Optional[str] = None, payment_link: Optional[str] = None,
              payment_status: Optional[str] = None, envelope_id: Optional[str] = None,
              created: Optional[int] = None) -> dict:
        """An EventBridge envelope built from events/<sample>.json with this test's ids, `created`
        (when it was paid) now unless given: an event from before the product's import, or its
        last `stock set --recount`, is history and moves nothing."""
        if kind not in _EVENT_CACHE:
            _EVENT_CACHE[kind] = load_event(EVENT_FILES[kind])
        ev = copy.deepcopy(_EVENT_CACHE[kind])
        ev["id"] = envelope_id or str(uuid.uuid4())
        ev["detail"]["id"] = evt_id
        paid = int(time.time()) if created is None else created
        ev["detail"]["created"] = paid
        ev["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(paid))
        obj = ev["detail"]["data"]["object"]
        obj["id"] = cs_id
        obj["payment_intent"] = payment_intent
        obj["payment_link"] = payment_link
        obj["metadata"] = {"store_id": store} if store else {}
        if payment_status is not None:
            obj["payment_status"] = payment_status
        return ev

    def invoke(self, event: Any, timeout: float = 120) -> dict:
        return invoke(self.lambda_url, event, timeout=timeout)

    def invoke_ok(self, event: Any) -> dict:
        out = self.invoke(event)
        assert out["ok"] is True, f"invocation failed: {json.dumps(out)[:2000]}\n{self.inventory_log_tail()}"
        return out["response"]

    def inventory_log_tail(self, lines: int = 30) -> str:
        path = self.stack.logs.get("inventory")
        if not path or not Path(path).exists():
            return ""
        return "inventory log tail:\n" + "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])

    def log_tail(self, function: str, lines: int = 30, grep: Optional[str] = None) -> str:
        """The last ``lines`` lines (containing ``grep``, if given) of a function's log
        (``inventory``, ``checkout``, ``sweeper``, ``catalog-sync``), without ANSI colours."""
        path = self.stack.logs.get(function)
        if not path or not Path(path).exists():
            return f"({function}: no log)"
        text = ANSI.sub("", Path(path).read_text(errors="replace")).splitlines()
        if grep is not None:
            text = [line for line in text if grep in line]
        return f"{function} log ({path}) tail:\n" + "\n".join(text[-lines:])

    def logs_about(self, needle: str, lines: int = 20) -> str:
        """The lines of the inventory, checkout and sweeper logs mentioning ``needle``."""
        return "\n".join(self.log_tail(f, lines, grep=needle) for f in ("checkout", "inventory", "sweeper"))

    # ------------------------------------------------------------------ checkout and sweeper
    @property
    def checkout_url(self) -> str:
        """The checkout function's Function URL (base, no path)."""
        return self.stack.urls["checkout"]

    def post_checkout(self, body: Any = None, *, key: Optional[str] = "auto", path: str = "/checkout",
                      method: str = "POST", headers: Optional[dict[str, str]] = None,
                      data: Optional[bytes] = None, timeout: float = 120) -> requests.Response:
        """One request to the checkout Function URL.  ``body`` is sent as JSON (``data``: raw
        bytes instead); ``key="auto"`` sends a fresh Idempotency-Key, None sends none."""
        h = {"Content-Type": "application/json"}
        if key == "auto":
            key = f"e2e-{uuid.uuid4()}"
        if key is not None:
            h["Idempotency-Key"] = key
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        if data is None and body is not None:
            data = json.dumps(body).encode()
        # A fresh connection per call: callers use this from many threads at once.
        return requests.request(method, self.checkout_url + path, data=data, headers=h, timeout=timeout)

    def sellable(self, store: str, products: dict[str, tuple[int, int]], currency: str = "usd") -> None:
        """Catalog rows with a price, through `stockbridge catalog import`:
        {product_id: (stock, unit_amount)} in ``store``; waits for catalog sync to settle."""
        rows = [{"product_id": p, "store_id": store, "name": f"E2E {p}", "stock": stock,
                 "unit_amount": amount, "currency": currency, "payment_links": []}
                for p, (stock, amount) in products.items()]
        self.import_catalog(rows)
        self.wait_catalog_idle()

    def sweep(self) -> dict:
        """One sweeper run: {"expired", "released", "raced", "failed"}."""
        return self.stack.sweep()

    def wait_stripe_events(self, timeout: float = 60.0) -> dict:
        """Every payment_intent.* event POSTed to the event sink (and handled)."""
        return self.stack.wait_stripe_events(timeout=timeout)

    def set_event_sink(self, url: Optional[str]) -> None:
        self.stripe("POST", "/_test/event_sink", {"url": url})

    def pay_link(self, link: str) -> str:
        """A buyer pays a Payment Link on the fake Stripe's hosted page; returns the Checkout
        Session id (its event goes to the event sink, if one is set)."""
        page = self.http.get(f"{self.stripe_url}/pay/{link}")
        assert page.status_code == 200, page.text
        session = re.search(r'name="session" value="([^"]+)"', page.text).group(1)
        done = self.http.post(f"{self.stripe_url}/pay/{link}", data={"session": session})
        assert done.status_code == 200, done.text
        return session

    def pi_status(self, pi: str) -> Optional[str]:
        return self.stripe("GET", "/_test/state", summary=1)["payment_intent_status"].get(pi)

    def payment_intent(self, pi: str) -> dict:
        return self.stripe_state()["payment_intents"][pi]

    def stripe_events_for(self, pi: str, type_: Optional[str] = None) -> list[dict]:
        """Events about PaymentIntent ``pi`` (oldest first), optionally of one type."""
        return [e for e in self.stripe_state()["events"]
                if e["type"].startswith("payment_intent.") and e["data"]["object"].get("id") == pi
                and (type_ is None or e["type"] == type_)]

    def event_deliveries_for(self, pi: str) -> list[dict]:
        return [d for d in self.stripe_state()["event_deliveries"] if d.get("payment_intent") == pi]

    def authorize(self, pi: str, payment_method: str = "pm_card_visa") -> dict:
        """Confirms ``pi`` as the buyer's browser would (no key, no API request logged)."""
        return self.stripe("POST", f"/_test/payment_intents/{pi}/authorize", {"payment_method": payment_method})

    def confirm_as_browser(self, pi: str, client_secret: str, payment_method: str) -> requests.Response:
        """``POST /v1/payment_intents/{pi}/confirm`` with a publishable key + client_secret."""
        return self.http.post(f"{self.stripe_url}/v1/payment_intents/{pi}/confirm",
                              data={"client_secret": client_secret, "payment_method": payment_method},
                              headers={"Authorization": "Bearer pk_test_e2e"})

    def hold_orders(self, store: str) -> list[dict]:
        """Every checkout hold's order record (pk ``ORDER#hold_...``) of ``store``."""
        return [self._order_plain(o) for o in self.scan_prefix("ORDER#hold_", store_id=store)]

    @staticmethod
    def _order_plain(o: dict) -> dict:
        o = dict(o)
        if isinstance(o.get("record"), str):
            o["record"] = json.loads(o["record"])
        o["order_id"] = o["pk"].split("#", 1)[1]
        return o

    def expire_hold(self, hold_id: str, ago_ms: int = 60_000) -> int:
        """Moves a pending hold's expiry ``ago_ms`` into the past (``hold_expires_at`` and the
        record's ``hold.expires_at``), as if its time had run out.  Returns the new expiry."""
        key = {"pk": {"S": f"ORDER#{hold_id}"}, "sk": {"S": "ORDER"}}
        got = self.ddb.get_item(TableName=self.table, ConsistentRead=True, Key=key).get("Item")
        assert got is not None, f"no order record for {hold_id}"
        old = got["record"]["S"]
        record = json.loads(old)
        assert record.get("hold") and "expires_at" in record["hold"], record
        assert int(got["hold_expires_at"]["N"]) == record["hold"]["expires_at"], got
        expires = int(time.time() * 1000) - ago_ms
        record["hold"]["expires_at"] = expires
        self.ddb.update_item(
            TableName=self.table, Key=key,
            UpdateExpression="SET hold_expires_at = :e, #r = :new",
            ConditionExpression="#r = :old",
            ExpressionAttributeNames={"#r": "record"},
            ExpressionAttributeValues={":e": {"N": str(expires)}, ":new": {"S": json.dumps(record)},
                                       ":old": {"S": old}})
        return expires


_EVENT_CACHE: dict[str, dict] = {}
