"""The fake's state (`FakeStripe`): objects, events, faults, and how they are made."""

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
from devstack.fake_stripe.core import DEFAULT_SINK_TIMEOUT_S, EVENT_API_VERSION, Ordered, StripeError, TEST_PAYMENT_METHODS, TestApiError, TokenBucket, _DOCS, _EVENT_SKELETON, _missing, gen_id, parse_cursors, parse_int, parse_limit  # noqa: F401
from devstack.fake_stripe.events_out import CatalogOutbox, Outbox, eventbridge_envelope  # noqa: F401
from devstack.fake_stripe.webhooks import render, thin_event


# --------------------------------------------------------------------------- the fake


class FakeStripe:
    """In-memory Stripe state.  Every public method must be called with ``self.lock`` held."""

    def __init__(self, fixtures_path: str) -> None:
        with open(fixtures_path) as f:
            resources = json.load(f)["resources"]
        needed = ["checkout.session", "item", "payment_link", "payment_intent", "refund",
                  "product", "price", "charge", "dispute"]
        missing = [r for r in needed if r not in resources]
        if missing:
            raise ValueError(f"{fixtures_path}: no fixture for {missing}")
        self.fixtures = {r: resources[r] for r in needed}
        self.fixtures["event"] = resources.get("event") or _EVENT_SKELETON
        self.lock = threading.Lock()
        # Configuration, not state: kept across reset().
        self.event_sink: Optional[str] = None
        self.event_sink_timeout = DEFAULT_SINK_TIMEOUT_S
        self.catalog_event_sink: Optional[str] = None
        self.catalog_outbox = CatalogOutbox()
        # payment_intent.* events go to the event sink asynchronously (like Stripe's webhooks:
        # the API call that caused them never waits for the function that handles them).
        self.event_outbox = Outbox(lambda: self.event_sink_timeout, "payment",
                                   self._payment_event_delivered)
        # How the event sink is delivered to: EventBridge or webhook, snapshot or thin
        # (devstack/fake_stripe/webhooks.py).
        self.event_sink_format: dict = {"format": "eventbridge", "payload": "snapshot",
                                        "secrets": [], "timestamp_offset": 0}
        self.event_outbox.render = self.render_delivery
        self.rate_limit: Optional[TokenBucket] = None
        self.reset()

    def render_delivery(self, envelope: dict) -> tuple[bytes, dict]:
        """The body and headers of a delivery to the event sink, in its format."""
        return render(self.event_sink_format, envelope)

    def fixture(self, name: str) -> dict:
        return copy.deepcopy(self.fixtures[name])

    def reset(self) -> None:
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.payment_links: dict[str, dict] = {}
        self.payment_link_items: dict[str, list[dict]] = {}
        self.payment_intents: dict[str, dict] = {}
        self.refunded: dict[str, int] = {}  # pi id -> amount refunded so far
        self.checkout_sessions: dict[str, dict] = {}
        self.session_items: dict[str, list[dict]] = {}
        self.refunds: list[dict] = []
        self.disputes: dict[str, dict] = {}  # charges.py
        self.disputes_by_pi: dict[str, str] = {}
        self.idempotency: dict[tuple[Optional[bool], str], dict] = {}
        self.requests: list[dict] = []
        self.faults: list[dict] = []
        self.events: list[dict] = []  # oldest first
        self.v2_events: dict[str, dict] = {}  # GET /v2/core/events/{id}: thin, as fetched
        self.event_deliveries: list[dict] = []
        self.seq = 0
        self.order = {"product": Ordered(), "price": Ordered(), "payment_link": Ordered()}
        self.prices_by_product: dict[str, list[str]] = {}
        self.bulk_seq = 0
        if self.rate_limit is not None:  # the limit is configuration; its counters are state
            self.rate_limit.allowed = self.rate_limit.rejected = 0

    # ---------------------------------------------------------------- builders

    def make_product(self, id_: Optional[str], name: str, livemode: bool = False,
                     metadata: Optional[dict] = None, images: Optional[list[str]] = None,
                     description: Optional[str] = None) -> dict:
        now = int(time.time())
        p = self.fixture("product")
        p.update(id=id_ or gen_id("prod_", 14), name=name, description=description, created=now,
                 updated=now, livemode=livemode, metadata=dict(metadata or {}),
                 default_price=None, package_dimensions=None, images=list(images or []),
                 active=True)
        self.products[p["id"]] = p
        self.order["product"].add(p["id"])
        return p

    def make_price(self, id_: Optional[str], product_id: str, unit_amount: int, currency: str,
                   livemode: bool = False, set_default: bool = True) -> dict:
        pr = self.fixture("price")
        pr.update(id=id_ or gen_id("price_"), product=product_id, unit_amount=unit_amount,
                  unit_amount_decimal=str(unit_amount), currency=currency.lower(),
                  created=int(time.time()), livemode=livemode, type="one_time",
                  recurring=None, transform_quantity=None, custom_unit_amount=None,
                  billing_scheme="per_unit", tiers_mode=None, lookup_key=None, nickname=None,
                  metadata={}, active=True)
        self.prices[pr["id"]] = pr
        if pr["id"] not in self.order["price"].pos:
            self.order["price"].add(pr["id"])
            self.prices_by_product.setdefault(product_id, []).append(pr["id"])
        prod = self.products.get(product_id)
        if set_default and prod is not None and prod.get("default_price") is None:
            prod["default_price"] = pr["id"]
        return pr

    def bulk_create(self, count: int, prefix: str, unit_amount: int, currency: str,
                    metadata: dict[str, str]) -> int:
        """``count`` test-mode products, each with one active default price: shallow copies
        of one template each (fresh containers), no events, no request log."""
        now = int(time.time())
        ptpl = self.fixture("product")
        ptpl.update(description=None, created=now, updated=now, livemode=False,
                    package_dimensions=None, images=[], active=True, metadata={},
                    marketing_features=[], url=None)
        prtpl = self.fixture("price")
        prtpl.update(unit_amount=unit_amount, unit_amount_decimal=str(unit_amount),
                     currency=currency, created=now, livemode=False, type="one_time",
                     recurring=None, transform_quantity=None, custom_unit_amount=None,
                     billing_scheme="per_unit", tiers_mode=None, lookup_key=None,
                     nickname=None, metadata={}, active=True)
        p_containers = [k for k, v in ptpl.items() if isinstance(v, (dict, list))]
        pr_containers = [k for k, v in prtpl.items() if isinstance(v, (dict, list))]
        porder, prorder = self.order["product"], self.order["price"]
        for _ in range(count):
            self.bulk_seq += 1
            while f"prod_{prefix}{self.bulk_seq:07d}" in self.products or \
                    f"price_{prefix}{self.bulk_seq:07d}" in self.prices:
                self.bulk_seq += 1
            pid, prid = f"prod_{prefix}{self.bulk_seq:07d}", f"price_{prefix}{self.bulk_seq:07d}"
            prod = dict(ptpl)
            for k in p_containers:
                prod[k] = copy.copy(ptpl[k])
            prod.update(id=pid, name=f"{prefix} {self.bulk_seq}", default_price=prid,
                        metadata=dict(metadata))
            price = dict(prtpl)
            for k in pr_containers:
                price[k] = copy.copy(prtpl[k])
            price.update(id=prid, product=pid)
            self.products[pid] = prod
            porder.add(pid)
            self.prices[prid] = price
            prorder.add(prid)
            self.prices_by_product[pid] = [prid]
        return count

    def make_line_item(self, price: dict, quantity: int) -> dict:
        it = self.fixture("item")
        amount = price["unit_amount"] * quantity
        prod = self.products.get(price["product"])
        it.update(id=gen_id("li_"), price=copy.deepcopy(price), quantity=quantity,
                  amount_subtotal=amount, amount_total=amount, amount_discount=0, amount_tax=0,
                  currency=price["currency"], description=prod["name"] if prod else None,
                  metadata=None, adjustable_quantity=None)
        return it

    def make_payment_link(self, id_: Optional[str], items: list[dict], host_url: str,
                          active: bool = True, metadata: Optional[dict] = None,
                          livemode: bool = False, inactive_message: Optional[str] = None) -> dict:
        pl = self.fixture("payment_link")
        link_id = id_ or gen_id("plink_")
        pl.update(id=link_id, url=f"{host_url.rstrip('/')}/pay/{link_id}", active=active,
                  inactive_message=inactive_message, metadata=dict(metadata or {}),
                  livemode=livemode, currency=items[0]["currency"] if items else "usd",
                  restrictions=None, transfer_data=None, shipping_address_collection=None,
                  payment_intent_data=None, subscription_data=None, on_behalf_of=None,
                  payment_method_options=None)
        self.payment_links[link_id] = pl
        self.payment_link_items[link_id] = items
        self.order["payment_link"].add(link_id)
        return pl

    def make_payment_intent(self, id_: Optional[str], amount: int, currency: str, paid: bool,
                            livemode: bool = False, metadata: Optional[dict] = None) -> dict:
        pi = self.fixture("payment_intent")
        pi_id = id_ or gen_id("pi_")
        pi.update(id=pi_id, amount=amount, currency=currency, livemode=livemode,
                  created=int(time.time()), metadata=dict(metadata or {}),
                  client_secret=f"{pi_id}_secret_{gen_id('', 25)}",
                  status="succeeded" if paid else "processing",
                  amount_received=amount if paid else 0, amount_capturable=0,
                  latest_charge=gen_id("ch_") if paid else None,
                  payment_method=gen_id("pm_") if paid else None,
                  processing=None if paid else {"type": "card"},
                  last_payment_error=None, next_action=None, canceled_at=None,
                  cancellation_reason=None, shipping=None, transfer_data=None)
        self.payment_intents[pi_id] = pi
        self.refunded.setdefault(pi_id, 0)
        return pi

    def make_checkout_session(self, id_: Optional[str], items: list[dict], *, status: str,
                              payment_status: str, payment_intent: Optional[str],
                              payment_link: Optional[str] = None,
                              metadata: Optional[dict] = None, livemode: bool = False,
                              client_reference_id: Optional[str] = None) -> dict:
        currency = items[0]["currency"]
        total = sum(it["amount_total"] for it in items)
        s = self.fixture("checkout.session")
        sid = id_ or gen_id("cs_live_a1" if livemode else "cs_test_a1", 56)
        now = int(time.time())
        s.update(id=sid, livemode=livemode, created=now, expires_at=now + 24 * 3600,
                 status=status, payment_status=payment_status, mode="payment",
                 currency=currency, amount_subtotal=total, amount_total=total,
                 payment_intent=payment_intent, payment_link=payment_link,
                 metadata=dict(metadata or {}), url=None, client_secret=None,
                 shipping_cost=None, shipping_address_collection=None, shipping_options=[],
                 total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
                 currency_conversion=None, after_expiration=None, recovered_from=None,
                 invoice_creation=None, collected_information=None,
                 client_reference_id=client_reference_id)
        self.checkout_sessions[sid] = s
        self.session_items[sid] = items
        return s

    def complete_checkout_session(self, sid: str) -> dict:
        """An open session is paid: succeeded PaymentIntent, complete / paid."""
        s = self.checkout_sessions[sid]
        pi = self.make_payment_intent(None, s["amount_total"], s["currency"], True,
                                      s["livemode"])
        s.update(status="complete", payment_status="paid", payment_intent=pi["id"], url=None)
        self.count_completed_session(s)
        return s

    def count_completed_session(self, s: dict) -> None:
        """A completed session counts towards its link's ``completed_sessions`` restriction;
        at the limit Stripe "automatically deactivates" the link (documented). Modelled here,
        not documented: ``active`` becomes false and a ``payment_link.updated`` event is sent
        (a session opened earlier can still complete, so the count can pass the limit)."""
        pl = self.payment_links.get(s.get("payment_link") or "")
        sessions = ((pl or {}).get("restrictions") or {}).get("completed_sessions")
        if pl is None or sessions is None:
            return
        sessions["count"] += 1
        if pl["active"] and sessions["count"] >= sessions["limit"]:
            pl["active"] = False
            self.catalog_event("payment_link.updated", pl, {"active": True})

    def make_event(self, type_: str, obj: dict) -> dict:
        """Stores (for GET /v1/events) and returns a snapshot event about ``obj``."""
        ev = self.fixture("event")
        ev.update(id=gen_id("evt_"), object="event", type=type_,
                  api_version=EVENT_API_VERSION, created=int(time.time()),
                  livemode=bool(obj.get("livemode")), data={"object": copy.deepcopy(obj)},
                  pending_webhooks=1 if self.event_sink else 0,
                  request={"id": None, "idempotency_key": None})
        self.events.append(ev)
        self.v2_events[ev["id"]] = thin_event(ev)
        return ev

    def catalog_event(self, type_: str, obj: dict, previous: Optional[dict] = None,
                      req: Optional[dict] = None) -> dict:
        """Stores a ``product.*`` / ``price.*`` / ``payment_link.*`` event (for GET /v1/events)
        and queues its EventBridge envelope for the catalog sink, if one is set."""
        ev = self.fixture("event")
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        ev.update(id=gen_id("evt_"), object="event", type=type_,
                  api_version=EVENT_API_VERSION, created=int(time.time()),
                  livemode=bool(obj.get("livemode")), data=data,
                  pending_webhooks=1 if self.catalog_event_sink else 0,
                  request=dict(req or {"id": None, "idempotency_key": None}))
        self.events.append(ev)
        self.v2_events[ev["id"]] = thin_event(ev)
        if self.catalog_event_sink:
            self.catalog_outbox.put(self.catalog_event_sink,
                                    eventbridge_envelope(copy.deepcopy(ev)))
        return ev

    def payment_event(self, type_: str, pi: dict, req: Optional[dict] = None) -> dict:
        """Stores a ``payment_intent.*`` event about ``pi`` (for GET /v1/events) and queues its
        EventBridge envelope for the event sink (the inventory function), if one is set."""
        ev = self.fixture("event")
        ev.update(id=gen_id("evt_"), object="event", type=type_,
                  api_version=EVENT_API_VERSION, created=int(time.time()),
                  livemode=bool(pi.get("livemode")), data={"object": copy.deepcopy(pi)},
                  pending_webhooks=1 if self.event_sink else 0,
                  request=dict(req or {"id": None, "idempotency_key": None}))
        self.events.append(ev)
        self.v2_events[ev["id"]] = thin_event(ev)
        if self.event_sink:
            self.event_outbox.put(self.event_sink, eventbridge_envelope(copy.deepcopy(ev)))
        return ev

    def _payment_event_delivered(self, url: str, envelope: dict, result: dict) -> None:
        """Outbox callback (no lock held): record the delivery like /pay does."""
        ev = envelope["detail"]
        with self.lock:
            delivery = dict(result, event=ev["id"], type=ev["type"], session=None,
                            payment_intent=ev["data"]["object"].get("id"), url=url)
            self.event_deliveries.append(delivery)
            if result.get("delivered"):
                stored = next((e for e in reversed(self.events) if e["id"] == ev["id"]), None)
                if stored is not None:
                    stored["pending_webhooks"] = 0

    # ---------------------------------------------------------------- payment intents

    def new_payment_intent(self, amount: int, currency: str, livemode: bool, *,
                           capture_method: str = "automatic_async",
                           metadata: Optional[dict] = None, description: Optional[str] = None,
                           receipt_email: Optional[str] = None,
                           payment_method_types: Optional[list[str]] = None,
                           automatic_payment_methods: bool = True) -> dict:
        """A PaymentIntent as ``POST /v1/payment_intents`` creates it."""
        pi = self.make_payment_intent(None, amount, currency, False, livemode, metadata)
        if payment_method_types:
            apm, types = None, list(payment_method_types)
        elif automatic_payment_methods:
            apm, types = {"allow_redirects": "always", "enabled": True}, ["card"]
        else:
            apm, types = None, ["card"]
        pi.update(status="requires_payment_method", processing=None,
                  capture_method=capture_method, confirmation_method="automatic",
                  description=description, receipt_email=receipt_email,
                  automatic_payment_methods=apm, payment_method_types=types,
                  payment_method_configuration_details=pi.get(
                      "payment_method_configuration_details") if apm else None)
        return pi

    def confirm_payment_intent(self, pi: dict, payment_method: str, req: Optional[dict]
                               ) -> Optional[StripeError]:
        """Confirms ``pi`` (in a confirmable state) with a test PaymentMethod token: emits the
        events and returns the card error of a decline (the state has changed either way)."""
        outcome = TEST_PAYMENT_METHODS[payment_method]
        charge = gen_id("ch_")
        pi.update(latest_charge=charge, next_action=None, processing=None)
        if outcome is None:
            pi.update(payment_method=gen_id("pm_"), last_payment_error=None)
            if pi["capture_method"] == "manual":
                pi.update(status="requires_capture", amount_capturable=pi["amount"])
                self.payment_event("payment_intent.amount_capturable_updated", pi, req)
            else:
                pi.update(status="succeeded", amount_received=pi["amount"],
                          amount_capturable=0)
                self.payment_event("payment_intent.succeeded", pi, req)
            return None
        decline_code, code, message = outcome
        error = {"type": "card_error", "code": code, "decline_code": decline_code,
                 "message": message, "doc_url": _DOCS + code.replace("_", "-"),
                 "charge": charge}
        if code != "card_declined":
            del error["decline_code"]
        pi.update(status="requires_payment_method", payment_method=None,
                  last_payment_error=error, amount_capturable=0)
        self.payment_event("payment_intent.payment_failed", pi, req)
        extra = {k: v for k, v in error.items() if k in ("decline_code", "charge")}
        extra["payment_intent"] = copy.deepcopy(pi)
        return StripeError(402, message, type_="card_error", code=code, extra=extra)

    # ---------------------------------------------------------------- lookups

    def visible(self, obj: Optional[dict], kind: str, id_: str, live: bool,
                param: Optional[str] = None) -> dict:
        if obj is None:
            raise _missing(kind, id_, param)
        if bool(obj.get("livemode")) != live:
            other = "live" if obj.get("livemode") else "test"
            used = "live" if live else "test"
            raise StripeError(404, f"No such {kind}: '{id_}'; a similar object exists in {other} "
                              f"mode, but a {used} mode key was used to make this request.",
                              code="resource_missing", param=param)
        return obj

    def find_or_create_price(self, product_id: str, unit_amount: Optional[int],
                             currency: Optional[str], livemode: bool,
                             price_id: Optional[str] = None, name: Optional[str] = None) -> dict:
        if product_id not in self.products:
            self.make_product(product_id, name or product_id, livemode)
        if price_id:
            if price_id in self.prices:
                pr = self.prices[price_id]
                if pr["product"] != product_id:
                    raise TestApiError(f"price {price_id} belongs to {pr['product']}")
                return pr
            if unit_amount is None:
                raise TestApiError(f"unknown price {price_id}: give unit_amount to create it")
            return self.make_price(price_id, product_id, unit_amount, currency or "usd", livemode)
        candidates = [p for p in self.prices.values() if p["product"] == product_id
                      and p["active"]
                      and (unit_amount is None or p["unit_amount"] == unit_amount)
                      and (currency is None or p["currency"] == currency.lower())]
        default = self.products[product_id].get("default_price")
        candidates.sort(key=lambda p: p["id"] != default)
        if candidates:
            return candidates[0]
        if unit_amount is None:
            raise TestApiError(f"product {product_id} has no price: give unit_amount")
        return self.make_price(None, product_id, unit_amount, currency or "usd", livemode)

    # ---------------------------------------------------------------- pagination

    @staticmethod
    def paginate(items: list[dict], query: dict[str, Any], url: str) -> dict:
        limit = parse_int(query.get("limit", "10"), "limit")
        if not 1 <= limit <= 100:
            raise StripeError(400, "Invalid limit: must be between 1 and 100",
                              code="parameter_invalid_integer", param="limit")
        ids = [it["id"] for it in items]
        after, before = query.get("starting_after"), query.get("ending_before")
        if after and before:
            raise StripeError(400, "You may only specify one of these parameters: "
                              "ending_before, starting_after.", param="starting_after")
        if after:
            if after not in ids:
                raise StripeError(400, f"No such object: '{after}'", code="resource_missing",
                                  param="starting_after")
            rest = items[ids.index(after) + 1:]
            page, has_more = rest[:limit], len(rest) > limit
        elif before:
            if before not in ids:
                raise StripeError(400, f"No such object: '{before}'", code="resource_missing",
                                  param="ending_before")
            head = items[:ids.index(before)]
            page, has_more = head[-limit:], len(head) > limit
        else:
            page, has_more = items[:limit], len(items) > limit
        return {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": url}

    def page_newest_first(self, kind: str, objs: dict[str, dict], query: dict[str, Any],
                          url: str, keep: Callable[[dict], bool]) -> dict:
        """A list page of ``objs`` (newest first) walking the creation order from the cursor:
        O(page size) when most objects pass ``keep``."""
        limit = parse_limit(query)
        after, before = parse_cursors(query)
        order = self.order[kind]
        ids, pos = order.ids, order.pos
        collected: list[dict] = []
        if before:
            if before not in pos:
                raise StripeError(400, f"No such object: '{before}'", code="resource_missing",
                                  param="ending_before")
            i = pos[before] + 1
            while i < len(ids) and len(collected) <= limit:
                o = objs[ids[i]]
                if keep(o):
                    collected.append(o)
                i += 1
            page = list(reversed(collected[:limit]))
        else:
            if after:
                if after not in pos:
                    raise StripeError(400, f"No such object: '{after}'",
                                      code="resource_missing", param="starting_after")
                i = pos[after] - 1
            else:
                i = len(ids) - 1
            while i >= 0 and len(collected) <= limit:
                o = objs[ids[i]]
                if keep(o):
                    collected.append(o)
                i -= 1
            page = collected[:limit]
        return {"object": "list", "data": copy.deepcopy(page),
                "has_more": len(collected) > limit, "url": url}

    def expand_products(self, items: list[dict]) -> None:
        for it in items:
            price = it.get("price")
            if price and isinstance(price.get("product"), str) and price["product"] in self.products:
                price["product"] = copy.deepcopy(self.products[price["product"]])


def _unexpandable(path: str) -> StripeError:
    return StripeError(400, f"This property cannot be expanded ({path}). (fake_stripe expands "
                       "only what stockbridge uses; extend devstack/fake_stripe.py)",
                       param="expand")
