"""The fake Stripe's event destinations and restricted keys (devstack/fake_stripe_v2.py)."""

from __future__ import annotations

import pytest

from devstack.fake_stripe import DEFAULT_FIXTURES, create_app

TEST = {"Authorization": "Bearer sk_test_51FakeSecretKeyDoNotLogMe"}
LIVE = {"Authorization": "Bearer sk_live_51FakeSecretKeyDoNotLogMe"}


@pytest.fixture()
def client():
    return create_app(str(DEFAULT_FIXTURES)).test_client()


def test_event_destinations_are_listed_per_mode_and_read_one_by_one(client):
    rv = client.post("/_test/event_destinations", json={
        "enabled_events": ["checkout.session.completed"], "snapshot_api_version": "2025-01-27",
        "aws_account_id": "111122223333", "aws_region": "eu-west-1"})
    assert rv.status_code == 200, rv.json
    d = rv.json
    assert d["object"] == "v2.core.event_destination" and d["type"] == "amazon_eventbridge"
    assert d["status"] == "enabled" and d["event_payload"] == "snapshot"
    assert d["amazon_eventbridge"] == {
        "aws_account_id": "111122223333",
        "aws_event_source_arn": f"arn:aws:events:eu-west-1::event-source/aws.partner/stripe.com/{d['id']}",
        "aws_event_source_status": "active"}
    client.post("/_test/event_destinations", json={"enabled_events": [], "livemode": True})
    listed = client.get("/v2/core/event_destinations", headers=TEST).json
    assert [x["id"] for x in listed["data"]] == [d["id"]]
    assert listed["next_page_url"] is None
    assert len(client.get("/v2/core/event_destinations", headers=LIVE).json["data"]) == 1
    assert client.get(f"/v2/core/event_destinations/{d['id']}", headers=TEST).json == d
    assert client.get(f"/v2/core/event_destinations/{d['id']}", headers=LIVE).status_code == 404
    assert client.get("/v2/core/event_destinations").status_code == 401
    requests = client.get("/_test/requests").json["requests"]
    assert any(r["path"] == "/v2/core/event_destinations" and r["status"] == 200 for r in requests)


def test_a_restricted_key_is_refused_what_its_permissions_lack_before_its_parameters(client):
    key = "rk_test_51RestrictedKeyForTheFake"
    auth = {"Authorization": f"Bearer {key}"}
    rv = client.post("/_test/restricted_keys", json={
        "key": key, "permissions": {"product": "write", "event": "read", "refund": "read"}})
    assert rv.status_code == 200
    assert client.get("/v1/products?limit=1", headers=auth).status_code == 200
    assert client.get("/v1/events?limit=1", headers=auth).status_code == 200
    # A write with no parameters: the permission is checked first, as Stripe does.
    rv = client.post("/v1/refunds", headers=auth)
    assert rv.status_code == 403
    message = rv.json["error"]["message"]
    assert "'rak_refund_write' permission" in message and key not in message
    assert client.post("/v1/products", headers=auth).status_code == 400, "permitted: validation"
    rv = client.get("/v1/checkout/sessions?limit=1", headers=auth)
    assert rv.status_code == 403 and "rak_checkout_session_read" in rv.json["error"]["message"]
    assert client.get("/v2/core/event_destinations", headers=auth).status_code == 403
    # Keys nobody registered (and secret keys) may do everything.
    assert client.get("/v1/checkout/sessions?limit=1", headers=TEST).status_code == 200
    assert client.post("/_test/restricted_keys", json={"key": "sk_x", "permissions": {}}).status_code == 400
