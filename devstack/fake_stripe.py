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
* ``GET  /v1/payment_intents/{id}`` (with a publishable key: ``client_secret`` required)
* ``POST /v1/payment_intents`` (``amount`` >= 1 and ``currency`` required; ``capture_method``
  automatic|automatic_async|manual, default automatic_async; ``metadata[k]``, ``description``,
  ``receipt_email``, ``payment_method_types[]``, ``automatic_payment_methods[enabled]``,
  ``payment_method`` + ``confirm``) -> ``requires_payment_method``, event
  ``payment_intent.created``
* ``POST /v1/payment_intents/{id}/confirm`` (``payment_method``: Stripe's test tokens,
  ``TEST_PAYMENT_METHODS``: ``pm_card_visa`` succeeds, ``pm_card_chargeDeclined`` /
  ``pm_card_visa_chargeDeclined`` decline).  Secret key, or a publishable key (``Bearer
  pk_test_...`` or Stripe.js's ``key`` parameter) plus the matching ``client_secret``.
  manual -> ``requires_capture`` + ``payment_intent.amount_capturable_updated``; automatic*
  -> ``succeeded`` + ``payment_intent.succeeded``; a decline -> HTTP 402 ``card_error``,
  ``requires_payment_method`` with ``last_payment_error`` + ``payment_intent.payment_failed``
* ``POST /v1/payment_intents/{id}/capture`` (``amount_to_capture`` <= amount_capturable) from
  ``requires_capture`` -> ``succeeded`` + ``payment_intent.succeeded``
* ``POST /v1/payment_intents/{id}/cancel`` (``cancellation_reason``) -> ``canceled`` +
  ``payment_intent.canceled``.  A wrong state is 400 ``payment_intent_unexpected_state``.
  Only GET-by-id and confirm accept a publishable key (else 401) and answer CORS
  (``OPTIONS`` preflights, ``Access-Control-Allow-Origin: *``); nothing else has CORS.
  ``POST /_test/payment_intents/{id}/authorize {"payment_method"?}`` confirms without a key.
* ``POST /v1/refunds``, ``GET /v1/refunds?payment_intent=``, ``GET /v1/refunds/{id}``
* ``GET  /v1/products/{id}`` (expand: default_price), ``GET /v1/prices/{id}`` (expand: product)
* ``POST /v1/products`` (``id`` -- an existing one is 400 ``resource_already_exists``;
  ``name`` required; ``description``, ``images[]`` (at most 8), ``active``, ``metadata[k]``,
  ``url``, ``default_price_data[currency|unit_amount]``, ...), ``POST /v1/products/{id}``
  (``name``, ``description`` / ``url`` ("" -> null), ``images[]`` (``images=`` clears),
  ``active``, ``metadata`` ("" deletes a key), ``default_price`` (a price of this product;
  "" unsets)); a change bumps ``updated``, a no-op changes nothing and emits nothing
* ``POST /v1/prices`` (``product``, ``unit_amount`` >= 0, ``currency`` required; ``active``,
  ``metadata``, ``nickname``, ``lookup_key``, ``tax_behavior``; does not set the product's
  default price), ``POST /v1/prices/{id}`` (``active``, ``metadata``, ``nickname``,
  ``lookup_key``, ``tax_behavior`` only: ``unit_amount`` / ``currency`` / ``product`` are 400
  ``parameter_unknown``, prices are immutable; archiving a product's default price is 400
  "This price cannot be archived because it is the default price of its product.")
* ``GET /v1/products`` (active, ids[], created, shippable, url; expand data.default_price),
  ``GET /v1/prices`` (product, active, currency, type, lookup_keys[], created; expand
  data.product), ``GET /v1/payment_links`` (active; expand data.line_items): newest first,
  limit 1..100 (default 10), starting_after / ending_before.  A page costs O(limit), not
  O(objects): creation order is kept as a list plus an id -> position dict.
* ``GET  /v1/events`` (limit, starting_after, ending_before, ``type``, ``types[]``,
  ``created`` / ``created[gte|gt|lte|lt]``; newest first), ``GET /v1/events/{id}``

A repeated ``name[]`` parameter (``ids[]=a&ids[]=b``) keeps every value (as ``name[0]``,
``name[1]``, ...); otherwise the last value of a parameter wins.

CATALOG EVENTS
--------------
Every create / update through /v1 of a product, price or payment link (and every Dashboard
edit, ``POST /_test/dashboard/{products|prices|payment_links}/{id}`` with a JSON body of field
changes, which leaves no API request in the log) stores a ``product.created``,
``product.updated``, ``price.created``, ``price.updated``, ``payment_link.created`` or
``payment_link.updated`` event (``data.object`` = the object after the change; for
``*.updated`` ``data.previous_attributes`` = the old values of the changed fields, for
``metadata`` only the changed keys, null for an added key; ``request`` = the API request id and
its Idempotency-Key, both null for a Dashboard edit).  When a *catalog event sink* is set
(``--catalog-event-sink URL`` or ``POST /_test/catalog_event_sink {"url": ...|null}``; it
survives ``/_test/reset``) the event's EventBridge envelope (same shape as for checkout
events) is POSTed there after the response, in order, by one background thread, best effort:
a failure is logged on stderr and counted (``GET /_test/catalog_event_sink`` -> ``{"url",
"pending", "delivered", "failed", "failures"}``), never retried.  Checkout and payment_intent events go only
to the event sink below, catalog events only to the catalog sink.

RATE LIMIT AND BULK SEEDING
---------------------------
``POST /_test/rate_limit {"per_second": R, "burst": B, "retry_after": S?}`` (``{}`` disables;
off by default; Stripe's test mode allows 25 requests/s) is a token bucket over every /v1
request, checked before the faults and the idempotency layer: an empty bucket answers the
429 ``rate_limit`` error of the 429 fault (``Retry-After`` only when ``retry_after`` is set).
``GET /_test/rate_limit`` -> ``{"per_second", "burst", "retry_after", "allowed",
"rejected"}``; ``/_test/state`` has ``rate_limited`` (the 429s it gave).  The limit is
configuration (kept by ``/_test/reset``), its counters are state.
``POST /_test/products/bulk {"count": N, "prefix": "bench", "unit_amount": 1000, "currency":
"usd", "metadata": {}}`` creates N products ``prod_<prefix><n>`` each with one active default
price ``price_<prefix><n>``, without events or request log (100,000 in about a second).
``GET /_test/state?summary=1`` answers only the counts and settings.

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
``payment_intent.*`` events (from the /v1 calls above) go to the same sink as the same
envelopes, but in the background, one at a time and in order (like Stripe's webhooks, the API
call that caused one never waits for the function): ``GET /_test/event_sink`` -> ``{"url",
"timeout", "pending", "delivered", "failed", "failures"}`` (wait for ``pending`` 0); each
attempt is appended to ``event_deliveries`` (``type``, ``payment_intent``, ``ok``, ...) and a
delivered event gets ``pending_webhooks`` 0.

Stripe behaviour kept on purpose: Bearer-key auth (401 otherwise), test/live data
separation (an ``sk_test_`` key cannot see ``livemode: true`` objects: 404),
form-encoded bodies only, unknown parameters rejected (400 ``parameter_unknown``),
Stripe's error JSON ``{"error": {"type", "code", "message", "param", "doc_url"}}``,
``Request-Id`` on every response, and ``Idempotency-Key`` on every POST: the first
result (success or error) is stored and replayed with ``Idempotent-Replayed: true``;
the same key with other parameters, or on another endpoint, is a 400
``idempotency_error``.  Injected faults (``/_test/faults``) happen *before* the
idempotency layer, like Stripe's rate limiter, so a retry with the same key after a
faulted 429/5xx runs the request for real (a 400 stands for a refusal by Stripe's own
validation, ``invalid_request_error``).  A fault ``{"status", "path_regex"?, "method"?,
"count"?, "skip"?, "retry_after"?, "should_retry"?, "after"?}`` lets its first ``skip``
(default 0) matching requests pass untouched, then fails the next ``count`` (default 1) matching
ones (e.g. ``skip: 1`` fails page 2 of a listing, not page 1); ``POST /_test/faults/clear``
drops the pending ones.  With ``after: true`` the request
is done first (its idempotent result saved) and only its answer replaced by the fault, as when
Stripe did the work and the connection failed.

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

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURES = REPO_ROOT / "testdata" / "stripe" / "fixtures3.json"

_BASE62 = string.digits + string.ascii_letters
_DOCS = "https://stripe.com/docs/error-codes/"
FAULT_STATUSES = {400, 409, 429, 500, 502, 503, 504}
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
PAYMENT_INTENT_CREATE_PARAMS = {
    "amount", "currency", "capture_method", "metadata", "description", "receipt_email",
    "payment_method_types", "automatic_payment_methods", "payment_method", "confirm",
    "expand", "customer", "setup_future_usage", "statement_descriptor",
    "statement_descriptor_suffix", "shipping", "payment_method_options", "transfer_group",
    "confirmation_method", "return_url", "off_session", "error_on_requires_action",
    "use_stripe_sdk",
}
PAYMENT_INTENT_CONFIRM_PARAMS = {
    "payment_method", "client_secret", "capture_method", "receipt_email", "return_url",
    "expand", "payment_method_options", "payment_method_types", "setup_future_usage",
    "shipping", "error_on_requires_action", "mandate_data", "off_session", "use_stripe_sdk",
    "expected_payment_method_type", "payment_method_data",
}
PAYMENT_INTENT_CAPTURE_PARAMS = {
    "amount_to_capture", "expand", "metadata", "application_fee_amount", "final_capture",
    "statement_descriptor", "statement_descriptor_suffix", "transfer_data",
}
PAYMENT_INTENT_CANCEL_PARAMS = {"cancellation_reason", "expand"}
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing")
# Stripe's test PaymentMethods: token -> None (the charge succeeds) or (decline_code, code,
# message) of the card error it gets.
TEST_PAYMENT_METHODS: dict[str, Optional[tuple[str, str, str]]] = {
    "pm_card_visa": None,
    "pm_card_visa_debit": None,
    "pm_card_mastercard": None,
    "pm_card_amex": None,
    "pm_card_chargeDeclined": ("generic_decline", "card_declined", "Your card was declined."),
    "pm_card_visa_chargeDeclined": ("generic_decline", "card_declined",
                                    "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "insufficient_funds", "card_declined", "Your card has insufficient funds."),
    "pm_card_visa_chargeDeclinedInsufficientFunds": (
        "insufficient_funds", "card_declined", "Your card has insufficient funds."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card",
                                          "Your card has expired."),
}
PAYMENT_INTENT_EVENT_TYPES = (
    "payment_intent.created", "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled")
EVENT_API_VERSION = "2026-09-30.endive"
EVENT_SOURCE = "aws.partner/stripe.com/ed_test_local"
EVENT_ACCOUNT = "000000000000"
EVENT_REGION = "us-east-1"
DEFAULT_SINK_TIMEOUT_S = 120.0
CATALOG_SINK_TIMEOUT_S = 10.0
CATALOG_EVENT_TYPES = ("product.created", "product.updated", "price.created", "price.updated",
                       "payment_link.created", "payment_link.updated")
PRODUCT_CREATE_PARAMS = {
    "id", "name", "active", "description", "images", "metadata", "url", "default_price_data",
    "marketing_features", "package_dimensions", "shippable", "statement_descriptor",
    "tax_code", "unit_label", "expand",
}
PRODUCT_UPDATE_PARAMS = (PRODUCT_CREATE_PARAMS - {"id", "default_price_data"}) | {
    "default_price"}
PRODUCT_LIST_PARAMS = {"limit", "starting_after", "ending_before", "expand", "active", "ids",
                       "created", "shippable", "url"}
PRICE_CREATE_PARAMS = {
    "currency", "product", "unit_amount", "active", "metadata", "nickname", "billing_scheme",
    "currency_options", "lookup_key", "tax_behavior", "transfer_lookup_key", "expand",
}
PRICE_UPDATE_PARAMS = {"active", "metadata", "nickname", "currency_options", "lookup_key",
                       "tax_behavior", "transfer_lookup_key", "expand"}
PRICE_LIST_PARAMS = {"limit", "starting_after", "ending_before", "expand", "active", "currency",
                     "product", "created", "type", "lookup_keys"}
PAYMENT_LINK_LIST_PARAMS = {"limit", "starting_after", "ending_before", "expand", "active"}
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
                 headers: Optional[dict[str, str]] = None,
                 extra: Optional[dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status, message, type_, code, param)
        self.headers = headers or {}
        self.extra = extra or {}  # e.g. a card error's decline_code, charge, payment_intent

    def body(self) -> dict:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = _DOCS + self.code.replace("_", "-")
        if self.param:
            err["param"] = self.param
        err.update(copy.deepcopy(self.extra))
        return {"error": err}


class TestApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Ordered:
    """Creation order of one kind of object: a list plus an id -> position dict, so a list
    page (newest first, from any cursor) costs O(page size), not O(number of objects)."""

    __slots__ = ("ids", "pos")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}

    def add(self, id_: str) -> None:
        if id_ not in self.pos:
            self.pos[id_] = len(self.ids)
            self.ids.append(id_)

    def __len__(self) -> int:
        return len(self.ids)


class TokenBucket:
    """Stripe's rate limiter, roughly: ``per_second`` tokens a second, at most ``burst``."""

    def __init__(self, per_second: float, burst: int, retry_after: Optional[float]) -> None:
        self.per_second, self.burst, self.retry_after = per_second, burst, retry_after
        self.tokens = float(burst)
        self.last = time.monotonic()
        self.allowed = 0
        self.rejected = 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.per_second)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.allowed += 1
            return True
        self.rejected += 1
        return False

    def describe(self) -> dict:
        return {"per_second": self.per_second, "burst": self.burst,
                "retry_after": self.retry_after, "allowed": self.allowed,
                "rejected": self.rejected}


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
                result = post_event(url, envelope, timeout)
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


def check_metadata(md: dict[str, str]) -> dict[str, str]:
    """Stripe's metadata limits: 50 keys, keys up to 40 characters without square brackets,
    values up to 500 characters."""
    if len(md) > 50:
        raise StripeError(400, "Invalid metadata: metadata can have at most 50 keys.",
                          param="metadata")
    for k, v in md.items():
        if len(k) > 40 or "[" in k or "]" in k:
            raise StripeError(400, f"Invalid metadata key {k!r}: keys must be at most 40 "
                              "characters and may not contain square brackets.",
                              param=f"metadata[{k}]")
        if len(v) > 500:
            raise StripeError(400, f"Invalid metadata value for {k!r}: values must be at most "
                              "500 characters.", param=f"metadata[{k}]")
    return md


def parse_limit(query: dict[str, Any]) -> int:
    limit = parse_int(query.get("limit", "10"), "limit")
    if not 1 <= limit <= 100:
        raise StripeError(400, "Invalid limit: must be between 1 and 100",
                          code="parameter_invalid_integer", param="limit")
    return limit


def parse_cursors(query: dict[str, Any]) -> tuple[Optional[str], Optional[str]]:
    after, before = query.get("starting_after"), query.get("ending_before")
    if after and before:
        raise StripeError(400, "You may only specify one of these parameters: "
                          "ending_before, starting_after.", param="starting_after")
    return after or None, before or None


def list_param(params: dict[str, Any], name: str) -> list[str]:
    """``ids[0]=a&ids[1]=b`` / ``ids[]=a`` -> ["a", "b"]."""
    v = params.get(name)
    if v is None:
        return []
    if isinstance(v, str):
        v = [v]
    if isinstance(v, dict):
        v = list(v.values())
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise StripeError(400, "Invalid array", param=name)
    return v


def diff_attributes(old: dict, new: dict) -> dict:
    """Stripe's ``data.previous_attributes``: the old values of the fields that changed; for
    ``metadata``, only the changed keys (null for a key that was added)."""
    prev: dict[str, Any] = {}
    for k, v in new.items():
        before = old.get(k)
        if before == v:
            continue
        if k == "metadata" and isinstance(before, dict) and isinstance(v, dict):
            prev[k] = {mk: before.get(mk) for mk in sorted(set(before) | set(v))
                       if before.get(mk) != v.get(mk)}
        else:
            prev[k] = copy.deepcopy(before)
    return prev


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
        self.catalog_event_sink: Optional[str] = None
        self.catalog_outbox = CatalogOutbox()
        # payment_intent.* events go to the event sink asynchronously (like Stripe's webhooks:
        # the API call that caused them never waits for the function that handles them).
        self.event_outbox = Outbox(lambda: self.event_sink_timeout, "payment",
                                   self._payment_event_delivered)
        self.rate_limit: Optional[TokenBucket] = None
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
        updated["metadata"] = check_metadata(apply_metadata(updated["metadata"],
                                                            params["metadata"]))
    previous = diff_attributes(pl, updated)
    fake.payment_links[lid] = updated
    if previous:
        fake.catalog_event("payment_link.updated", updated, previous, ctx.get("req"))
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
        if not price["active"]:
            raise StripeError(400, "The price specified is inactive. This field only accepts "
                              "active prices.", param=f"line_items[{i}][price]")
        qty = parse_int(line["quantity"], f"line_items[{i}][quantity]", minimum=1)
        items.append(fake.make_line_item(price, qty))
    if len({it["currency"] for it in items}) > 1:
        raise StripeError(400, "All prices must have the same currency.", param="line_items")
    metadata = check_metadata(apply_metadata({}, params["metadata"])) \
        if "metadata" in params else {}
    pl = fake.make_payment_link(None, items, ctx["host_url"], metadata=metadata,
                                livemode=ctx["live"])
    fake.catalog_event("payment_link.created", pl, None, ctx.get("req"))
    return copy.deepcopy(pl)


def h_get_payment_intent(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    check_params(ctx["params"], {"expand", "client_secret"})
    if expand_list(ctx["params"]):
        raise _unexpandable(expand_list(ctx["params"])[0])
    pi = fake.visible(fake.payment_intents.get(pid), "payment_intent", pid, ctx["live"])
    _check_client_secret(ctx, pi)
    return copy.deepcopy(pi)


def _check_client_secret(ctx: Ctx, pi: dict) -> None:
    """With a publishable key (Stripe.js) the PaymentIntent's ``client_secret`` must be
    given and match; with a secret key it is optional, but checked when given."""
    given = ctx["params"].get("client_secret")
    if given is None:
        if ctx.get("publishable"):
            raise StripeError(400, "Missing required param: client_secret.",
                              code="parameter_missing", param="client_secret")
        return
    if given != pi.get("client_secret"):
        raise StripeError(400, "The client_secret provided does not match the client_secret "
                          "associated with the PaymentIntent.", param="client_secret")


def _no_expand(params: dict) -> None:
    if expand_list(params):
        raise _unexpandable(expand_list(params)[0])


def _unexpected_state(pi: dict, action: str, allowed: tuple[str, ...]) -> StripeError:
    return StripeError(400, f"This PaymentIntent could not be {action} because it has a status "
                       f"of {pi['status']}. Only a PaymentIntent with one of the following "
                       f"statuses may be {action}: {', '.join(allowed)}.",
                       code="payment_intent_unexpected_state")


def _capture_method(params: dict) -> Optional[str]:
    cm = params.get("capture_method")
    if cm is None:
        return None
    if cm not in CAPTURE_METHODS:
        raise StripeError(400, f"Invalid capture_method: must be one of "
                          f"{', '.join(CAPTURE_METHODS[:-1])}, or {CAPTURE_METHODS[-1]}",
                          code="parameter_invalid_string", param="capture_method")
    return cm


def _test_payment_method(pm: Any) -> str:
    if not isinstance(pm, str) or not pm:
        raise StripeError(400, "Invalid string: payment_method", param="payment_method")
    if pm not in TEST_PAYMENT_METHODS:
        raise StripeError(400, f"No such PaymentMethod: '{pm}'", code="resource_missing",
                          param="payment_method")
    return pm


def h_create_payment_intent(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PAYMENT_INTENT_CREATE_PARAMS)
    _no_expand(params)
    amount = parse_int(_required(params, "amount"), "amount", minimum=1)
    currency = _required(params, "currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise StripeError(400, f"Invalid currency: {currency}", param="currency")
    capture_method = _capture_method(params) or "automatic_async"
    metadata = check_metadata(apply_metadata({}, params["metadata"])) \
        if "metadata" in params else {}
    description = _string(params, "description", 1000) or None \
        if "description" in params else None
    receipt_email = _string(params, "receipt_email", 800) or None \
        if "receipt_email" in params else None
    if receipt_email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+",
                                                      receipt_email):
        raise StripeError(400, f"Invalid email address: {receipt_email}",
                          code="email_invalid", param="receipt_email")
    types = list_param(params, "payment_method_types") \
        if "payment_method_types" in params else None
    if types is not None and not types:
        raise _cannot_unset("payment_method_types")
    apm = params.get("automatic_payment_methods")
    apm_enabled = True
    if apm is not None:
        if not isinstance(apm, dict) or "enabled" not in apm:
            raise StripeError(400, "Missing required param: automatic_payment_methods[enabled].",
                              code="parameter_missing",
                              param="automatic_payment_methods[enabled]")
        apm_enabled = parse_bool(apm["enabled"], "automatic_payment_methods[enabled]")
    if types is not None and apm is not None and apm_enabled:
        raise StripeError(400, "You may only specify one of these parameters: "
                          "automatic_payment_methods, payment_method_types.",
                          param="automatic_payment_methods")
    pm = _test_payment_method(params["payment_method"]) if "payment_method" in params else None
    confirm = parse_bool(params["confirm"], "confirm") if "confirm" in params else False
    if confirm and pm is None:
        raise StripeError(400, "You cannot confirm this PaymentIntent because it's missing a "
                          "payment method. You can either update the PaymentIntent with a "
                          "payment method and then confirm it again, or confirm it again "
                          "directly with a payment method.",
                          code="payment_intent_unexpected_state")
    pi = fake.new_payment_intent(amount, currency.lower(), ctx["live"],
                                 capture_method=capture_method, metadata=metadata,
                                 description=description, receipt_email=receipt_email,
                                 payment_method_types=types,
                                 automatic_payment_methods=apm_enabled)
    if pm is not None and not confirm:
        pi.update(status="requires_confirmation", payment_method=gen_id("pm_"))
    fake.payment_event("payment_intent.created", pi, ctx.get("req"))
    if confirm:
        assert pm is not None
        err = fake.confirm_payment_intent(pi, pm, ctx.get("req"))
        if err is not None:
            raise err
    return copy.deepcopy(pi)


def h_confirm_payment_intent(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PAYMENT_INTENT_CONFIRM_PARAMS)
    _no_expand(params)
    pi = fake.visible(fake.payment_intents.get(pid), "payment_intent", pid, ctx["live"])
    _check_client_secret(ctx, pi)
    if pi["status"] not in CONFIRMABLE:
        raise _unexpected_state(pi, "confirmed", CONFIRMABLE)
    capture_method = _capture_method(params)
    if "payment_method" in params:
        pm = _test_payment_method(params["payment_method"])
    elif pi["status"] == "requires_confirmation" and pi.get("payment_method"):
        pm = "pm_card_visa"  # attached at creation (only test tokens are accepted there)
    else:
        raise StripeError(400, "You cannot confirm this PaymentIntent because it's missing a "
                          "payment method. You can either update the PaymentIntent with a "
                          "payment method and then confirm it again, or confirm it again "
                          "directly with a payment method.",
                          code="payment_intent_unexpected_state")
    if "receipt_email" in params:
        pi["receipt_email"] = _string(params, "receipt_email", 800) or None
    if capture_method is not None:
        pi["capture_method"] = capture_method
    err = fake.confirm_payment_intent(pi, pm, ctx.get("req"))
    if err is not None:
        raise err
    return copy.deepcopy(pi)


def h_capture_payment_intent(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PAYMENT_INTENT_CAPTURE_PARAMS)
    _no_expand(params)
    pi = fake.visible(fake.payment_intents.get(pid), "payment_intent", pid, ctx["live"])
    if pi["status"] != "requires_capture":
        raise _unexpected_state(pi, "captured", ("requires_capture",))
    amount = pi["amount_capturable"]
    if "amount_to_capture" in params:
        amount = parse_int(params["amount_to_capture"], "amount_to_capture", minimum=1)
        if amount > pi["amount_capturable"]:
            raise StripeError(400, f"The amount to capture ({amount}) must be less than or "
                              f"equal to the amount capturable ({pi['amount_capturable']}).",
                              code="amount_too_large", param="amount_to_capture")
    if "metadata" in params:
        pi["metadata"] = check_metadata(apply_metadata(pi["metadata"], params["metadata"]))
    pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
    fake.payment_event("payment_intent.succeeded", pi, ctx.get("req"))
    return copy.deepcopy(pi)


def h_cancel_payment_intent(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PAYMENT_INTENT_CANCEL_PARAMS)
    _no_expand(params)
    reason = params.get("cancellation_reason")
    if reason is not None and reason not in CANCELLATION_REASONS:
        raise StripeError(400, "Invalid cancellation_reason: must be one of "
                          f"{', '.join(CANCELLATION_REASONS[:-1])}, or "
                          f"{CANCELLATION_REASONS[-1]}",
                          code="parameter_invalid_string", param="cancellation_reason")
    pi = fake.visible(fake.payment_intents.get(pid), "payment_intent", pid, ctx["live"])
    if pi["status"] not in CANCELABLE:
        raise _unexpected_state(pi, "canceled", CANCELABLE)
    pi.update(status="canceled", canceled_at=int(time.time()), cancellation_reason=reason,
              amount_capturable=0, next_action=None, processing=None)
    fake.payment_event("payment_intent.canceled", pi, ctx.get("req"))
    return copy.deepcopy(pi)


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
    prod = copy.deepcopy(fake.visible(fake.products.get(pid), "product", pid, ctx["live"]))
    for path in expand_list(ctx["params"]):
        if path == "default_price":
            _expand_default_price(fake, prod)
        else:
            raise _unexpandable(path)
    return prod


def _expand_default_price(fake: FakeStripe, prod: dict) -> None:
    dp = prod.get("default_price")
    if isinstance(dp, str) and dp in fake.prices:
        prod["default_price"] = copy.deepcopy(fake.prices[dp])


def _referenced(fake: FakeStripe, obj: Optional[dict], kind: str, id_: Any, live: bool,
                param: str) -> dict:
    """An object named by a parameter: Stripe answers 400 (not 404) when it does not exist."""
    if not isinstance(id_, str) or not id_:
        raise StripeError(400, f"Invalid {param}", param=param)
    try:
        return fake.visible(obj, kind, id_, live, param)
    except StripeError as e:
        e.status = 400
        raise


def _required(params: dict, name: str) -> Any:
    if name not in params or params[name] in ("", None):
        raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing",
                          param=name)
    return params[name]


def _string(params: dict, name: str, max_len: int = 5000) -> str:
    v = params[name]
    if not isinstance(v, str):
        raise StripeError(400, f"Invalid string: {name}", param=name)
    if len(v) > max_len:
        raise StripeError(400, f"{name} must be at most {max_len} characters", param=name)
    return v


def _cannot_unset(name: str) -> StripeError:
    return StripeError(400, f"You passed an empty string for '{name}'. We assume empty values "
                       "are an attempt to unset a parameter; however '{name}' cannot be unset. "
                       f"You should remove '{name}' from your request or supply a non-empty "
                       "value.", code="parameter_invalid_empty", param=name)


def _product_changes(fake: FakeStripe, params: dict, current: Optional[dict],
                     live: bool) -> dict:
    """Form parameters of product create/update -> {field: new value}.  Validates everything
    before anything changes.  ``current`` is None on create."""
    ch: dict[str, Any] = {}
    if "name" in params:
        name = _string(params, "name", 5000)
        if not name:
            raise _cannot_unset("name")
        ch["name"] = name
    for field in ("description", "url", "statement_descriptor", "unit_label", "tax_code"):
        if field in params:
            ch[field] = _string(params, field, 40000 if field == "description" else 5000) \
                or None
    if "images" in params:
        images = params["images"]
        if images == "":
            images = []
        elif isinstance(images, dict):
            images = list(images.values())
        if not isinstance(images, list) or not all(isinstance(u, str) and u for u in images):
            raise StripeError(400, "Invalid array", param="images")
        if len(images) > 8:
            raise StripeError(400, "images: at most 8 images per product", param="images")
        ch["images"] = images
    if "active" in params:
        ch["active"] = parse_bool(params["active"], "active")
    if "shippable" in params:
        ch["shippable"] = parse_bool(params["shippable"], "shippable")
    if "metadata" in params:
        ch["metadata"] = check_metadata(apply_metadata(
            (current or {}).get("metadata") or {}, params["metadata"]))
    if "default_price" in params:
        dp = params["default_price"]
        if dp == "":
            ch["default_price"] = None
        else:
            price = _referenced(fake, fake.prices.get(dp), "price", dp, live, "default_price")
            if current is None or price["product"] != current["id"]:
                raise StripeError(400, f"The price {dp} does not belong to this product.",
                                  param="default_price")
            ch["default_price"] = dp
    return ch


def update_product(fake: FakeStripe, pid: str, changes: dict, req: Optional[dict]) -> dict:
    """Applies validated changes; a change (not a no-op) bumps ``updated`` and emits
    ``product.updated`` with ``previous_attributes``."""
    old = fake.products[pid]
    new = copy.deepcopy(old)
    new.update(changes)
    previous = diff_attributes(old, new)
    if previous:
        now = int(time.time())
        if now != old.get("updated"):
            previous["updated"] = old.get("updated")
            new["updated"] = now
        fake.products[pid] = new
        fake.catalog_event("product.updated", new, previous, req)
    return new


def _price_changes(params: dict, current: Optional[dict]) -> dict:
    ch: dict[str, Any] = {}
    if "active" in params:
        ch["active"] = parse_bool(params["active"], "active")
    for field in ("nickname", "lookup_key"):
        if field in params:
            ch[field] = _string(params, field, 200 if field == "lookup_key" else 5000) or None
    if "tax_behavior" in params:
        tb = params["tax_behavior"]
        if tb not in ("inclusive", "exclusive", "unspecified"):
            raise StripeError(400, "Invalid tax_behavior: must be one of exclusive, inclusive, "
                              "or unspecified", param="tax_behavior")
        ch["tax_behavior"] = tb
    if "metadata" in params:
        ch["metadata"] = check_metadata(apply_metadata(
            (current or {}).get("metadata") or {}, params["metadata"]))
    return ch


def update_price(fake: FakeStripe, pid: str, changes: dict, req: Optional[dict]) -> dict:
    old = fake.prices[pid]
    if changes.get("active") is False and old["active"]:
        prod = fake.products.get(old["product"])
        if prod is not None and prod.get("default_price") == pid:
            raise StripeError(400, "This price cannot be archived because it is the default "
                              "price of its product.", param="active")
    new = copy.deepcopy(old)
    new.update(changes)
    previous = diff_attributes(old, new)
    if previous:
        fake.prices[pid] = new
        fake.catalog_event("price.updated", new, previous, req)
    return new


def _payment_link_changes(params: dict) -> dict:
    ch: dict[str, Any] = {}
    if "active" in params:
        ch["active"] = parse_bool(params["active"], "active")
    if "inactive_message" in params:
        ch["inactive_message"] = _string(params, "inactive_message", 500) or None
    return ch


def update_payment_link(fake: FakeStripe, lid: str, changes: dict,
                        req: Optional[dict]) -> dict:
    old = fake.payment_links[lid]
    new = copy.deepcopy(old)
    new.update(changes)
    previous = diff_attributes(old, new)
    if previous:
        fake.payment_links[lid] = new
        fake.catalog_event("payment_link.updated", new, previous, req)
    return new


def h_create_product(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PRODUCT_CREATE_PARAMS)
    name = _required(params, "name")
    if not isinstance(name, str):
        raise StripeError(400, "Invalid string: name", param="name")
    pid = params.get("id")
    if pid is not None:
        if not isinstance(pid, str) or not pid:
            raise _cannot_unset("id")
        if pid in fake.products:
            raise StripeError(400, "Product already exists.", code="resource_already_exists",
                              param="id")
    changes = _product_changes(fake, params, None, ctx["live"])
    price_data = params.get("default_price_data")
    if price_data is not None:
        if not isinstance(price_data, dict):
            raise StripeError(400, "Invalid object", param="default_price_data")
        currency = price_data.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise StripeError(400, "Missing or invalid param: default_price_data[currency].",
                              code="parameter_missing", param="default_price_data[currency]")
        if "unit_amount" not in price_data:
            raise StripeError(400, "Missing required param: default_price_data[unit_amount].",
                              code="parameter_missing", param="default_price_data[unit_amount]")
        unit_amount = parse_int(price_data["unit_amount"], "default_price_data[unit_amount]",
                                minimum=0)
    prod = fake.make_product(pid, name, ctx["live"])
    prod.update(changes)
    price = None
    if price_data is not None:
        price = fake.make_price(None, prod["id"], unit_amount, str(currency), ctx["live"],
                                set_default=True)
    fake.catalog_event("product.created", prod, None, ctx.get("req"))
    if price is not None:
        fake.catalog_event("price.created", price, None, ctx.get("req"))
    return h_get_product(ctx, prod["id"])


def h_update_product(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PRODUCT_UPDATE_PARAMS)
    prod = fake.visible(fake.products.get(pid), "product", pid, ctx["live"])
    update_product(fake, pid, _product_changes(fake, params, prod, ctx["live"]), ctx.get("req"))
    return h_get_product(ctx, pid)


def h_list_products(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PRODUCT_LIST_PARAMS)
    expand = expand_list(params)
    for path in expand:
        if path != "data.default_price":
            raise _unexpandable(path)
    live = ctx["live"]
    active = parse_bool(params["active"], "active") if "active" in params else None
    shippable = parse_bool(params["shippable"], "shippable") if "shippable" in params else None
    created_ok = _created_filter(params["created"]) if "created" in params else None

    def keep(p: dict) -> bool:
        return (bool(p.get("livemode")) == live
                and (active is None or p["active"] == active)
                and (shippable is None or p.get("shippable") == shippable)
                and ("url" not in params or p.get("url") == params["url"])
                and (created_ok is None or created_ok(int(p.get("created") or 0))))

    ids = list_param(params, "ids")
    if ids:
        pos = fake.order["product"].pos
        rows = sorted((fake.products[i] for i in set(ids) if i in fake.products),
                      key=lambda p: -pos[p["id"]])
        out = fake.paginate([p for p in rows if keep(p)], ctx["query"], "/v1/products")
    else:
        out = fake.page_newest_first("product", fake.products, ctx["query"], "/v1/products",
                                     keep)
    if expand:
        for p in out["data"]:
            _expand_default_price(fake, p)
    return out


def h_create_price(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PRICE_CREATE_PARAMS)
    pid = _required(params, "product")
    prod = _referenced(fake, fake.products.get(pid), "product", pid, ctx["live"], "product")
    unit_amount = parse_int(_required(params, "unit_amount"), "unit_amount", minimum=0)
    currency = _required(params, "currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise StripeError(400, f"Invalid currency: {currency}", param="currency")
    changes = _price_changes(params, None)
    if "lookup_key" in changes and changes["lookup_key"] is not None and any(
            p.get("lookup_key") == changes["lookup_key"] for p in fake.prices.values()):
        raise StripeError(400, f"A price (lookup_key: {changes['lookup_key']}) already uses "
                          "that lookup key.", param="lookup_key")
    price = fake.make_price(None, prod["id"], unit_amount, currency, ctx["live"],
                            set_default=False)
    price.update(changes)
    fake.catalog_event("price.created", price, None, ctx.get("req"))
    return h_get_price(ctx, price["id"])


def h_update_price(ctx: Ctx, pid: str) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PRICE_UPDATE_PARAMS)
    price = fake.visible(fake.prices.get(pid), "price", pid, ctx["live"])
    update_price(fake, pid, _price_changes(params, price), ctx.get("req"))
    return h_get_price(ctx, pid)


def h_list_prices(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PRICE_LIST_PARAMS)
    expand = expand_list(params)
    for path in expand:
        if path != "data.product":
            raise _unexpandable(path)
    live = ctx["live"]
    active = parse_bool(params["active"], "active") if "active" in params else None
    currency = params.get("currency")
    type_ = params.get("type")
    lookup_keys = set(list_param(params, "lookup_keys"))
    created_ok = _created_filter(params["created"]) if "created" in params else None

    def keep(p: dict) -> bool:
        return (bool(p.get("livemode")) == live
                and (active is None or p["active"] == active)
                and (currency is None or p["currency"] == str(currency).lower())
                and (type_ is None or p.get("type") == type_)
                and (not lookup_keys or p.get("lookup_key") in lookup_keys)
                and (created_ok is None or created_ok(int(p.get("created") or 0))))

    product = params.get("product")
    if product:
        rows = [fake.prices[i] for i in reversed(fake.prices_by_product.get(product, []))]
        out = fake.paginate([p for p in rows if keep(p)], ctx["query"], "/v1/prices")
    else:
        out = fake.page_newest_first("price", fake.prices, ctx["query"], "/v1/prices", keep)
    if expand:
        for p in out["data"]:
            if p["product"] in fake.products:
                p["product"] = copy.deepcopy(fake.products[p["product"]])
    return out


def h_list_payment_links(ctx: Ctx) -> dict:
    fake: FakeStripe = ctx["fake"]
    params = ctx["params"]
    check_params(params, PAYMENT_LINK_LIST_PARAMS)
    expand = expand_list(params)
    for path in expand:
        if path != "data.line_items":
            raise _unexpandable(path)
    live = ctx["live"]
    active = parse_bool(params["active"], "active") if "active" in params else None

    def keep(pl: dict) -> bool:
        return bool(pl.get("livemode")) == live and (active is None or pl["active"] == active)

    out = fake.page_newest_first("payment_link", fake.payment_links, ctx["query"],
                                 "/v1/payment_links", keep)
    if expand:
        for pl in out["data"]:
            pl["line_items"] = fake.paginate(fake.payment_link_items[pl["id"]], {},
                                             f"/v1/payment_links/{pl['id']}/line_items")
    return out


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
    ("GET", re.compile(r"^/v1/payment_links$"), h_list_payment_links),
    ("GET", re.compile(rf"^/v1/payment_links/{_ID}$"), h_get_payment_link),
    ("POST", re.compile(rf"^/v1/payment_links/{_ID}$"), h_update_payment_link),
    ("GET", re.compile(rf"^/v1/payment_links/{_ID}/line_items$"), h_payment_link_line_items),
    ("GET", re.compile(rf"^/v1/payment_intents/{_ID}$"), h_get_payment_intent),
    ("POST", re.compile(r"^/v1/payment_intents$"), h_create_payment_intent),
    ("POST", re.compile(rf"^/v1/payment_intents/{_ID}/confirm$"), h_confirm_payment_intent),
    ("POST", re.compile(rf"^/v1/payment_intents/{_ID}/capture$"), h_capture_payment_intent),
    ("POST", re.compile(rf"^/v1/payment_intents/{_ID}/cancel$"), h_cancel_payment_intent),
    ("POST", re.compile(r"^/v1/refunds$"), h_create_refund),
    ("GET", re.compile(r"^/v1/refunds$"), h_list_refunds),
    ("GET", re.compile(rf"^/v1/refunds/{_ID}$"), h_get_refund),
    ("GET", re.compile(rf"^/v1/products/{_ID}$"), h_get_product),
    ("POST", re.compile(rf"^/v1/products/{_ID}$"), h_update_product),
    ("GET", re.compile(r"^/v1/products$"), h_list_products),
    ("POST", re.compile(r"^/v1/products$"), h_create_product),
    ("GET", re.compile(rf"^/v1/prices/{_ID}$"), h_get_price),
    ("POST", re.compile(rf"^/v1/prices/{_ID}$"), h_update_price),
    ("GET", re.compile(r"^/v1/prices$"), h_list_prices),
    ("POST", re.compile(r"^/v1/prices$"), h_create_price),
    ("GET", re.compile(r"^/v1/events$"), h_list_events),
    ("GET", re.compile(rf"^/v1/events/{_ID}$"), h_get_event),
]
# What a publishable key (Stripe.js in a browser) may call; everything else answers 401.
PUBLISHABLE_OK = {h_get_payment_intent, h_confirm_payment_intent}
# Paths a browser calls cross-origin (Stripe.js): they answer preflights and carry
# Access-Control-Allow-Origin: * (every other path is served as before, without CORS).
CORS_PATHS = (re.compile(rf"^/v1/payment_intents/{_ID}$"),
              re.compile(rf"^/v1/payment_intents/{_ID}/confirm$"))
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Request-Id, Stripe-Should-Retry, Idempotent-Replayed, "
                                     "Original-Request, Idempotency-Key",
}
CORS_ALLOW_HEADERS = ("Authorization, Content-Type, Idempotency-Key, Stripe-Version, "
                      "Stripe-Account, X-Stripe-Client-User-Agent")


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
    m = re.match(r"^Bearer (?:sk|rk|pk)_(test|live)_\S+$", header.strip())
    if not m:
        return None, StripeError(401, "Invalid API Key provided.")
    return m.group(1) == "live", None


def _publishable(header: Optional[str]) -> bool:
    return bool(header) and header.strip().startswith("Bearer pk_")


def _cors_path(path: str) -> bool:
    return any(rx.match(path) for rx in CORS_PATHS)


def _fault_error(status: int) -> StripeError:
    if status == 429:
        return StripeError(429, "Request rate limit exceeded. Learn more about rate limits "
                           "here https://stripe.com/docs/rate-limits.", code="rate_limit")
    if status == 400:  # a refusal the caller cannot retry its way out of
        return StripeError(400, "The request was refused by an injected fault (as Stripe's "
                           "own validation would refuse it).", code="parameter_invalid_empty")
    if status == 409:
        return StripeError(409, "This object cannot be accessed right now because another API "
                           "request or Stripe process is currently accessing it.",
                           code="lock_timeout")
    return StripeError(status, "An unknown error occurred", type_="api_error")


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
        if created is not None:  # history: a session from before the test (or the deploy)
            s.update(created=created, expires_at=created + 24 * 3600)
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
        allowed = {"active", "metadata", "inactive_message"}

        def changes(b: dict, o: dict) -> dict:
            form = _form_like(b, allowed)
            ch = _payment_link_changes(form)
            if "metadata" in form:
                ch["metadata"] = check_metadata(apply_metadata(o["metadata"], form["metadata"]))
            return ch

        return dashboard("payment_link", fake.payment_links, changes, update_payment_link,
                         lid, b)

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
        """``{"url", "timeout", "pending", "delivered", "failed", "failures"}``: the counts are
        those of the payment_intent.* events, POSTed in the background (wait for ``pending``
        0 before checking what the function did)."""
        return dict(fake.event_outbox.describe(), url=fake.event_sink,
                    timeout=fake.event_sink_timeout)

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
