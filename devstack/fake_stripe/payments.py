"""`/v1` handlers: Checkout Sessions, Payment Links, PaymentIntents, refunds."""

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
from devstack.fake_stripe.core import CANCELABLE, CANCELLATION_REASONS, CAPTURE_METHODS, CONFIRMABLE, PAYMENT_INTENT_CANCEL_PARAMS, PAYMENT_INTENT_CAPTURE_PARAMS, PAYMENT_INTENT_CONFIRM_PARAMS, PAYMENT_INTENT_CREATE_PARAMS, PAYMENT_LINK_CREATE_PARAMS, PAYMENT_LINK_UPDATE_PARAMS, REFUND_PARAMS, REFUND_REASONS, StripeError, TEST_PAYMENT_METHODS, _cannot_unset, _missing, _required, _string, apply_metadata, check_metadata, check_params, diff_attributes, expand_list, gen_id, list_param, parse_bool, parse_int  # noqa: F401
from devstack.fake_stripe.state import FakeStripe, _unexpandable  # noqa: F401
from devstack.fake_stripe import charges


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


def link_restrictions(param: Any, current: Optional[dict]) -> Optional[dict]:
    """A link's ``restrictions`` after ``restrictions[completed_sessions][limit]=N`` (or
    ``restrictions=`` to remove them). Stripe documents the limit and the count
    (``restrictions.completed_sessions.{limit,count}``) and that a link "automatically
    deactivates" at its limit; this fake's model of what Stripe does not document: the count
    survives a change of limit, a limit must be at least 1 and may be set at or below the
    count (the link then stays as it is until its next completed session), and raising the
    limit does not switch a deactivated link back on (the caller sends ``active=true``)."""
    if param == "":
        return None
    sessions = param.get("completed_sessions") if isinstance(param, dict) else None
    if not isinstance(sessions, dict) or "limit" not in sessions:
        raise StripeError(400, "Missing required param: restrictions[completed_sessions][limit].",
                          code="parameter_missing",
                          param="restrictions[completed_sessions][limit]")
    limit = parse_int(sessions["limit"], "restrictions[completed_sessions][limit]", minimum=1)
    count = ((current or {}).get("completed_sessions") or {}).get("count", 0)
    return {"completed_sessions": {"count": count, "limit": limit}}


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
    if "restrictions" in params:
        updated["restrictions"] = link_restrictions(params["restrictions"], pl["restrictions"])
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
    if "restrictions" in params:
        pl["restrictions"] = link_restrictions(params["restrictions"], None)
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
    charges.refunded(fake, pi, ctx.get("req"))
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
