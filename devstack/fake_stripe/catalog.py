"""`/v1` handlers: products, prices, payment link lists, events."""

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
from devstack.fake_stripe.core import PAYMENT_LINK_LIST_PARAMS, PRICE_CREATE_PARAMS, PRICE_LIST_PARAMS, PRICE_UPDATE_PARAMS, PRODUCT_CREATE_PARAMS, PRODUCT_LIST_PARAMS, PRODUCT_UPDATE_PARAMS, StripeError, _cannot_unset, _required, _string, apply_metadata, check_metadata, check_params, diff_attributes, expand_list, list_param, parse_bool, parse_int  # noqa: F401
from devstack.fake_stripe.state import FakeStripe, _unexpandable  # noqa: F401
from devstack.fake_stripe.payments import Ctx  # noqa: F401


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
