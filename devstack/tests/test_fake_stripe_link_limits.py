"""The fake Stripe's model of a Payment Link's `restrictions.completed_sessions` (the limit the
link guard keeps in step with stock, docs/link-guard.md).

    .venv/bin/python -m pytest -q devstack/tests/test_fake_stripe_link_limits.py
"""

from __future__ import annotations

from devstack.tests.test_fake_stripe import AUTH, app, client, stripe_error  # noqa: F401


def link(client) -> str:
    client.post("/_test/products", json={"id": "prod_l", "name": "Lanyard", "unit_amount": 500,
                                         "currency": "usd"})
    return client.post("/_test/payment_links", json={"product": "prod_l"}).json["id"]


def limit(client, lid: str, n) -> dict:
    rv = client.post(f"/v1/payment_links/{lid}", headers=AUTH,
                     data={"restrictions[completed_sessions][limit]": str(n)})
    assert rv.status_code == 200, rv.json
    return rv.json


def pay(client, lid: str) -> int:
    return client.post(f"/pay/{lid}").status_code


def test_a_link_counts_its_completed_sessions_and_goes_off_at_its_limit(client):
    lid = link(client)
    assert client.get(f"/v1/payment_links/{lid}", headers=AUTH).json["restrictions"] is None
    assert limit(client, lid, 2)["restrictions"] == {
        "completed_sessions": {"count": 0, "limit": 2}}
    assert pay(client, lid) == 200
    got = client.get(f"/v1/payment_links/{lid}", headers=AUTH).json
    assert got["active"] is True and got["restrictions"]["completed_sessions"]["count"] == 1
    assert pay(client, lid) == 200
    got = client.get(f"/v1/payment_links/{lid}", headers=AUTH).json
    assert got["active"] is False
    assert got["restrictions"] == {"completed_sessions": {"count": 2, "limit": 2}}
    # Off: the hosted page refuses a third buyer, and the switch is an event like any other.
    assert pay(client, lid) == 410
    updates = [e for e in client.get("/v1/events?type=payment_link.updated", headers=AUTH)
               .json["data"] if e["data"]["object"]["id"] == lid]
    assert updates[0]["data"]["object"]["active"] is False
    assert updates[0]["data"]["previous_attributes"] == {"active": True}


def test_raising_the_limit_keeps_the_count_and_does_not_switch_the_link_on(client):
    lid = link(client)
    limit(client, lid, 1)
    assert pay(client, lid) == 200
    raised = limit(client, lid, 5)
    assert raised["restrictions"]["completed_sessions"] == {"count": 1, "limit": 5}
    assert raised["active"] is False
    rv = client.post(f"/v1/payment_links/{lid}", headers=AUTH, data={"active": "true"})
    assert rv.json["active"] is True
    assert pay(client, lid) == 200
    # Sessions made through the test API count too, when they belong to the link.
    client.post("/_test/checkout_sessions", json={
        "payment_link": lid, "payment_status": "paid",
        "line_items": [{"product": "prod_l", "unit_amount": 500}]})
    got = client.get(f"/v1/payment_links/{lid}", headers=AUTH).json
    assert got["restrictions"]["completed_sessions"]["count"] == 3 and got["active"] is True


def test_bad_limits_are_refused_and_the_dashboard_can_remove_them(client):
    lid = link(client)
    stripe_error(client.post(f"/v1/payment_links/{lid}", headers=AUTH,
                             data={"restrictions[completed_sessions][limit]": "0"}), 400)
    stripe_error(client.post(f"/v1/payment_links/{lid}", headers=AUTH,
                             data={"restrictions[completed_sessions][limit]": "x"}), 400)
    stripe_error(client.post(f"/v1/payment_links/{lid}", headers=AUTH,
                             data={"restrictions[other]": "1"}), 400, code="parameter_missing")
    limit(client, lid, 3)
    rv = client.post(f"/_test/dashboard/payment_links/{lid}", json={"restrictions": None})
    assert rv.status_code == 200, rv.json
    assert client.get(f"/v1/payment_links/{lid}", headers=AUTH).json["restrictions"] is None
    # A limit set at link creation.
    price = client.post("/_test/products", json={"name": "Pin", "unit_amount": 300,
                                                 "currency": "usd"}).json["price"]
    rv = client.post("/v1/payment_links", headers=AUTH, data={
        "line_items[0][price]": price["id"], "line_items[0][quantity]": "1",
        "restrictions[completed_sessions][limit]": "4"})
    assert rv.json["restrictions"] == {"completed_sessions": {"count": 0, "limit": 4}}
