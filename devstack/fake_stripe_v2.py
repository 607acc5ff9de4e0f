"""The fake Stripe's event destinations (``/v2/core/event_destinations``) and restricted keys,
for ``stockbridge preflight`` (issue 12 §3).  Registered by ``fake_stripe.create_app``.

Stripe API (v2, JSON):
``GET /v2/core/event_destinations`` -> ``{"data": [...], "next_page_url": null,
"previous_page_url": null}`` (the key's mode only); ``GET /v2/core/event_destinations/{id}``.
The object follows Stripe's API reference (``v2.core.event_destination``): ``id``, ``object``,
``type`` (``amazon_eventbridge`` | ``webhook_endpoint``), ``amazon_eventbridge``
(``aws_account_id``, ``aws_event_source_arn``, ``aws_event_source_status``: active | pending |
deleted | unknown), ``enabled_events``, ``event_payload`` (snapshot | thin),
``snapshot_api_version``, ``status`` (enabled | disabled), ``livemode``, ``name``, ``created``.

Restricted keys: a key registered with ``POST /_test/restricted_keys {"key": "rk_test_...",
"permissions": {"product": "write", "event": "read", ...}}`` may call an endpoint only with its
resource's permission (GET needs read or write, POST and DELETE write), checked before the
request's parameters like Stripe; otherwise 403 ``invalid_request_error`` with Stripe's message
naming the permission (``rak_{resource}_{read|write}``).  Unregistered keys may do everything.
Keys are kept as SHA-256 digests only.

Test API: ``POST /_test/event_destinations`` (any of the fields above, plus ``aws_region``;
defaults: an enabled snapshot EventBridge destination for every event stockbridge needs is NOT
assumed: ``enabled_events`` is required), ``POST /_test/restricted_keys``.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any, Callable, Optional

from flask import Flask, Response, request

# The resource a v1 path belongs to, as the restricted-key form groups them.
_RESOURCES = [
    (re.compile(r"^/v1/checkout/sessions"), "checkout_session"),
    (re.compile(r"^/v1/payment_links"), "payment_links"),
    (re.compile(r"^/v1/refunds"), "refund"),
    (re.compile(r"^/v1/charges"), "charge"),
    (re.compile(r"^/v1/disputes"), "dispute"),
    (re.compile(r"^/v1/payment_intents"), "payment_intent"),
    (re.compile(r"^/v1/products"), "product"),
    (re.compile(r"^/v1/prices"), "price"),
    (re.compile(r"^/v1/events"), "event"),
    (re.compile(r"^/v2/core/event_destinations"), "event_destination"),
    (re.compile(r"^/v2/core/events"), "event"),
]
_LEVELS = {"none": 0, "read": 1, "write": 2}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _bearer(header: Optional[str]) -> Optional[str]:
    m = re.match(r"^Bearer (\S+)$", (header or "").strip())
    return m.group(1) if m else None


class V2State:
    """Event destinations and restricted keys (call with the fake's lock held)."""

    def __init__(self) -> None:
        self.destinations: dict[str, dict] = {}
        self.restricted: dict[str, dict[str, str]] = {}
        self.seq = 0

    def denied(self, header: Optional[str], method: str, path: str) -> Optional[dict]:
        """Stripe's 403 body when a registered restricted key lacks the path's permission."""
        key = _bearer(header)
        if key is None or not key.startswith("rk_"):
            return None
        perms = self.restricted.get(_digest(key))
        if perms is None:
            return None
        resource = next((r for rx, r in _RESOURCES if rx.match(path)), None)
        if resource is None:
            return None
        need = "read" if method == "GET" else "write"
        if _LEVELS[perms.get(resource, "none")] >= _LEVELS[need]:
            return None
        shown = f"{key[:8]}***{key[-4:]}"
        return {"error": {
            "type": "invalid_request_error",
            "message": f"The provided key '{shown}' does not have the required permissions "
                       f"for this endpoint on account 'acct_fake'. Having the "
                       f"'rak_{resource}_{need}' permission would allow this request to "
                       f"continue.",
        }}

    def create_destination(self, b: dict) -> dict:
        if not isinstance(b.get("enabled_events"), list):
            raise ValueError("enabled_events (a list) is required")
        self.seq += 1
        live = bool(b.get("livemode", False))
        did = f"ed_{'live' if live else 'test'}_{self.seq:04d}fake"
        kind = b.get("type", "amazon_eventbridge")
        account = str(b.get("aws_account_id", "123456789012"))
        region = b.get("aws_region", "us-east-1")
        d = {
            "id": did, "object": "v2.core.event_destination", "type": kind,
            "name": b.get("name", "stockbridge"), "description": b.get("description", ""),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "enabled_events": list(b["enabled_events"]),
            "event_payload": b.get("event_payload", "snapshot"),
            "snapshot_api_version": b.get("snapshot_api_version"),
            "events_from": b.get("events_from", ["self"]),
            "status": b.get("status", "enabled"), "livemode": live, "metadata": {},
            "amazon_eventbridge": None, "webhook_endpoint": None,
        }
        if kind == "amazon_eventbridge":
            d["amazon_eventbridge"] = {
                "aws_account_id": account,
                "aws_event_source_arn": f"arn:aws:events:{region}::event-source/"
                                        f"aws.partner/stripe.com/{did}",
                "aws_event_source_status": b.get("aws_event_source_status", "active"),
            }
        else:
            d["webhook_endpoint"] = {"url": b.get("url", "https://example.invalid/hook")}
        self.destinations[did] = d
        return d


def register(app: Flask, fake: Any, auth: Callable, record: Callable[[dict], None],
             json_response: Callable[..., Response]) -> V2State:
    """Adds the v2 routes and the test API to ``app``; returns the state the v1 routes
    consult for restricted keys."""
    state = V2State()

    def answer(live: Optional[bool], err: Any, body: Callable[[bool], Any]) -> Response:
        entry = {"method": request.method, "path": request.path, "query": dict(request.args),
                 "form": {}, "idempotency_key": None, "replayed": False, "time": time.time(),
                 "auth": "ok" if err is None else "invalid",
                 "stripe_version": request.headers.get("Stripe-Version")}
        with fake.lock:
            if err is not None:
                resp = json_response(err.body(), err.status)
            elif (denied := state.denied(request.headers.get("Authorization"), request.method,
                                         request.path)) is not None:
                resp = json_response(denied, 403)
            else:
                out = body(bool(live))
                resp = json_response(*out) if isinstance(out, tuple) else json_response(out)
            entry["status"] = resp.status_code
            record(entry)
        return resp

    @app.get("/v2/core/event_destinations")
    def v2_list_destinations() -> Response:
        live, err = auth(request.headers.get("Authorization"))
        return answer(live, err, lambda lv: {
            "data": [d for d in state.destinations.values() if d["livemode"] == lv],
            "next_page_url": None, "previous_page_url": None})

    @app.get("/v2/core/events/<eid>")
    def v2_get_event(eid: str) -> Response:
        """A v2 event as fetched (``fake.v2_events``: every v1 event's thin form, and the
        health events of devstack/fake_stripe/webhooks.py); 404 in the other mode."""
        live, err = auth(request.headers.get("Authorization"))

        def one(lv: bool) -> Any:
            ev = fake.v2_events.get(eid)
            if ev is None or bool(ev.get("livemode")) != lv:
                return ({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "message": f"No such event: '{eid}'"}}, 404)
            return ev
        return answer(live, err, one)

    @app.get("/v2/core/event_destinations/<did>")
    def v2_get_destination(did: str) -> Response:
        live, err = auth(request.headers.get("Authorization"))

        def one(lv: bool) -> Any:
            d = state.destinations.get(did)
            if d is None or d["livemode"] != lv:
                return ({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "message": f"No such event destination: '{did}'"}}, 404)
            return d
        return answer(live, err, one)

    @app.post("/_test/event_destinations")
    def _test_event_destinations() -> Response:
        b = request.get_json(silent=True) or {}
        try:
            with fake.lock:
                return json_response(state.create_destination(b))
        except ValueError as e:
            return json_response({"error": str(e)}, 400)

    @app.post("/_test/restricted_keys")
    def _test_restricted_keys() -> Response:
        b = request.get_json(silent=True) or {}
        key, perms = b.get("key"), b.get("permissions")
        if not isinstance(key, str) or not key.startswith("rk_") or not isinstance(perms, dict) \
                or any(v not in _LEVELS for v in perms.values()):
            return json_response({"error": "key (rk_...) and permissions "
                                  "{resource: none|read|write} are required"}, 400)
        with fake.lock:
            state.restricted[_digest(key)] = dict(perms)
        return json_response({"ok": True})

    return state
