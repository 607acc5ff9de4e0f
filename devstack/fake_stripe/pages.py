"""The hosted payment page of a Payment Link (`/pay/<id>`)."""

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
from devstack.fake_stripe.core import StripeError  # noqa: F401
from devstack.fake_stripe.events_out import _http_url, eventbridge_envelope, post_event  # noqa: F401
from devstack.fake_stripe.state import FakeStripe  # noqa: F401


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




def register_payment_page(app: Flask, fake: FakeStripe) -> None:
    """The hosted payment page of a Payment Link (`/pay/<id>`)."""
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
            delivery = post_event(sink, envelope, timeout, fake.render_delivery)
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
