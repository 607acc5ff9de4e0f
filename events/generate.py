#!/usr/bin/env python3
"""Build the sample EventBridge payloads in events/ from Stripe's published fixtures.

Each payload is what a Stripe Event Destination (snapshot payload) puts on the partner event
bus: an EventBridge envelope whose `detail` is the whole Stripe event and whose
`detail.data.object` is Stripe's own `checkout.session` fixture with the ids, states and
amounts of the demo filled in. Every other fixture field is kept, so that decoders see the
full shape Stripe sends and must ignore what they do not use.

    python3 events/generate.py            # (re)write the files
    python3 events/generate.py --check    # exit 1 if a file is missing or differs

The fixtures (fixtures3.json from Stripe's OpenAPI repository) are looked up at --fixtures,
then $STRIPE_FIXTURES, then testdata/stripe/fixtures3.json (a copy of ../shared/stripe/).
Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import calendar
import copy
import json
import os
import sys
import time
import uuid
from pathlib import Path

EVENTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = EVENTS_DIR.parent

API_VERSION = "2026-09-30.endive"
SOURCE = "aws.partner/stripe.com/ed_test_61SAMPLE"
FOREIGN_SOURCE = "aws.partner/evil.example.com/x"
ACCOUNT = "123456789012"
REGION = "us-east-1"

SESSION_ID = "cs_test_events_demo"
PAYMENT_INTENT_ID = "pi_events_demo"
PAYMENT_LINK_ID = "plink_events_demo"
STORE_ID = "store_demo"
AMOUNT_TOTAL = 2500
CURRENCY = "usd"

# 2026-11-01T18:27:56Z: the checkout completes here; async outcomes arrive three days later.
COMPLETED_AT = calendar.timegm((2026, 11, 1, 18, 27, 56, 0, 0, 0))
SESSION_CREATED_AT = COMPLETED_AT - 300
ASYNC_OUTCOME_AT = COMPLETED_AT + 3 * 86400


def default_fixtures_path() -> Path:
    env = os.environ.get("STRIPE_FIXTURES")
    if env:
        return Path(env)
    return REPO_ROOT / "testdata" / "stripe" / "fixtures3.json"


def load_fixtures(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        resources = json.load(f)["resources"]
    for name in ("checkout.session", "event", "customer"):
        if name not in resources:
            raise SystemExit(f"{path}: resources[{name!r}] is missing")
    return resources


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def checkout_session(fixtures: dict, payment_status: str) -> dict:
    session = copy.deepcopy(fixtures["checkout.session"])
    session.update(
        {
            "id": SESSION_ID,
            "object": "checkout.session",
            "mode": "payment",
            "status": "complete",
            "payment_status": payment_status,
            "payment_intent": PAYMENT_INTENT_ID,
            "payment_link": PAYMENT_LINK_ID,
            "metadata": {"store_id": STORE_ID},
            "livemode": False,
            "amount_subtotal": AMOUNT_TOTAL,
            "amount_total": AMOUNT_TOTAL,
            "currency": CURRENCY,
            "created": SESSION_CREATED_AT,
            "expires_at": SESSION_CREATED_AT + 86400,
            # Stripe clears the hosted page URL once a session is complete.
            "url": None,
        }
    )
    return session


def stripe_event(fixtures: dict, event_id: str, event_type: str, created: int, obj: dict) -> dict:
    event = {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    # Keep any other field of Stripe's event fixture, after the ones above.
    for key, value in fixtures["event"].items():
        event.setdefault(key, copy.deepcopy(value))
    return event


def envelope(name: str, detail: dict, source: str = SOURCE, delivered_at: int | None = None,
             detail_type: str | None = None) -> dict:
    """EventBridge envelope; its `id` is EventBridge's own (stable per file here)."""
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"stockbridge/events/{name}")),
        "detail-type": detail_type or detail["type"],
        "source": source,
        "account": ACCOUNT,
        "time": iso(delivered_at if delivered_at is not None else detail["created"]),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def dump(obj: dict) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def build(fixtures: dict) -> dict[str, str]:
    """Return {file name: file text}."""
    out: dict[str, dict] = {}

    paid = stripe_event(
        fixtures,
        "evt_1EventsDemoCompletedPaid",
        "checkout.session.completed",
        COMPLETED_AT,
        checkout_session(fixtures, "paid"),
    )
    out["checkout.session.completed.paid.json"] = envelope("completed.paid", paid)

    # The same Stripe event delivered again (EventBridge id and time differ, detail.id does
    # not): processing it must change nothing.
    out["checkout.session.completed.paid.redelivered.json"] = envelope(
        "completed.paid.redelivered", copy.deepcopy(paid), delivered_at=COMPLETED_AT + 42
    )

    out["checkout.session.completed.unpaid.json"] = envelope(
        "completed.unpaid",
        stripe_event(
            fixtures,
            "evt_1EventsDemoCompletedUnpaid",
            "checkout.session.completed",
            COMPLETED_AT,
            checkout_session(fixtures, "unpaid"),
        ),
    )
    out["checkout.session.async_payment_succeeded.json"] = envelope(
        "async_payment_succeeded",
        stripe_event(
            fixtures,
            "evt_1EventsDemoAsyncSucceeded",
            "checkout.session.async_payment_succeeded",
            ASYNC_OUTCOME_AT,
            checkout_session(fixtures, "paid"),
        ),
    )
    out["checkout.session.async_payment_failed.json"] = envelope(
        "async_payment_failed",
        stripe_event(
            fixtures,
            "evt_1EventsDemoAsyncFailed",
            "checkout.session.async_payment_failed",
            ASYNC_OUTCOME_AT,
            checkout_session(fixtures, "unpaid"),
        ),
    )

    # ---- bad cases: each must be rejected without touching inventory
    foreign = envelope("foreign-source", copy.deepcopy(paid), source=FOREIGN_SOURCE)
    foreign["detail"]["id"] = "evt_1EventsDemoForeignSource"
    out["foreign-source.json"] = foreign

    live = copy.deepcopy(paid)
    live["id"] = "evt_1EventsDemoLivemode"
    live["livemode"] = True
    live["data"]["object"]["livemode"] = True
    out["livemode-mismatch.json"] = envelope("livemode-mismatch", live)

    missing = copy.deepcopy(paid)
    missing["id"] = "evt_1EventsDemoMissingField"
    del missing["data"]["object"]["id"]
    out["missing-field.json"] = envelope("missing-field", missing)

    customer = copy.deepcopy(fixtures["customer"])
    customer.update({"livemode": False, "created": COMPLETED_AT, "metadata": {"store_id": STORE_ID}})
    out["unknown-type.json"] = envelope(
        "unknown-type",
        stripe_event(fixtures, "evt_1EventsDemoUnknownType", "customer.created", COMPLETED_AT, customer),
    )

    out.update(thin_and_webhook_events())
    out["stockbridge.low_stock.json"] = envelope(
        "low_stock",
        {"store_id": STORE_ID, "product_id": "prod_events_demo", "name": "Demo tee",
         "available": 4, "threshold": 5, "crossing": 1, "version": 17},
        source="stockbridge", delivered_at=COMPLETED_AT, detail_type="stockbridge.low_stock")

    out.update(after_sale_events(fixtures))
    out.update(waitlist_events())

    files = {name: dump(obj) for name, obj in out.items()}

    # A delivery cut short: the paid payload truncated mid-document (not valid JSON).
    text = files["checkout.session.completed.paid.json"]
    malformed = text[: len(text) // 2]
    try:
        json.loads(malformed)
    except json.JSONDecodeError:
        pass
    else:  # pragma: no cover - guards the cut point
        raise SystemExit("malformed.json unexpectedly parses")
    files["malformed.json"] = malformed

    return files


REFUNDED_AT = COMPLETED_AT + 2 * 86400


def after_sale_events(fixtures: dict) -> dict[str, dict]:
    """The merchant refunds the paid order in full, a dispute over it is lost, and what
    stockbridge publishes when it refunds an oversold order itself."""
    out: dict[str, dict] = {}
    charge = copy.deepcopy(fixtures["charge"])
    charge.update({"id": "ch_events_demo", "payment_intent": "pi_events_demo",
                   "amount": AMOUNT_TOTAL, "amount_captured": AMOUNT_TOTAL,
                   "amount_refunded": AMOUNT_TOTAL, "refunded": True, "currency": CURRENCY,
                   "created": COMPLETED_AT, "livemode": False, "metadata": {}})
    out["charge.refunded.json"] = envelope(
        "charge.refunded",
        stripe_event(fixtures, "evt_1EventsDemoChargeRefunded", "charge.refunded", REFUNDED_AT,
                     charge),
        delivered_at=REFUNDED_AT)
    dispute = copy.deepcopy(fixtures["dispute"])
    dispute.update({"id": "dp_events_demo", "charge": "ch_events_demo",
                    "payment_intent": "pi_events_demo", "amount": AMOUNT_TOTAL,
                    "currency": CURRENCY, "status": "lost", "livemode": False,
                    "created": REFUNDED_AT, "metadata": {}})
    out["charge.dispute.closed.json"] = envelope(
        "charge.dispute.closed",
        stripe_event(fixtures, "evt_1EventsDemoDisputeClosed", "charge.dispute.closed",
                     REFUNDED_AT, dispute),
        delivered_at=REFUNDED_AT)
    out["stockbridge.order_refunded.json"] = envelope(
        "order_refunded",
        {"order_id": "cs_test_events_demo", "store_id": STORE_ID,
         "payment_intent": "pi_events_demo", "refund_id": "re_events_demo", "amount": None,
         "reason": "oversold", "products": [{"product_id": "prod_events_demo", "quantity": 2}],
         "shortfalls": [{"product_id": "prod_events_demo", "requested": 2, "available": 1}]},
        source="stockbridge", delivered_at=COMPLETED_AT, detail_type="stockbridge.order_refunded")
    return out


def waitlist_events() -> dict[str, dict]:
    """What the back-in-stock waitlist publishes: a buyer's confirmation request (the merchant's
    mailer sends it), and a merchant's restock of a sold-out product with the link to its
    confirmed entries. The tokens are placeholders: real ones are signed."""
    base = "https://abc123.lambda-url.us-east-1.on.aws/waitlist"
    return {
        "stockbridge.waitlist_confirmation_requested.json": envelope(
            "waitlist_confirmation_requested",
            {"store_id": STORE_ID, "product_id": "prod_events_demo", "name": "Demo tee",
             "email": "buyer@example.com",
             "confirm_url": f"{base}/confirm?token=eyJkbyI6ImNvbmZpcm0ifQ.c2lnbmF0dXJl",
             "unsubscribe_url": f"{base}/unsubscribe?token=eyJkbyI6InVuc3Vic2NyaWJlIn0.c2ln",
             "expires_at": "2026-11-03T18:27:56Z"},
            source="stockbridge", delivered_at=COMPLETED_AT,
            detail_type="stockbridge.waitlist_confirmation_requested"),
        "stockbridge.back_in_stock.json": envelope(
            "back_in_stock",
            {"store_id": STORE_ID, "product_id": "prod_events_demo", "name": "Demo tee",
             "available": 24, "restock": 31, "restocked_at": "2026-11-04T09:00:00Z",
             "count": 57,
             "entries_url": f"{base}/entries?token=eyJkbyI6ImVudHJpZXMifQ.c2lnbmF0dXJl",
             "entries_expire_at": "2026-11-11T09:00:01Z"},
            source="stockbridge", delivered_at=COMPLETED_AT + 3 * 86400,
            detail_type="stockbridge.back_in_stock"),
    }


def thin_event(event_id: str, event_type: str, created: int, related: dict | None) -> dict:
    """A thin event (API v2 event notification): no snapshot, the object only named."""
    return {
        "id": event_id,
        "object": "v2.core.event",
        "type": event_type,
        "created": iso(created)[:-1] + ".000Z",
        "livemode": False,
        "context": None,
        "reason": None,
        "related_object": related,
    }


def thin_and_webhook_events() -> dict[str, dict]:
    """The thin form of the paid session's event on EventBridge, and what only a webhook
    endpoint receives: the destination ping and the health event (as delivered, and as
    `GET /v2/core/events/{id}` answers it)."""
    session = {"id": SESSION_ID, "type": "checkout.session",
               "url": f"/v1/checkout/sessions/{SESSION_ID}"}
    out = {"thin.checkout.session.completed.json": envelope(
        "thin.completed",
        thin_event("evt_test_65EventsDemoThinCompleted", "v1.checkout.session.completed",
                   COMPLETED_AT, session),
        delivered_at=COMPLETED_AT)}
    out["webhook.event_destination.ping.json"] = thin_event(
        "evt_test_65EventsDemoPing", "v2.core.event_destination.ping", COMPLETED_AT,
        {"id": "ed_test_61SAMPLE", "type": "v2.core.event_destination",
         "url": "/v2/core/event_destinations/ed_test_61SAMPLE"})
    failure = thin_event("evt_test_65EventsDemoGenerationFailure",
                         "v2.core.health.event_generation_failure.resolved",
                         ASYNC_OUTCOME_AT, None)
    out["webhook.event_generation_failure.resolved.json"] = failure
    fetched = copy.deepcopy(failure)
    fetched["data"] = {
        "alert_id": "alert_test_61EventsDemo",
        "grouping_key": "checkout.session.completed",
        "resolved_at": iso(ASYNC_OUTCOME_AT)[:-1] + ".000Z",
        "severity": "critical",
        "summary": "Stripe failed to generate checkout.session.completed events",
        "impact": {"context": None, "event_type": "checkout.session.completed",
                   "related_object": session},
    }
    out["webhook.event_generation_failure.resolved.fetched.json"] = fetched
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=None, help="path to Stripe's fixtures3.json")
    parser.add_argument("--out", type=Path, default=EVENTS_DIR, help="output directory (default: events/)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on drift")
    args = parser.parse_args(argv)

    fixtures_path = args.fixtures or default_fixtures_path()
    if not fixtures_path.is_file():
        parser.error(f"fixtures not found at {fixtures_path} (use --fixtures or STRIPE_FIXTURES)")
    files = build(load_fixtures(fixtures_path))

    drift = []
    for name, text in sorted(files.items()):
        path = args.out / name
        if args.check:
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current != text:
                drift.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if drift:
        print("out of date (run python3 events/generate.py): " + ", ".join(drift), file=sys.stderr)
        return 1
    if args.check:
        print(f"{len(files)} event files up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
