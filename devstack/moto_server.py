"""DynamoDB (and SQS / EventBridge / ...) API for the offline test bed, via moto.

Usage::

    python -m devstack.moto_server --host 127.0.0.1 --port 0 --ready-file .stack/moto.port

WHY A GLOBAL LOCK
-----------------
moto's stock server (``moto.server``) runs moto's in-memory backends under a
threaded werkzeug server, but the backends are not thread-safe.  Measured on
this project: with concurrent conditional writes it oversold stock in 3 of 10
runs, and concurrent ``TransactWriteItems`` calls returned HTTP 500 and left
partially applied (inconsistent) data.  Real DynamoDB evaluates each request
atomically, so our tests would be exercising moto's races, not our code.

``SerializingMiddleware`` therefore holds ONE ``threading.Lock`` for the whole
request: moto reads the request body, runs the operation and produces the
response body, all inside the lock (the body iterator is fully drained and
closed before the lock is released).  Serialised this way, the same workload
was exact on every run.  Throughput is bounded by one request at a time, which
is fine for an offline test bed (each moto call is well under a millisecond
to a few milliseconds of Python work).

The middleware also counts requests per operation (``X-Amz-Target`` header,
e.g. ``DynamoDB_20120810.TransactWriteItems``; for query-protocol services the
``Action`` parameter) and serves, before moto ever sees the request:

* ``GET  /_stats``        -> ``{"DynamoDB_20120810.GetItem": n, ...}``
* ``POST /_stats/reset``  -> resets the counters, answers ``{}``
* ``GET  /_health``       -> ``{"ok": true, "rss_kb": n}`` (this process's resident memory)
* ``GET  /_memory``       -> where the memory is (started with ``PYTHONTRACEMALLOC=N``)
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections import Counter
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs


from devstack.dynamo_model import DynamoModel
from devstack.serving import QueueServer, make_handler, serve_until_signalled

# Fake credentials / region so that nothing in moto (or a library it uses)
# ever tries to look up real ones.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class SerializingMiddleware:
    """Run the wrapped WSGI app strictly one request at a time and count ops."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        # The one lock every moto request runs under (see module docstring).
        self.lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        # Lambda's GetAccountSettings (moto has none): what `stockbridge preflight` reads.
        # POST /_lambda/account {"concurrent_executions": N, "unreserved": U} sets it.
        self.lambda_limits = {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000}

    # -- stats ---------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(sorted(self._stats.items()))

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats.clear()

    @staticmethod
    def operation_name(environ: dict) -> str:
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            return target
        action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
        if action:
            return action[0]
        return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"

    # -- WSGI ----------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_stats" and method == "GET":
            return _json_response(start_response, "200 OK", self.stats())
        if path == "/_stats/reset" and method == "POST":
            self.reset_stats()
            return _json_response(start_response, "200 OK", {})
        if path == "/_memory" and method == "GET":
            return _json_response(start_response, "200 OK", memory_report())
        if path == "/_health" and method == "GET":
            return _json_response(start_response, "200 OK", {"ok": True, "rss_kb": rss_kb()})
        if path.rstrip("/") == "/2016-08-19/account-settings" and method == "GET":
            return _json_response(start_response, "200 OK", {
                "AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000,
                                 "CodeSizeZipped": 52428800, **self.lambda_limits},
                "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0}})
        if path == "/_lambda/account" and method == "POST":
            body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                              or b"{}")
            total = int(body.get("concurrent_executions", 1000))
            self.lambda_limits = {"ConcurrentExecutions": total,
                                  "UnreservedConcurrentExecutions": int(body.get("unreserved", total))}
            return _json_response(start_response, "200 OK", self.lambda_limits)

        op = self.operation_name(environ)
        with self._stats_lock:
            self._stats[op] += 1

        captured: dict[str, Any] = {}

        def capture_start_response(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = list(headers)
            captured["exc_info"] = exc_info

            def write(_data: bytes) -> None:  # legacy WSGI write(); moto never uses it
                captured.setdefault("written", []).append(_data)

            return write

        with self.lock:
            result = self.app(environ, capture_start_response)
            try:
                chunks = list(captured.pop("written", []))
                chunks.extend(result)
                body = b"".join(chunks)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers, captured.get("exc_info"))
        return [body]


def memory_report(top: int = 15) -> dict[str, Any]:
    """Where this process's Python memory is (only when started with PYTHONTRACEMALLOC=N)."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return {"rss_kb": rss_kb(), "tracing": False}
    stats = tracemalloc.take_snapshot().statistics("lineno")
    return {"rss_kb": rss_kb(), "tracing": True,
            "traced_kb": sum(st.size for st in stats) // 1024,
            "top": [{"where": str(st.traceback), "kb": st.size // 1024, "count": st.count}
                    for st in stats[:top]]}


def rss_kb() -> int:
    """Resident set size of this process (Linux), for the benchmarks."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _json_response(start_response: Callable, status: str, obj: Any) -> list[bytes]:
    body = json.dumps(obj).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def build_app() -> "DynamoModel":
    """moto's server WSGI app (as ``python -m moto.server`` builds it), patched to scale
    (devstack.moto_scaling), serialised, behind the DynamoDB model (devstack.dynamo_model:
    faults and real DynamoDB's conflicts, off until asked for)."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    from devstack import moto_scaling

    moto_scaling.install()
    return DynamoModel(SerializingMiddleware(DomainDispatcherApplication(create_backend_app)))


def warm_up(app: "DynamoModel") -> None:
    """Import/instantiate the DynamoDB backend now, not on the first real request."""
    from werkzeug.test import Client

    client = Client(app.app.app)  # moto itself: not counted in the stats
    resp = client.post(
        "/",
        data="{}",
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": (
                "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, "
                "SignedHeaders=host;x-amz-date, Signature=0"
            ),
        },
    )
    if resp.status_code != 200:
        raise RuntimeError(f"moto warm-up failed: {resp.status_code} {resp.get_data(as_text=True)}")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="moto server, serialised behind one lock")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--ready-file", help="write the bound port here once ready")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    app = build_app()
    warm_up(app)
    server = QueueServer(args.host, args.port, app, make_handler(args.verbose))
    serve_until_signalled(server, "moto_server", args.host, args.ready_file)


if __name__ == "__main__":
    main()
