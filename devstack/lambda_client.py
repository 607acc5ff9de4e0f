"""Invoking a function behind a `devstack.lambda_driver` (its `POST /_invoke`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Optional, Union


def invoke(base_url: str, event: Union[dict, list, bytes, str, Any], timeout: Optional[float] = None) -> dict:
    """Invoke the function behind a lambda_driver and wait for the result.

    ``event``: bytes/str are sent as is; anything else is JSON-encoded.
    Returns the driver's JSON: ``{"request_id", "ok", "response", "error", ...}``
    (also for HTTP 504 timeouts, where ``ok`` is false and ``timed_out`` true).
    ``timeout`` bounds the HTTP call itself (None = wait for the driver's own timeout).
    """
    if isinstance(event, (bytes, bytearray)):
        data = bytes(event)
    elif isinstance(event, str):
        data = event.encode()
    else:
        data = json.dumps(event).encode()
    req = urllib.request.Request(
        base_url.rstrip("/") + "/_invoke",
        data=data,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            out = json.loads(body)
        except ValueError:
            raise exc from None
        if not isinstance(out, dict):
            raise
        out.setdefault("http_status", exc.code)
        return out
