"""Running a `/v1` request: faults, idempotency, the handler."""

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
from devstack.fake_stripe.core import StripeError, _fault_error, _json, nest_form  # noqa: F401
from devstack.fake_stripe.state import FakeStripe  # noqa: F401
from devstack.fake_stripe.routes import PUBLISHABLE_OK, ROUTES  # noqa: F401


def _handle_v1(fake: FakeStripe, entry: dict, live: Optional[bool],
               auth_err: Optional[StripeError], req_id: str,
               publishable: bool = False) -> Response:
    """Auth -> faults -> idempotency -> routing -> handler.  Called with the lock held."""
    base_headers = {"Request-Id": req_id, "Stripe-Version": entry["stripe_version"] or
                    "fake-stripe"}
    if auth_err is not None:
        return _json(auth_err.body(), auth_err.status, base_headers)
    method, path = entry["method"], entry["path"]
    if publishable:
        route = next((h for m, rx, h in ROUTES if m == method and rx.match(path)), None)
        if route not in PUBLISHABLE_OK:
            entry["auth"] = "invalid"  # a publishable key is no key for this endpoint
            entry.pop("auth_key", None)
            err = StripeError(401, "This API call cannot be made with a publishable API key. "
                              "Please use a secret API key. You can find a list of your API "
                              "keys at https://dashboard.stripe.com/account/apikeys.")
            return _json(err.body(), err.status, base_headers)

    if fake.rate_limit is not None and not fake.rate_limit.take():
        err = _fault_error(429)
        headers = dict(base_headers, **{"Stripe-Should-Retry": "true"})
        if fake.rate_limit.retry_after is not None:
            headers["Retry-After"] = _retry_after_header(fake.rate_limit.retry_after)
        entry["rate_limited"] = True
        return _json(err.body(), err.status, headers)

    after = None
    for fault in fake.faults:
        if fault["count"] > 0 and (fault["method"] in (None, method)) \
                and re.search(fault["path_regex"], path):
            if fault["skip"] > 0:  # let this matching request pass untouched
                fault["skip"] -= 1
                continue
            fault["count"] -= 1
            fake.faults = [f for f in fake.faults if f["count"] > 0]
            if fault.get("after"):
                after = fault  # do the work, then lose the answer
                entry["fault_after"] = fault["status"]
                break
            return _fault_response(fault, base_headers)

    response = _idempotent_dispatch(fake, entry, live, base_headers, req_id, publishable)
    return response if after is None else _fault_response(after, base_headers)


def _fault_response(fault: dict, base_headers: dict) -> Response:
    err = _fault_error(fault["status"])
    headers = dict(base_headers)
    if fault["should_retry"] is not None:
        headers["Stripe-Should-Retry"] = "true" if fault["should_retry"] else "false"
    if fault["retry_after"] is not None:
        headers["Retry-After"] = str(fault["retry_after"])
    return _json(err.body(), err.status, headers)


def _idempotent_dispatch(fake: FakeStripe, entry: dict, live: Optional[bool], base_headers: dict,
                         req_id: str, publishable: bool) -> Response:
    """Idempotency -> routing -> handler."""
    method, path = entry["method"], entry["path"]
    idem = entry["idempotency_key"]
    if method == "POST" and idem is not None:
        if not idem or len(idem) > 255:
            err = StripeError(400, "Idempotency keys must be between 1 and 255 characters.",
                              param="Idempotency-Key")
            return _json(err.body(), err.status, base_headers)
        fingerprint = {"method": method, "path": path, "form": entry["form"]}
        saved = fake.idempotency.get((live, idem))  # keys are scoped per mode, as at Stripe
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                err = StripeError(
                    400, "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with. Try using a key other than "
                    f"'{idem}' if you meant to execute a different request.",
                    type_="idempotency_error")
                return _json(err.body(), err.status, base_headers)
            entry["replayed"] = True
            headers = dict(base_headers, **{"Idempotent-Replayed": "true",
                                            "Original-Request": saved["request_id"],
                                            "Idempotency-Key": idem})
            return _json(saved["body"], saved["status"], headers)

    status, body = _dispatch(fake, entry, live, {"id": req_id, "idempotency_key": idem},
                             publishable)
    headers = dict(base_headers)
    if method == "POST" and idem is not None:
        headers["Idempotency-Key"] = idem
        if _saved_for_idempotency(status, body):
            fake.idempotency[(live, idem)] = {"fingerprint": fingerprint, "status": status,
                                              "body": body, "request_id": req_id}
    return _json(body, status, headers)


def _retry_after_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _flat_params(multi: Any) -> dict[str, str]:
    """The last value of each parameter, except that a repeated ``name[]`` (``ids[]=a&ids[]=b``)
    becomes ``name[0]``, ``name[1]``, ... so that every value is kept."""
    flat: dict[str, str] = {}
    for k, values in multi.lists():
        if k.endswith("[]") and len(values) > 1:
            for i, v in enumerate(values):
                flat[f"{k[:-2]}[{i}]"] = v
        else:
            flat[k] = values[-1]
    return flat


def _saved_for_idempotency(status: int, body: dict) -> bool:
    """Stripe saves the first result of a request, success or failure, once the endpoint
    started executing; a request that failed parameter validation (or was not routed)
    saves nothing, so it can be corrected and retried under the same key.  Here:
    successes and business errors (those with a non ``parameter_*`` code, e.g.
    ``charge_already_refunded``, ``resource_missing``) are saved."""
    if status < 400:
        return True
    code = body.get("error", {}).get("code")
    return bool(code) and not code.startswith("parameter_")


def _dispatch(fake: FakeStripe, entry: dict, live: Optional[bool],
              req: Optional[dict] = None, publishable: bool = False) -> tuple[int, dict]:
    method, path = entry["method"], entry["path"]
    for m, rx, handler in ROUTES:
        match = rx.match(path)
        if match and m == method:
            if method == "POST" and request.content_length and \
                    request.mimetype != "application/x-www-form-urlencoded":
                err = StripeError(400, "Invalid request: the body must be "
                                  "application/x-www-form-urlencoded (got "
                                  f"{request.mimetype or 'no content type'}).")
                return err.status, err.body()
            try:
                flat = entry["form"] if method == "POST" else entry["query"]
                ctx = {"fake": fake, "params": nest_form(flat), "query": entry["query"],
                       "live": bool(live), "host_url": request.host_url, "req": req,
                       "publishable": publishable}
                return 200, handler(ctx, *match.groups())
            except StripeError as e:
                return e.status, e.body()
            except Exception as e:  # a bug in the fake: answer like Stripe would, say so
                import traceback
                traceback.print_exc()
                err = StripeError(500, f"fake_stripe internal error: {type(e).__name__}: {e}",
                                  type_="api_error")
                return err.status, err.body()
    err = StripeError(404, f"Unrecognized request URL ({method}: {path}). Please see "
                      "https://stripe.com/docs or we can help at https://support.stripe.com/.")
    return err.status, err.body()
