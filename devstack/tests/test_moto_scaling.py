"""The moto patches of devstack/moto_scaling.py keep moto's transaction semantics without
copying tables, and bound what a table's stream keeps.

    .venv/bin/python -m pytest -q devstack/tests/test_moto_scaling.py

moto runs in process (``mock_aws``), patched exactly as devstack.moto_server patches it.
"""

from __future__ import annotations

import copy
import os

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack import moto_scaling


@pytest.fixture()
def ddb(monkeypatch):
    # In-process moto: an endpoint exported for a running stack (`. .stack/env`) would send
    # the client there instead.
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv(moto_scaling.RETAIN_VAR, "4")
    monkeypatch.delenv(moto_scaling.STOCK_VAR, raising=False)
    assert moto_scaling.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client


def put(pk, **attrs):
    item = {"pk": {"S": pk}, "sk": {"S": "A"}, **attrs}
    return {"Put": {"TableName": "t", "Item": item}}


def update_add(pk, value):
    return {"Update": {"TableName": "t", "Key": {"pk": {"S": pk}, "sk": {"S": "A"}},
                       "UpdateExpression": "ADD n :v", "ExpressionAttributeValues": {":v": value}}}


def items(client):
    return sorted((i["pk"]["S"], i.get("n", {}).get("N")) for i in client.scan(TableName="t")["Items"])


def stream_records(client):
    """What a TRIM_HORIZON shard iterator reads (moto's in-process streams API is not served)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"].stream_shard
    return shard.get(shard.starting_sequence_number, 1000)


def test_a_transaction_commits_every_action(ddb):
    ddb.transact_write_items(TransactItems=[put("a", n={"N": "1"}), put("b", n={"N": "2"})])
    assert items(ddb) == [("a", "1"), ("b", "2")]


def test_a_failed_condition_writes_nothing_and_names_its_action(ddb):
    ddb.put_item(TableName="t", Item={"pk": {"S": "b"}, "sk": {"S": "A"}, "n": {"N": "5"}})
    cond = put("b", n={"N": "6"})
    cond["Put"].update(ConditionExpression="attribute_not_exists(pk)", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[put("a", n={"N": "1"}), cond])
    err = e.value.response
    assert err["Error"]["Code"] == "TransactionCanceledException"
    reasons = err["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1]["Item"]["n"] == {"N": "5"}
    assert items(ddb) == [("b", "5")]


def test_a_write_failing_after_others_applied_rolls_them_back_with_their_stream_records(ddb):
    ddb.put_item(TableName="t", Item={"pk": {"S": "s"}, "sk": {"S": "A"}, "n": {"S": "text"}})
    before = len(stream_records(ddb))
    # The Put applies first; ADD on a string attribute fails only when moto executes it.
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[put("a", n={"N": "1"}), update_add("s", {"N": "1"})])
    assert items(ddb) == [("s", None)]
    assert ddb.get_item(TableName="t", Key={"pk": {"S": "s"}, "sk": {"S": "A"}})["Item"]["n"] == {"S": "text"}
    assert len(stream_records(ddb)) == before


def test_the_same_item_twice_in_one_transaction_is_refused(ddb):
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[put("a"), update_add("a", {"N": "1"})])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert items(ddb) == []


def test_a_validation_error_after_a_failed_condition_is_moto_s_validation_error(ddb):
    ddb.put_item(TableName="t", Item={"pk": {"S": "b"}, "sk": {"S": "A"}})
    cond = put("b")
    cond["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
    bad_key = {"Put": {"TableName": "t", "Item": {"pk": {"N": "1"}, "sk": {"S": "A"}}}}
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[put("a"), cond, bad_key])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert items(ddb) == [("b", None)]


def test_no_table_is_copied_by_a_transaction(ddb, monkeypatch):
    from moto.dynamodb.models.table import Table

    for i in range(20):
        ddb.put_item(TableName="t", Item={"pk": {"S": f"x{i}"}, "sk": {"S": "A"}})
    copied = []
    real = copy.deepcopy

    def spy(obj, memo=None):
        copied.append(type(obj).__name__)
        return real(obj, memo)

    monkeypatch.setattr(copy, "deepcopy", spy)
    ddb.transact_write_items(TransactItems=[put("a"), update_add("x1", {"N": "1"})])
    assert Table.__name__ not in copied
    assert copied, "the spy saw no copy at all: it is not watching moto"


def test_the_stream_keeps_its_newest_records_and_counts_on(ddb):
    for i in range(11):
        ddb.put_item(TableName="t", Item={"pk": {"S": f"k{i}"}, "sk": {"S": "A"}})
    records = stream_records(ddb)
    # RETAIN=4: compaction keeps between 4 and 7 of the newest, in order, numbers unbroken.
    assert 4 <= len(records) < 8
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]
    assert keys == [f"k{i}" for i in range(11 - len(records), 11)]
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_retained_log_slices_by_absolute_position():
    log = moto_scaling.RetainedLog(2)
    for i in range(5):
        log.append(i)
    assert len(log) == 5
    # Compaction happens at 2 * keep: four records became the newest two, then one more came.
    assert log[0:5] == [2, 3, 4] and log[4:10] == [4] and log[0:2] == []
    assert log[4] == 4
    with pytest.raises(IndexError):
        log[1]
    del log[4:]
    assert len(log) == 4 and log[0:10] == [2, 3]
