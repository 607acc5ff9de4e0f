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

import time  # noqa: F401 - tests patch fake_stripe.time

from devstack.fake_stripe.core import *  # noqa: F401,F403
from devstack.fake_stripe.events_out import *  # noqa: F401,F403
from devstack.fake_stripe.state import *  # noqa: F401,F403
from devstack.fake_stripe.payments import *  # noqa: F401,F403
from devstack.fake_stripe.catalog import *  # noqa: F401,F403
from devstack.fake_stripe.routes import *  # noqa: F401,F403
from devstack.fake_stripe.dispatch import *  # noqa: F401,F403
from devstack.fake_stripe.pages import *  # noqa: F401,F403
from devstack.fake_stripe.test_api import *  # noqa: F401,F403
from devstack.fake_stripe.app import *  # noqa: F401,F403

__all__ = ['CANCELABLE', 'CANCELLATION_REASONS', 'CAPTURE_METHODS', 'CATALOG_EVENT_TYPES', 'CATALOG_SINK_TIMEOUT_S', 'CONFIRMABLE', 'CORS_ALLOW_HEADERS', 'CORS_HEADERS', 'CORS_PATHS', 'CURRENCY_SYMBOLS', 'CatalogOutbox', 'Ctx', 'DEFAULT_FIXTURES', 'DEFAULT_SINK_TIMEOUT_S', 'EVENT_ACCOUNT', 'EVENT_API_VERSION', 'EVENT_LIST_PARAMS', 'EVENT_REGION', 'EVENT_SOURCE', 'FAULT_STATUSES', 'FakeStripe', 'Handler', 'Ordered', 'Outbox', 'PAYMENT_INTENT_CANCEL_PARAMS', 'PAYMENT_INTENT_CAPTURE_PARAMS', 'PAYMENT_INTENT_CONFIRM_PARAMS', 'PAYMENT_INTENT_CREATE_PARAMS', 'PAYMENT_INTENT_EVENT_TYPES', 'PAYMENT_LINK_COMMON_PARAMS', 'PAYMENT_LINK_CREATE_PARAMS', 'PAYMENT_LINK_LIST_PARAMS', 'PAYMENT_LINK_UPDATE_PARAMS', 'PRICE_CREATE_PARAMS', 'PRICE_LIST_PARAMS', 'PRICE_UPDATE_PARAMS', 'PRODUCT_CREATE_PARAMS', 'PRODUCT_LIST_PARAMS', 'PRODUCT_UPDATE_PARAMS', 'PUBLISHABLE_OK', 'REFUND_PARAMS', 'REFUND_REASONS', 'REPO_ROOT', 'ROUTES', 'StripeError', 'TEST_PAYMENT_METHODS', 'TestApiError', 'TokenBucket', 'ZERO_DECIMAL', 'apply_metadata', 'check_metadata', 'check_params', 'create_app', 'diff_attributes', 'eventbridge_envelope', 'expand_list', 'format_price', 'gen_id', 'h_cancel_payment_intent', 'h_capture_payment_intent', 'h_confirm_payment_intent', 'h_create_payment_intent', 'h_create_payment_link', 'h_create_price', 'h_create_product', 'h_create_refund', 'h_get_event', 'h_get_payment_intent', 'h_get_payment_link', 'h_get_price', 'h_get_product', 'h_get_refund', 'h_get_session', 'h_list_events', 'h_list_payment_links', 'h_list_prices', 'h_list_products', 'h_list_refunds', 'h_list_sessions', 'h_payment_link_line_items', 'h_session_line_items', 'h_update_payment_link', 'h_update_price', 'h_update_product', 'list_param', 'main', 'nest_form', 'parse_bool', 'parse_cursors', 'parse_int', 'parse_limit', 'post_event', 'register_payment_page', 'register_test_api', 'update_payment_link', 'update_price', 'update_product']
