"""A Lambda event source mapping on the table's stream, offline: the ``broadcaster``'s trigger.

Usage (AWS endpoints from the environment, normally moto via the stack)::

    AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:M \\
    python -m devstack.stream_trigger --host 127.0.0.1 --port 0 --ready-file F --table TABLE \\
        --lambda-url http://127.0.0.1:L [--batch-size 100] [--max-attempts 5]

WHAT IT EMULATES (template.yaml, ``BroadcasterEventSourceMapping``)
-------------------------------------------------------------------
* the table's stream (``devstack.table_stream``), filtered like the mapping's
  ``FilterCriteria`` ``{"dynamodb": {"Keys": {"sk": {"S": ["ITEM", "SHARD"]}}}}`` or
  ``{"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": ["RESTOCKS"]}}}}`` (records that do not
  match are dropped and never reach the function, as in AWS);
* one read of each shard (GetRecords), then its records to the function before the next read;
  one batch at a time per shard, in stream order, up to ``--batch-size`` records, as the Lambda
  event ``{"Records": [...]}`` (``devstack.table_stream.lambda_record``);
* ``ReportBatchItemFailures``: a response ``{"batchItemFailures": [{"itemIdentifier": SEQ}]}``
  makes the next batch start at the lowest reported record (the ones before it are done); a
  function error, or a report naming a record not in the batch, retries the whole batch;
* after ``--max-attempts`` failed attempts of a batch, the batch is dropped and counted as
  ``batches_discarded`` (in AWS: the on-failure destination, after MaximumRetryAttempts);
  retries wait 0.2 s, 0.4 s, ... (at most 2 s).

Like the template (``StartingPosition: TRIM_HORIZON``) it reads every record the stream keeps.
Not modelled: ``BisectBatchOnFunctionError`` and ``MaximumRecordAgeInSeconds``; after a
partial failure the retried batch may also hold records that arrived since (Lambda retries
the rest of the original batch), and the attempt count resets only when a whole batch
succeeds.

HTTP API
--------
* ``GET /_stats``  ``{"records_read", "records_filtered", "invocations", "function_errors",
  "item_failures", "batches_discarded", "pending", "in_flight"}``.
* ``GET /_idle``   ``{"idle", "stream_caught_up", "pending", "in_flight"}``: ``idle`` when a whole
  stream poll that started after the request found nothing new, no record waits and no
  invocation runs (it waits up to ~2 s for that poll).
* ``GET /_health`` ``{"ok": true, "table", "stream_arn", "lambda_url"}``.
* ``POST /_pause`` / ``POST /_resume`` -> ``{"paused": bool}``: while paused the stream is still
  read but nothing is handed to the function (a test's way to let records pile up, as they do
  while a busy shard's batch runs).
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
from devstack.table_stream import (TableStream, aws_client, lambda_record, partition_key,
                                   sort_key)

REGION_DEFAULT = "us-east-1"
POLL_S = 0.1
IDLE_WAIT_S = 2.0
SORT_KEYS = ("ITEM", "SHARD")  # stock items and spread products' shards
RESTOCKS = "RESTOCKS"  # the partition of merchants' restocks to announce (INSERTs only)


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} stream_trigger: {msg}", file=sys.stderr, flush=True)


def first_failed(response: Any, batch: list[dict]) -> Optional[int]:
    """The index in ``batch`` to retry from: ``len(batch)`` when nothing failed, 0 when the
    report is invalid (the whole batch fails, as in Lambda), else the lowest reported record."""
    if not isinstance(response, dict) or response.get("batchItemFailures") is None:
        return len(batch)
    failures = response["batchItemFailures"]
    if not isinstance(failures, list):
        return 0
    seqs = [r["dynamodb"].get("SequenceNumber") for r in batch]
    lowest = len(batch)
    for f in failures:
        ident = f.get("itemIdentifier") if isinstance(f, dict) else None
        if not isinstance(ident, str) or ident not in seqs:
            return 0
        lowest = min(lowest, seqs.index(ident))
    return lowest


class StreamTrigger:
    def __init__(self, table: str, lambda_url: str, batch_size: int = 100,
                 max_attempts: int = 5, region: Optional[str] = None) -> None:
        self.lambda_url = lambda_url.rstrip("/")
        self.batch_size = max(1, min(10_000, batch_size))
        self.max_attempts = max(1, max_attempts)
        self.region = region or os.environ.get("AWS_REGION") or \
            os.environ.get("AWS_DEFAULT_REGION") or REGION_DEFAULT
        self._clients: dict[str, Any] = {}
        self.stream = TableStream(table, self.client, _log)
        self.lock = threading.Lock()
        self.round_done = threading.Condition(self.lock)
        self.stats = {"records_read": 0, "records_filtered": 0, "invocations": 0,
                      "function_errors": 0, "item_failures": 0, "batches_discarded": 0}
        self.pending: list[dict] = []  # filtered records not yet handled, in stream order
        self.in_flight = 0
        self.caught_up_at = 0.0
        self.force_table_check = threading.Event()
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def client(self, service: str) -> Any:
        """boto3 clients (used by the one reader thread only)."""
        if service not in self._clients:
            self._clients[service] = aws_client(service, self.region)
        return self._clients[service]

    def start(self) -> None:
        self.thread = threading.Thread(target=self._guard, name="stream-trigger", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _guard(self) -> None:
        while not self.stopping.is_set():
            try:
                self._loop()
            except Exception:
                _log(f"reader failed, restarting in 1 s:\n{traceback.format_exc()}")
                self.stopping.wait(1.0)

    def _take(self, records: list[dict]) -> None:
        kept = [lambda_record(r, self.stream.stream_arn, self.region) for r in records
                if sort_key(r) in SORT_KEYS or (partition_key(r) == RESTOCKS
                                                and r.get("eventName") == "INSERT")]
        with self.lock:
            self.stats["records_read"] += len(records)
            self.stats["records_filtered"] += len(records) - len(kept)
            self.pending.extend(kept)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            forced = self.force_table_check.is_set()
            self.force_table_check.clear()
            # One read per shard, then the function: Lambda invokes with what each poll of a
            # shard returned, it does not read to the shard's end first (a burst that keeps
            # writing would starve the function).
            found = self.stream.poll(self._take, forced, self.stopping.is_set, pages=1)
            if not self.paused.is_set():
                self._drain()
            with self.lock:
                if found == 0 and not self.pending:
                    self.caught_up_at = started
                self.round_done.notify_all()
            if found == 0:
                self.stopping.wait(POLL_S)

    def _drain(self) -> None:
        """Hands the pending records to the function, a batch at a time, until none is left."""
        attempts = 0
        while not self.stopping.is_set() and not self.paused.is_set():
            with self.lock:
                batch = self.pending[:self.batch_size]
                if not batch:
                    return
                self.in_flight = 1
                self.stats["invocations"] += 1
            try:
                done = self._invoke(batch)
            finally:
                with self.lock:
                    self.in_flight = 0
            if done == len(batch):
                attempts = 0
            else:
                attempts += 1
                if attempts >= self.max_attempts:
                    _log(f"a batch of {len(batch)} failed {attempts} times: discarded "
                         "(in AWS: the on-failure destination)")
                    with self.lock:
                        self.stats["batches_discarded"] += 1
                    done, attempts = len(batch), 0
                else:
                    self.stopping.wait(min(2.0, 0.2 * 2 ** (attempts - 1)))
            with self.lock:
                del self.pending[:done]

    def _invoke(self, batch: list[dict]) -> int:
        """Invokes the function; returns how many records of the batch are done."""
        try:
            result = invoke(self.lambda_url, {"Records": batch})
        except Exception as e:
            result = {"ok": False, "error": {"errorType": type(e).__name__,
                                             "errorMessage": str(e)}}
        if not result.get("ok"):
            with self.lock:
                self.stats["function_errors"] += 1
            _log(f"function error for a batch of {len(batch)}: {json.dumps(result.get('error'))}")
            return 0
        done = first_failed(result.get("response"), batch)
        if done < len(batch):
            with self.lock:
                self.stats["item_failures"] += 1
        return done

    # ---------------------------------------------------------------- observation

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.stats, pending=len(self.pending), in_flight=self.in_flight)

    def idle(self) -> dict:
        asked = time.monotonic()
        self.force_table_check.set()
        deadline = asked + IDLE_WAIT_S
        with self.lock:
            while self.caught_up_at < asked and time.monotonic() < deadline:
                self.round_done.wait(max(0.0, deadline - time.monotonic()))
            caught_up = self.caught_up_at >= asked
            return {"idle": caught_up and not self.pending and self.in_flight == 0,
                    "stream_caught_up": caught_up, "pending": len(self.pending),
                    "in_flight": self.in_flight}

    def app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        routes = {"/_stats": self.snapshot, "/_idle": self.idle,
                  "/_health": lambda: {"ok": True, "table": self.stream.table,
                                       "stream_arn": self.stream.stream_arn,
                                       "lambda_url": self.lambda_url}}
        if method == "POST" and path in ("/_pause", "/_resume"):
            (self.paused.set if path == "/_pause" else self.paused.clear)()
            return _json(start_response, 200, {"paused": self.paused.is_set()})
        if method != "GET" or path not in routes:
            return _json(start_response, 404, {"error": f"no route {method} {path}"})
        try:
            return _json(start_response, 200, routes[path]())
        except Exception as e:
            _log(f"{method} {path} failed:\n{traceback.format_exc()}")
            return _json(start_response, 500, {"error": f"{type(e).__name__}: {e}"})


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="DynamoDB stream -> Lambda (stock items)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--ready-file", help="write the bound port here once ready")
    parser.add_argument("--table", required=True, help="the DynamoDB table whose stream to read")
    parser.add_argument("--lambda-url", required=True, help="a lambda_driver's base URL")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-attempts", type=int, default=5)
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)
    trigger = StreamTrigger(args.table, args.lambda_url, args.batch_size, args.max_attempts)
    serve_reader("stream_trigger", trigger, args.host, args.port, args.ready_file, args.verbose)


if __name__ == "__main__":
    main()
