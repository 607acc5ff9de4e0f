"""The DynamoDB model (devstack/dynamo_model.py) refuses what real DynamoDB refuses, and nothing
else: first its decisions on a manual clock, then boto3 against moto through the model.

    .venv/bin/python -m pytest -q devstack/tests/test_dynamo_model.py
"""

from __future__ import annotations

import threading
import time

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.dynamo_model import DynamoModel, ItemKeys, Refusal
from devstack.serving import QueueServer, make_handler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def model(**settings) -> tuple[DynamoModel, Clock]:
    clock = Clock()
    m = DynamoModel(app=None, clock=clock, sleep=lambda s: None,
                    keys=ItemKeys(lambda table: ("pk", "sk")))
    m.configure(settings)
    return m, clock


def key(pk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": "A"}}


def tx(*pks: str) -> dict:
    return {"TransactItems": [{"Update": {"TableName": "t", "Key": key(p), "UpdateExpression": "SET a = :a"}}
                              for p in pks]}


def put(pk: str) -> dict:
    return {"TableName": "t", "Item": {**key(pk), "a": {"N": "1"}}}


def refusal(m: DynamoModel, op: str, body: dict) -> Refusal:
    with pytest.raises(Refusal) as e:
        m.admit(op, body, 1)
    return e.value


def test_a_transaction_on_an_item_another_transaction_holds_is_canceled_at_that_action():
    m, clock = model(conflicts=True, service_ms=10)
    m.admit("TransactWriteItems", tx("a"), 1)
    r = refusal(m, "TransactWriteItems", tx("b", "a"))
    assert r.status == 400 and r.name == "TransactionCanceledException"
    assert [c["Code"] for c in r.body["CancellationReasons"]] == ["None", "TransactionConflict"]
    assert r.body["__type"] == "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
    clock.now += 0.011  # the first transaction is done
    assert m.admit("TransactWriteItems", tx("b", "a"), 1) == (0.0, pytest.approx(100.021))
    assert m.report()["stats"]["conflict_transaction_canceled"] == 1


def test_a_single_write_on_an_item_a_transaction_holds_gets_transaction_conflict():
    m, clock = model(conflicts=True, service_ms=10)
    m.admit("TransactWriteItems", tx("a"), 1)
    r = refusal(m, "PutItem", put("a"))
    assert r.name == "TransactionConflictException"
    assert m.admit("PutItem", put("b"), 1)[0] == 0.0  # another item is free
    clock.now += 0.011
    assert m.admit("UpdateItem", {"TableName": "t", "Key": key("a")}, 1)[0] == 0.0


def test_single_writes_to_one_item_serialise_without_error_and_cancel_a_transaction():
    m, clock = model(conflicts=True, service_ms=10)
    assert m.admit("PutItem", put("a"), 1) == (0.0, pytest.approx(100.010))
    assert m.admit("PutItem", put("a"), 1) == (pytest.approx(0.010), pytest.approx(100.020))
    assert m.admit("DeleteItem", {"TableName": "t", "Key": key("a")}, 1)[0] == pytest.approx(0.020)
    # The stricter reading: a transaction on an item a single write has in flight is cancelled.
    assert refusal(m, "TransactWriteItems", tx("a")).name == "TransactionCanceledException"
    clock.now += 0.031
    assert m.admit("TransactWriteItems", tx("a"), 1)[0] == 0.0
    assert m.report()["stats"]["serialised_waits"] == 2


def test_no_transaction_takes_an_item_from_under_a_queued_single_write():
    m, clock = model(conflicts=True, service_ms=10)
    m.admit("PutItem", put("a"), 1)
    assert m.admit("PutItem", put("a"), 1)[0] == pytest.approx(0.010)
    clock.now += 0.010  # the first is done, the second about to run
    assert refusal(m, "TransactWriteItems", tx("a")).name == "TransactionCanceledException"


def test_reads_never_conflict_but_a_condition_check_s_item_is_held():
    m, clock = model(conflicts=True)
    m.admit("TransactWriteItems", tx("a"), 1)
    for op in ("GetItem", "BatchGetItem", "Query", "Scan"):
        assert m.admit(op, {"TableName": "t", "Key": key("a")}, 1) == (0.0, 100.0)
    check = {"TransactItems": [{"ConditionCheck": {"TableName": "t", "Key": key("c"), "ConditionExpression": "x"}}]}
    m.admit("TransactWriteItems", check, 1)
    r = refusal(m, "TransactWriteItems", tx("b", "c"))
    assert [c["Code"] for c in r.body["CancellationReasons"]] == ["None", "TransactionConflict"]
    assert refusal(m, "PutItem", put("c")).name == "TransactionConflictException"


def test_time_scale_stretches_the_service_time_and_the_report_gives_both_clocks():
    m, clock = model(conflicts=True, service_ms=10, time_scale=5)
    m.admit("TransactWriteItems", tx("a"), 1)
    clock.now += 0.040  # 8 simulated ms: still in flight
    assert refusal(m, "TransactWriteItems", tx("a")).name == "TransactionCanceledException"
    clock.now += 0.011
    m.admit("TransactWriteItems", tx("a"), 1)
    stats = m.report()["stats"]
    assert stats["wall_s"] == pytest.approx(0.051) and stats["simulated_s"] == pytest.approx(0.0102)


def test_the_item_write_ceiling_counts_transactions_double_and_resets_each_simulated_second():
    m, clock = model(conflicts=True, service_ms=0, item_wcu_per_s=3)
    m.admit("PutItem", put("a"), 1)            # 1 unit
    m.admit("TransactWriteItems", tx("a"), 1)  # 2 units: 3 used
    assert refusal(m, "PutItem", put("a")).name == "ProvisionedThroughputExceededException"
    r = refusal(m, "TransactWriteItems", tx("b", "a"))
    assert [c["Code"] for c in r.body["CancellationReasons"]] == ["None", "ThrottlingError"]
    m.admit("PutItem", put("b"), 1)  # other items have their own units
    clock.now += 1.0
    m.admit("PutItem", put("a"), 1)
    stats = m.report()["stats"]
    assert stats["throttled_single_write"] == 1 and stats["throttled_transaction"] == 1


def test_off_by_default_nothing_is_refused():
    m = DynamoModel(app=None, keys=ItemKeys(lambda table: ("pk", "sk")))
    for _ in range(3):
        m.admit("TransactWriteItems", tx("a"), 1)
        m.admit("PutItem", put("a"), 1)
    assert "conflict_transaction_canceled" not in m.report()["stats"]


def test_fault_shares_are_drawn_from_the_seed():
    m, _ = model(faults={"throughput": 0.5}, seed=7)
    outcomes = []
    for _ in range(200):
        try:
            m.admit("GetItem", {}, 1)
            outcomes.append(0)
        except Refusal as r:
            assert r.name == "ProvisionedThroughputExceededException"
            outcomes.append(1)
    assert 60 < sum(outcomes) < 140
    again, _ = model(faults={"throughput": 0.5}, seed=7)
    replay = []
    for _ in range(200):
        try:
            again.admit("GetItem", {}, 1)
            replay.append(0)
        except Refusal:
            replay.append(1)
    assert replay == outcomes


def test_a_transaction_conflict_fault_gives_a_reason_for_every_action():
    m, _ = model(faults={"transaction_conflict": 1.0})
    r = refusal(m, "TransactWriteItems", tx("a", "b", "c"))
    assert [c["Code"] for c in r.body["CancellationReasons"]] == ["TransactionConflict", "None", "None"]
    assert m.report()["stats"]["fault_transaction_conflict"] == 1


def test_tables_limit_where_the_model_acts():
    m, _ = model(conflicts=True, faults={"throughput": 1.0}, tables=["t"])
    other = {"TableName": "u", "Key": key("a")}
    assert m.admit("GetItem", other, 1)[0] == 0.0
    assert m.admit("BatchGetItem", {"RequestItems": {"u": {}}}, 1)[0] == 0.0
    assert refusal(m, "BatchGetItem", {"RequestItems": {"u": {}, "t": {}}}).name == \
        "ProvisionedThroughputExceededException"
    assert refusal(m, "TransactWriteItems", tx("a")).name == "ProvisionedThroughputExceededException"


def test_unknown_settings_are_refused():
    m, _ = model()
    with pytest.raises(ValueError):
        m.configure({"conflict": True})
    with pytest.raises(ValueError):
        m.configure({"faults": {"throttle": 1}})
    for bad in ({"time_scale": 0}, {"faults": {"throughput": "0.5"}}, {"faults": {"throughput": 2}},
                {"item_wcu_per_s": 0}, {"tables": "t"}, {"conflicts": "yes"}):
        with pytest.raises(ValueError):
            m.configure(bad)
    assert m.report()["settings"]["time_scale"] == 1.0  # a refused setting changes nothing


# ---------------------------------------------------------------- through moto, with boto3

@pytest.fixture(scope="module")
def server():
    from devstack.moto_server import build_app

    app = build_app()
    srv = QueueServer("127.0.0.1", 0, app, make_handler(False))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
    client.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    yield url, client
    srv.shutdown()
    srv.server_close()


def configure(url: str, settings: dict) -> None:
    requests.post(f"{url}/_model", json=settings).raise_for_status()


def test_boto3_reads_the_model_s_refusals_as_dynamodb_errors(server):
    url, client = server
    # The first transaction's answer leaves after its 3 s service time: meanwhile it holds "m".
    configure(url, {"conflicts": True, "service_ms": 3_000})
    first = threading.Thread(target=lambda: client.transact_write_items(
        TransactItems=[{"Put": {"TableName": "t", "Item": {**key("m"), "n": {"N": "1"}}}}]))
    first.start()
    while requests.get(f"{url}/_model").json()["stats"].get("transactions", 0) < 1:
        time.sleep(0.01)
    with pytest.raises(ClientError) as e:
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": "t", "Item": key("other")}},
            {"Update": {"TableName": "t", "Key": key("m"), "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "2"}}}}])
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in e.value.response["CancellationReasons"]] == ["None", "TransactionConflict"]
    with pytest.raises(ClientError) as e:
        client.put_item(TableName="t", Item={**key("m"), "n": {"N": "3"}})
    assert e.value.response["Error"]["Code"] == "TransactionConflictException"
    first.join()
    # The first transaction committed; nothing refused reached moto.
    assert client.get_item(TableName="t", Key=key("m"))["Item"]["n"] == {"N": "1"}
    assert "Item" not in client.get_item(TableName="t", Key=key("other"))
    requests.post(f"{url}/_model/reset")


def test_boto3_retries_throughput_faults_and_the_model_counts_the_retries(server):
    url, client = server
    configure(url, {"faults": {"throughput": 1.0}})
    with pytest.raises(ClientError) as e:
        client.get_item(TableName="t", Key=key("m"))
    assert e.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    stats = requests.get(f"{url}/_model").json()["stats"]
    assert stats["fault_throughput"] == 3 and stats["sdk_retries"] == 2


def test_an_internal_error_is_answered_before_moto_does_any_work(server):
    url, client = server
    requests.post(f"{url}/_stats/reset")
    configure(url, {"faults": {"internal_error": 1.0}})
    with pytest.raises(ClientError) as e:
        client.put_item(TableName="t", Item=key("never"))
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert requests.get(f"{url}/_stats").json() == {}
    requests.post(f"{url}/_model/reset")
    assert "Item" not in client.get_item(TableName="t", Key=key("never"))
