"""A local, stateful fake of the parts of the Stripe HTTP API that stockbridge uses.

Usage (from the repository root)::

    python -m devstack.fake_stripe --host 127.0.0.1 --port 0 --ready-file .stack/stripe.port

Point the Rust client at it with ``ClientBuilder::new(key).url("http://127.0.0.1:PORT")``.
async-stripe builds ``format!("{base}v1{path}")`` from an ``http::Uri``, which prints an
empty path as ``/``, so a bare origin works; a base with a path must end with ``/``.

WHERE THE OBJECTS COME FROM
---------------------------
Every object this fake returns is a deep copy of Stripe's own published example for
that resource, ``resources.<name>`` in ``shared/stripe/fixtures3.json`` (taken unchanged
from Stripe's OpenAPI repository), with ids, amounts, currencies and states
overridden.  Fields the fixture carries but that make no sense for the state we
model (e.g. a ``recurring`` block on a one-time price, made-up shipping totals on a
session) are set to ``null``.  async-stripe 1.0.0-rc.10 deserializes strictly: every
non-``Option`` field must be present; the fixtures as published already carry every
such field for the objects served here, and ``devstack/tests/test_fake_stripe.py``
checks the fake's responses against the crate's generated deserializers whenever the
crate sources are in ``~/.cargo/registry``.

WHAT IS MODELLED
----------------
* ``GET  /v1/checkout/sessions/{id}``             (expand: line_items, payment_intent)
* ``GET  /v1/checkout/sessions/{id}/line_items``  (limit 1..100, default 10;
  starting_after / ending_before; expand data.price.product)
* ``GET  /v1/payment_links/{id}``, ``GET /v1/payment_links/{id}/line_items``,
  ``POST /v1/payment_links`` (create), ``POST /v1/payment_links/{id}`` (update:
  ``active``, ``inactive_message``, ``metadata[...]``)
* ``GET  /v1/payment_intents/{id}``
* ``POST /v1/refunds``, ``GET /v1/refunds?payment_intent=``, ``GET /v1/refunds/{id}``
* ``GET  /v1/products/{id}``, ``GET /v1/prices/{id}``
* ``GET  /v1/events`` (limit, starting_after, ending_before, ``type``, ``types[]``,
  ``created`` / ``created[gte|gt|lte|lt]``; newest first), ``GET /v1/events/{id}``

EVENTS AND THE HOSTED PAYMENT PAGE
----------------------------------
``GET /pay/{plink}`` is the link's hosted payment page (it opens a Checkout Session, like
visiting a Payment Link does); ``POST /pay/{plink}`` pays it: the session becomes
``complete`` / ``paid`` with a succeeded PaymentIntent, and a ``checkout.session.completed``
event (from the ``event`` fixture, API version ``2026-09-30.endive``) is stored for
``GET /v1/events`` and, when an *event sink* is configured (``--event-sink URL`` or
``POST /_test/event_sink {"url": ...}``), wrapped in the EventBridge envelope Stripe's
Event Destinations produce (source ``aws.partner/stripe.com/ed_test_local``) and POSTed to
it -- normally the Lambda driver's ``/_invoke``, which answers once the function finished.
The page then says whether the order was confirmed or refunded (the fake holds a refund for
the PaymentIntent).  A session opened before its link was switched off can still be paid
(as at Stripe): that is how a buyer ends up refunded.  The sink survives ``/_test/reset``.

Stripe behaviour kept on purpose: Bearer-key auth (401 otherwise), test/live data
separation (an ``sk_test_`` key cannot see ``livemode: true`` objects: 404),
form-encoded bodies only, unknown parameters rejected (400 ``parameter_unknown``),
Stripe's error JSON ``{"error": {"type", "code", "message", "param", "doc_url"}}``,
``Request-Id`` on every response, and ``Idempotency-Key`` on every POST: the first
result (success or error) is stored and replayed with ``Idempotent-Replayed: true``;
the same key with other parameters, or on another endpoint, is a 400
``idempotency_error``.  Injected faults (``/_test/faults``) happen *before* the
idempotency layer, like Stripe's rate limiter, so a retry with the same key after a
faulted 429/5xx runs the request for real.

The test-control API (JSON, no auth, not under /v1) creates products (``images``,
``description`` optional), payment links and completed checkout sessions, sets the event
sink, injects faults, and exposes the recorded /v1 requests and the whole state (events
and their deliveries included); see the ``_test_*`` handlers below.  API keys are never
logged or recorded: a recorded request only says whether auth was present and valid.

All state lives in memory behind ONE ``threading.Lock`` held for the whole handling
of a request (except while ``POST /pay/..`` waits for the event sink, which calls
back), so concurrent requests (werkzeug ``threaded=True``) see Stripe-like atomic
behaviour, e.g. concurrent refunds of one PaymentIntent never over-refund.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

from flask import Flask, Response, request

from devstack.serving import serve_until_signalled

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURES = REPO_ROOT / "testdata" / "stripe" / "fixtures3.json"

_BASE62 = string.digits + string.ascii_letters
_DOCS = "https://stripe.com/docs/error-codes/"
FAULT_STATUSES = {409, 429, 500, 502, 503, 504}
# Top-level parameters Stripe accepts on the endpoints we serve.  Parameters that are
# valid at Stripe but not modelled here are accepted and ignored; anything else is
# rejected like Stripe does, so encoding bugs in the adapter show up in tests.
REFUND_PARAMS = {
    "amount", "charge", "currency", "customer", "expand", "instructions_email",
    "metadata", "origin", "payment_intent", "reason", "refund_application_fee",
    "reverse_transfer",
}
PAYMENT_LINK_COMMON_PARAMS = {
    "after_completion", "allow_promotion_codes", "automatic_tax", "billing_address_collection",
    "consent_collection", "custom_fields", "custom_text", "customer_creation", "expand",
    "invoice_creation", "line_items", "metadata", "name_collection", "optional_items",
    "payment_intent_data", "payment_method_collection", "payment_method_options",
    "payment_method_types", "phone_number_collection", "restrictions",
    "shipping_address_collection", "submit_type", "subscription_data", "tax_id_collection",
}
PAYMENT_LINK_CREATE_PARAMS = PAYMENT_LINK_COMMON_PARAMS | {
    "application_fee_amount", "application_fee_percent", "currency", "on_behalf_of",
    "shipping_options", "transfer_data",
}
PAYMENT_LINK_UPDATE_PARAMS = PAYMENT_LINK_COMMON_PARAMS | {"active", "inactive_message"}
REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}
EVENT_API_VERSION = "2026-09-30.endive"
EVENT_SOURCE = "aws.partner/stripe.com/ed_test_local"
EVENT_ACCOUNT = "000000000000"
EVENT_REGION = "us-east-1"
DEFAULT_SINK_TIMEOUT_S = 120.0
# Used when a fixtures file has no ``event`` resource.
_EVENT_SKELETON = {"id": "evt_x", "object": "event", "api_version": None, "created": 0,
                   "data": {"object": {}}, "livemode": False, "pending_webhooks": 0,
                   "request": {"id": None, "idempotency_key": None}, "type": "x"}


def gen_id(prefix: str, n: int = 24) -> str:
    """A Stripe-looking id: prefix + random base62 (secrets is thread-safe)."""
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(n))


class StripeError(Exception):
    """Raised by handlers; rendered as Stripe's error JSON."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: Optional[str] = None, param: Optional[str] = None,
                 headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status, message, type_, code, param)
        self.headers = headers or {}

    def body(self) -> dict:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = _DOCS + self.code.replace("_", "-")
        if self.param:
            err["param"] = self.param
        return {"error": err}


class TestApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _missing(kind: str, id_: str, param: Optional[str] = None) -> StripeError:
    return StripeError(404, f"No such {kind}: '{id_}'", code="resource_missing", param=param)


# --------------------------------------------------------------------------- forms


def nest_form(flat: dict[str, str]) -> dict[str, Any]:
    """``{"metadata[a]": "1", "line_items[0][price]": "p"}`` -> nested dicts/lists."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        m = re.match(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$", key)
        if not m:
            raise StripeError(400, f"Invalid parameter name: {key}", code="parameter_invalid_empty")
        parts = [m.group(1)] + re.findall(r"\[([^\[\]]*)\]", m.group(2))
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # a[]=x : append
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise StripeError(400, f"Invalid parameter: {key}", param=parts[0])
                node = child

    def listify(v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            v = {k: listify(x, k) for k, x in v.items()}
            if v and key != "metadata" and all(k.isdigit() for k in v):  # metadata[0]=x is a key
                return [v[k] for k in sorted(v, key=int)]
        return v

    return listify(root)


def parse_bool(value: Any, param: str) -> bool:
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise StripeError(400, f"Invalid boolean: {value}", param=param)


def parse_int(value: Any, param: str, minimum: Optional[int] = None) -> int:
    try:
        n = int(str(value), 10)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer",
                          param=param) from None
    if minimum is not None and n < minimum:
        raise StripeError(400, f"This value must be greater than or equal to {minimum}.",
                          code="parameter_invalid_integer", param=param)
    return n


def expand_list(params: dict[str, Any]) -> list[str]:
    exp = params.get("expand", [])
    if isinstance(exp, str):
        exp = [exp]
    if isinstance(exp, dict):
        exp = list(exp.values())
    return list(exp)


def check_params(params: dict[str, Any], allowed: set[str]) -> None:
    for k in params:
        if k not in allowed:
            raise StripeError(400, f"Received unknown parameter: {k}", code="parameter_unknown",
                              param=k)


def apply_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Stripe rules: ``metadata=`` clears all, ``metadata[k]=`` removes k."""
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise StripeError(400, "Invalid object", param="metadata")
    out = dict(current)
    for k, v in update.items():
        if not isinstance(v, str):
            raise StripeError(400, "Invalid metadata value", param=f"metadata[{k}]")
        if v == "":
            out.pop(k, None)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------- the fake


class FakeStripe:
    """In-memory Stripe state.  Every public method must be called with ``self.lock`` held."""

    def __init__(self, fixtures_path: str) -> None:
        with open(fixtures_path) as f:
            resources = json.load(f)["resources"]
        needed = ["checkout.session", "item", "payment_link", "payment_intent", "refund",
                  "product", "price"]
        missing = [r for r in needed if r not in resources]
        if missing:
            raise ValueError(f"{fixtures_path}: no fixture for {missing}")
        self.fixtures = {r: resources[r] for r in needed}
        self.fixtures["event"] = resources.get("event") or _EVENT_SKELETON
        self.lock = threading.Lock()
        # Configuration, not state: kept across reset().
        self.event_sink: Optional[str] = None
        self.event_sink_timeout = DEFAULT_SINK_TIMEOUT_S
        self.reset()

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
        self.idempotency: dict[tuple[Optional[bool], str], dict] = {}
        self.requests: list[dict] = []
        self.faults: list[dict] = []
        self.events: list[dict] = []  # oldest first
        self.event_deliveries: list[dict] = []
        self.seq = 0

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
        return p

    def make_price(self, id_: Optional[str], product_id: str, unit_amount: int, currency: str,
                   livemode: bool = False) -> dict:
        pr = self.fixture("price")
        pr.update(id=id_ or gen_id("price_"), product=product_id, unit_amount=unit_amount,
                  unit_amount_decimal=str(unit_amount), currency=currency.lower(),
                  created=int(time.time()), livemode=livemode, type="one_time",
                  recurring=None, transform_quantity=None, custom_unit_amount=None,
                  billing_scheme="per_unit", tiers_mode=None, lookup_key=None, nickname=None,
                  metadata={}, active=True)
        self.prices[pr["id"]] = pr
        prod = self.products.get(product_id)
        if prod is not None and prod.get("default_price") is None:
            prod["default_price"] = pr["id"]
        return pr

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
        return s

    def make_event(self, type_: str, obj: dict) -> dict:
        """Stores (for GET /v1/events) and returns a snapshot event about ``obj``."""
        ev = self.fixture("event")
        ev.update(id=gen_id("evt_"), object="event", type=type_,
                  api_version=EVENT_API_VERSION, created=int(time.time()),
                  livemode=bool(obj.get("livemode")), data={"object": copy.deepcopy(obj)},
                  pending_webhooks=1 if self.event_sink else 0,
                  request={"id": None, "idempotency_key": None})
        self.events.append(ev)
        return ev

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

    def expand_products(self, items: list[dict]) -> None:
        for it in items:
            price = it.get("price")
            if price and isinstance(price.get("product"), str) and price["product"] in self.products:
                price["product"] = copy.deepcopy(self.products[price["product"]])


def _unexpandable(path: str) -> StripeError:
    return StripeError(400, f"This property cannot be expanded ({path}). (fake_stripe expands "
                       "only what stockbridge uses; extend devstack/fake_stripe.py)",
                       param="expand")


# --------------------------------------------------------------------------- /v1 handlers

Ctx = dict[str, Any]  # {fake, params (nested), query (flat), live (bool), host_url}
Handler = Callable[..., Any]


def h_get_session(ctx: Ctx, sid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    s = copy.deepcopy(fake.visible(fake.checkout_sessions.get(sid), "checkout.session", sid,
                                   ctx["live"]))
    for path in expand_list(ctx["params"]):
        if path == "line_items":
            s["line_items"] = fake.paginate(fake.session_items[sid], {},
                                            f"/v1/checkout/sessions/{sid}/line_items")
        elif path == "payment_intent" and s.get("payment_intent"):
            s["payment_intent"] = copy.deepcopy(fake.payment_intents[s["payment_intent"]])
        elif path == "payment_link" and s.get("payment_link") in fake.payment_links:
            s["payment_link"] = copy.deepcopy(fake.payment_links[s["payment_link"]])
        else:
            raise _unexpandable(path)
    return s


def _list_items(ctx: Ctx, items: list[dict], url: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    check_params(ctx["params"], {"limit", "starting_after", "ending_before", "expand"})
    out = fake.paginate(items, ctx["query"], url)
    for path in expand_list(ctx["params"]):
        if path in ("data.price.product", "data.price"):
            if path == "data.price.product":
                fake.expand_products(out["data"])
        else:
            raise _unexpandable(path)
    return out


def h_session_line_items(ctx: Ctx, sid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    fake.visible(fake.checkout_sessions.get(sid), "checkout.session", sid, ctx["live"])
    return _list_items(ctx, fake.session_items[sid], f"/v1/checkout/sessions/{sid}/line_items")


def h_get_payment_link(ctx: Ctx, lid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    pl = copy.deepcopy(fake.visible(fake.payment_links.get(lid), "payment_link", lid, ctx["live"]))
    for path in expand_list(ctx["params"]):
        if path == "line_items":
            pl["line_items"] = fake.paginate(fake.payment_link_items[lid], {},
                                             f"/v1/payment_links/{lid}/line_items")
        else:
            raise _unexpandable(path)
    return pl


def h_payment_link_line_items(ctx: Ctx, lid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    fake.visible(fake.payment_links.get(lid), "payment_link", lid, ctx["live"])
    return _list_items(ctx, fake.payment_link_items[lid], f"/v1/payment_links/{lid}/line_items")


def h_update_payment_link(ctx: Ctx, lid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PAYMENT_LINK_UPDATE_PARAMS)
    pl = fake.visible(fake.payment_links.get(lid), "payment_link", lid, ctx["live"])
    updated = copy.deepcopy(pl)  # validate everything before mutating
    if "active" in params:
        updated["active"] = parse_bool(params["active"], "active")
    if "inactive_message" in params:
        msg = params["inactive_message"]
        if not isinstance(msg, str):
            raise StripeError(400, "Invalid string", param="inactive_message")
        if len(msg) > 500:
            raise StripeError(400, "inactive_message must be at most 500 characters",
                              param="inactive_message")
        updated["inactive_message"] = msg or None
    if "metadata" in params:
        updated["metadata"] = apply_metadata(updated["metadata"], params["metadata"])
    fake.payment_links[lid] = updated
    if expand_list(params):
        return h_get_payment_link(ctx, lid)
    return copy.deepcopy(updated)


def h_create_payment_link(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PAYMENT_LINK_CREATE_PARAMS)
    lines = params.get("line_items")
    if not lines:
        raise StripeError(400, "Missing required param: line_items.", code="parameter_missing",
                          param="line_items")
    if not isinstance(lines, list):
        raise StripeError(400, "Invalid array", param="line_items")
    items = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict) or "price" not in line:
            raise StripeError(400, f"Missing required param: line_items[{i}][price].",
                              code="parameter_missing", param=f"line_items[{i}][price]")
        if "quantity" not in line:
            raise StripeError(400, f"Missing required param: line_items[{i}][quantity].",
                              code="parameter_missing", param=f"line_items[{i}][quantity]")
        pid = line["price"]
        price = fake.visible(fake.prices.get(pid), "price", pid, ctx["live"],
                             param=f"line_items[{i}][price]")
        qty = parse_int(line["quantity"], f"line_items[{i}][quantity]", minimum=1)
        items.append(fake.make_line_item(price, qty))
    if len({it["currency"] for it in items}) > 1:
        raise StripeError(400, "All prices must have the same currency.", param="line_items")
    metadata = apply_metadata({}, params["metadata"]) if "metadata" in params else {}
    pl = fake.make_payment_link(None, items, ctx["host_url"], metadata=metadata,
                                livemode=ctx["live"])
    return copy.deepcopy(pl)


def h_get_payment_intent(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    if expand_list(ctx["params"]):
        raise _unexpandable(expand_list(ctx["params"])[0])
    return copy.deepcopy(fake.visible(fake.payment_intents.get(pid), "payment_intent", pid,
                                      ctx["live"]))


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency.upper()}"


def h_create_refund(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, REFUND_PARAMS)
    pid, charge = params.get("payment_intent"), params.get("charge")
    if not pid and not charge:
        raise StripeError(400, "One of the following params should be provided for this "
                          "request: payment_intent or charge.", code="parameter_missing",
                          param="payment_intent")
    if not pid:
        found = [p for p in fake.payment_intents.values() if p.get("latest_charge") == charge]
        if not found:
            raise _missing("charge", charge, "charge")
        pid = found[0]["id"]
    pi = fake.visible(fake.payment_intents.get(pid), "payment_intent", pid, ctx["live"],
                      param="payment_intent")
    if pi["status"] != "succeeded" or not pi.get("latest_charge"):
        raise StripeError(400, f"This PaymentIntent ({pid}) does not have a successful charge "
                          "to refund.", code="payment_intent_unexpected_state",
                          param="payment_intent")
    remaining = pi["amount_received"] - fake.refunded.get(pid, 0)
    if remaining <= 0:
        raise StripeError(400, f"Charge {pi['latest_charge']} has already been refunded.",
                          code="charge_already_refunded", param="charge")
    if "amount" in params:
        amount = parse_int(params["amount"], "amount", minimum=1)
        if amount > remaining:
            raise StripeError(400, f"Refund amount ({_money(amount, pi['currency'])}) is greater "
                              f"than unrefunded amount on charge "
                              f"({_money(remaining, pi['currency'])})",
                              code="amount_too_large", param="amount")
    else:
        amount = remaining
    reason = params.get("reason")
    if reason is not None and reason not in REFUND_REASONS:
        raise StripeError(400, f"Invalid reason: must be one of {', '.join(sorted(REFUND_REASONS))}",
                          param="reason")
    metadata = apply_metadata({}, params["metadata"]) if "metadata" in params else {}
    if expand_list(params):
        raise _unexpandable(expand_list(params)[0])
    rf = fake.fixture("refund")
    rf.update(id=gen_id("re_"), amount=amount, currency=pi["currency"], payment_intent=pid,
              charge=pi["latest_charge"], reason=reason, metadata=metadata, status="succeeded",
              created=int(time.time()), balance_transaction=gen_id("txn_"),
              receipt_number=None, payment_method=pi.get("payment_method"))
    fake.refunds.append(rf)
    fake.refunded[pid] = fake.refunded.get(pid, 0) + amount
    return copy.deepcopy(rf)


def h_list_refunds(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, {"limit", "starting_after", "ending_before", "expand", "payment_intent",
                          "charge", "created"})
    rows = [r for r in reversed(fake.refunds)  # Stripe lists newest first
            if bool(fake.payment_intents.get(r["payment_intent"], {}).get("livemode")) == ctx["live"]
            and (not params.get("payment_intent") or r["payment_intent"] == params["payment_intent"])
            and (not params.get("charge") or r["charge"] == params["charge"])]
    if expand_list(params):
        raise _unexpandable(expand_list(params)[0])
    return fake.paginate(rows, ctx["query"], "/v1/refunds")


def h_get_refund(ctx: Ctx, rid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    found = next((r for r in fake.refunds if r["id"] == rid), None)
    if found is not None:
        pi = fake.payment_intents.get(found["payment_intent"], {})
        fake.visible(dict(found, livemode=pi.get("livemode", False)), "refund", rid, ctx["live"])
    else:
        raise _missing("refund", rid)
    return copy.deepcopy(found)


def h_get_product(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    return copy.deepcopy(fake.visible(fake.products.get(pid), "product", pid, ctx["live"]))


def h_get_price(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    pr = copy.deepcopy(fake.visible(fake.prices.get(pid), "price", pid, ctx["live"]))
    for path in expand_list(ctx["params"]):
        if path == "product" and pr["product"] in fake.products:
            pr["product"] = copy.deepcopy(fake.products[pr["product"]])
        else:
            raise _unexpandable(path)
    return pr


EVENT_LIST_PARAMS = {"limit", "starting_after", "ending_before", "expand", "type", "types",
                     "created", "delivery_success"}


def _created_filter(value: Any) -> Callable[[int], bool]:
    """``created=N`` or ``created[gte|gt|lte|lt]=N``."""
    if isinstance(value, str):
        n = parse_int(value, "created")
        return lambda c: c == n
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid created", param="created")
    ops = {"gte": lambda c, n: c >= n, "gt": lambda c, n: c > n,
           "lte": lambda c, n: c <= n, "lt": lambda c, n: c < n}
    checks = []
    for k, v in value.items():
        if k not in ops:
            raise StripeError(400, f"Received unknown parameter: created[{k}]",
                              code="parameter_unknown", param=f"created[{k}]")
        checks.append((ops[k], parse_int(v, f"created[{k}]")))
    return lambda c: all(op(c, n) for op, n in checks)


def h_list_sessions(ctx: Ctx) -> dict:
    """GET /v1/checkout/sessions: newest first; ``status``, ``created[...]``, cursors."""
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, {"limit", "starting_after", "ending_before", "status", "created",
                          "payment_intent", "payment_link", "expand"})
    if expand_list(params):
        raise _unexpandable(expand_list(params)[0])
    created_ok = _created_filter(params["created"]) if "created" in params else (lambda c: True)
    rows = [s for s in reversed(list(fake.checkout_sessions.values()))
            if bool(s.get("livemode")) == ctx["live"]
            and ("status" not in params or s.get("status") == params["status"])
            and ("payment_intent" not in params or s.get("payment_intent") == params["payment_intent"])
            and ("payment_link" not in params or s.get("payment_link") == params["payment_link"])
            and created_ok(int(s.get("created") or 0))]
    rows.sort(key=lambda s: -int(s.get("created") or 0))  # stable: insertion order within a second
    return fake.paginate(rows, ctx["query"], "/v1/checkout/sessions")


def h_list_events(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, EVENT_LIST_PARAMS)
    if "type" in params and "types" in params:
        raise StripeError(400, "You may only specify one of these parameters: type, types.",
                          param="types")
    types = params.get("types")
    if types is not None:
        if isinstance(types, dict):
            types = list(types.values())
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise StripeError(400, "Invalid array", param="types")
        if len(types) > 20:
            raise StripeError(400, "types: at most 20 event types", param="types")
    elif "type" in params:
        types = [params["type"]]

    def type_ok(t: str) -> bool:
        if types is None:
            return True
        # Stripe accepts a trailing wildcard: "checkout.session.*"
        return any(t == want or (want.endswith("*") and t.startswith(want[:-1]))
                   for want in types)

    created_ok = _created_filter(params["created"]) if "created" in params else (lambda c: True)
    if expand_list(params):
        raise _unexpandable(expand_list(params)[0])
    q = ctx["query"]
    limit = parse_int(q.get("limit", "10"), "limit")
    if not 1 <= limit <= 100:
        raise StripeError(400, "Invalid limit: must be between 1 and 100",
                          code="parameter_invalid_integer", param="limit")
    after, before = q.get("starting_after"), q.get("ending_before")
    if after and before:
        raise StripeError(400, "You may only specify one of these parameters: "
                          "ending_before, starting_after.", param="starting_after")
    # Cursors are positions in the whole list (newest first), whatever the filters.
    rows = [e for e in reversed(fake.events) if bool(e["livemode"]) == ctx["live"]]
    cursor = after or before
    if cursor:
        ids = [e["id"] for e in rows]
        if cursor not in ids:
            raise StripeError(400, f"No such event: '{cursor}'", code="resource_missing",
                              param="starting_after" if after else "ending_before")
        i = ids.index(cursor)
        rows = rows[i + 1:] if after else rows[:i]
    rows = [e for e in rows if type_ok(e["type"]) and created_ok(e["created"])]
    if before:
        page, has_more = rows[-limit:], len(rows) > limit
    else:
        page, has_more = rows[:limit], len(rows) > limit
    return {"object": "list", "data": copy.deepcopy(page), "has_more": has_more,
            "url": "/v1/events"}


def h_get_event(ctx: Ctx, eid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    if expand_list(ctx["params"]):
        raise _unexpandable(expand_list(ctx["params"])[0])
    found = next((e for e in fake.events if e["id"] == eid), None)
    return copy.deepcopy(fake.visible(found, "event", eid, ctx["live"]))


_ID = r"([^/]+)"
ROUTES: list[tuple[str, re.Pattern, Handler]] = [
    ("GET", re.compile(r"^/v1/checkout/sessions$"), h_list_sessions),
    ("GET", re.compile(rf"^/v1/checkout/sessions/{_ID}$"), h_get_session),
    ("GET", re.compile(rf"^/v1/checkout/sessions/{_ID}/line_items$"), h_session_line_items),
    ("POST", re.compile(r"^/v1/payment_links$"), h_create_payment_link),
    ("GET", re.compile(rf"^/v1/payment_links/{_ID}$"), h_get_payment_link),
    ("POST", re.compile(rf"^/v1/payment_links/{_ID}$"), h_update_payment_link),
    ("GET", re.compile(rf"^/v1/payment_links/{_ID}/line_items$"), h_payment_link_line_items),
    ("GET", re.compile(rf"^/v1/payment_intents/{_ID}$"), h_get_payment_intent),
    ("POST", re.compile(r"^/v1/refunds$"), h_create_refund),
    ("GET", re.compile(r"^/v1/refunds$"), h_list_refunds),
    ("GET", re.compile(rf"^/v1/refunds/{_ID}$"), h_get_refund),
    ("GET", re.compile(rf"^/v1/products/{_ID}$"), h_get_product),
    ("GET", re.compile(rf"^/v1/prices/{_ID}$"), h_get_price),
    ("GET", re.compile(r"^/v1/events$"), h_list_events),
    ("GET", re.compile(rf"^/v1/events/{_ID}$"), h_get_event),
]


# --------------------------------------------------------------------------- app


def _json(body: Any, status: int = 200, headers: Optional[dict[str, str]] = None) -> Response:
    resp = Response(json.dumps(body, indent=2) + "\n", status=status,
                    mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _auth(header: Optional[str]) -> tuple[Optional[bool], Optional[StripeError]]:
    """-> (live?, error).  Never keep or echo the key."""
    if not header:
        return None, StripeError(
            401, "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details.")
    m = re.match(r"^Bearer (?:sk|rk)_(test|live)_\S+$", header.strip())
    if not m:
        return None, StripeError(401, "Invalid API Key provided.")
    return m.group(1) == "live", None


def _fault_error(status: int) -> StripeError:
    if status == 429:
        return StripeError(429, "Request rate limit exceeded. Learn more about rate limits "
                           "here https://stripe.com/docs/rate-limits.", code="rate_limit")
    if status == 409:
        return StripeError(409, "This object cannot be accessed right now because another API "
                           "request or Stripe process is currently accessing it.",
                           code="lock_timeout")
    return StripeError(status, "An unknown error occurred", type_="api_error")


def create_app(fixtures_path: str, event_sink: Optional[str] = None,
               event_sink_timeout: float = DEFAULT_SINK_TIMEOUT_S) -> Flask:
    fake = FakeStripe(fixtures_path)
    if event_sink is not None and not _http_url(event_sink):
        raise ValueError(f"event sink must be an http(s) URL: {event_sink!r}")
    fake.event_sink, fake.event_sink_timeout = event_sink, event_sink_timeout
    app = Flask("fake_stripe")
    app.config["FAKE_STRIPE"] = fake

    def record(entry: dict) -> None:
        fake.seq += 1
        entry["seq"] = fake.seq
        fake.requests.append(entry)

    @app.route("/v1/<path:_rest>", methods=["GET", "POST", "DELETE"])
    def v1(_rest: str) -> Response:
        path = request.path
        query = {k: v[-1] for k, v in request.args.lists()}
        form = {k: v[-1] for k, v in request.form.lists()}
        idem = request.headers.get("Idempotency-Key")
        live, auth_err = _auth(request.headers.get("Authorization"))
        entry: dict[str, Any] = {
            "method": request.method, "path": path, "query": query, "form": form,
            "idempotency_key": idem, "status": None, "replayed": False, "time": time.time(),
            "auth": "ok" if auth_err is None else
                    ("missing" if not request.headers.get("Authorization") else "invalid"),
            "stripe_version": request.headers.get("Stripe-Version"),
        }
        req_id = gen_id("req_", 14)
        with fake.lock:
            resp = _handle_v1(fake, entry, live, auth_err, req_id)
            entry["status"] = resp.status_code
            record(entry)
        return resp

    @app.errorhandler(StripeError)
    def _stripe_error(e: StripeError) -> Response:  # pragma: no cover - defensive
        return _json(e.body(), e.status, e.headers)

    # ------------------------------------------------------------ test control API

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
        fault = {"method": (b.get("method") or "").upper() or None, "path_regex": rx.pattern,
                 "status": status, "count": count, "retry_after": b.get("retry_after"),
                 "should_retry": b.get("should_retry", True)}
        fake.faults.append(fault)
        return {"fault": dict(fault), "pending": len(fake.faults)}

    @app.get("/_test/state")
    @test_api
    def _test_state(_b: dict) -> dict:
        return copy.deepcopy({
            "refunds": fake.refunds, "payment_links": fake.payment_links,
            "payment_intents": fake.payment_intents, "checkout_sessions": fake.checkout_sessions,
            "products": fake.products, "prices": fake.prices,
            "refunded": fake.refunded,
            "faults": [f for f in fake.faults if f["count"] > 0],
            "events": fake.events, "event_sink": fake.event_sink,
            "event_deliveries": fake.event_deliveries,
        })

    @app.post("/_test/event_sink")
    @test_api
    def _test_event_sink(b: dict) -> dict:
        """``{"url": "http://127.0.0.1:PORT/_invoke" | null, "timeout": seconds?}``"""
        if "url" not in b:
            raise TestApiError('give "url" (null disables the sink)')
        url = b["url"]
        if url is not None and not _http_url(url):
            raise TestApiError("url must be an http(s) URL or null")
        timeout = b.get("timeout", fake.event_sink_timeout)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise TestApiError("timeout must be a positive number of seconds")
        fake.event_sink, fake.event_sink_timeout = url, float(timeout)
        return {"url": fake.event_sink, "timeout": fake.event_sink_timeout}

    @app.get("/_test/event_sink")
    @test_api
    def _test_get_event_sink(_b: dict) -> dict:
        return {"url": fake.event_sink, "timeout": fake.event_sink_timeout}

    @app.get("/pay/<lid>")
    def pay_page(lid: str) -> Response:
        back = _safe_return(request.args.get("return"))
        with fake.lock:
            pl = fake.payment_links.get(lid)
            if pl is None:
                return _not_found_page(back)
            sid = request.args.get("session")
            s = fake.checkout_sessions.get(sid) if sid else None
            if not (s and s["payment_link"] == lid and s["status"] == "open"):
                if not pl["active"]:
                    return _inactive_page(pl, back)
                s = _open_session(fake, pl)
            view = _checkout_view(fake, pl, s)
        return _pay_form_page(view, back)

    @app.post("/pay/<lid>")
    def pay_submit(lid: str) -> Response:
        back = _safe_return(request.form.get("return") or request.args.get("return"))
        sid = request.form.get("session") or None
        envelope = None
        with fake.lock:
            pl = fake.payment_links.get(lid)
            if pl is None:
                return _not_found_page(back)
            s = fake.checkout_sessions.get(sid) if sid else None
            if sid and (s is None or s["payment_link"] != lid):
                return _page("Unknown checkout", "<h1>Unknown checkout session</h1>"
                             f"<p>No open checkout {html.escape(sid)} for this link.</p>"
                             + _back_link(back), 400)
            if s is None or s["status"] != "complete":
                if s is None:
                    if not pl["active"]:
                        return _inactive_page(pl, back)
                    s = _open_session(fake, pl)
                fake.complete_checkout_session(s["id"])
                event = fake.make_event("checkout.session.completed", s)
                if fake.event_sink:
                    sink, timeout = fake.event_sink, fake.event_sink_timeout
                    envelope = eventbridge_envelope(copy.deepcopy(event))
                else:
                    fake.event_deliveries.append({"event": event["id"], "session": s["id"],
                                                  "url": None, "ok": None})
            sid = s["id"]
        if envelope is not None:
            # Outside the lock: the function calls back into this fake (line items, refunds).
            delivery = post_event(sink, envelope, timeout)
            with fake.lock:
                delivery.update(event=envelope["detail"]["id"], session=sid, url=sink)
                fake.event_deliveries.append(delivery)
                stored = next((e for e in fake.events if e["id"] == delivery["event"]), None)
                if stored is not None and delivery["delivered"]:
                    stored["pending_webhooks"] = 0
        with fake.lock:
            s = copy.deepcopy(fake.checkout_sessions[sid])
            refunds = copy.deepcopy([r for r in fake.refunds
                                     if r["payment_intent"] == s["payment_intent"]])
            delivery = next((d for d in reversed(fake.event_deliveries)
                             if d["session"] == sid), None)
            view = _checkout_view(fake, pl, s)
        return _result_page(view, refunds, delivery, back)

    return app


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


def post_event(url: str, envelope: dict, timeout: float) -> dict:
    """POSTs the raw envelope; with the Lambda driver's /_invoke the answer comes once the
    function finished: ``{"ok": bool, "response": ..., "error": ...}``."""
    req = urllib.request.Request(url, data=json.dumps(envelope).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
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


# --------------------------------------------------------------------------- payment page

ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                "vnd", "vuv", "xaf", "xof", "xpf"}
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$",
                    "aud": "A$", "chf": "CHF ", "inr": "₹"}


def format_price(amount: int, currency: str) -> str:
    """``1200, "usd"`` -> ``$12.00``."""
    c = (currency or "").lower()
    sign, amount = ("-" if amount < 0 else ""), abs(int(amount))
    num = f"{amount:,}" if c in ZERO_DECIMAL else f"{amount // 100:,}.{amount % 100:02d}"
    sym = CURRENCY_SYMBOLS.get(c)
    return f"{sign}{sym}{num}" if sym else f"{sign}{num} {c.upper()}"


def _safe_return(url: Optional[str]) -> Optional[str]:
    return url if _http_url(url) else None


_CSS = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
body{margin:0;background:#f6f9fc;color:#1a2b3c}
main{max-width:30rem;margin:2rem auto;background:#fff;border-radius:12px;padding:1.5rem 2rem;
box-shadow:0 2px 12px rgba(50,50,93,.12)}
h1{font-size:1.35rem;margin:.2rem 0 1rem}
.item{display:flex;gap:1rem;align-items:center;margin:1rem 0}
.item img{width:96px;height:96px;border-radius:8px;background:#eef2f7;object-fit:cover}
.item h2{font-size:1.1rem;margin:0}.item p{margin:.25rem 0;color:#4a5b6c}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:1rem 0}
dt{color:#4a5b6c}dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.total{font-weight:600}
button{width:100%;font-size:1.1rem;padding:.8rem;border:0;border-radius:8px;
background:#635bff;color:#fff;cursor:pointer}
button:focus-visible,a:focus-visible{outline:3px solid #0a2540;outline-offset:2px}
.note{font-size:.85rem;color:#4a5b6c}.ok{color:#0a7c3e}.bad{color:#b3261e}
a{color:#4b45d6}
"""


def _page(title: str, body: str, status: int = 200) -> Response:
    doc = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
           f"<body><main>{body}</main></body></html>")
    resp = Response(doc, status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _back_link(back: Optional[str]) -> str:
    if not back:
        return ""
    return (f"<p><a href=\"{html.escape(back)}\" data-testid=\"back-to-store\">"
            "← Back to the store</a></p>")


def _not_found_page(back: Optional[str]) -> Response:
    return _page("Not found", "<h1>No such payment link</h1>" + _back_link(back), 404)


def _inactive_page(pl: dict, back: Optional[str]) -> Response:
    msg = pl.get("inactive_message") or "This link is no longer active."
    return _page("Link inactive",
                 "<h1>This link is no longer active</h1>"
                 f"<p data-testid=\"link-inactive\" role=\"alert\">{html.escape(msg)}</p>"
                 f"<p class=\"note\">Payment link {html.escape(pl['id'])}</p>"
                 + _back_link(back), 410)


def _open_session(fake: "FakeStripe", pl: dict) -> dict:
    """Visiting a payment link opens a Checkout Session (no PaymentIntent yet)."""
    items = [fake.make_line_item(fake.prices.get(it["price"]["id"], it["price"]), it["quantity"])
             for it in fake.payment_link_items.get(pl["id"], [])]
    if not items:
        raise StripeError(400, "payment link has no line items")
    return fake.make_checkout_session(None, items, status="open", payment_status="unpaid",
                                      payment_intent=None, payment_link=pl["id"],
                                      metadata=pl.get("metadata"), livemode=pl["livemode"])


def _checkout_view(fake: "FakeStripe", pl: dict, s: dict) -> dict:
    """Plain data for the templates (built with the lock held)."""
    lines = []
    for it in fake.session_items.get(s["id"], []):
        prod = fake.products.get(it["price"]["product"], {})
        lines.append({"name": prod.get("name") or it.get("description") or "",
                      "description": prod.get("description"),
                      "image": (prod.get("images") or [None])[0],
                      "quantity": it["quantity"],
                      "unit": format_price(it["price"]["unit_amount"], it["currency"]),
                      "amount": format_price(it["amount_total"], it["currency"])})
    store = (pl.get("metadata") or {}).get("store_id") or "Stripe (local)"
    return {"link": pl["id"], "store": store, "session": s["id"], "status": s["status"],
            "payment_intent": s.get("payment_intent"), "lines": lines,
            "total": format_price(s["amount_total"], s["currency"])}


def _lines_html(view: dict) -> str:
    out = []
    for ln in view["lines"]:
        img = (f"<img src=\"{html.escape(ln['image'])}\" alt=\"{html.escape(ln['name'])}\" "
               "width=\"96\" height=\"96\">" if ln["image"] else "")
        desc = f"<p>{html.escape(ln['description'])}</p>" if ln["description"] else ""
        out.append(
            f"<div class=\"item\">{img}<div><h2 data-testid=\"product-name\">"
            f"{html.escape(ln['name'])}</h2>{desc}</div></div>"
            "<dl>"
            f"<dt>Price</dt><dd data-testid=\"price\">{html.escape(ln['unit'])}</dd>"
            f"<dt>Quantity</dt><dd data-testid=\"quantity\">{ln['quantity']}</dd>"
            "</dl>")
    out.append(f"<dl><dt class=\"total\">Total</dt><dd class=\"total\" data-testid=\"total\">"
               f"{html.escape(view['total'])}</dd></dl>")
    return "".join(out)


def _pay_form_page(view: dict, back: Optional[str]) -> Response:
    ret = (f"<input type=\"hidden\" name=\"return\" value=\"{html.escape(back)}\">"
           if back else "")
    body = (f"{_back_link(back)}<h1>Pay {html.escape(view['store'])}</h1>"
            f"<section aria-label=\"Order summary\">{_lines_html(view)}</section>"
            f"<form method=\"post\" action=\"/pay/{html.escape(view['link'])}\">"
            f"<input type=\"hidden\" name=\"session\" value=\"{html.escape(view['session'])}\">"
            f"{ret}<p class=\"note\">Test mode: no card needed, nothing is charged.</p>"
            "<button type=\"submit\" data-testid=\"pay-button\">Pay</button></form>")
    return _page(f"Pay {view['store']}", body)


def _result_page(view: dict, refunds: list[dict], delivery: Optional[dict],
                 back: Optional[str]) -> Response:
    sid = html.escape(view["session"])
    attrs = (f"data-order-id=\"{sid}\" "
             f"data-payment-intent=\"{html.escape(view['payment_intent'] or '')}\"")
    if refunds:
        total = sum(r["amount"] for r in refunds)
        amount = format_price(total, refunds[0]["currency"])
        head = (f"<h1 class=\"bad\" data-testid=\"order-refunded\" role=\"status\" {attrs}>"
                "Sorry, it sold out while you were paying — you have been refunded in full"
                "</h1>"
                f"<p>Order {sid}: {html.escape(amount)} refunded "
                f"({html.escape(', '.join(r['id'] for r in refunds))}).</p>")
        title = "Refunded"
    elif delivery is None or delivery.get("url") is None:
        head = (f"<h1 data-testid=\"order-no-sink\" role=\"status\" {attrs}>"
                f"Payment complete — checkout session {sid}</h1>"
                "<p class=\"note\">No event destination is configured in this fake Stripe, so "
                "no event was sent and no inventory was updated.</p>")
        title = "Payment complete"
    elif delivery.get("ok"):
        head = (f"<h1 class=\"ok\" data-testid=\"order-ok\" role=\"status\" {attrs}>"
                f"Thank you — order {sid} confirmed</h1>")
        title = "Order confirmed"
    else:
        err = delivery.get("error")
        detail = json.dumps(err) if not isinstance(err, str) else err
        head = (f"<h1 data-testid=\"order-pending\" role=\"status\" {attrs}>"
                f"Payment received — order {sid} is being processed</h1>"
                f"<p class=\"note\">The event destination failed: "
                f"{html.escape(detail or 'unknown error')}</p>")
        title = "Payment received"
    body = head + f"<section aria-label=\"Order summary\">{_lines_html(view)}</section>" \
        + _back_link(back)
    return _page(title, body)


def _handle_v1(fake: FakeStripe, entry: dict, live: Optional[bool],
               auth_err: Optional[StripeError], req_id: str) -> Response:
    """Auth -> faults -> idempotency -> routing -> handler.  Called with the lock held."""
    base_headers = {"Request-Id": req_id, "Stripe-Version": entry["stripe_version"] or
                    "fake-stripe"}
    if auth_err is not None:
        return _json(auth_err.body(), auth_err.status, base_headers)
    method, path = entry["method"], entry["path"]

    for fault in fake.faults:
        if fault["count"] > 0 and (fault["method"] in (None, method)) \
                and re.search(fault["path_regex"], path):
            fault["count"] -= 1
            err = _fault_error(fault["status"])
            headers = dict(base_headers)
            if fault["should_retry"] is not None:
                headers["Stripe-Should-Retry"] = "true" if fault["should_retry"] else "false"
            if fault["retry_after"] is not None:
                headers["Retry-After"] = str(fault["retry_after"])
            fake.faults = [f for f in fake.faults if f["count"] > 0]
            return _json(err.body(), err.status, headers)

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

    status, body = _dispatch(fake, entry, live)
    headers = dict(base_headers)
    if method == "POST" and idem is not None:
        headers["Idempotency-Key"] = idem
        if _saved_for_idempotency(status, body):
            fake.idempotency[(live, idem)] = {"fingerprint": fingerprint, "status": status,
                                              "body": body, "request_id": req_id}
    return _json(body, status, headers)


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


def _dispatch(fake: FakeStripe, entry: dict, live: Optional[bool]) -> tuple[int, dict]:
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
                       "live": bool(live), "host_url": request.host_url}
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
    parser.add_argument("--verbose", action="store_true", help="log every request line")
    args = parser.parse_args(argv)

    try:
        app = create_app(args.fixtures, args.event_sink, args.event_sink_timeout)
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
