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

The test-control API (JSON, no auth, not under /v1) creates products, payment links
and completed checkout sessions, injects faults, and exposes the recorded /v1
requests and the whole state; see the ``_test_*`` handlers below.  API keys are never
logged or recorded: a recorded request only says whether auth was present and valid.

All state lives in memory behind ONE ``threading.Lock`` held for the whole handling
of a request, so concurrent requests (werkzeug ``threaded=True``) see Stripe-like
atomic behaviour, e.g. concurrent refunds of one PaymentIntent never over-refund.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import os
import re
import secrets
import signal
import string
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from flask import Flask, Response, request

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
        self.lock = threading.Lock()
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
        self.seq = 0

    # ---------------------------------------------------------------- builders

    def make_product(self, id_: Optional[str], name: str, livemode: bool = False,
                     metadata: Optional[dict] = None) -> dict:
        now = int(time.time())
        p = self.fixture("product")
        p.update(id=id_ or gen_id("prod_", 14), name=name, description=None, created=now,
                 updated=now, livemode=livemode, metadata=dict(metadata or {}),
                 default_price=None, package_dimensions=None, images=[], active=True)
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


_ID = r"([^/]+)"
ROUTES: list[tuple[str, re.Pattern, Handler]] = [
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


def create_app(fixtures_path: str) -> Flask:
    fake = FakeStripe(fixtures_path)
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
        live = bool(b.get("livemode", False))
        product = fake.make_product(b.get("id"), name, live, b.get("metadata"))
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
        currency = items[0]["currency"]
        total = sum(it["amount_total"] for it in items)
        paid = status == "paid"
        pi = fake.make_payment_intent(b.get("payment_intent"), total, currency, paid, live)
        s = fake.fixture("checkout.session")
        sid = b.get("id") or gen_id("cs_live_a1" if live else "cs_test_a1", 56)
        now = int(time.time())
        s.update(id=sid, livemode=live, created=now, expires_at=now + 24 * 3600,
                 status=b.get("status", "complete"), payment_status=status, mode="payment",
                 currency=currency, amount_subtotal=total, amount_total=total,
                 payment_intent=pi["id"], payment_link=b.get("payment_link"),
                 metadata=dict(b.get("metadata") or {}), url=None, client_secret=None,
                 shipping_cost=None, shipping_address_collection=None, shipping_options=[],
                 total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
                 currency_conversion=None, after_expiration=None, recovered_from=None,
                 invoice_creation=None, collected_information=None,
                 client_reference_id=b.get("client_reference_id"))
        fake.checkout_sessions[sid] = s
        fake.session_items[sid] = items
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
        })

    @app.get("/pay/<lid>")
    def pay_page(lid: str) -> Response:
        with fake.lock:
            pl = copy.deepcopy(fake.payment_links.get(lid))
            items = copy.deepcopy(fake.payment_link_items.get(lid, []))
        if pl is None:
            return Response("<!doctype html><title>Not found</title><p>No such payment link.</p>",
                            404, mimetype="text/html")
        what = ", ".join(f"{it['quantity']} × {html.escape(it['description'] or '')} "
                         f"({_money(it['amount_total'], it['currency'])})" for it in items)
        if not pl["active"]:
            msg = html.escape(pl.get("inactive_message") or "")
            return Response(f"<!doctype html><title>Link inactive</title>"
                            f"<h1>This link is no longer active</h1><p>{msg}</p>"
                            f"<p>Payment link {html.escape(lid)}</p>", 410, mimetype="text/html")
        return Response(f"<!doctype html><title>Pay</title><h1>Payment link "
                        f"{html.escape(lid)}</h1><p>{what}</p><p>This link is active.</p>",
                        200, mimetype="text/html")

    return app


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


def write_ready_file(path: Optional[str], port: int) -> None:
    """Atomically write the bound port (readers never see a partial file)."""
    if not path:
        return
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    sys.exit(0)


def main(argv: Optional[list[str]] = None) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    parser = argparse.ArgumentParser(description="local fake of the Stripe API (stockbridge)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--fixtures", default=str(DEFAULT_FIXTURES),
                        help="Stripe's fixtures3.json (default: %(default)s)")
    parser.add_argument("--ready-file", help="write the bound port here once listening")
    parser.add_argument("--verbose", action="store_true", help="log every request line")
    args = parser.parse_args(argv)

    app = create_app(args.fixtures)

    class Handler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            if args.verbose:  # request line only: never headers, so never the API key
                super().log_request(code, size)

    server = make_server(args.host, args.port, app, threaded=True, request_handler=Handler)
    port = server.server_port
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    print(f"fake_stripe listening on http://{args.host}:{port}", flush=True)
    write_ready_file(args.ready_file, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
