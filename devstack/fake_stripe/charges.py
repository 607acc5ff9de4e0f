"""Charges and disputes, as far as refunds and disputes need them.

The fake keeps no charge objects of its own: a PaymentIntent's ``latest_charge`` is rendered on
demand (``GET /v1/charges/{id}``) with the running ``amount_refunded`` and ``refunded`` (in
full), as Stripe's Charge shows them. Every refund sends ``charge.refunded`` with that charge
(to the inventory's event sink, like the ``payment_intent.*`` events; Stripe sends it for every
refund, partial or not, the merchant's or stockbridge's). ``POST /_test/disputes`` closes a
dispute on a payment (``lost``, ``won``, ``warning_closed``) and sends
``charge.dispute.closed``; ``GET /v1/disputes/{id}`` reads it back.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Optional

from devstack.fake_stripe.core import StripeError, _missing, gen_id

DISPUTE_STATUSES = ("lost", "won", "warning_closed")


def charge_of(fake: Any, pi: dict) -> dict:
    """The Charge of a paid PaymentIntent, as Stripe renders it now."""
    ch = fake.fixture("charge")
    amount = pi["amount_received"]
    refunded = fake.refunded.get(pi["id"], 0)
    ch.update(id=pi["latest_charge"], object="charge", amount=amount, amount_captured=amount,
              amount_refunded=refunded, refunded=refunded >= amount > 0,
              payment_intent=pi["id"], currency=pi["currency"], livemode=bool(pi.get("livemode")),
              created=pi["created"], paid=True, captured=True, status="succeeded",
              disputed=pi["id"] in fake.disputes_by_pi, metadata=dict(pi.get("metadata") or {}),
              refunds=None, payment_method=pi.get("payment_method"))
    return ch


def _intent_of_charge(fake: Any, charge_id: str) -> Optional[dict]:
    return next((p for p in fake.payment_intents.values() if p.get("latest_charge") == charge_id),
                None)


def h_get_charge(ctx: dict, cid: str) -> dict:
    fake = ctx["fake"]
    pi = _intent_of_charge(fake, cid)
    if pi is None:
        raise _missing("charge", cid)
    fake.visible(pi, "charge", cid, ctx["live"])
    return charge_of(fake, pi)


def h_get_dispute(ctx: dict, did: str) -> dict:
    fake = ctx["fake"]
    found = fake.disputes.get(did)
    if found is None:
        raise _missing("dispute", did)
    return copy.deepcopy(fake.visible(found, "dispute", did, ctx["live"]))


def h_list_charges(ctx: dict) -> dict:
    """GET /v1/charges: every paid PaymentIntent's charge, newest first."""
    fake = ctx["fake"]
    rows = [charge_of(fake, p) for p in reversed(list(fake.payment_intents.values()))
            if p.get("latest_charge") and bool(p.get("livemode")) == ctx["live"]]
    return fake.paginate(rows, ctx["query"], "/v1/charges")


def h_list_disputes(ctx: dict) -> dict:
    """GET /v1/disputes: newest first."""
    fake = ctx["fake"]
    rows = [copy.deepcopy(d) for d in reversed(list(fake.disputes.values()))
            if bool(d.get("livemode")) == ctx["live"]]
    return fake.paginate(rows, ctx["query"], "/v1/disputes")


def refunded(fake: Any, pi: dict, req: Optional[dict]) -> None:
    """A refund was made: Stripe's ``charge.refunded``, with the charge as it is now."""
    fake.payment_event("charge.refunded", charge_of(fake, pi), req)


def close_dispute(fake: Any, body: dict) -> dict:
    """``{"payment_intent": "pi_…", "status": "lost"}``: a dispute on the payment, closed."""
    pi = fake.payment_intents.get(body.get("payment_intent") or "")
    if pi is None or not pi.get("latest_charge"):
        raise StripeError(404, "payment_intent: no paid PaymentIntent of that id")
    status = body.get("status", "lost")
    if status not in DISPUTE_STATUSES:
        raise StripeError(400, f"status must be one of {', '.join(DISPUTE_STATUSES)}")
    d = fake.fixture("dispute")
    d.update(id=gen_id("dp_"), object="dispute", charge=pi["latest_charge"],
             payment_intent=pi["id"], amount=pi["amount_received"], currency=pi["currency"],
             status=status, livemode=bool(pi.get("livemode")), created=int(time.time()),
             is_charge_refundable=False, metadata={})
    fake.disputes[d["id"]] = d
    fake.disputes_by_pi[pi["id"]] = d["id"]
    fake.payment_event("charge.dispute.closed", d, None)
    return copy.deepcopy(d)
