"""Events out: EventBridge envelopes and their delivery to a sink."""

from __future__ import annotations

import argparse
import copy
import html
import json
import math
import queue
import re
import secrets
import string
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Optional
from flask import Flask, Response, request
from devstack import fake_stripe_v2
from devstack.serving import serve_until_signalled
from devstack.fake_stripe.core import CATALOG_SINK_TIMEOUT_S, EVENT_ACCOUNT, EVENT_REGION, EVENT_SOURCE  # noqa: F401


# --------------------------------------------------------------------------- events out


def _http_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def eventbridge_envelope(event: dict) -> dict:
    """What an Event Destination of type Amazon EventBridge puts on the partner bus and a
    rule hands to its Lambda target (same shape as events/*.json)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": event["type"],
        "source": EVENT_SOURCE,
        "account": EVENT_ACCOUNT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["created"])),
        "region": EVENT_REGION,
        "resources": [],
        "detail": event,
    }


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_event(url: str, envelope: dict, timeout: float,
               render: Optional[Callable[[dict], tuple[bytes, dict]]] = None) -> dict:
    """POSTs the raw envelope (or what ``render`` makes of it: a signed webhook body, a thin
    event); with the Lambda driver's /_invoke the answer comes once the function finished:
    ``{"ok": bool, "response": ..., "error": ...}``."""
    if render is None:
        data, headers = json.dumps(envelope).encode(), {"Content-Type": "application/json"}
    else:
        data, headers = render(envelope)
    req = urllib.request.Request(url, data=data, method="POST", headers=headers)
    started = time.monotonic()
    try:
        with _NO_PROXY.open(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return {"delivered": False, "ok": False, "status": None, "result": None,
                "error": f"{type(e).__name__}: {getattr(e, 'reason', e)}",
                "duration_ms": round((time.monotonic() - started) * 1000, 1)}
    try:
        result = json.loads(body) if body.strip() else None
    except ValueError:
        result = None
    delivered = 200 <= status < 300
    ok = delivered and not (isinstance(result, dict) and result.get("ok") is False)
    error = None
    if not ok:
        error = (result.get("error") if isinstance(result, dict) else None) or \
            f"HTTP {status}"
    return {"delivered": delivered, "ok": ok, "status": status, "result": result,
            "error": error, "duration_ms": round((time.monotonic() - started) * 1000, 1)}




class Outbox:
    """Delivers events (EventBridge envelopes) to a sink in the background, one at a time and
    in order, best effort: a failure is logged and counted, not retried.  ``on_result(url,
    envelope, result)`` (optional) is called after each attempt, with no outbox lock held."""

    def __init__(self, timeout: "float | Callable[[], float]" = CATALOG_SINK_TIMEOUT_S,
                 label: str = "catalog",
                 on_result: Optional[Callable[[str, dict, dict], None]] = None) -> None:
        self.timeout = timeout
        self.label = label
        self.on_result = on_result
        # Set by the fake for the event sink: how a delivery is rendered (None: the envelope).
        self.render: Optional[Callable[[dict], tuple[bytes, dict]]] = None
        self.queue: "queue.Queue[tuple[str, dict]]" = queue.Queue()
        self.lock = threading.Lock()
        self.pending = 0
        self.delivered = 0
        self.failed = 0
        self.failures: list[dict] = []  # the last 100
        self._thread: Optional[threading.Thread] = None

    def put(self, url: str, envelope: dict) -> None:
        with self.lock:
            self.pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"{self.label}-outbox",
                                                daemon=True)
                self._thread.start()
        self.queue.put((url, envelope))

    def _run(self) -> None:
        while True:
            url, envelope = self.queue.get()
            timeout = self.timeout() if callable(self.timeout) else self.timeout
            try:
                result = post_event(url, envelope, timeout, self.render)
            except Exception as e:  # never let the thread die
                result = {"delivered": False, "ok": False, "error": f"{type(e).__name__}: {e}"}
            if self.on_result is not None:
                try:
                    self.on_result(url, envelope, result)
                except Exception as e:  # pragma: no cover - defensive
                    print(f"fake_stripe: {self.label} outbox callback failed: {e!r}",
                          file=sys.stderr, flush=True)
            with self.lock:
                self.pending -= 1
                if result["delivered"]:
                    self.delivered += 1
                else:
                    self.failed += 1
                    self.failures = (self.failures + [{
                        "event": envelope["detail"]["id"], "type": envelope["detail-type"],
                        "url": url, "error": result.get("error")}])[-100:]
            if not result["delivered"]:
                print(f"fake_stripe: {self.label} event {envelope['detail']['id']} "
                      f"({envelope['detail-type']}) not delivered to {url}: "
                      f"{result.get('error')}", file=sys.stderr, flush=True)

    def describe(self) -> dict:
        with self.lock:
            return {"pending": self.pending, "delivered": self.delivered,
                    "failed": self.failed, "failures": list(self.failures)}


CatalogOutbox = Outbox  # the name it had before the event sink got an outbox too
