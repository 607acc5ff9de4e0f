"""The test-control API (`/_test/...`)."""

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
from devstack.fake_stripe.webhooks import check_sink_format, generation_failure
from devstack.fake_stripe.events_out import post_event
from devstack.serving import serve_until_signalled
from devstack.fake_stripe.core import CONFIRMABLE, FAULT_STATUSES, StripeError, TEST_PAYMENT_METHODS, TestApiError, TokenBucket, _json, apply_metadata, check_metadata  # noqa: F401
from devstack.fake_stripe.events_out import _http_url  # noqa: F401
from devstack.fake_stripe.state import FakeStripe  # noqa: F401
from devstack.fake_stripe.payments import link_restrictions
from devstack.fake_stripe import charges
from devstack.fake_stripe.catalog import _payment_link_changes, _price_changes, _product_changes, update_payment_link, update_price, update_product  # noqa: F401


def register_test_api(app: Flask, fake: FakeStripe, record: Callable[[dict], None], v2: Any) -> None:
    """The test-control API (`/_test/...`, JSON, no auth) on `app`."""

    def test_api(fn: Callable[..., Any]) -> Callable[..., Response]:
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            body = request.get_json(silent=True) if request.method == "POST" else None
            if request.method == "POST" and request.data and body is None:
                return _json({"error": "request body must be JSON"}, 400)
            try:
                with fake.lock:
                    out = fn(body or {}, *args, **kwargs)
            except TestApiError as e:
                return _json({"error": str(e)}, e.status)
            except StripeError as e:
                return _json({"error": e.message}, 400)
            return _json(out)
        wrapper.__name__ = fn.__name__
        return wrapper

    @app.post("/_test/reset")
    @test_api
    def _test_reset(_body: dict) -> dict:
        fake.reset()
        return {"ok": True}

    @app.get("/_health")
    def _health() -> Response:
        return _json({"ok": True})

    @app.post("/_test/products")
    @test_api
    def _test_products(b: dict) -> dict:
        name = b.get("name")
        if not isinstance(name, str) or not name:
            raise TestApiError("name is required")
        unit_amount = b.get("unit_amount")
        if not isinstance(unit_amount, int) or isinstance(unit_amount, bool) or unit_amount < 0:
            raise TestApiError("unit_amount must be a non-negative integer (minor units)")
        if b.get("id") in fake.products:
            raise TestApiError(f"product {b['id']} exists", 409)
        images = b.get("images", [])
        if not isinstance(images, list) or not all(isinstance(u, str) and u for u in images) \
                or len(images) > 8:
            raise TestApiError("images must be a list of at most 8 URLs")
        description = b.get("description")
        if description is not None and not isinstance(description, str):
            raise TestApiError("description must be a string")
        live = bool(b.get("livemode", False))
        product = fake.make_product(b.get("id"), name, live, b.get("metadata"), images,
                                    description or None)
        price = fake.make_price(b.get("price_id"), product["id"], unit_amount,
                                str(b.get("currency", "usd")), live)
        return {"product": copy.deepcopy(fake.products[product["id"]]),
                "price": copy.deepcopy(price)}

    @app.post("/_test/payment_links")
    @test_api
    def _test_payment_links(b: dict) -> dict:
        live = bool(b.get("livemode", False))
        qty = b.get("quantity", 1)
        if not isinstance(qty, int) or qty < 1:
            raise TestApiError("quantity must be a positive integer")
        if b.get("price"):
            price = fake.prices.get(b["price"])
            if price is None:
                if not b.get("product"):
                    raise TestApiError(f"unknown price {b['price']}")
                price = fake.find_or_create_price(b["product"], b.get("unit_amount"),
                                                  b.get("currency"), live, b["price"])
        elif b.get("product"):
            price = fake.find_or_create_price(b["product"], b.get("unit_amount"),
                                              b.get("currency"), live)
        else:
            raise TestApiError("give price or product")
        if b.get("id") in fake.payment_links:
            raise TestApiError(f"payment link {b['id']} exists", 409)
        pl = fake.make_payment_link(b.get("id"), [fake.make_line_item(price, qty)],
                                    request.host_url, active=bool(b.get("active", True)),
                                    metadata=b.get("metadata"), livemode=live,
                                    inactive_message=b.get("inactive_message"))
        return copy.deepcopy(pl)

    @app.post("/_test/checkout_sessions")
    @test_api
    def _test_checkout_sessions(b: dict) -> dict:
        status = b.get("payment_status")
        if status not in ("paid", "unpaid"):
            raise TestApiError('payment_status must be "paid" or "unpaid"')
        lines = b.get("line_items")
        if not isinstance(lines, list) or not lines:
            raise TestApiError("line_items must be a non-empty list")
        if b.get("id") in fake.checkout_sessions:
            raise TestApiError(f"checkout session {b['id']} exists", 409)
        if b.get("payment_intent") in fake.payment_intents:
            raise TestApiError(f"payment intent {b['payment_intent']} exists", 409)
        created = b.get("created")
        if created is not None and (not isinstance(created, int) or isinstance(created, bool)
                                    or created <= 0):
            raise TestApiError("created must be a positive integer (Unix seconds)")
        live = bool(b.get("livemode", False))
        currency = b.get("currency")
        items = []
        for i, line in enumerate(lines):
            if not isinstance(line, dict) or not (line.get("product") or line.get("price")):
                raise TestApiError(f"line_items[{i}]: give product (and optionally price)")
            qty = line.get("quantity", 1)
            if not isinstance(qty, int) or qty < 1:
                raise TestApiError(f"line_items[{i}].quantity must be a positive integer")
            product = line.get("product") or fake.prices.get(line["price"], {}).get("product")
            if not product:
                raise TestApiError(f"line_items[{i}]: unknown price {line.get('price')}")
            price = fake.find_or_create_price(product, line.get("unit_amount"),
                                              line.get("currency", currency), live,
                                              line.get("price"), line.get("name"))
            items.append(fake.make_line_item(price, qty))
        currencies = {it["currency"] for it in items}
        if len(currencies) > 1:
            raise TestApiError(f"line items mix currencies {sorted(currencies)}")
        paid = status == "paid"
        total = sum(it["amount_total"] for it in items)
        pi = fake.make_payment_intent(b.get("payment_intent"), total, items[0]["currency"],
                                      paid, live)
        s = fake.make_checkout_session(
            b.get("id"), items, status=b.get("status", "complete"), payment_status=status,
            payment_intent=pi["id"], payment_link=b.get("payment_link"),
            metadata=b.get("metadata"), livemode=live,
            client_reference_id=b.get("client_reference_id"))
        if s["status"] == "complete":
            fake.count_completed_session(s)
        if created is not None:  # history: a session from before the test (or the deploy)
            s.update(created=created, expires_at=created + 24 * 3600)
            pi["created"] = created
        if b.get("event"):  # its completed event, kept for GET /v1/events but never delivered
            ev = fake.make_event("checkout.session.completed", s)
            if created is not None:
                ev["created"] = created
            fake.event_deliveries.append({"event": ev["id"], "session": s["id"],
                                          "url": None, "ok": None})
        return copy.deepcopy(s)

    @app.post("/_test/checkout_sessions/<sid>/settle")
    @test_api
    def _test_settle_session(b: dict, sid: str) -> dict:
        """A delayed payment clears or fails at the bank: the session and its PaymentIntent change,
        and no event is sent (a lost ``checkout.session.async_payment_*``)."""
        s = fake.checkout_sessions.get(sid)
        if s is None:
            raise TestApiError(f"no checkout session {sid}", 404)
        outcome = b.get("outcome")
        if outcome not in ("succeeded", "failed"):
            raise TestApiError('outcome must be "succeeded" or "failed"')
        pi = fake.payment_intents.get(s.get("payment_intent") or "")
        if outcome == "succeeded":
            s["payment_status"] = "paid"
            if pi is not None:
                pi.update(status="succeeded", amount_received=pi["amount"])
        elif pi is not None:
            pi["status"] = "requires_payment_method"
        return copy.deepcopy(s)

    @app.get("/_test/requests")
    @test_api
    def _test_requests(_b: dict) -> dict:
        prefix = request.args.get("path_prefix", "")
        method = request.args.get("method", "").upper()
        return {"requests": [copy.deepcopy(r) for r in fake.requests
                             if r["path"].startswith(prefix)
                             and (not method or r["method"] == method)]}

    @app.post("/_test/faults")
    @test_api
    def _test_faults(b: dict) -> dict:
        status = b.get("status")
        if status not in FAULT_STATUSES:
            raise TestApiError(f"status must be one of {sorted(FAULT_STATUSES)}")
        count = b.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise TestApiError("count must be a positive integer")
        try:
            rx = re.compile(b.get("path_regex", ".*"))
        except re.error as e:
            raise TestApiError(f"bad path_regex: {e}") from None
        skip = b.get("skip", 0)
        if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
            raise TestApiError("skip must be a non-negative integer")
        fault = {"method": (b.get("method") or "").upper() or None, "path_regex": rx.pattern,
                 "status": status, "count": count, "skip": skip,
                 "retry_after": b.get("retry_after"),
                 # Stripe never asks for a retry of its own validation's refusal.
                 "should_retry": b.get("should_retry", None if status == 400 else True),
                 # After: the request is done (and its idempotent result saved), then its
                 # answer is lost and the fault answered instead (a 500 after the work).
                 "after": bool(b.get("after", False))}
        fake.faults.append(fault)
        return {"fault": dict(fault), "pending": len(fake.faults)}

    @app.post("/_test/faults/clear")
    @test_api
    def _test_faults_clear(_b: dict) -> dict:
        cleared, fake.faults = len(fake.faults), []
        return {"cleared": cleared}

    @app.get("/_test/state")
    @test_api
    def _test_state(_b: dict) -> dict:
        """The whole state; ``?summary=1``: only the counts and settings (cheap with 100,000
        products)."""
        summary = {
            "counts": {"products": len(fake.products), "prices": len(fake.prices),
                       "payment_links": len(fake.payment_links), "events": len(fake.events),
                       "requests": len(fake.requests),
                       "payment_intents": len(fake.payment_intents)},
            "payment_intent_status": {pid: pi["status"]
                                      for pid, pi in fake.payment_intents.items()},
            "event_sink_deliveries": fake.event_outbox.describe(),
            "rate_limited": fake.rate_limit.rejected if fake.rate_limit else 0,
            "rate_limit": fake.rate_limit.describe() if fake.rate_limit else None,
            "faults": [f for f in fake.faults if f["count"] > 0],
            "event_sink": fake.event_sink,
            "catalog_event_sink": fake.catalog_event_sink,
            "catalog_deliveries": fake.catalog_outbox.describe(),
        }
        if request.args.get("summary") not in (None, "", "0", "false"):
            return copy.deepcopy(summary)
        return copy.deepcopy(dict(summary, **{
            "refunds": fake.refunds, "payment_links": fake.payment_links,
            "payment_intents": fake.payment_intents, "checkout_sessions": fake.checkout_sessions,
            "products": fake.products, "prices": fake.prices,
            "refunded": fake.refunded,
            "events": fake.events,
            "event_deliveries": fake.event_deliveries,
        }))

    @app.post("/_test/catalog_event_sink")
    @test_api
    def _test_catalog_event_sink(b: dict) -> dict:
        """``{"url": "http://127.0.0.1:PORT/events" | null}``: where product.*, price.* and
        payment_link.* events go (EventBridge envelopes, asynchronously)."""
        if "url" not in b:
            raise TestApiError('give "url" (null disables the catalog sink)')
        url = b["url"]
        if url is not None and not _http_url(url):
            raise TestApiError("url must be an http(s) URL or null")
        fake.catalog_event_sink = url
        return dict(fake.catalog_outbox.describe(), url=url)

    @app.get("/_test/catalog_event_sink")
    @test_api
    def _test_get_catalog_event_sink(_b: dict) -> dict:
        """``{"url", "pending", "delivered", "failed", "failures"}`` (pending: queued or being
        POSTed right now; wait for 0 before checking what the sink got)."""
        return dict(fake.catalog_outbox.describe(), url=fake.catalog_event_sink)

    @app.post("/_test/rate_limit")
    @test_api
    def _test_rate_limit(b: dict) -> dict:
        """``{"per_second": R, "burst": B?, "retry_after": seconds?}``; ``{}`` or
        ``{"per_second": null}`` disables it."""
        rate = b.get("per_second")
        if rate is None:
            fake.rate_limit = None
            return _rate_limit_view()
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0:
            raise TestApiError("per_second must be a positive number")
        burst = b.get("burst", max(1, math.ceil(rate)))
        if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
            raise TestApiError("burst must be a positive integer")
        retry_after = b.get("retry_after")
        if retry_after is not None and (not isinstance(retry_after, (int, float))
                                        or isinstance(retry_after, bool) or retry_after < 0):
            raise TestApiError("retry_after must be a non-negative number of seconds or null")
        fake.rate_limit = TokenBucket(float(rate), burst, retry_after)
        return _rate_limit_view()

    @app.get("/_test/rate_limit")
    @test_api
    def _test_get_rate_limit(_b: dict) -> dict:
        return _rate_limit_view()

    def _rate_limit_view() -> dict:
        if fake.rate_limit is None:
            return {"per_second": None, "burst": None, "retry_after": None, "allowed": 0,
                    "rejected": 0}
        return fake.rate_limit.describe()

    @app.post("/_test/products/bulk")
    @test_api
    def _test_products_bulk(b: dict) -> dict:
        """``{"count": N, "prefix": "bench", "unit_amount": 1000, "currency": "usd",
        "metadata": {...}?}``: N products, each with one active default price, without events
        or request log (benchmarks).  Ids: ``prod_<prefix><n>`` / ``price_<prefix><n>``."""
        count = b.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1_000_000:
            raise TestApiError("count must be an integer in 1..1000000")
        prefix = b.get("prefix", "bench")
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_]*", prefix):
            raise TestApiError("prefix must be letters, digits or _")
        unit_amount = b.get("unit_amount", 1000)
        if not isinstance(unit_amount, int) or isinstance(unit_amount, bool) or unit_amount < 0:
            raise TestApiError("unit_amount must be a non-negative integer (minor units)")
        currency = b.get("currency", "usd")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise TestApiError("currency must be a 3-letter code")
        metadata = b.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str)
                                                      for v in metadata.values()):
            raise TestApiError("metadata must be an object of strings")
        created = fake.bulk_create(count, prefix, unit_amount, currency.lower(), metadata)
        return {"created": created}

    def dashboard(kind: str, store: dict, to_changes: Callable[[dict, dict], dict],
                  apply: Callable[[FakeStripe, str, dict, Optional[dict]], dict],
                  oid: str, b: dict) -> dict:
        obj = store.get(oid)
        if obj is None:
            raise TestApiError(f"no such {kind}: {oid}", 404)
        return copy.deepcopy(apply(fake, oid, to_changes(b, obj), None))

    def _form_like(b: dict, allowed: set[str]) -> dict:
        """A dashboard edit (JSON) -> the form values the API handlers validate: a null or ""
        metadata value deletes the key, null unsets a field."""
        unknown = sorted(set(b) - allowed)
        if unknown:
            raise TestApiError(f"unknown fields {unknown}; allowed: {sorted(allowed)}")
        out: dict[str, Any] = {}
        for k, v in b.items():
            if k == "metadata":
                if not isinstance(v, dict):
                    raise TestApiError("metadata must be an object")
                out[k] = {mk: "" if mv is None else mv for mk, mv in v.items()}
            elif k == "images":
                out[k] = "" if v is None or v == [] else v
            elif v is None:
                out[k] = ""
            else:
                out[k] = v
        return out

    @app.post("/_test/dashboard/products/<pid>")
    @test_api
    def _test_dashboard_product(b: dict, pid: str) -> dict:
        """Edits a product as the Stripe Dashboard would: product.updated, no API request."""
        allowed = {"name", "description", "images", "active", "metadata", "url",
                   "default_price", "shippable", "statement_descriptor", "unit_label",
                   "tax_code"}
        return dashboard("product", fake.products,
                         lambda b, o: _product_changes(fake, _form_like(b, allowed), o,
                                                       bool(o.get("livemode"))),
                         update_product, pid, b)

    @app.post("/_test/dashboard/prices/<pid>")
    @test_api
    def _test_dashboard_price(b: dict, pid: str) -> dict:
        """Prices are immutable but for active, metadata, nickname, lookup_key, tax_behavior."""
        allowed = {"active", "metadata", "nickname", "lookup_key", "tax_behavior"}
        return dashboard("price", fake.prices,
                         lambda b, o: _price_changes(_form_like(b, allowed), o),
                         update_price, pid, b)

    @app.post("/_test/dashboard/payment_links/<lid>")
    @test_api
    def _test_dashboard_payment_link(b: dict, lid: str) -> dict:
        allowed = {"active", "metadata", "inactive_message", "restrictions"}

        def changes(b: dict, o: dict) -> dict:
            form = _form_like(b, allowed)
            ch = _payment_link_changes(form)
            if "metadata" in form:
                ch["metadata"] = check_metadata(apply_metadata(o["metadata"], form["metadata"]))
            if "restrictions" in form:  # "" removes them (the Dashboard's "no limit")
                ch["restrictions"] = link_restrictions(form["restrictions"], o["restrictions"])
            return ch

        return dashboard("payment_link", fake.payment_links, changes, update_payment_link,
                         lid, b)

    @app.post("/_test/event_sink")
    @test_api
    def _test_event_sink(b: dict) -> dict:
        """``{"url": "http://127.0.0.1:PORT/_invoke" | null, "timeout": seconds?, "format":
        "eventbridge" | "webhook", "payload": "snapshot" | "thin", "secrets": ["whsec_..."],
        "timestamp_offset": seconds}`` (devstack/fake_stripe/webhooks.py; the format fields
        default to an EventBridge snapshot destination each time)."""
        if "url" not in b:
            raise TestApiError('give "url" (null disables the sink)')
        url = b["url"]
        if url is not None and not _http_url(url):
            raise TestApiError("url must be an http(s) URL or null")
        timeout = b.get("timeout", fake.event_sink_timeout)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise TestApiError("timeout must be a positive number of seconds")
        try:
            sink_format = check_sink_format(b)
        except ValueError as e:
            raise TestApiError(str(e)) from None
        fake.event_sink, fake.event_sink_timeout = url, float(timeout)
        fake.event_sink_format = sink_format
        return {"url": fake.event_sink, "timeout": fake.event_sink_timeout,
                "format": sink_format["format"], "payload": sink_format["payload"]}

    @app.post("/_test/event_generation_failure")
    def _test_event_generation_failure() -> Response:
        """``{"related_object": {"id", "type"}, "event_type": "checkout.session.completed"}``:
        Stripe failed to generate an event about the object, and says so once resolved (to
        webhook endpoints only). -> ``{"event": id, "delivery": {...} | null}`` (delivered
        outside the lock: the function reads the event back from this fake)."""
        b = request.get_json(silent=True) or {}
        related = b.get("related_object")
        if not isinstance(related, dict) or not related.get("id") or not related.get("type"):
            return _json({"error": 'give "related_object": {"id", "type"}'}, 400)
        event_type = b.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            return _json({"error": 'give "event_type"'}, 400)
        with fake.lock:
            note = generation_failure(fake, related, event_type, bool(b.get("livemode", False)))
            sink, timeout = fake.event_sink, fake.event_sink_timeout
            webhook = fake.event_sink_format.get("format") == "webhook"
        delivery = None
        if sink and webhook:
            delivery = post_event(sink, {"detail": note, "detail-type": note["type"]}, timeout,
                                  fake.render_delivery)
        return _json({"event": note["id"], "delivery": delivery})

    @app.get("/_test/event_sink")
    @test_api
    def _test_get_event_sink(_b: dict) -> dict:
        """``{"url", "timeout", "pending", "delivered", "failed", "failures"}``: the counts are
        those of the payment_intent.* events, POSTed in the background (wait for ``pending``
        0 before checking what the function did)."""
        return dict(fake.event_outbox.describe(), url=fake.event_sink,
                    timeout=fake.event_sink_timeout)

    @app.post("/_test/disputes")
    @test_api
    def _test_disputes(b: dict) -> dict:
        """``{"payment_intent", "status"}``: a dispute on a paid payment, closed with ``status``
        (``lost``, ``won``, ``warning_closed``); sends ``charge.dispute.closed`` (charges.py)."""
        return charges.close_dispute(fake, b)

    @app.post("/_test/payment_intents/<pid>/authorize")
    @test_api
    def _test_authorize_payment_intent(b: dict, pid: str) -> dict:
        """``{"payment_method": "pm_card_visa"}`` (the default): confirms the PaymentIntent as
        the buyer's browser would, without a key.  Answers the PaymentIntent afterwards (a
        decline: ``requires_payment_method`` with ``last_payment_error``); same events as
        ``POST /v1/payment_intents/{id}/confirm``, with no API request behind them."""
        pi = fake.payment_intents.get(pid)
        if pi is None:
            raise TestApiError(f"no such payment_intent: {pid}", 404)
        pm = b.get("payment_method", "pm_card_visa")
        if pm not in TEST_PAYMENT_METHODS:
            raise TestApiError(f"payment_method must be one of {sorted(TEST_PAYMENT_METHODS)}")
        if pi["status"] not in CONFIRMABLE:
            raise TestApiError(f"payment intent {pid} is {pi['status']}; it can be confirmed "
                               f"only when {', '.join(CONFIRMABLE)}", 409)
        fake.confirm_payment_intent(pi, pm, None)
        return copy.deepcopy(pi)
