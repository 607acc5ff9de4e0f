"""What every test-bed server shares: a threaded WSGI server with a deep accept queue, quiet
request logs, the ready file the stack waits on, and a clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler


class QueueServer(ThreadedWSGIServer):
    """Threaded server whose listen backlog takes hundreds of concurrent clients (load tests
    connect 200+ at once)."""

    request_queue_size = 1024


def make_handler(verbose: bool) -> type[WSGIRequestHandler]:
    """A request handler that logs each request only when `verbose`."""

    class Handler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            if verbose:
                super().log_request(code, size)

    return Handler


def write_ready_file(path: Optional[str], port: int) -> None:
    """Atomically write the bound port (readers never see a partial file)."""
    if not path:
        return
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def exit_on_signal(signum: int, _frame: Any) -> None:
    """Signal handler: leave through SystemExit so `finally` blocks shut servers down."""
    sys.exit(0)


def serve_until_signalled(server: Any, name: str, host: str, ready_file: Optional[str]) -> None:
    """Serve `server` until SIGTERM/SIGINT: install the handlers, announce the bound port, write
    the ready file the stack waits on, and close the socket on the way out."""
    import signal

    port = server.server_address[1]
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGINT, exit_on_signal)
    print(f"{name} listening on http://{host}:{port}", flush=True)
    write_ready_file(ready_file, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def json_response(start_response: Any, code: int, obj: Any) -> list[bytes]:
    """A WSGI JSON answer."""
    import json

    body = json.dumps(obj).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(code, "Error")
    start_response(f"{code} {reason}", [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(body)))])
    return [body]


def serve_reader(name: str, reader: Any, host: str, port: int, ready_file: Optional[str],
                 verbose: bool) -> None:
    """Runs a stream or queue reader of the test bed (``start()``, ``stop()``, WSGI ``app``)
    behind its HTTP API until SIGTERM/SIGINT, with the offline AWS credentials boto3 wants."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    reader.start()
    server = QueueServer(host, port, reader.app, make_handler(verbose))
    try:
        serve_until_signalled(server, name, host, ready_file)
    finally:
        reader.stop()
