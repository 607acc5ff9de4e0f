"""The catalog-sync plumbing, offline: DynamoDB Streams -> EventBridge Pipe -> SQS -> Lambda,
plus the EventBridge rule that routes Stripe catalog events to the same queue.

Usage (AWS endpoints from the environment, normally moto via the stack)::

    AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:M AWS_ENDPOINT_URL_SQS=http://127.0.0.1:M \\
    python -m devstack.catalog_pipe --host 127.0.0.1 --port 0 --ready-file F --table TABLE \\
        --lambda-url http://127.0.0.1:L --max-receive-count 5 --visibility-timeout 2 \\
        [--queue-name stockbridge-catalog-sync] [--pollers 2] [--batch-size 10]

WHAT IT EMULATES (template.yaml)
--------------------------------
* the table's stream (``StreamViewType: KEYS_ONLY``) read by an ``AWS::Pipes::Pipe`` with the
  filter ``{"dynamodb": {"Keys": {"sk": {"S": ["DETAILS"]}}}}`` whose target is
* the standard SQS queue ``<queue-name>`` (``RedrivePolicy`` to ``<queue-name>-dlq``,
  ``maxReceiveCount``), consumed by
* the ``catalog-sync`` Lambda through an event source mapping (batch size 10,
  ``ReportBatchItemFailures``, two concurrent pollers like Lambda's minimum for SQS);
* an EventBridge rule on the Stripe partner bus: detail-type ``product.created``,
  ``product.updated``, ``price.created``, ``price.updated``, ``payment_link.created``,
  ``payment_link.updated`` -> the same queue, message body = the whole EventBridge event.
  Here that is ``POST /events`` (the fake Stripe's ``--catalog-event-sink``).

On start it creates (idempotently) the queue and its DLQ in the SQS endpoint, then starts:

* the **stream poller** (every ~100 ms): waits for the table, follows its ``LatestStreamArn``
  (a deleted and re-created table has a new stream: it switches), reads every shard from
  ``TRIM_HORIZON`` (so writes made before the pipe saw the table are not lost; a restarted
  pipe therefore replays the stream: at-least-once, as in AWS) and sends each record whose
  ``Keys.sk.S == "DETAILS"`` as the message body, shaped like the records Pipes sends
  (``eventID``, ``eventName``, ``eventVersion``, ``eventSource: aws:dynamodb``,
  ``awsRegion``, ``dynamodb: {ApproximateCreationDateTime (epoch seconds), Keys,
  SequenceNumber, SizeBytes, StreamViewType}``, ``eventSourceARN``);
* the **event source mapping**: pollers receive up to ``--batch-size`` messages, invoke the
  function through the Lambda driver with the SQS event (``{"Records": [{messageId,
  receiptHandle, body, attributes: {ApproximateReceiveCount, SentTimestamp, SenderId,
  ApproximateFirstReceiveTimestamp}, messageAttributes, md5OfBody, eventSource: aws:sqs,
  eventSourceARN, awsRegion}]}``) and, like Lambda with ``ReportBatchItemFailures``: a
  response ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`` deletes every
  other message of the batch; the failed ones reappear after the visibility timeout; a
  function error (or a timeout) deletes none; a failure naming an id that is not in the batch
  (or an empty one) fails the whole batch.

HTTP API
--------
* ``POST /events``  body = EventBridge envelope -> ``200 {"routed": true, "message_id"}`` for
  the detail-types above, ``200 {"routed": false}`` otherwise; 400 if the body is not a JSON
  object.
* ``GET /_stats``   ``{"stream_records_forwarded", "stream_records_filtered",
  "events_routed", "events_ignored", "invocations", "messages_deleted", "item_failures",
  "function_errors", "in_flight"}`` (``in_flight``: invocations running now).
* ``GET /_idle``    ``{"idle", "stream_caught_up", "queue_visible", "queue_in_flight",
  "queue_delayed", "invocations_in_flight", "dlq"}``.  ``idle``: a whole stream poll that
  *started after this request arrived* found nothing new, nothing is visible, delayed or in
  flight in the queue and no invocation runs.  It waits up to ~2 s for that poll.  The fake
  Stripe posts its events asynchronously: first wait for its ``GET /_test/catalog_event_sink``
  ``pending == 0``, then for ``idle`` here (``Stack.wait_catalog_idle`` does both).
* ``GET /_health``  ``{"ok": true, "table", "stream_arn", "queue_url", "queue_arn",
  "dlq_url", "dlq_arn", "lambda_url"}``.

WHAT MOTO DOES AND DOES NOT (moto 5.1, behind devstack/moto_server.py)
----------------------------------------------------------------------
* DynamoDB Streams work through the same endpoint (``DynamoDBStreams_20120810.*``): one shard
  per table, records for PutItem / UpdateItem / DeleteItem / TransactWriteItems.  Unlike AWS,
  moto writes a MODIFY record even when a write changes nothing (AWS writes none), so the
  function sees more no-op records than in AWS.  After DeleteTable the old stream is gone
  (DescribeStream: ResourceNotFound), and records not yet read from it are lost.
* SQS redrive works: a message received ``maxReceiveCount`` times moves to the DLQ on the next
  receive, as in AWS, so the pipe does not move messages itself.
* SQS long polling cannot be used: moto's ReceiveMessage waits *inside* the request, and
  moto_server runs every request under one global lock, so a 1 s long poll would stall all
  DynamoDB traffic for 1 s.  The pollers therefore use ``WaitTimeSeconds=0`` and poll every
  ~100 ms when the queue is empty (and wake at once when the pipe itself sends a message).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable, Iterable, Optional

from devstack.lambda_driver import invoke
from devstack.serving import json_response as _json, serve_reader
from devstack.table_stream import TableStream, aws_client, lambda_record, sort_key

DETAIL_TYPES = ("product.created", "product.updated", "price.created", "price.updated",
                "payment_link.created", "payment_link.updated")
DEFAULT_QUEUE = "stockbridge-catalog-sync"
REGION_DEFAULT = "us-east-1"
STREAM_POLL_S = 0.1
QUEUE_POLL_S = 0.1
IDLE_WAIT_S = 2.0



def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} catalog_pipe: {msg}", file=sys.stderr, flush=True)


class CatalogPipe:
    def __init__(self, table: str, lambda_url: str, queue_name: str = DEFAULT_QUEUE,
                 max_receive_count: int = 5, visibility_timeout: int = 30,
                 region: Optional[str] = None, pollers: int = 2, batch_size: int = 10,
                 invoke_timeout: Optional[float] = None) -> None:
        self.table = table
        self.lambda_url = lambda_url.rstrip("/")
        self.queue_name = queue_name
        self.max_receive_count = max_receive_count
        self.visibility_timeout = visibility_timeout
        self.region = region or os.environ.get("AWS_REGION") or \
            os.environ.get("AWS_DEFAULT_REGION") or REGION_DEFAULT
        self.n_pollers = max(1, pollers)
        self.batch_size = max(1, min(10, batch_size))
        self.invoke_timeout = invoke_timeout
        self.queue_url = self.queue_arn = self.dlq_url = self.dlq_arn = ""
        self.stream = TableStream(table, self.client, _log)

        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)  # pollers wait here when the queue is empty
        self.stats = {"stream_records_forwarded": 0, "stream_records_filtered": 0,
                      "events_routed": 0, "events_ignored": 0, "invocations": 0,
                      "messages_deleted": 0, "item_failures": 0, "function_errors": 0}
        self.in_flight = 0      # invocations running
        self.receiving = 0      # ReceiveMessage calls under way
        self.received = 0       # ReceiveMessage calls that returned messages, ever
        self.stream_round = 0   # completed stream poll rounds
        self.caught_up_at = 0.0  # start (monotonic) of the last round that found nothing new
        self.round_done = threading.Condition(self.lock)
        self.force_table_check = threading.Event()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self._local = threading.local()

    @property
    def stream_arn(self) -> Optional[str]:
        return self.stream.stream_arn

    # ---------------------------------------------------------------- clients

    def client(self, service: str) -> Any:
        """One boto3 client per thread and service."""
        cache = getattr(self._local, "clients", None)
        if cache is None:
            cache = self._local.clients = {}
        if service not in cache:
            cache[service] = aws_client(service, self.region)
        return cache[service]

    # ---------------------------------------------------------------- setup

    def setup_queues(self) -> None:
        sqs = self.client("sqs")
        self.dlq_url = sqs.create_queue(QueueName=f"{self.queue_name}-dlq")["QueueUrl"]
        self.dlq_arn = sqs.get_queue_attributes(
            QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attrs = {"VisibilityTimeout": str(self.visibility_timeout),
                 "RedrivePolicy": json.dumps({"deadLetterTargetArn": self.dlq_arn,
                                              "maxReceiveCount": self.max_receive_count})}
        try:
            self.queue_url = sqs.create_queue(QueueName=self.queue_name,
                                              Attributes=attrs)["QueueUrl"]
        except Exception as e:  # exists with other attributes: adopt it, then set ours
            if "QueueAlreadyExists" not in str(e) and "QueueNameExists" not in str(e):
                raise
            self.queue_url = sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes=attrs)
        self.queue_arn = sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def start(self) -> None:
        self.setup_queues()
        targets: list[tuple[str, Callable[[], None]]] = [("stream-poller", self._stream_loop)]
        targets += [(f"sqs-poller-{i}", self._poller_loop) for i in range(self.n_pollers)]
        for name, fn in targets:
            t = threading.Thread(target=self._guard, args=(name, fn), name=name, daemon=True)
            self.threads.append(t)
            t.start()
        _log(f"queue {self.queue_url} (dlq {self.dlq_url}); table {self.table}; "
             f"lambda {self.lambda_url}")

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            self.wake.notify_all()

    def _guard(self, name: str, fn: Callable[[], None]) -> None:
        """Runs a loop forever: an unexpected error is logged and the loop restarts."""
        while not self.stopping.is_set():
            try:
                fn()
            except Exception:
                _log(f"{name} failed, restarting in 1 s:\n{traceback.format_exc()}")
                self.stopping.wait(1.0)

    # ---------------------------------------------------------------- SQS send

    def send(self, bodies: list[str]) -> list[str]:
        """Sends message bodies (in batches of 10); returns the message ids."""
        ids: list[str] = []
        sqs = self.client("sqs")
        for i in range(0, len(bodies), 10):
            chunk = bodies[i:i + 10]
            out = sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "MessageBody": b} for n, b in enumerate(chunk)])
            if out.get("Failed"):
                raise RuntimeError(f"SendMessageBatch failed: {out['Failed']}")
            by_id = {e["Id"]: e["MessageId"] for e in out.get("Successful", [])}
            ids += [by_id[str(n)] for n in range(len(chunk))]
        with self.lock:
            self.wake.notify_all()
        return ids

    # ---------------------------------------------------------------- EventBridge rule

    def route_event(self, envelope: Any) -> dict:
        if not isinstance(envelope, dict):
            raise ValueError("the body must be a JSON object (an EventBridge event)")
        if envelope.get("detail-type") not in DETAIL_TYPES:
            with self.lock:
                self.stats["events_ignored"] += 1
            return {"routed": False}
        (mid,) = self.send([json.dumps(envelope)])
        with self.lock:
            self.stats["events_routed"] += 1
        return {"routed": True, "message_id": mid}

    # ---------------------------------------------------------------- stream -> queue

    def _stream_loop(self) -> None:
        stream = self.stream
        while not self.stopping.is_set():
            started = time.monotonic()
            forced = self.force_table_check.is_set()
            self.force_table_check.clear()
            found = stream.poll(self._forward, forced, self.stopping.is_set)
            with self.lock:
                self.stream_round += 1
                if found == 0:
                    self.caught_up_at = started
                self.round_done.notify_all()
            if found == 0:
                self.stopping.wait(STREAM_POLL_S)

    def _forward(self, records: list[dict]) -> None:
        bodies = []
        filtered = 0
        for r in records:
            if sort_key(r) != "DETAILS":
                filtered += 1
                continue
            bodies.append(json.dumps(lambda_record(r, self.stream_arn, self.region)))
        if bodies:
            self.send(bodies)
        with self.lock:
            self.stats["stream_records_forwarded"] += len(bodies)
            self.stats["stream_records_filtered"] += filtered

    # ---------------------------------------------------------------- queue -> Lambda

    def _poller_loop(self) -> None:
        sqs = self.client("sqs")
        while not self.stopping.is_set():
            msgs: list[dict] = []
            with self.lock:
                self.receiving += 1
            try:
                # WaitTimeSeconds=0: a long poll would hold moto_server's global lock.
                msgs = sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=0, AttributeNames=["All"],
                    MessageAttributeNames=["All"]).get("Messages", [])
            finally:
                with self.lock:
                    if msgs:  # counted busy before it stops counting as receiving
                        self.in_flight += 1
                        self.received += 1
                    self.receiving -= 1
            if not msgs:
                with self.lock:
                    self.wake.wait(QUEUE_POLL_S)
                continue
            try:
                self._run_batch(sqs, msgs)
            finally:
                with self.lock:
                    self.in_flight -= 1

    def _sqs_event(self, msgs: list[dict]) -> dict:
        records = []
        for m in msgs:
            a = m.get("Attributes", {})
            records.append({
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {k: a[k] for k in (
                    "ApproximateReceiveCount", "SentTimestamp", "SenderId",
                    "ApproximateFirstReceiveTimestamp") if k in a},
                "messageAttributes": {
                    k: {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [], "binaryListValues": [],
                        "dataType": v.get("DataType")}
                    for k, v in (m.get("MessageAttributes") or {}).items()},
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": self.region,
            })
        return {"Records": records}

    def _run_batch(self, sqs: Any, msgs: list[dict]) -> None:
        with self.lock:
            self.stats["invocations"] += 1
        try:
            result = invoke(self.lambda_url, self._sqs_event(msgs), timeout=self.invoke_timeout)
        except Exception as e:
            result = {"ok": False, "error": {"errorType": type(e).__name__,
                                             "errorMessage": str(e)}}
        if not result.get("ok"):
            with self.lock:
                self.stats["function_errors"] += 1
            _log(f"function error for a batch of {len(msgs)}: {json.dumps(result.get('error'))}"
                 " (the messages come back after the visibility timeout)")
            return
        ids = [m["MessageId"] for m in msgs]
        failed = self._failed_ids(result.get("response"), ids)
        if failed is None:  # an invalid failure report fails the whole batch, as in Lambda
            failed = set(ids)
        done = [m for m in msgs if m["MessageId"] not in failed]
        deleted = 0
        for i in range(0, len(done), 10):
            out = sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                for n, m in enumerate(done[i:i + 10])])
            deleted += len(out.get("Successful", []))
            for f in out.get("Failed", []):
                _log(f"DeleteMessage failed: {f}")
        with self.lock:
            self.stats["messages_deleted"] += deleted
            self.stats["item_failures"] += len(failed)

    @staticmethod
    def _failed_ids(response: Any, ids: list[str]) -> Optional[set[str]]:
        """The ``batchItemFailures`` of a response; None if the report is invalid."""
        if not isinstance(response, dict) or response.get("batchItemFailures") is None:
            return set()
        failures = response["batchItemFailures"]
        if not isinstance(failures, list):
            return None
        out = set()
        for f in failures:
            ident = f.get("itemIdentifier") if isinstance(f, dict) else None
            if not isinstance(ident, str) or ident not in ids:
                return None
            out.add(ident)
        return out

    # ---------------------------------------------------------------- observation

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.stats, in_flight=self.in_flight)

    def idle(self) -> dict:
        asked = time.monotonic()
        self.force_table_check.set()
        deadline = asked + IDLE_WAIT_S
        with self.lock:
            while self.caught_up_at < asked and time.monotonic() < deadline:
                self.round_done.wait(max(0.0, deadline - time.monotonic()))
            caught_up = self.caught_up_at >= asked
            busy_before, received_before = self.in_flight + self.receiving, self.received
        sqs = self.client("sqs")
        # Two reads, in this order: moto counts each attribute at its own instant, so in one
        # read a message whose visibility timeout ends between the two counts is neither
        # visible nor in flight.  Hidden and delayed messages only turn visible by themselves;
        # a visible one turns hidden only by our own receive, which `received` records.
        hidden = ["ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
        q = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=hidden)["Attributes"]
        invisible, delayed = (int(q.get(n, 0)) for n in hidden)
        visible = int(sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"].get("ApproximateNumberOfMessages", 0))
        names = ["ApproximateNumberOfMessages"] + hidden
        d = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=names)["Attributes"]
        with self.lock:
            local_busy = max(busy_before, self.in_flight + self.receiving)
            quiet = self.received == received_before
        return {"idle": caught_up and visible == 0 and invisible == 0 and delayed == 0
                and local_busy == 0 and quiet,
                "stream_caught_up": caught_up, "queue_visible": visible,
                "queue_in_flight": invisible, "queue_delayed": delayed,
                "invocations_in_flight": local_busy,
                "dlq": sum(int(d.get(n, 0)) for n in names)}

    def health(self) -> dict:
        return {"ok": True, "table": self.table, "stream_arn": self.stream_arn,
                "queue_url": self.queue_url, "queue_arn": self.queue_arn,
                "dlq_url": self.dlq_url, "dlq_arn": self.dlq_arn,
                "lambda_url": self.lambda_url}

    # ---------------------------------------------------------------- HTTP

    def app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        try:
            if path == "/events" and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length else b""
                try:
                    envelope = json.loads(raw)
                    return _json(start_response, 200, self.route_event(envelope))
                except ValueError as e:
                    return _json(start_response, 400, {"error": str(e)})
            if path == "/_stats" and method == "GET":
                return _json(start_response, 200, self.snapshot())
            if path == "/_idle" and method == "GET":
                return _json(start_response, 200, self.idle())
            if path == "/_health" and method == "GET":
                return _json(start_response, 200, self.health())
            return _json(start_response, 404, {"error": f"no route {method} {path}"})
        except Exception as e:
            _log(f"{method} {path} failed:\n{traceback.format_exc()}")
            return _json(start_response, 500, {"error": f"{type(e).__name__}: {e}"})


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="DynamoDB stream -> pipe -> SQS -> Lambda, and the Stripe catalog rule")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--ready-file", help="write the bound port here once ready")
    parser.add_argument("--table", required=True, help="the DynamoDB table whose stream to read")
    parser.add_argument("--lambda-url", required=True, help="a lambda_driver's base URL")
    parser.add_argument("--queue-name", default=DEFAULT_QUEUE)
    parser.add_argument("--max-receive-count", type=int, default=5)
    parser.add_argument("--visibility-timeout", type=int, default=30, help="seconds")
    parser.add_argument("--pollers", type=int, default=2, help="concurrent SQS pollers")
    parser.add_argument("--batch-size", type=int, default=10, help="1..10 messages per call")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)
    pipe = CatalogPipe(args.table, args.lambda_url, args.queue_name, args.max_receive_count,
                       args.visibility_timeout, pollers=args.pollers,
                       batch_size=args.batch_size)
    serve_reader("catalog_pipe", pipe, args.host, args.port, args.ready_file, args.verbose)


if __name__ == "__main__":
    main()
