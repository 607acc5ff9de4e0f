"""The fake Stripe's charges and disputes: ``charge.refunded`` on every refund with the running
total, the charge read back, a dispute closed by the test API (devstack/fake_stripe/charges.py).

    .venv/bin/python -m pytest -q devstack/tests/test_fake_stripe_charges.py
"""

from __future__ import annotations

from devstack.tests.test_fake_stripe import AUTH, app, client, stripe_error  # noqa: F401


def paid_session(client) -> dict:
    rv = client.post("/_test/checkout_sessions", json={
        "payment_status": "paid", "currency": "usd",
        "line_items": [{"product": "prod_c", "unit_amount": 1000, "quantity": 2}]})
    assert rv.status_code == 200, rv.json
    return rv.json


def events(client, kind: str) -> list[dict]:
    return client.get(f"/v1/events?type={kind}", headers=AUTH).json["data"]


def test_each_refund_sends_charge_refunded_with_the_running_total(client):
    s = paid_session(client)
    pi = s["payment_intent"]
    assert client.post("/v1/refunds", headers=AUTH,
                       data={"payment_intent": pi, "amount": "500"}).status_code == 200
    first = events(client, "charge.refunded")
    assert len(first) == 1
    charge = first[0]["data"]["object"]
    assert (charge["payment_intent"], charge["amount"]) == (pi, 2000)
    assert (charge["amount_refunded"], charge["refunded"]) == (500, False)
    assert client.post("/v1/refunds", headers=AUTH, data={"payment_intent": pi}).status_code == 200
    newest = events(client, "charge.refunded")[0]["data"]["object"]
    assert (newest["amount_refunded"], newest["refunded"]) == (2000, True)
    read = client.get(f"/v1/charges/{charge['id']}", headers=AUTH).json
    assert (read["amount_refunded"], read["refunded"], read["id"]) == (2000, True, charge["id"])
    # The session is found from its PaymentIntent, as stockbridge looks for it.
    found = client.get(f"/v1/checkout/sessions?payment_intent={pi}", headers=AUTH).json["data"]
    assert [x["id"] for x in found] == [s["id"]]


def test_a_closed_dispute_is_an_event_and_can_be_read_back(client):
    s = paid_session(client)
    rv = client.post("/_test/disputes", json={"payment_intent": s["payment_intent"],
                                              "status": "lost"})
    assert rv.status_code == 200, rv.json
    d = rv.json
    got = events(client, "charge.dispute.closed")[0]["data"]["object"]
    assert (got["id"], got["status"], got["payment_intent"]) == (d["id"], "lost",
                                                                s["payment_intent"])
    assert client.get(f"/v1/disputes/{d['id']}", headers=AUTH).json["charge"] == d["charge"]
    assert client.post("/_test/disputes", json={"payment_intent": s["payment_intent"],
                                                "status": "maybe"}).status_code == 400


def test_an_unknown_charge_is_stripes_404(client):
    stripe_error(client.get("/v1/charges/ch_nope", headers=AUTH), 404, code="resource_missing")


def test_charges_and_disputes_are_listed_for_the_preflight_probe(client):
    s = paid_session(client)
    charges = client.get("/v1/charges?limit=1", headers=AUTH).json
    assert charges["data"][0]["payment_intent"] == s["payment_intent"]
    assert client.get("/v1/disputes?limit=1", headers=AUTH).json["data"] == []
