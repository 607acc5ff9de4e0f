"""Events out as Stripe's other destinations send them: signed webhook deliveries and thin
events (API v2 "event notifications"), and the health event Stripe sends when it failed to
generate an event.

Delivery shape (``POST /_test/event_sink`` ``format`` and ``payload``):

- ``eventbridge`` + ``snapshot`` (the default): the EventBridge envelope of the v1 event.
- ``eventbridge`` + ``thin``: the envelope whose ``detail`` is the thin event and whose
  ``detail-type`` its type (``v1.checkout.session.completed``).
- ``webhook`` + ``snapshot`` / ``thin``: the bare event as the body, with a ``Stripe-Signature``
  header as Stripe makes it: ``t={unix seconds},v1={hex}`` per secret (several while a secret is
  rolled), the HMAC-SHA256 of ``"{t}.{body}"`` keyed with the ``whsec_...`` string, and in test
  mode a ``v0`` signature only Stripe could check.

A thin event about a v1 object is ``{"id", "object": "v2.core.event", "type": "v1.<type>",
"created": RFC 3339, "livemode", "context": null, "reason": null, "related_object": {"id",
"type", "url"}}``; ``GET /v2/core/events/{id}`` answers it (a v1 thin event has no ``data``).
``POST /_test/event_generation_failure {"related_object": {"id", "type"}, "event_type"}`` makes
a ``v2.core.health.event_generation_failure.resolved`` event (``data``: ``alert_id``,
``grouping_key``, ``resolved_at``, ``summary``, ``impact`` {``context``, ``event_type``,
``related_object``}), keeps it for ``GET /v2/core/events/{id}`` and delivers its thin
notification to the event sink at once (webhook format only, as at Stripe); the answer is the
delivery's result.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets as _secrets
import time
from typing import Any, Optional

# The v1 paths a thin event's related_object.url names.
_PATHS = {"checkout.session": "checkout/sessions", "payment_intent": "payment_intents",
          "product": "products", "price": "prices", "payment_link": "payment_links",
          "charge": "charges", "dispute": "disputes"}


def sign(secret: str, t: int, body: bytes) -> str:
    """Stripe's v1 signature: HMAC-SHA256 of ``"{t}.{body}"`` keyed with the secret as written."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: list[str], body: bytes, t: Optional[int] = None,
                     test_mode: bool = True) -> str:
    """``t=...,v1=...[,v1=...][,v0=...]`` for ``body``, one v1 per secret."""
    t = int(time.time()) if t is None else t
    parts = [f"t={t}"] + [f"v1={sign(s, t, body)}" for s in secrets]
    if test_mode:
        parts.append(f"v0={_secrets.token_hex(32)}")
    return ",".join(parts)


def rfc3339(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def thin_event(ev: dict) -> dict:
    """The thin notification of a v1 snapshot event (same id)."""
    obj = ev["data"]["object"]
    kind = obj.get("object", "")
    return {"id": ev["id"], "object": "v2.core.event", "type": f"v1.{ev['type']}",
            "created": rfc3339(ev["created"]), "livemode": ev["livemode"], "context": None,
            "reason": None,
            "related_object": {"id": obj["id"], "type": kind,
                               "url": f"/v1/{_PATHS.get(kind, kind)}/{obj['id']}"}}


def render(sink: dict, envelope: dict) -> tuple[bytes, dict]:
    """The body and headers of one delivery of ``envelope`` (an EventBridge envelope of a
    snapshot event, or of a thin event already) in the sink's format."""
    detail = envelope["detail"]
    if sink.get("payload") == "thin" and detail.get("object") == "event":
        detail = thin_event(detail)
    if sink.get("format") == "webhook":
        body = json.dumps(detail).encode()
        t = int(time.time()) + int(sink.get("timestamp_offset", 0))
        header = signature_header(sink.get("secrets") or [], body, t,
                                  test_mode=not detail.get("livemode"))
        return body, {"Content-Type": "application/json; charset=utf-8",
                      "Stripe-Signature": header, "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
    envelope = dict(envelope, detail=detail)
    envelope["detail-type"] = detail["type"]
    return json.dumps(envelope).encode(), {"Content-Type": "application/json"}


def check_sink_format(b: dict) -> dict:
    """The ``format``/``payload``/``secrets``/``timestamp_offset`` of ``/_test/event_sink``;
    raises ValueError naming the field."""
    fmt = b.get("format", "eventbridge")
    payload = b.get("payload", "snapshot")
    if fmt not in ("eventbridge", "webhook"):
        raise ValueError('format must be "eventbridge" or "webhook"')
    if payload not in ("snapshot", "thin"):
        raise ValueError('payload must be "snapshot" or "thin"')
    secrets = b.get("secrets", [])
    if fmt == "webhook" and (not isinstance(secrets, list) or not secrets
                             or not all(isinstance(s, str) and s.startswith("whsec_")
                                        for s in secrets)):
        raise ValueError('a webhook needs "secrets": ["whsec_...", ...]')
    offset = b.get("timestamp_offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ValueError("timestamp_offset must be a whole number of seconds")
    return {"format": fmt, "payload": payload, "secrets": list(secrets),
            "timestamp_offset": offset}


def generation_failure(fake: Any, related: dict, event_type: str, live: bool) -> dict:
    """Stores a resolved ``event_generation_failure`` (its fetched form) and returns its thin
    notification."""
    now = int(time.time())
    eid = "evt_" + _secrets.token_hex(12)
    note = {"id": eid, "object": "v2.core.event",
            "type": "v2.core.health.event_generation_failure.resolved",
            "created": rfc3339(now), "livemode": live, "context": None, "reason": None,
            "related_object": None}
    kind = related["type"]
    fetched = copy.deepcopy(note)
    fetched["data"] = {
        "alert_id": "alert_" + _secrets.token_hex(8), "grouping_key": "gk_" + kind,
        "resolved_at": rfc3339(now), "severity": "critical",
        "summary": f"Stripe failed to generate {event_type} events",
        "impact": {"context": None, "event_type": event_type,
                   "related_object": {"id": related["id"], "type": kind,
                                      "url": f"/v1/{_PATHS.get(kind, kind)}/{related['id']}"}},
    }
    fake.v2_events[eid] = fetched
    return note
