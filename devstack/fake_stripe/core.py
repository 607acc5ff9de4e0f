"""Constants, errors and request-form helpers shared by the fake's parts."""

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


REPO_ROOT = Path(__file__).resolve().parents[2]
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




def _cannot_unset(name: str) -> StripeError:
    return StripeError(400, f"You passed an empty string for '{name}'. We assume empty values "
                       "are an attempt to unset a parameter; however '{name}' cannot be unset. "
                       f"You should remove '{name}' from your request or supply a non-empty "
                       "value.", code="parameter_invalid_empty", param=name)


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


def _json(body: Any, status: int = 200, headers: Optional[dict[str, str]] = None) -> Response:
    resp = Response(json.dumps(body, indent=2) + "\n", status=status,
                    mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


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
