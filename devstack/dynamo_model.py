"""The local DynamoDB's front door: faults and real DynamoDB's conflict behaviour (issue 11 §1).

moto answers every request correctly but as if nothing else were happening: behind our one
lock it never sees two writes at once, so it never answers what real DynamoDB answers under
concurrency.  ``DynamoModel`` is a WSGI layer in front of it (``devstack.moto_server``) that
decides, before moto sees a request, whether real DynamoDB would have refused it.  Everything
is OFF until a test or benchmark turns it on (the shop never does):

    POST /_model        {"faults": {...}, "conflicts": true, ...}  -> the new settings
    GET  /_model        -> {"settings": {...}, "stats": {...}}
    POST /_model/reset  -> settings off, stats zero

FAULTS (each a share of the data-plane requests it applies to, drawn from a seeded RNG)
* ``throughput``: HTTP 400 ``ProvisionedThroughputExceededException`` (the SDK retries it).
* ``transaction_conflict``: a TransactWriteItems answers ``TransactionCanceledException`` with
  a ``TransactionConflict`` reason on its first action and ``None`` on the others.
* ``internal_error``: HTTP 500 ``InternalServerError``, before moto does any work.

THE CONFLICT MODEL (``"conflicts": true``), from the DynamoDB Developer Guide, "Transaction
conflict handling" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
transaction-apis.html#transaction-conflict-handling):
  "A PutItem, UpdateItem, or DeleteItem request for an item conflicts with an ongoing
   TransactWriteItems request that includes the same item.  An item within a TransactWriteItems
   request is part of another ongoing transaction."
* Every write takes ``service_ms`` (simulated) during which its items are in flight; its
  answer leaves when that time is over (moto has applied it at the start).
* A TransactWriteItems touching an item in flight (its ConditionCheck items included) is
  cancelled: ``TransactionCanceledException``, ``TransactionConflict`` at each such action,
  ``None`` at the others; nothing is written.  The guide names only another ongoing
  transaction; the model also counts an ongoing single write (the issue's reading, the
  stricter one: code that survives it survives both).
* A PutItem/UpdateItem/DeleteItem on an item an ongoing transaction holds fails with
  ``TransactionConflictException``; the SDK does not retry either error.
* Single-item writes to one item serialise without error: the second waits until the first is
  done, then takes its own ``service_ms``; while it waits its item counts as in flight, so no
  transaction can take the item from under it.
* ``item_wcu_per_s`` (optional, e.g. 1000): one item takes that many write units per simulated
  second ("Each partition ... can serve up to ... 1,000 write request units", the guide's
  partition limits, one item never spans partitions); a write costs one unit per started KB of
  its request, a transactional write twice that.  Over the ceiling a single write gets
  ``ProvisionedThroughputExceededException`` and a transaction ``TransactionCanceledException``
  with a ``ThrottlingError`` reason (the codes the SDK model documents).

SIMULATED TIME.  Two cores cannot run 64 instances at DynamoDB's speed, so the model can run
slower than the service by ``time_scale`` (wall seconds per simulated second): ``service_ms``
and the write-unit second are stretched by it.  ``stats`` reports wall and simulated seconds
since the last reset, so a benchmark can give throughput in both.

``tables`` (a list of table names, default all) limits faults and conflicts to those tables, so
tests sharing one server stay apart.

STATS count requests, data-plane writes, every refusal by kind, serialised waits, and the SDK's
own retries (an ``amz-sdk-request: attempt=N`` header with N > 1).

Tested in devstack/tests/test_dynamo_model.py with a manual clock and, end to end, with boto3
against moto.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter
from typing import Any, Callable, Iterable, Optional

PREFIX = "DynamoDB_20120810."
DATA_PLANE = {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem",
              "BatchWriteItem", "TransactWriteItems", "TransactGetItems"}
SINGLE_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
DEFAULTS: dict[str, Any] = {
    "faults": {"throughput": 0.0, "transaction_conflict": 0.0, "internal_error": 0.0},
    "conflicts": False,
    "service_ms": 10.0,
    "time_scale": 1.0,
    "item_wcu_per_s": None,
    "seed": 0,
    "tables": None,
}


def _validate(settings: dict[str, Any]) -> None:
    """Refuse settings that would break the model or silently switch it off."""
    for name, share in settings["faults"].items():
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ValueError(f"fault share {name} must be a number from 0 to 1, not {share!r}")
    for name in ("service_ms", "time_scale"):
        v = settings[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or \
                (name == "time_scale" and v == 0):
            raise ValueError(f"{name} must be a positive number, not {v!r}")
    ceiling = settings["item_wcu_per_s"]
    if ceiling is not None and (isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling < 1):
        raise ValueError(f"item_wcu_per_s must be a positive integer or null, not {ceiling!r}")
    if not isinstance(settings["conflicts"], bool) or not isinstance(settings["seed"], int):
        raise ValueError("conflicts must be true/false and seed an integer")
    tables = settings["tables"]
    if tables is not None and (not isinstance(tables, list) or not all(isinstance(t, str) for t in tables)):
        raise ValueError("tables must be a list of table names or null")


class Refusal(Exception):
    """What real DynamoDB would answer instead of doing the request."""

    def __init__(self, status: int, name: str, body: dict[str, Any]) -> None:
        super().__init__(name)
        self.status, self.name = status, name
        self.body = {"__type": ERROR_PREFIX + name, **body}


def canceled(codes: list[Optional[str]]) -> Refusal:
    messages = {"TransactionConflict": "Transaction is ongoing for the item",
                "ThrottlingError": "Throughput exceeds the current capacity for one or more items"}
    reasons = [{"Code": c, "Message": messages[c]} if c else {"Code": "None"} for c in codes]
    text = ", ".join(c or "None" for c in codes)
    return Refusal(400, "TransactionCanceledException", {
        "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{text}]",
        "CancellationReasons": reasons})


def throughput_exceeded() -> Refusal:
    return Refusal(400, "ProvisionedThroughputExceededException", {
        "message": "The level of configured provisioned throughput for the table was exceeded. "
                   "Consider increasing your provisioning level with the UpdateTable API."})


class ItemKeys:
    """Which attributes are a table's key: asked of moto's backend, in this process."""

    def __init__(self, lookup: Optional[Callable[[str], tuple[str, Optional[str]]]] = None) -> None:
        self._lookup = lookup or _moto_key_schema
        self._cache: dict[str, tuple[str, Optional[str]]] = {}

    def key(self, table: str, attrs: dict[str, Any]) -> tuple:
        if table not in self._cache:
            self._cache[table] = self._lookup(table)
        hash_attr, range_attr = self._cache[table]
        return (table, json.dumps(attrs.get(hash_attr), sort_keys=True),
                json.dumps(attrs.get(range_attr), sort_keys=True) if range_attr else None)


def _moto_key_schema(table: str) -> tuple[str, Optional[str]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    for backend in list(dynamodb_backends[DEFAULT_ACCOUNT_ID].values()):
        t = backend.tables.get(table)
        if t is not None:
            return t.hash_key_attr, t.range_key_attr
    raise KeyError(table)  # moto answers ResourceNotFound itself


class DynamoModel:
    """The WSGI layer; ``clock``/``sleep`` are injectable so the model's own tests need no waits."""

    def __init__(self, app: Callable, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 keys: Optional[ItemKeys] = None) -> None:
        self.app, self.clock, self.sleep = app, clock, sleep
        self.keys = keys or ItemKeys()
        self._lock = threading.Lock()
        self.reset()

    # ------------------------------------------------------------------ settings & stats
    def reset(self) -> None:
        with self._lock:
            self.settings = json.loads(json.dumps(DEFAULTS))
            self._rng = random.Random(0)
            self._tx_until: dict[tuple, float] = {}     # item -> wall time its transaction ends
            self._single_until: dict[tuple, float] = {}  # item -> wall time its last write ends
            self._units: dict[tuple, tuple[int, float]] = {}  # item -> (simulated second, units)
            self.stats: Counter[str] = Counter()
            self._since = self.clock()

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = set(settings) - set(DEFAULTS)
        unknown_faults = set(settings.get("faults", {})) - set(DEFAULTS["faults"])
        if unknown or unknown_faults:
            raise ValueError(f"unknown model settings: {sorted(unknown | unknown_faults)}")
        new = json.loads(json.dumps(DEFAULTS))
        new.update({k: v for k, v in settings.items() if k != "faults"})
        new["faults"].update(settings.get("faults", {}))
        _validate(new)
        self.reset()
        with self._lock:
            self.settings = new
            self._rng = random.Random(new["seed"])
            return json.loads(json.dumps(new))

    def report(self) -> dict[str, Any]:
        with self._lock:
            wall = self.clock() - self._since
            stats = dict(sorted(self.stats.items()))
            stats.update(wall_s=round(wall, 6),
                         simulated_s=round(wall / float(self.settings["time_scale"]), 6))
            return {"settings": json.loads(json.dumps(self.settings)), "stats": stats}

    # ------------------------------------------------------------------ the decision
    def applies(self, op: str, body: dict[str, Any]) -> bool:
        """Whether the settings' ``tables`` (None: all) name a table this request touches."""
        tables = self.settings["tables"]
        if tables is None:
            return True
        names = {body.get("TableName")} | set(body.get("RequestItems", {}))
        for action in body.get("TransactItems", []):
            names |= {op_.get("TableName") for op_ in action.values() if isinstance(op_, dict)}
        return bool(names & set(tables))

    def admit(self, op: str, body: dict[str, Any], attempt: int) -> tuple[float, float]:
        """Decide one data-plane request: raise ``Refusal``, or return ``(wait, done_at)``: the
        seconds it waits before moto runs it (a single write queued behind another write of
        the same item) and the clock time its answer leaves, when its service time is over (a
        caller never sees its own write still in flight, as with the real service)."""
        with self._lock:
            self.stats["requests"] += 1
            if attempt > 1:
                self.stats["sdk_retries"] += 1
            if not self.applies(op, body):
                return 0.0, self.clock()
            self._fault(op, body)
            if op == "TransactWriteItems":
                return self._transaction(body)
            if op in SINGLE_WRITES:
                return self._single(op, body)
            return 0.0, self.clock()

    def _fault(self, op: str, body: dict[str, Any]) -> None:
        f = self.settings["faults"]
        if f["internal_error"] and self._rng.random() < f["internal_error"]:
            self.stats["fault_internal_error"] += 1
            raise Refusal(500, "InternalServerError", {"message": "Internal server error"})
        if f["throughput"] and self._rng.random() < f["throughput"]:
            self.stats["fault_throughput"] += 1
            raise throughput_exceeded()
        if op == "TransactWriteItems" and f["transaction_conflict"] \
                and self._rng.random() < f["transaction_conflict"]:
            self.stats["fault_transaction_conflict"] += 1
            others = max(0, len(body.get("TransactItems", [])) - 1)
            raise canceled(["TransactionConflict"] + [None] * others)

    def _service(self) -> float:
        return float(self.settings["service_ms"]) / 1000 * float(self.settings["time_scale"])

    def _transaction(self, body: dict[str, Any]) -> tuple[float, float]:
        items = [self._action_key(a) for a in body.get("TransactItems", [])]
        self.stats["transactions"] += 1
        now = self.clock()
        if not self.settings["conflicts"]:
            return 0.0, now
        held = [max(self._tx_until.get(k, 0.0), self._single_until.get(k, 0.0)) > now
                for k in items]
        if any(held):
            self.stats["conflict_transaction_canceled"] += 1
            raise canceled(["TransactionConflict" if h else None for h in held])
        if self.settings["item_wcu_per_s"]:
            units = 2 * self._kb(body, len(items))  # a transactional write costs double
            over = [not self._has_units(k, units, now) for k in items]
            if any(over):
                self.stats["throttled_transaction"] += 1
                raise canceled(["ThrottlingError" if o else None for o in over])
            for k in items:
                self._spend(k, units, now)
        for k in items:
            self._tx_until[k] = now + self._service()
        return 0.0, now + self._service()

    def _single(self, op: str, body: dict[str, Any]) -> tuple[float, float]:
        self.stats["single_writes"] += 1
        now = self.clock()
        if not self.settings["conflicts"]:
            return 0.0, now
        k = self.keys.key(body["TableName"], body["Item"] if op == "PutItem" else body["Key"])
        if self._tx_until.get(k, 0.0) > now:
            self.stats["conflict_single_write"] += 1
            raise Refusal(400, "TransactionConflictException",
                          {"message": "Transaction is ongoing for the item"})
        if self.settings["item_wcu_per_s"]:
            units = self._kb(body, 1)
            if not self._has_units(k, units, now):
                self.stats["throttled_single_write"] += 1
                raise throughput_exceeded()
            self._spend(k, units, now)
        start = max(now, self._single_until.get(k, 0.0))
        self._single_until[k] = start + self._service()
        if start > now:
            self.stats["serialised_waits"] += 1
        return start - now, start + self._service()

    def _action_key(self, action: dict[str, Any]) -> tuple:
        # A ConditionCheck's item is "within a TransactWriteItems request" too: it is held.
        kind, op = next(iter(action.items()))
        return self.keys.key(op["TableName"], op["Item"] if kind == "Put" else op["Key"])

    @staticmethod
    def _kb(body: dict[str, Any], actions: int) -> int:
        return max(1, math.ceil(len(json.dumps(body)) / max(1, actions) / 1024))

    def _second(self, now: float) -> int:
        return int((now - self._since) / float(self.settings["time_scale"]))

    def _used(self, k: tuple, now: float) -> int:
        """Write units the item has spent in the current simulated second."""
        second, used = self._units.get(k, (None, 0))
        return used if second == self._second(now) else 0

    def _has_units(self, k: tuple, units: int, now: float) -> bool:
        return self._used(k, now) + units <= self.settings["item_wcu_per_s"]

    def _spend(self, k: tuple, units: int, now: float) -> None:
        self._units[k] = (self._second(now), self._used(k, now) + units)

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path.startswith("/_model"):
            return self._control(path, method, environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        op = target[len(PREFIX):] if target.startswith(PREFIX) else ""
        if op not in DATA_PLANE:
            return self.app(environ, start_response)
        raw = _read_body(environ)
        try:
            body = json.loads(raw or b"{}")
            wait, done_at = self.admit(op, body, _attempt(environ))
        except Refusal as r:
            return _respond(start_response, r.status, r.body)
        except (ValueError, KeyError, TypeError, AttributeError):
            wait, done_at = 0.0, 0.0  # moto answers a malformed request itself
        if wait > 0:
            self.sleep(wait)
        answer = list(self.app(environ, start_response))
        rest = done_at - self.clock()
        if rest > 0:
            self.sleep(rest)
        return answer

    def _control(self, path: str, method: str, environ: dict, start_response: Callable):
        if path == "/_model" and method == "GET":
            return _respond(start_response, 200, self.report())
        if path == "/_model/reset" and method == "POST":
            self.reset()
            return _respond(start_response, 200, self.report())
        if path == "/_model" and method == "POST":
            try:
                return _respond(start_response, 200, {"settings": self.configure(
                    json.loads(_read_body(environ) or b"{}"))})
            except (ValueError, TypeError) as e:
                return _respond(start_response, 400, {"message": str(e)})
        return _respond(start_response, 404, {"message": f"no route {method} {path}"})


def _attempt(environ: dict) -> int:
    for part in environ.get("HTTP_AMZ_SDK_REQUEST", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "attempt" and value.isdigit():
            return int(value)
    return 1


def _read_body(environ: dict) -> bytes:
    """Read the body once and put it back, so the app behind reads it too."""
    import io

    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw


def _respond(start_response: Callable, status: int, obj: Any) -> list[bytes]:
    body = json.dumps(obj).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    start_response(f"{status} {reason.get(status, '')}", [
        ("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))])
    return [body]
