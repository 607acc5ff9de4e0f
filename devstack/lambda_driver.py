"""A local AWS Lambda: runs an unchanged custom-runtime binary behind the Runtime API.

Usage::

    python -m devstack.lambda_driver --binary target/debug/inventory --workers 4 \
        --log-file .stack/lambda.log --ready-file .stack/lambda.port [--timeout 60]

The driver starts ``--workers`` W copies of ``--binary``.  Each copy is one
"execution environment" and gets its *own* Runtime API endpoint
(``AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>``, a fresh port per process
generation), so the driver always knows exactly which process holds which
invocation.  Implemented Runtime API
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html)::

    GET  /2018-06-01/runtime/invocation/next            (long poll)
    POST /2018-06-01/runtime/invocation/{id}/response
    POST /2018-06-01/runtime/invocation/{id}/error
    POST /2018-06-01/runtime/init/error

``/next`` answers with the raw event body and the headers
``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms``,
``Lambda-Runtime-Invoked-Function-Arn`` and ``Lambda-Runtime-Trace-Id``.

Like Lambda: if a worker process exits while it holds an invocation, that
invocation fails with ``{"errorType": "Runtime.ExitError", "errorMessage":
"worker exited with code N"}`` and the worker is restarted; if it exits before
ever asking for work (init failure), the oldest queued invocation fails with
the init error; an invocation still running when ``--timeout`` expires fails
with ``Sandbox.Timedout`` and its worker is killed and restarted.

Control API (on ``--port``)::

    POST /_invoke   body = raw event; blocks until done; HTTP 200 (504 on timeout) with
                    {"request_id", "ok": bool, "response": <JSON or null>, "error": <JSON or null>,
                     "timed_out": bool, "duration_ms": float, "worker": int|null}
                    ("response_raw" is added when the response body is not JSON)
    GET  /_health   {"ok": true, "workers": [...], "pending": n, "running": n, "stats": {...}}

Python helper: ``invoke(base_url, event) -> dict`` (same JSON as ``/_invoke``).
Worker stdout/stderr are appended to ``--log-file`` line by line, prefixed ``[wN pid]``.
SIGTERM / SIGINT stop the workers (terminate, then kill after 5 s).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Iterable, Optional, Union

from werkzeug.serving import ThreadedWSGIServer

from devstack.lambda_client import invoke  # noqa: F401 - callers import it from here
from devstack.serving import QueueServer, exit_on_signal, make_handler, write_ready_file

RUNTIME_PREFIX = "/2018-06-01/runtime"
ACCOUNT_ID = "123456789012"


# --------------------------------------------------------------------------- model


class Invocation:
    __slots__ = (
        "id", "body", "created", "deadline", "trace_id", "done", "result",
        "worker", "started", "timed_out",
    )

    def __init__(self, body: bytes, timeout: float) -> None:
        self.id = str(uuid.uuid4())
        self.body = body
        self.created = time.time()
        self.deadline = self.created + timeout
        self.trace_id = (
            f"Root=1-{int(self.created):08x}-{secrets.token_hex(12)};"
            f"Parent={secrets.token_hex(8)};Sampled=0"
        )
        self.done = threading.Event()
        self.result: Optional[dict] = None
        self.worker: Optional[WorkerInstance] = None
        self.started: Optional[float] = None
        self.timed_out = False


class WorkerInstance:
    """One process generation of one worker slot, with its own Runtime API server."""

    def __init__(self, slot: int, gen: int) -> None:
        self.slot = slot
        self.gen = gen
        self.proc: Optional[subprocess.Popen] = None
        self.server: Optional[ThreadedWSGIServer] = None
        self.server_thread: Optional[threading.Thread] = None
        self.port = 0
        self.current: Optional[Invocation] = None
        self.alive = True
        self.ever_polled = False
        self.init_error: Optional[dict] = None
        self.started_at = time.monotonic()
        self.invocations = 0






_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 410: "Gone",
            413: "Payload Too Large", 500: "Internal Server Error", 504: "Gateway Timeout"}


def _respond(start_response: Callable, code: int, body: bytes,
             headers: Optional[list[tuple[str, str]]] = None) -> list[bytes]:
    hdrs = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    hdrs.extend(headers or [])
    start_response(f"{code} {_REASONS.get(code, 'Status')}", hdrs)
    return [body]


def _json(start_response: Callable, code: int, obj: Any) -> list[bytes]:
    return _respond(start_response, code, json.dumps(obj).encode())


def _read_body(environ: dict) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return stream.read()
    return b""


def _set_pdeathsig() -> None:
    """Child gets SIGTERM if the thread that spawned it dies (driver killed hard)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# --------------------------------------------------------------------------- driver


class LambdaDriver:
    def __init__(
        self,
        binary: str,
        workers: int = 1,
        log_file: Optional[str] = None,
        timeout: float = 60.0,
        function_name: Optional[str] = None,
        host: str = "127.0.0.1",
        extra_env: Optional[dict[str, str]] = None,
        verbose: bool = False,
    ) -> None:
        self.binary = os.path.abspath(binary)
        self.n_workers = max(1, workers)
        self.timeout = timeout
        self.function_name = function_name or os.path.basename(binary)
        self.host = host
        self.extra_env = dict(extra_env or {})
        self.verbose = verbose
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.function_arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

        self.cond = threading.Condition()
        self.pending: deque[Invocation] = deque()
        self.inflight: dict[str, Invocation] = {}
        self.instances: list[Optional[WorkerInstance]] = [None] * self.n_workers
        self.stopping = False
        self._stop_event = threading.Event()
        self._slot_threads: list[threading.Thread] = []
        self.stats = {"invocations": 0, "ok": 0, "errors": 0, "timeouts": 0, "restarts": 0, "exits": 0}

        self._log_lock = threading.Lock()
        self._log = open(log_file, "ab", buffering=0) if log_file else None

    # -- logging --------------------------------------------------------------
    def log(self, msg: str, prefix: str = "[driver]") -> None:
        line = f"{time.strftime('%H:%M:%S')} {prefix} {msg}\n".encode(errors="replace")
        with self._log_lock:
            if self._log is not None:
                self._log.write(line)
            else:
                sys.stderr.buffer.write(line)
                sys.stderr.flush()

    def _pump_output(self, inst: WorkerInstance, stream) -> None:
        prefix = f"[w{inst.slot} {inst.proc.pid if inst.proc else '?'}]".encode()
        try:
            for line in iter(stream.readline, b""):
                data = prefix + b" " + line if line.endswith(b"\n") else prefix + b" " + line + b"\n"
                with self._log_lock:
                    if self._log is not None:
                        self._log.write(data)
                    else:
                        sys.stderr.buffer.write(data)
                        sys.stderr.flush()
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        if not os.path.exists(self.binary):
            raise FileNotFoundError(self.binary)
        for slot in range(self.n_workers):
            t = threading.Thread(target=self._run_slot, args=(slot,), name=f"slot-{slot}", daemon=True)
            self._slot_threads.append(t)
            t.start()

    def stop(self, grace: float = 5.0) -> None:
        with self.cond:
            if self.stopping:
                return
            self.stopping = True
            self._stop_event.set()
            insts = [i for i in self.instances if i is not None]
            for inv in list(self.pending):
                self._finish(inv, error={"errorType": "Driver.Stopping", "errorMessage": "lambda driver is stopping"})
            self.pending.clear()
            self.cond.notify_all()
        for inst in insts:
            if inst.proc and inst.proc.poll() is None:
                try:
                    inst.proc.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for inst in insts:
            if inst.proc is None:
                continue
            try:
                inst.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"worker {inst.slot} (pid {inst.proc.pid}) ignored SIGTERM; killing")
                inst.proc.kill()
                inst.proc.wait()
        for t in self._slot_threads:
            t.join(timeout=grace)
        for inst in insts:
            self._close_server(inst)
        self.log("stopped")
        with self._log_lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _worker_env(self, inst: WorkerInstance) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        # One invocation at a time per process, as in classic Lambda (lambda_runtime
        # would otherwise poll /next concurrently).
        env.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)
        env.setdefault("AWS_REGION", self.region)
        env.setdefault("AWS_DEFAULT_REGION", self.region)
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": f"{self.host}:{inst.port}",
                "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": (
                    f"{time.strftime('%Y/%m/%d')}/[$LATEST]{inst.slot:04d}{inst.gen:04d}{secrets.token_hex(8)}"
                ),
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "LAMBDA_TASK_ROOT": os.path.dirname(self.binary),
                "LAMBDA_RUNTIME_DIR": os.path.dirname(self.binary),
                "_HANDLER": os.path.basename(self.binary),
            }
        )
        return env

    def _spawn(self, slot: int, gen: int) -> WorkerInstance:
        inst = WorkerInstance(slot, gen)
        inst.server = QueueServer(self.host, 0, self._runtime_app(inst), make_handler(self.verbose))
        inst.port = inst.server.server_address[1]
        inst.server_thread = threading.Thread(
            target=inst.server.serve_forever, kwargs={"poll_interval": 0.2},
            name=f"runtime-api-{slot}-{gen}", daemon=True,
        )
        inst.server_thread.start()
        try:
            inst.proc = subprocess.Popen(
                [self.binary],
                env=self._worker_env(inst),
                cwd=os.path.dirname(self.binary) or None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=_set_pdeathsig,
            )
        except OSError:
            self._close_server(inst)
            raise
        threading.Thread(target=self._pump_output, args=(inst, inst.proc.stdout), daemon=True).start()
        with self.cond:
            self.instances[slot] = inst
        self.log(f"worker {slot} started (pid {inst.proc.pid}, runtime api 127.0.0.1:{inst.port}, gen {gen})")
        return inst

    def _close_server(self, inst: WorkerInstance) -> None:
        srv, inst.server = inst.server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()

    def _run_slot(self, slot: int) -> None:
        gen = 0
        backoff = 0.0
        while not self.stopping:
            try:
                inst = self._spawn(slot, gen)
            except OSError as exc:
                self.log(f"worker {slot}: cannot start {self.binary}: {exc}")
                with self.cond:
                    if self.pending and not self.stopping:
                        self._finish(self.pending.popleft(), error={
                            "errorType": "Runtime.InvalidEntrypoint", "errorMessage": str(exc)})
                backoff = min(5.0, max(0.2, backoff * 2))
                self._stop_event.wait(backoff)
                continue
            gen += 1
            code = inst.proc.wait()
            self._on_exit(inst, code)
            if self.stopping:
                break
            lived = time.monotonic() - inst.started_at
            backoff = 0.0 if lived > 2.0 else min(5.0, max(0.1, backoff * 2))
            if backoff:
                self._stop_event.wait(backoff)

    def _on_exit(self, inst: WorkerInstance, code: int) -> None:
        desc = f"code {code}" if code >= 0 else f"code {code} (signal {signal.Signals(-code).name})"
        error = {"errorType": "Runtime.ExitError", "errorMessage": f"worker exited with {desc}"}
        with self.cond:
            inst.alive = False
            self.stats["exits"] += 1
            if not self.stopping:
                self.stats["restarts"] += 1
            inv, inst.current = inst.current, None
            if inv is not None and not inv.done.is_set():
                self._finish(inv, error=error)
            elif not inst.ever_polled and self.pending and not self.stopping:
                # Died during init: like Lambda, the invocation waiting for it fails.
                err = dict(inst.init_error) if inst.init_error else {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"worker exited during init with {desc}",
                }
                self._finish(self.pending.popleft(), error=err)
            self.cond.notify_all()
        self.log(f"worker {inst.slot} (pid {inst.proc.pid}) exited with {desc}"
                 + ("" if self.stopping else "; restarting"))
        self._close_server(inst)

    def _finish(self, inv: Invocation, response_body: Optional[bytes] = None,
                error: Optional[dict] = None, timed_out: bool = False) -> None:
        """Complete an invocation.  Caller holds self.cond."""
        if inv.done.is_set():
            return
        ok = error is None
        result: dict[str, Any] = {
            "request_id": inv.id,
            "ok": ok,
            "response": None,
            "error": error,
            "timed_out": timed_out,
            "duration_ms": round((time.time() - (inv.started or inv.created)) * 1000, 3),
            "worker": inv.worker.slot if inv.worker else None,
        }
        if ok and response_body is not None:
            try:
                result["response"] = json.loads(response_body) if response_body.strip() else None
            except ValueError:
                result["response_raw"] = response_body.decode("utf-8", errors="replace")
        inv.result = result
        inv.timed_out = timed_out
        self.inflight.pop(inv.id, None)
        self.stats["ok" if ok else "errors"] += 1
        if timed_out:
            self.stats["timeouts"] += 1
        inv.done.set()

    # -- invocation (control side) --------------------------------------------
    def invoke(self, body: bytes) -> tuple[int, dict]:
        inv = Invocation(body, self.timeout)
        with self.cond:
            if self.stopping:
                return 503, {"request_id": inv.id, "ok": False, "response": None, "timed_out": False,
                             "error": {"errorType": "Driver.Stopping", "errorMessage": "lambda driver is stopping"}}
            self.stats["invocations"] += 1
            self.inflight[inv.id] = inv
            self.pending.append(inv)
            self.cond.notify_all()
        if not inv.done.wait(self.timeout):
            with self.cond:
                if not inv.done.is_set():
                    worker = inv.worker
                    if inv in self.pending:
                        self.pending.remove(inv)
                    self._finish(inv, error={
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": f"Task timed out after {self.timeout:.2f} seconds",
                    }, timed_out=True)
                    if worker is not None and worker.current is inv and worker.proc is not None:
                        # Lambda discards the environment of a timed-out invocation.
                        worker.current = None
                        try:
                            worker.proc.kill()
                        except ProcessLookupError:
                            pass
        assert inv.result is not None
        return (504 if inv.timed_out else 200), inv.result

    # -- Runtime API (worker side) --------------------------------------------
    def _runtime_app(self, inst: WorkerInstance) -> Callable:
        def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
            method = environ.get("REQUEST_METHOD", "GET")
            path = environ.get("PATH_INFO", "")
            if not path.startswith(RUNTIME_PREFIX + "/"):
                return _json(start_response, 404, {"errorMessage": f"no route {method} {path}",
                                                   "errorType": "NotFound"})
            rest = path[len(RUNTIME_PREFIX) + 1:]
            if rest == "invocation/next" and method == "GET":
                return self._next(inst, start_response)
            if rest.startswith("invocation/") and method == "POST":
                parts = rest.split("/")
                if len(parts) == 3 and parts[2] in ("response", "error"):
                    return self._complete(inst, parts[1], parts[2], environ, start_response)
            if rest == "init/error" and method == "POST":
                return self._init_error(inst, environ, start_response)
            return _json(start_response, 404, {"errorMessage": f"no route {method} {path}", "errorType": "NotFound"})

        return app

    def _next(self, inst: WorkerInstance, start_response: Callable) -> Iterable[bytes]:
        with self.cond:
            prev = inst.current
            if prev is not None and not prev.done.is_set():
                self._finish(prev, error={"errorType": "Runtime.NoResponse",
                                          "errorMessage": "runtime asked for the next invocation without answering this one"})
            inst.current = None
            inst.ever_polled = True
            while True:
                if self.stopping or not inst.alive:
                    return _json(start_response, 410, {"errorMessage": "environment is shutting down",
                                                       "errorType": "Runtime.Shutdown"})
                if self.pending:
                    inv = self.pending.popleft()
                    break
                self.cond.wait(5.0)
            inv.worker = inst
            inv.started = time.time()
            inst.current = inv
            inst.invocations += 1
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", inv.id),
            ("Lambda-Runtime-Deadline-Ms", str(int(inv.deadline * 1000))),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            ("Lambda-Runtime-Trace-Id", inv.trace_id),
        ]
        return _respond(start_response, 200, inv.body, headers)

    def _complete(self, inst: WorkerInstance, request_id: str, kind: str,
                  environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = _read_body(environ)
        error = None
        if kind == "error":
            error = _parse_error(body, environ.get("HTTP_LAMBDA_RUNTIME_FUNCTION_ERROR_TYPE"))
        with self.cond:
            inv = self.inflight.get(request_id)
            if inv is None or inv.worker is not inst or inv.done.is_set():
                return _json(start_response, 400, {"errorMessage": f"invalid request id {request_id}",
                                                   "errorType": "InvalidRequestID"})
            if kind == "response":
                self._finish(inv, response_body=body)
            else:
                self._finish(inv, error=error)
            if inst.current is inv:
                inst.current = None
        return _json(start_response, 202, {"status": "OK"})

    def _init_error(self, inst: WorkerInstance, environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = _read_body(environ)
        err = _parse_error(body, environ.get("HTTP_LAMBDA_RUNTIME_FUNCTION_ERROR_TYPE"))
        inst.init_error = err
        self.log(f"worker {inst.slot} reported init error: {json.dumps(err)}")
        return _json(start_response, 202, {"status": "OK"})

    # -- control server -------------------------------------------------------
    def health(self) -> dict:
        with self.cond:
            workers = []
            for slot, inst in enumerate(self.instances):
                if inst is None:
                    workers.append({"index": slot, "pid": None, "alive": False})
                    continue
                workers.append({
                    "index": slot,
                    "pid": inst.proc.pid if inst.proc else None,
                    "gen": inst.gen,
                    "alive": inst.alive and inst.proc is not None and inst.proc.poll() is None,
                    "runtime_api": f"{self.host}:{inst.port}",
                    "busy": inst.current is not None,
                    "ready": inst.ever_polled,
                    "invocations": inst.invocations,
                })
            return {
                "ok": not self.stopping,
                "function_name": self.function_name,
                "binary": self.binary,
                "workers": workers,
                "pending": len(self.pending),
                "running": sum(1 for w in workers if w.get("busy")),
                "stats": dict(self.stats),
            }

    def control_app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if path == "/_invoke" and method == "POST":
            code, result = self.invoke(_read_body(environ))
            return _json(start_response, code, result)
        if path == "/_health" and method == "GET":
            return _json(start_response, 200, self.health())
        return _json(start_response, 404, {"message": f"no route {method} {path}"})


def _parse_error(body: bytes, header_type: Optional[str]) -> dict:
    try:
        err = json.loads(body) if body.strip() else {}
    except ValueError:
        err = {"errorMessage": body.decode("utf-8", errors="replace")}
    if not isinstance(err, dict):
        err = {"errorMessage": json.dumps(err)}
    err.setdefault("errorType", header_type or "Unhandled")
    err.setdefault("errorMessage", "")
    return err


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Local Lambda Runtime API driver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="control port, 0 = pick a free port")
    parser.add_argument("--binary", required=True, help="custom-runtime executable (e.g. target/debug/inventory)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-file", help="worker stdout/stderr (default: stderr)")
    parser.add_argument("--ready-file", help="write the control port here once ready")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per /_invoke (-> 504)")
    parser.add_argument("--function-name", help="default: basename of --binary")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the workers (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)

    extra_env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env expects NAME=VALUE, got {item!r}")
        extra_env[name] = value

    driver = LambdaDriver(
        args.binary, args.workers, args.log_file, args.timeout, args.function_name,
        args.host, extra_env, args.verbose,
    )
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGINT, exit_on_signal)
    server = QueueServer(args.host, args.port, driver.control_app, make_handler(args.verbose))
    port = server.server_address[1]
    try:
        driver.start()
        print(f"lambda_driver listening on http://{args.host}:{port} "
              f"({args.workers} x {driver.binary})", flush=True)
        write_ready_file(args.ready_file, port)
        server.serve_forever()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        driver.stop()
        server.server_close()


if __name__ == "__main__":
    main()
