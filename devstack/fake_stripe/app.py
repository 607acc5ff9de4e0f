"""The Flask app (`create_app`) and the command line (`main`)."""

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
from devstack.fake_stripe.core import DEFAULT_FIXTURES, DEFAULT_SINK_TIMEOUT_S, StripeError, _json, gen_id  # noqa: F401
from devstack.fake_stripe.events_out import _http_url  # noqa: F401
from devstack.fake_stripe.state import FakeStripe  # noqa: F401
from devstack.fake_stripe.payments import Handler  # noqa: F401
from devstack.fake_stripe.routes import CORS_ALLOW_HEADERS, CORS_HEADERS, CORS_PATHS  # noqa: F401
from devstack.fake_stripe.dispatch import _flat_params, _handle_v1  # noqa: F401
from devstack.fake_stripe.pages import register_payment_page  # noqa: F401
from devstack.fake_stripe.test_api import register_test_api  # noqa: F401


# --------------------------------------------------------------------------- app




def _auth(header: Optional[str]) -> tuple[Optional[bool], Optional[StripeError]]:
    """-> (live?, error).  Never keep or echo the key."""
    if not header:
        return None, StripeError(
            401, "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details.")
    m = re.match(r"^Bearer (?:sk|rk|pk)_(test|live)_\S+$", header.strip())
    if not m:
        return None, StripeError(401, "Invalid API Key provided.")
    return m.group(1) == "live", None


def _publishable(header: Optional[str]) -> bool:
    return bool(header) and header.strip().startswith("Bearer pk_")


def _cors_path(path: str) -> bool:
    return any(rx.match(path) for rx in CORS_PATHS)




def create_app(fixtures_path: str, event_sink: Optional[str] = None,
               event_sink_timeout: float = DEFAULT_SINK_TIMEOUT_S,
               catalog_event_sink: Optional[str] = None) -> Flask:
    fake = FakeStripe(fixtures_path)
    if event_sink is not None and not _http_url(event_sink):
        raise ValueError(f"event sink must be an http(s) URL: {event_sink!r}")
    if catalog_event_sink is not None and not _http_url(catalog_event_sink):
        raise ValueError(f"catalog event sink must be an http(s) URL: {catalog_event_sink!r}")
    fake.event_sink, fake.event_sink_timeout = event_sink, event_sink_timeout
    fake.catalog_event_sink = catalog_event_sink
    app = Flask("fake_stripe")
    app.config["FAKE_STRIPE"] = fake

    def record(entry: dict) -> None:
        fake.seq += 1
        entry["seq"] = fake.seq
        fake.requests.append(entry)

    # Event destinations and restricted keys (devstack/fake_stripe_v2.py).
    v2 = fake_stripe_v2.register(app, fake, _auth, record, _json)

    @app.route("/v1/<path:_rest>", methods=["GET", "POST", "DELETE", "OPTIONS"],
               provide_automatic_options=False)
    def v1(_rest: str) -> Response:
        path = request.path
        cors = _cors_path(path)
        if request.method == "OPTIONS":
            if not cors:  # as before: Flask's automatic answer, no CORS
                return app.make_default_options_response()
            return _preflight()
        query = _flat_params(request.args)
        form = _flat_params(request.form)
        idem = request.headers.get("Idempotency-Key")
        header = request.headers.get("Authorization")
        if not header and cors:
            # Stripe.js sends the publishable key as a ``key`` parameter; never record it.
            key = (form if request.method == "POST" else query).pop("key", None)
            if key is not None and key.startswith("pk_"):
                header = f"Bearer {key}"
        live, auth_err = _auth(header)
        entry: dict[str, Any] = {
            "method": request.method, "path": path, "query": query, "form": form,
            "idempotency_key": idem, "status": None, "replayed": False, "time": time.time(),
            "auth": "ok" if auth_err is None else ("missing" if not header else "invalid"),
            "stripe_version": request.headers.get("Stripe-Version"),
        }
        if auth_err is None and _publishable(header):
            entry["auth_key"] = "publishable"
        req_id = gen_id("req_", 14)
        with fake.lock:
            denied = None if auth_err else v2.denied(header, request.method, path)
            if denied is not None:
                resp = _json(denied, 403, {"Request-Id": req_id})
            else:
                resp = _handle_v1(fake, entry, live, auth_err, req_id,
                                  publishable=auth_err is None and _publishable(header))
            entry["status"] = resp.status_code
            record(entry)
        if cors:
            for k, v in CORS_HEADERS.items():
                resp.headers[k] = v
        return resp

    def _preflight() -> Response:
        resp = Response(b"", 200)
        resp.headers.update(CORS_HEADERS)
        resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers") or CORS_ALLOW_HEADERS
        resp.headers["Access-Control-Max-Age"] = "300"
        resp.headers["Vary"] = "Access-Control-Request-Headers"
        return resp

    @app.errorhandler(StripeError)
    def _stripe_error(e: StripeError) -> Response:  # pragma: no cover - defensive
        return _json(e.body(), e.status, e.headers)

    register_test_api(app, fake, record, v2)
    register_payment_page(app, fake)
    return app


# --------------------------------------------------------------------------- main






def main(argv: Optional[list[str]] = None) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    parser = argparse.ArgumentParser(description="local fake of the Stripe API (stockbridge)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--fixtures", default=str(DEFAULT_FIXTURES),
                        help="Stripe's fixtures3.json (default: %(default)s)")
    parser.add_argument("--ready-file", help="write the bound port here once listening")
    parser.add_argument("--event-sink", metavar="URL",
                        help="POST checkout.session.completed EventBridge envelopes here "
                        "(e.g. the Lambda driver's /_invoke); also POST /_test/event_sink")
    parser.add_argument("--event-sink-timeout", type=float, default=DEFAULT_SINK_TIMEOUT_S,
                        help="seconds to wait for the sink (default: %(default)s)")
    parser.add_argument("--catalog-event-sink", metavar="URL",
                        help="POST product.*, price.* and payment_link.* EventBridge envelopes "
                        "here, asynchronously (e.g. the catalog pipe's /events); also "
                        "POST /_test/catalog_event_sink")
    parser.add_argument("--verbose", action="store_true", help="log every request line")
    args = parser.parse_args(argv)

    try:
        app = create_app(args.fixtures, args.event_sink, args.event_sink_timeout,
                         args.catalog_event_sink)
    except ValueError as e:
        parser.error(str(e))

    class Handler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            if args.verbose:  # request line only: never headers, so never the API key
                super().log_request(code, size)

    server = make_server(args.host, args.port, app, threaded=True, request_handler=Handler)
    serve_until_signalled(server, "fake_stripe", args.host, args.ready_file)


if __name__ == "__main__":
    main()
