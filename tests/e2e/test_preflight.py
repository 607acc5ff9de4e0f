"""`stockbridge preflight` against the local stack and the fake Stripe (issue 12 §3): the real
CLI reads the Lambda quota (moto_server's GetAccountSettings), the fake Stripe's event
destinations and restricted keys, moto's partner event source and bus, the IoT bridge's
retained messages, the table and the queues."""

from __future__ import annotations

import base64
import json
import re

import requests

from conftest import REPO_ROOT, uid

CLAIM = "stockbridge/_deployment"


def event_types() -> list[str]:
    block = (REPO_ROOT / "docs/deploy.md").read_text().split("<!-- stripe-event-types")[1]
    return re.findall(r"`([a-z_]+\.[a-z_.]+)`", block.split("<!-- /stripe-event-types")[0])


def destination(e2e, **fields) -> str:
    body = {"enabled_events": event_types(), "aws_account_id": "123456789012",
            "aws_region": "us-east-1", "snapshot_api_version": api_version(e2e), **fields}
    d = requests.post(f"{e2e.stripe_url}/_test/event_destinations", json=body).json()
    return d["amazon_eventbridge"]["aws_event_source_arn"].split("event-source/")[1]


def api_version(e2e) -> str:
    """What the CLI's build is generated for: the Stripe-Version header its requests carry."""
    e2e.cli("preflight", check=False)
    sent = [r["stripe_version"] for r in e2e.stripe_requests("/v2/core/event_destinations")]
    assert sent and sent[-1], "the preflight read the event destinations"
    return sent[-1]


def restricted_key(e2e, **overrides: str) -> str:
    key = f"rk_test_{uid()}preflight"
    perms = {"checkout_session": "read", "payment_links": "write", "refund": "write",
             "payment_intent": "write", "product": "write", "price": "write", "event": "read",
             "event_destination": "read", "charge": "read", "dispute": "read", **overrides}
    requests.post(f"{e2e.stripe_url}/_test/restricted_keys",
                  json={"key": key, "permissions": perms}).raise_for_status()
    return key


def preflight(e2e, *args: str, **env: str) -> tuple[int, dict[str, list[dict]]]:
    saved = dict(e2e.env)
    e2e.env.update(env)
    try:
        r = e2e.cli("preflight", "--json", *args, check=False)
    finally:
        e2e.env.clear()
        e2e.env.update(saved)
    assert r.stdout.strip(), r.stderr
    found: dict[str, list[dict]] = {}
    for f in json.loads(r.stdout):
        found.setdefault(f["check"], []).append(f)
    return r.returncode, found


def levels(found: dict[str, list[dict]]) -> dict[str, str]:
    return {check: "/".join(f["level"] for f in fs) for check, fs in found.items()}


def set_quota(e2e, total: int) -> None:
    requests.post(f"{e2e.moto_url}/_lambda/account",
                  json={"concurrent_executions": total}).raise_for_status()


def test_a_ready_account_passes_every_check(e2e):
    e2e.create_table()
    set_quota(e2e, 1000)
    source = destination(e2e)
    e2e.events.create_partner_event_source(Name=source, Account="123456789012")
    e2e.events.create_event_bus(Name=source, EventSourceName=source)
    key = restricted_key(e2e)
    code, found = preflight(e2e, STRIPE_API_KEY=key, STRIPE_EVENT_SOURCE_NAME=source,
                            INVENTORY_DLQ_URL="")
    assert code == 0, found
    assert levels(found) == {
        "lambda-quota": "ok", "stripe-key": "ok", "stripe-permissions": "ok",
        "event-destination": "ok", "partner-source": "ok", "iot-topic-prefix": "ok",
        "table": "ok", "table-stream": "ok", "queues": "ok/ok"}, found
    # docs/deploy.md "Preflight" lists exactly these checks.
    guide = (REPO_ROOT / "docs/deploy.md").read_text().split("\n### Preflight\n", 1)[1]
    table = guide.split("| --- | --- | --- |\n", 1)[1].split("\n\n", 1)[0]
    documented = {c for row in table.splitlines() for c in re.findall(r"`([a-z-]+)`", row.split("|")[1])}
    assert documented == set(found)
    # The prefix is now claimed for this table; a second run finds it its own.
    claim = requests.get(f"{e2e.bridge_url}/retainedMessage/{CLAIM.replace('/', '%2F')}").json()
    assert claim["topic"] == CLAIM
    assert "this deployment's" in preflight(e2e, STRIPE_API_KEY=key)[1]["iot-topic-prefix"][0]["detail"]


def test_each_problem_fails_its_check_and_says_what_to_do(e2e):
    e2e.create_table()
    set_quota(e2e, 50)
    # Missing one event type the checkout needs, its source never associated with a bus.
    source = destination(e2e, enabled_events=[t for t in event_types()
                                               if t != "payment_intent.canceled"])
    e2e.events.create_partner_event_source(Name=source, Account="123456789012")
    key = restricted_key(e2e, refund="read")
    # Another deployment holds the prefix.
    requests.post(f"{e2e.bridge_url}/topics/{CLAIM.replace('/', '%2F')}?qos=1&retain=true",
                  data=json.dumps({"table": "someone-elses-table"})).raise_for_status()
    try:
        code, found = preflight(e2e, STRIPE_API_KEY=key, STRIPE_EVENT_SOURCE_NAME=source)
    finally:
        requests.post(f"{e2e.bridge_url}/topics/{CLAIM.replace('/', '%2F')}?qos=1&retain=true",
                      data=b"").raise_for_status()
        set_quota(e2e, 1000)
    assert code == 1
    lv = levels(found)
    assert lv["lambda-quota"] == "fail" and "ReserveConcurrency=no" in found["lambda-quota"][0]["fix"]
    perm = found["stripe-permissions"][0]
    assert lv["stripe-permissions"] == "fail" and "Refunds Write" in perm["detail"]
    assert "rak_refund_write" in perm["detail"] and key not in json.dumps(found)
    assert lv["event-destination"] == "fail"
    assert "payment_intent.canceled" in found["event-destination"][0]["detail"]
    assert lv["partner-source"] == "warn" and "not associated" in found["partner-source"][0]["detail"]
    assert lv["iot-topic-prefix"] == "fail" and "someone-elses-table" in found["iot-topic-prefix"][0]["detail"]
    # With the quota stated as too small for reservations, the other choice passes.
    set_quota(e2e, 50)
    try:
        assert levels(preflight(e2e, "--reserve-concurrency", "no")[1])["lambda-quota"] == "ok"
    finally:
        set_quota(e2e, 1000)


def test_before_a_deploy_it_checks_stripe_and_claims_nothing(e2e):
    code, found = preflight(e2e, TABLE_NAME="", CATALOG_SYNC_QUEUE_URL="", CATALOG_SYNC_DLQ_URL="")
    lv = levels(found)
    assert lv["table"] == "skip" and lv["queues"] == "skip"
    assert lv["stripe-key"] == "warn", "the stack's key is a secret key"
    assert lv["lambda-quota"] == "ok"
    # Other functions of the account already reserve most of it: 14 more would not fit.
    requests.post(f"{e2e.moto_url}/_lambda/account",
                  json={"concurrent_executions": 1000, "unreserved": 105}).raise_for_status()
    try:
        found = preflight(e2e, TABLE_NAME="")[1]
    finally:
        set_quota(e2e, 1000)
    assert levels(found)["lambda-quota"] == "fail", found["lambda-quota"]
    assert "105 of them unreserved" in found["lambda-quota"][0]["detail"]


def test_the_reconciler_finds_another_deployment_on_its_prefix_every_run(e2e, reconciler):
    from conftest import scheduled_event

    topic = CLAIM.replace("/", "%2F")
    requests.post(f"{e2e.bridge_url}/topics/{topic}?qos=1&retain=true",
                  data=json.dumps({"table": "someone-elses-table"})).raise_for_status()
    try:
        code, res = reconciler.invoke(scheduled_event())
    finally:
        requests.post(f"{e2e.bridge_url}/topics/{topic}?qos=1&retain=true", data=b"").raise_for_status()
    assert code == 200 and res["ok"], res
    errors = res["response"]["summary"]["errors"]
    assert any("iot-topic-prefix" in e and "someone-elses-table" in e for e in errors), errors
    # Unclaimed: the run claims it for its own table, and finds nothing wrong.
    code, res = reconciler.invoke(scheduled_event())
    assert not [e for e in res["response"]["summary"]["errors"] if "iot-topic-prefix" in e], res
    claim = requests.get(f"{e2e.bridge_url}/retainedMessage/{topic}").json()
    assert json.loads(base64.b64decode(claim["payload"]))["table"] == e2e.table


def test_a_thin_destination_passes_with_its_cost_named_and_needs_the_v1_types(e2e):
    thin = [f"v1.{t}" for t in event_types()]
    source = destination(e2e, event_payload="thin", enabled_events=thin)
    code, found = preflight(e2e, STRIPE_EVENT_SOURCE_NAME=source)
    (d,) = found["event-destination"]
    assert d["level"] == "warn", d
    assert "thin payloads" in d["detail"] and "one more Stripe request" in d["detail"]
    short = destination(e2e, event_payload="thin", enabled_events=thin[:-1])
    (d,) = preflight(e2e, STRIPE_EVENT_SOURCE_NAME=short)[1]["event-destination"]
    assert d["level"] == "fail" and thin[-1] in d["detail"], d


def test_a_webhook_stack_counts_its_reservation_and_wants_the_health_event(e2e):
    set_quota(e2e, 120)
    try:
        assert levels(preflight(e2e)[1])["lambda-quota"] == "ok"  # 14 + 100 unreserved
        (q,) = preflight(e2e, "--webhook")[1]["lambda-quota"]
        assert q["level"] == "fail" and "reserves 34" in q["detail"], q
    finally:
        set_quota(e2e, 1000)
    requests.post(f"{e2e.stripe_url}/_test/event_destinations", json={
        "type": "webhook_endpoint", "url": "https://example.invalid/hook",
        "enabled_events": event_types(), "snapshot_api_version": api_version(e2e)}).raise_for_status()
    (d,) = preflight(e2e, "--webhook")[1]["event-destination"]
    assert d["level"] == "warn" and "event_generation_failure" in d["detail"], d
    requests.post(f"{e2e.stripe_url}/_test/event_destinations", json={
        "type": "webhook_endpoint", "url": "https://example.invalid/hook", "event_payload": "thin",
        "enabled_events": ["v2.core.health.event_generation_failure.resolved"]}).raise_for_status()
    (d,) = preflight(e2e, "--webhook")[1]["event-destination"]
    assert d["level"] == "ok", d
