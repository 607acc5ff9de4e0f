"""Following a DynamoDB table's stream through the Streams API, as AWS's stream readers do
(an EventBridge Pipe, a Lambda event source mapping): shared by ``devstack.catalog_pipe`` and
``devstack.stream_trigger``.

A :class:`TableStream` waits for the table, follows its ``LatestStreamArn`` (a deleted and
re-created table has a new stream: it switches, and records not yet read from the old one are
lost, as in AWS), and reads every shard from ``TRIM_HORIZON`` (so writes made before the reader
saw the table are not lost; a restarted reader therefore replays the stream: at-least-once, as
in AWS).  :func:`lambda_record` shapes a record the way Lambda and Pipes hand it over.

moto (5.1): one shard per table; a MODIFY record even for a write that changes nothing (AWS
writes none).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

TABLE_CHECK_S = 1.0

# Where each service is, from the environment (the first variable set wins), as the SDKs read it.
_ENDPOINT_VARS = {
    "dynamodb": ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"),
    "dynamodbstreams": ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "AWS_ENDPOINT_URL_DYNAMODB",
                        "AWS_ENDPOINT_URL"),
    "sqs": ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"),
}


def aws_client(service: str, region: str) -> Any:
    """A boto3 client for a test-bed reader: the endpoint from the environment, a few retries,
    short timeouts."""
    import os

    import boto3
    from botocore.config import Config

    endpoint = next((os.environ[n] for n in _ENDPOINT_VARS[service] if os.environ.get(n)), None)
    return boto3.client(service, region_name=region, endpoint_url=endpoint,
                        config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                      connect_timeout=5, read_timeout=30))


def lambda_record(r: dict, stream_arn: Optional[str], region: str) -> dict:
    """A Streams API record as Lambda and Pipes deliver it (creation time in epoch seconds)."""
    ddb = r.get("dynamodb", {})
    created = ddb.get("ApproximateCreationDateTime")
    if hasattr(created, "timestamp"):
        created = round(created.timestamp(), 3)
    return {"eventID": r.get("eventID"), "eventName": r.get("eventName"),
            "eventVersion": r.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb", "awsRegion": r.get("awsRegion", region),
            "dynamodb": {k: v for k, v in {
                "ApproximateCreationDateTime": created,
                "Keys": ddb.get("Keys"),
                "SequenceNumber": ddb.get("SequenceNumber"),
                "SizeBytes": ddb.get("SizeBytes"),
                "StreamViewType": ddb.get("StreamViewType"),
            }.items() if v is not None},
            "eventSourceARN": stream_arn}


def partition_key(record: dict) -> Optional[str]:
    """The record's ``pk`` string key, if any."""
    return record.get("dynamodb", {}).get("Keys", {}).get("pk", {}).get("S")


def sort_key(record: dict) -> Optional[str]:
    """The record's ``sk`` string key, if any."""
    return record.get("dynamodb", {}).get("Keys", {}).get("sk", {}).get("S")


class TableStream:
    """The records of one table's stream, read on demand (:meth:`poll`)."""

    def __init__(self, table: str, client: Callable[[str], Any],
                 log: Callable[[str], None]) -> None:
        self.table = table
        self.client = client  # service name -> boto3 client (of the calling thread)
        self.log = log
        self.stream_arn: Optional[str] = None
        self._iterators: dict[str, Optional[str]] = {}  # shard -> iterator (None: closed)
        self._last_seq: dict[str, str] = {}  # shard -> sequence number of the last record read
        self._last_check = 0.0
        self._warned_no_stream = False

    def _latest_stream_arn(self) -> Optional[str]:
        try:
            table = self.client("dynamodb").describe_table(TableName=self.table)["Table"]
        except Exception as e:
            if "ResourceNotFound" in str(e):
                return None
            raise
        spec = table.get("StreamSpecification") or {}
        arn = table.get("LatestStreamArn") if spec.get("StreamEnabled", True) else None
        if arn is None and not self._warned_no_stream:
            self._warned_no_stream = True
            self.log(f"table {self.table} has no stream (StreamSpecification {spec}): nothing "
                     "to read until it has one (StreamEnabled, StreamViewType KEYS_ONLY)")
        return arn

    def _follow_table(self) -> None:
        streams = self.client("dynamodbstreams")
        arn = self._latest_stream_arn()
        if arn != self.stream_arn:
            if arn is not None:
                self.log(f"following stream {arn} of table {self.table}")
            elif self.stream_arn is not None:
                self.log(f"table {self.table} (or its stream) is gone; waiting for it")
            self.stream_arn, self._iterators, self._last_seq = arn, {}, {}
        if self.stream_arn is None:
            return
        try:
            desc = streams.describe_stream(StreamArn=self.stream_arn)
        except Exception as e:
            if "ResourceNotFound" not in str(e):
                raise
            self.stream_arn, self._iterators, self._last_seq = None, {}, {}
            return
        for shard in desc.get("StreamDescription", {}).get("Shards", []):
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard["ShardId"],
                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def poll(self, on_records: Callable[[list[dict]], None], forced: bool = False,
             stopping: Optional[Callable[[], bool]] = None,
             pages: Optional[int] = None) -> int:
        """Reads every shard up to its end (or ``pages`` GetRecords calls per shard), handing
        each chunk of records (in stream order) to ``on_records``; returns how many were read.
        The table is looked up again at most every second (or now, when ``forced``)."""
        now = time.monotonic()
        if self.stream_arn is None or forced or now - self._last_check >= TABLE_CHECK_S:
            self._last_check = now
            self._follow_table()
        streams = self.client("dynamodbstreams")
        found = 0
        for shard_id, it in list(self._iterators.items()):
            # A fresh iterator after the last record seen, every poll: moto as released swaps
            # in a copy of the table (and its stream shard) when a transaction fails, and an
            # iterator held across that keeps reading the discarded copy, silently
            # (devstack/moto_scaling.py no longer copies, but STOCKBRIDGE_MOTO_STOCK=1 does).
            if it is not None and shard_id in self._last_seq:
                try:
                    it = streams.get_shard_iterator(
                        StreamArn=self.stream_arn, ShardId=shard_id,
                        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                        SequenceNumber=self._last_seq[shard_id])["ShardIterator"]
                except Exception as e:  # the stream went away: the table check handles it
                    self.log(f"cannot reopen shard {shard_id}: {e}")
                    continue
            reads = 0
            while it is not None and not (stopping and stopping()) and reads != pages:
                reads += 1
                out = streams.get_records(ShardIterator=it, Limit=1000)
                records = out.get("Records", [])
                it = out.get("NextShardIterator")
                self._iterators[shard_id] = it
                if not records:
                    break
                self._last_seq[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
                found += len(records)
                on_records(records)
        return found
