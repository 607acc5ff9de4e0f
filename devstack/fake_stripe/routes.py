"""The `/v1` route table and which routes a publishable key or a browser may call."""

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
from devstack.fake_stripe.payments import Handler, h_cancel_payment_intent, h_capture_payment_intent, h_confirm_payment_intent, h_create_payment_intent, h_create_payment_link, h_create_refund, h_get_payment_intent, h_get_payment_link, h_get_refund, h_get_session, h_list_refunds, h_payment_link_line_items, h_session_line_items, h_update_payment_link  # noqa: F401
from devstack.fake_stripe.charges import h_get_charge, h_get_dispute, h_list_charges, h_list_disputes
from devstack.fake_stripe.catalog import h_create_price, h_create_product, h_get_event, h_get_price, h_get_product, h_list_events, h_list_payment_links, h_list_prices, h_list_products, h_list_sessions, h_update_price, h_update_product  # noqa: F401


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
    ("GET", re.compile(r"^/v1/charges$"), h_list_charges),
    ("GET", re.compile(rf"^/v1/charges/{_ID}$"), h_get_charge),
    ("GET", re.compile(r"^/v1/disputes$"), h_list_disputes),
    ("GET", re.compile(rf"^/v1/disputes/{_ID}$"), h_get_dispute),
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
