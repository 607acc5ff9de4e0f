"""Start / stop the whole offline stack on free loopback ports.

CLI (normally via ``scripts/stack``)::

    python -m devstack.stack up [--env-file .stack/env] [--state-dir .stack]
                                [--inventory-binary target/debug/inventory] [--workers 4]
                                [--no-lambda] [--ready-timeout 30] [--lambda-timeout 60]
                                [--stripe-fixtures PATH] [--mosquitto PATH] [--verbose]
                                [--catalog-sync-binary target/debug/catalog-sync]
                                [--checkout-binary target/debug/checkout]
                                [--sweeper-binary target/debug/sweeper] [--sweep-every 60]
                                [--broadcaster-binary target/debug/broadcaster]

Starts, in order:

1. mosquitto  -- MQTT/TCP and MQTT-over-WebSocket listeners on 127.0.0.1 (config in the state dir).
   Subscribe-only for storefronts, like IoT Core with a read-only policy: anonymous clients may
   only *read* the stock topics ``{IOT_TOPIC_PREFIX}/+/products/+/stock`` (as the AWS guest role) (an ``acl_file``; a denied publish is silently dropped),
   and only the user ``bridge`` (password random per stack, in a ``password_file`` written with
   ``mosquitto_passwd``, never printed nor put in the env file) may publish: the IoT bridge.
2. moto_server (DynamoDB/SQS/EventBridge), iot_bridge (-> mosquitto), fake_stripe -- in parallel
3. lambda_driver running the inventory binary -- only if the binary exists and --no-lambda is not given
4. catalog sync -- only if its binary exists (CLI default ``target/debug/catalog-sync``; Python API:
   ``catalog_sync_binary=``) and --no-lambda is not given: a second lambda_driver
   (``catalog_sync_driver``, function ``catalog-sync``, 2 workers, log ``catalog-sync.log``, the
   inventory's env plus ``STRIPE_MAX_RPS=20``) and ``devstack.catalog_pipe`` (the table's stream
   and the Stripe catalog events -> SQS -> that function); the fake Stripe's catalog event sink
   is then pointed at the pipe's ``/events``
5. checkout -- only if its binary exists (CLI default ``target/debug/checkout``; Python API:
   ``checkout_binary=``) and --no-lambda is not given: a lambda_driver (``checkout_driver``,
   function ``checkout``, 4 workers, log ``checkout.log``, the inventory's env plus
   ``CHECKOUT_ALLOWED_ORIGINS=*`` and ``CHECKOUT_HOLD_SECONDS=900``, both overridable with
   ``extra_lambda_env``) and ``devstack.function_url`` in front of it (``checkout_url``: the
   Function URL, payload format 2.0); exported as ``STOCKBRIDGE_CHECKOUT_URL`` (the Function
   URL's base URL) and ``STOCKBRIDGE_CHECKOUT_LAMBDA_URL`` (its driver)
6. sweeper -- only if its binary exists (CLI default ``target/debug/sweeper``; Python API:
   ``sweeper_binary=``) and --no-lambda is not given: a lambda_driver (``sweeper_driver``,
   function ``sweeper``, 1 worker, log ``sweeper.log``, the inventory's env), exported as
   ``STOCKBRIDGE_SWEEPER_LAMBDA_URL``; with ``sweep_every=N`` (CLI ``--sweep-every N``, default
   60 like production's schedule; 0 = off; Python API default: off) a background thread
   invokes it every N seconds with an EventBridge Scheduler event (``SCHEDULED_EVENT``:
   source ``aws.scheduler``, detail-type ``Scheduled Event``, detail ``{}``); a failed run is
   logged on stderr and counted (``sweep_stats``), never fatal.  ``Stack.sweep()`` runs one
   invocation synchronously and returns the function's JSON result

7. broadcaster -- started FIRST, right after the services, only if its binary exists (CLI
   default ``target/debug/broadcaster``; Python API: ``broadcaster_binary=``) and --no-lambda
   is not given: a lambda_driver (``broadcaster_driver``, function ``broadcaster``, 1 worker,
   log ``broadcaster.log``) and ``devstack.stream_trigger`` (the table's stream, stock items
   only, -> that function, like the template's event source mapping).  Every function started
   after it gets ``STOCK_LEVELS_FROM_STREAM=true`` (as in the template: they publish no level
   themselves), and so does the env file; exported as ``STOCKBRIDGE_STREAM_TRIGGER_URL``;
   ``Stack.wait_broadcasts()`` waits until every change so far is published

waits until each is ready, writes a shell-sourceable env file (``export NAME=value``),
prints it, and stays in the foreground until SIGINT/SIGTERM; then it stops every child
(terminate, wait, kill after 5 s) and removes the env file.  If a child dies early, it
prints which one with its log tail, stops the rest and exits non-zero.  Each child's
log is ``<state-dir>/<name>.log``.

Python API (e.g. a pytest session fixture)::

    from devstack.stack import Stack
    with Stack(inventory_binary="target/debug/inventory", workers=2) as stack:
        stack.env["AWS_ENDPOINT_URL_DYNAMODB"]   # every exported variable
        stack.urls["lambda"]                     # service base URLs
        stack.mqtt_bridge_credentials            # (user, password) allowed to publish

    with Stack(catalog_sync_binary="target/debug/catalog-sync") as stack:
        stack.urls["catalog_pipe"], stack.env["CATALOG_SYNC_QUEUE_URL"]
        stack.wait_catalog_idle()                # events delivered, queue drained

    with Stack(checkout_binary="target/debug/checkout",
               sweeper_binary="target/debug/sweeper", sweep_every=None) as stack:
        stack.env["STOCKBRIDGE_CHECKOUT_URL"]    # POST {url}/... -> the checkout function
        stack.sweep()                            # one sweeper run -> its JSON result
        stack.wait_stripe_events()               # payment_intent.* events delivered
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Union

from devstack.stack_base import *  # noqa: F401,F403 - the names callers import from here
from devstack.stack_base import (_Child, _get_json, _pdeathsig)  # noqa: F401
from devstack.stack_functions import FunctionsMixin


class Stack(FunctionsMixin):
    """The offline stack as a Python object.

    ``Stack(...).start()`` returns once everything is ready; ``stop()`` tears it all
    down (idempotent); also a context manager.  After ``start()``:

    * ``env``   -- dict of every exported variable (same as the env file)
    * ``urls``  -- {"moto", "iot_bridge", "stripe", "lambda"?, "mqtt_ws"} base URLs
    * ``mqtt_host`` / ``mqtt_port`` / ``mqtt_ws_port``
    * ``lambda_started`` -- whether the lambda_driver runs
    * ``catalog_started`` -- whether the catalog-sync driver and the catalog pipe run
      (``urls["catalog_pipe"]``, ``urls["catalog_sync"]``; ``wait_catalog_idle()``)
    * ``checkout_started`` -- whether the checkout driver and its Function URL run
      (``urls["checkout"]`` = the Function URL, ``urls["checkout_lambda"]`` = its driver)
    * ``sweeper_started`` -- whether the sweeper driver runs (``urls["sweeper"]``; ``sweep()``;
      ``sweep_stats`` of the periodic trigger)
    * ``logs``  -- {child name: log path}; ``state_dir``; ``env_file``
    * ``dead_children()`` -- [(name, returncode)] of children that exited
    """

    def __init__(
        self,
        state_dir: Union[str, Path, None] = None,
        env_file: Union[str, Path, None] = None,
        inventory_binary: Union[str, Path, None] = DEFAULT_INVENTORY_BINARY,
        workers: int = 4,
        lambda_enabled: bool = True,
        ready_timeout: float = 30.0,
        lambda_timeout: float = 60.0,
        stripe_fixtures: Union[str, Path, None] = None,
        mosquitto: Optional[str] = None,
        python: Optional[str] = None,
        verbose: bool = False,
        extra_lambda_env: Optional[dict[str, str]] = None,
        catalog_sync_binary: Union[str, Path, None] = None,
        catalog_visibility_timeout: int = 30,
        catalog_max_receive_count: int = 5,
        checkout_binary: Union[str, Path, None] = None,
        sweeper_binary: Union[str, Path, None] = None,
        sweep_every: Optional[float] = None,
        broadcaster_binary: Union[str, Path, None] = None,
        webhook_binary: Union[str, Path, None] = None,
    ) -> None:
        self._temp_state_dir = state_dir is None
        self.state_dir = Path(state_dir).resolve() if state_dir else None
        self._env_file_arg = env_file
        self.env_file: Optional[Path] = None
        self.inventory_binary = Path(inventory_binary).resolve() if inventory_binary else None
        self.workers = workers
        self.lambda_enabled = lambda_enabled
        self.ready_timeout = ready_timeout
        self.lambda_timeout = lambda_timeout
        self.stripe_fixtures = str(Path(stripe_fixtures).resolve()) if stripe_fixtures else None
        self.mosquitto_bin = mosquitto
        self.python = python or sys.executable
        self.verbose = verbose
        self.extra_lambda_env = dict(extra_lambda_env or {})
        self.catalog_sync_binary = Path(catalog_sync_binary).resolve() \
            if catalog_sync_binary else None
        self.catalog_visibility_timeout = catalog_visibility_timeout
        self.catalog_max_receive_count = catalog_max_receive_count
        self.catalog_started = False
        self.catalog_queue: dict[str, str] = {}
        self.checkout_binary = Path(checkout_binary).resolve() if checkout_binary else None
        self.sweeper_binary = Path(sweeper_binary).resolve() if sweeper_binary else None
        self.broadcaster_binary = Path(broadcaster_binary).resolve() \
            if broadcaster_binary else None
        self.broadcaster_started = False
        self.webhook_binary = Path(webhook_binary).resolve() if webhook_binary else None
        self.webhook_started = False
        if sweep_every is not None and sweep_every < 0:
            raise ValueError("sweep_every must be a positive number of seconds (or None/0)")
        self.sweep_every = sweep_every or None
        self.checkout_started = False
        self.sweeper_started = False
        self.sweep_stats: dict = {"runs": 0, "ok": 0, "failures": 0, "last_error": None,
                                  "last_result": None}
        self._sweep_stop = threading.Event()
        self._sweep_thread: Optional[threading.Thread] = None

        self.env: dict[str, str] = {}
        self.urls: dict[str, str] = {}
        self.logs: dict[str, Path] = {}
        self.lambda_started = False
        self.mqtt_host = HOST
        self.mqtt_port: Optional[int] = None
        self.mqtt_ws_port: Optional[int] = None
        self.topic_prefix = {**STATIC_LAMBDA_ENV, **self.extra_lambda_env}["IOT_TOPIC_PREFIX"]
        self._mqtt_bridge_password = secrets.token_urlsafe(24)
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

    # -- context manager --------------------------------------------------------
    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- public ------------------------------------------------------------------
    def start(self) -> "Stack":
        if self._started:
            raise StackError("stack already started")
        self._started = True
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="stockbridge-stack-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.env_file = Path(self._env_file_arg).resolve() if self._env_file_arg else self.state_dir / "env"
        try:
            self._start_mosquitto()
            self._start_services()
            if self._should_start(self.checkout_binary):
                # The waitlist's links lead to the checkout's Function URL, which the
                # broadcaster (started first) needs to know: its port is chosen now.
                self.checkout_url_port = free_ports(1)[0]
                self.extra_lambda_env.setdefault(
                    "WAITLIST_LINK_BASE", f"http://{HOST}:{self.checkout_url_port}")
            # First: every function started after it publishes no level itself.
            if self._should_start(self.broadcaster_binary):
                self._start_broadcaster()
            if self._should_start_lambda():
                self._start_lambda()
            if self._should_start_catalog():
                self._start_catalog()
            if self._should_start(self.checkout_binary):
                self._start_checkout()
            if self._should_start(self.sweeper_binary):
                self._start_sweeper()
            if self._should_start(self.webhook_binary):
                self._start_webhook()
            self._build_env()
            self._write_env_file()
            if self.sweeper_started and self.sweep_every:
                self._sweep_thread = threading.Thread(target=self._sweep_loop,
                                                      name="sweep-schedule", daemon=True)
                self._sweep_thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._sweep_stop.set()
        if self._sweep_thread is not None:
            self._sweep_thread.join(self.lambda_timeout + 5.0)
        children = list(reversed(self._children))
        # What invokes the drivers first, then the drivers (they need their grace period to
        # stop their own workers), then the rest.
        pipes = [c for c in children if c.name.startswith(FRONTS)]
        drivers = [c for c in children if c.name.startswith(DRIVERS)]
        others = [c for c in children if c not in pipes and c not in drivers]
        self._terminate(pipes, STOP_GRACE_S)
        self._terminate(drivers, STOP_GRACE_S + 3.0)
        self._terminate(others, STOP_GRACE_S)
        for c in children:
            c.close_log()
        if self.env_file is not None:
            try:
                self.env_file.unlink()
            except FileNotFoundError:
                pass
        if self.state_dir is not None:
            for name in ("moto.port", "iot_bridge.port", "stripe.port", "lambda.port",
                         "catalog_sync.port", "catalog_pipe.port", "checkout.port",
                         "checkout_url.port", "sweeper.port", "mosquitto.passwd"):
                try:
                    (self.state_dir / name).unlink()
                except FileNotFoundError:
                    pass
            if self._temp_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)

    @property
    def mqtt_bridge_credentials(self) -> tuple[str, str]:
        """The MQTT user allowed to publish (the IoT bridge's); anonymous clients only read."""
        return MQTT_BRIDGE_USER, self._mqtt_bridge_password

    def dead_children(self) -> list[tuple[str, int]]:
        return [(c.name, c.proc.returncode) for c in self._children if c.proc.poll() is not None]

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self._children}

    def env_lines(self) -> str:
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env.items())

    # -- internals -----------------------------------------------------------------
    def _should_start_lambda(self) -> bool:
        return bool(self.lambda_enabled and self.inventory_binary and self.inventory_binary.exists())

    def _should_start_catalog(self) -> bool:
        return bool(self.lambda_enabled and self.catalog_sync_binary
                    and self.catalog_sync_binary.exists())

    def _should_start(self, binary: Optional[Path]) -> bool:
        return bool(self.lambda_enabled and binary and binary.exists())

    def _spawn(self, name: str, argv: list[str], env: Optional[dict[str, str]] = None) -> _Child:
        assert self.state_dir is not None
        log_path = self.state_dir / f"{name}.log"
        log_handle = open(log_path, "ab")
        log_handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shlex.join(argv)}\n".encode())
        log_handle.flush()
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONUNBUFFERED"] = "1"
        child_env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([child_env["PYTHONPATH"]] if child_env.get("PYTHONPATH") else []))
        # PR_SET_PDEATHSIG fires when the spawning *thread* exits, so only use it
        # when spawning from the main thread (lives as long as the process).
        in_main = threading.current_thread() is threading.main_thread()
        proc = subprocess.Popen(
            argv,
            cwd=str(REPO_ROOT),
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
            preexec_fn=_pdeathsig if in_main else None,
        )
        child = _Child(name, proc, log_path, log_handle)
        self._children.append(child)
        self.logs[name] = log_path
        return child

    def _python_module(self, name: str, module: str, args: list[str],
                       env: Optional[dict[str, str]] = None) -> _Child:
        argv = [self.python, "-m", module] + args + (["--verbose"] if self.verbose else [])
        return self._spawn(name, argv, env)

    def _fail(self, child: _Child, why: str) -> StackError:
        return StackError(f"{child.name} {why}; log {child.log_path}:\n{log_tail(child.log_path)}")

    def _wait(self, checks: dict[str, tuple[_Child, Callable[[], bool]]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(checks)
        while pending:
            for name, (child, check) in list(pending.items()):
                if child.proc.poll() is not None:
                    raise self._fail(child, f"exited early with code {child.proc.returncode}")
                if check():
                    del pending[name]
            if not pending:
                break
            if time.monotonic() > deadline:
                child = next(iter(pending.values()))[0]
                raise self._fail(child, f"not ready after {timeout:.0f}s")
            time.sleep(0.05)

    def _start_mosquitto(self) -> None:
        assert self.state_dir is not None
        binary = self.mosquitto_bin or find_mosquitto()
        if not binary:
            raise StackError("mosquitto not found (install it: apt-get install -y mosquitto, or run scripts/stack)")
        acl = self.state_dir / "mosquitto.acl"
        acl.write_text(mosquitto_acl(self.topic_prefix))
        passwd = self.state_dir / "mosquitto.passwd"
        write_mosquitto_password_file(passwd, *self.mqtt_bridge_credentials)
        last_error: Optional[Exception] = None
        for _attempt in range(3):  # a picked free port may be grabbed by someone else meanwhile
            mqtt_port, ws_port = free_ports(2)
            conf = self.state_dir / "mosquitto.conf"
            conf.write_text(mosquitto_config(mqtt_port, ws_port, acl_file=acl, password_file=passwd))
            child = self._spawn("mosquitto", [binary, "-c", str(conf)])
            try:
                self._wait({"mosquitto": (child, lambda: tcp_ready(mqtt_port) and tcp_ready(ws_port))},
                           self.ready_timeout)
                time.sleep(0.05)
                if child.proc.poll() is not None:
                    raise self._fail(child, f"exited early with code {child.proc.returncode}")
            except StackError as exc:
                last_error = exc
                self._children.remove(child)
                self._terminate([child], STOP_GRACE_S)
                child.close_log()
                continue
            self.mqtt_port, self.mqtt_ws_port = mqtt_port, ws_port
            self.urls["mqtt_ws"] = f"ws://{HOST}:{ws_port}"
            return
        raise StackError(f"mosquitto failed to start: {last_error}")

    def _start_services(self) -> None:
        assert self.state_dir is not None
        sd = self.state_dir
        user, password = self.mqtt_bridge_credentials
        specs = {
            "moto": ("moto_server", "devstack.moto_server", [], None),
            "iot_bridge": ("iot_bridge", "devstack.iot_bridge",
                           ["--mqtt-host", HOST, "--mqtt-port", str(self.mqtt_port),
                            "--mqtt-username", user],
                           {**os.environ, MQTT_PASSWORD_ENV: password}),
            "stripe": ("fake_stripe", "devstack.fake_stripe",
                       ["--fixtures", self.stripe_fixtures] if self.stripe_fixtures else [], None),
        }
        checks = {}
        ready_files = {}
        for key, (name, module, extra, env) in specs.items():
            rf = sd / f"{key}.port"
            rf.unlink(missing_ok=True)
            child = self._python_module(
                name, module, ["--host", HOST, "--port", "0", "--ready-file", str(rf)] + extra, env)
            ready_files[key] = rf
            checks[name] = (child, (lambda rf=rf: self._port_ready(rf)))
        self._wait(checks, self.ready_timeout)
        for key, rf in ready_files.items():
            self.urls[key] = f"http://{HOST}:{read_ready_file(rf)}"

    @staticmethod
    def _port_ready(ready_file: Path) -> bool:
        port = read_ready_file(ready_file)
        return port is not None and tcp_ready(port)

    def _lambda_env(self) -> dict[str, str]:
        env = dict(STATIC_LAMBDA_ENV)
        env.update({
            "STRIPE_API_BASE": self.urls["stripe"],
            "AWS_ENDPOINT_URL_DYNAMODB": self.urls["moto"],
            "AWS_ENDPOINT_URL_IOT_DATA_PLANE": self.urls["iot_bridge"],
            "AWS_ENDPOINT_URL_SQS": self.urls["moto"],
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self.urls["moto"],
            # stockbridge's events for the merchant (low_stock, order_refunded), as the template.
            "MERCHANT_EVENT_BUS": "default",
            # Lambda's GetAccountSettings, for `stockbridge preflight` (devstack/moto_server.py).
            "AWS_ENDPOINT_URL_LAMBDA": self.urls["moto"],
        })
        # Explicit either way: a shell that sourced another stack's env file must not make
        # these functions silent when no broadcaster runs.
        env["STOCK_LEVELS_FROM_STREAM"] = "true" if self.broadcaster_started else "false"
        env.update(self.extra_lambda_env)
        return env

    def _build_env(self) -> None:
        env = self._lambda_env()
        env.update({
            "MQTT_HOST": HOST,
            "MQTT_PORT": str(self.mqtt_port),
            "MQTT_WS_URL": self.urls["mqtt_ws"],
            "STOCKBRIDGE_STRIPE_URL": self.urls["stripe"],
            "STOCKBRIDGE_MOTO_URL": self.urls["moto"],
            "STOCKBRIDGE_IOT_BRIDGE_URL": self.urls["iot_bridge"],
        })
        if self.lambda_started:
            env["STOCKBRIDGE_LAMBDA_URL"] = self.urls["lambda"]
        if self.catalog_started:
            env["STOCKBRIDGE_CATALOG_PIPE_URL"] = self.urls["catalog_pipe"]
            env["STOCKBRIDGE_CATALOG_SYNC_LAMBDA_URL"] = self.urls["catalog_sync"]
            env["CATALOG_SYNC_QUEUE_URL"] = self.catalog_queue["queue_url"]
            env["CATALOG_SYNC_DLQ_URL"] = self.catalog_queue["dlq_url"]
        if self.checkout_started:
            env["STOCKBRIDGE_CHECKOUT_URL"] = self.urls["checkout"]
            env["STOCKBRIDGE_CHECKOUT_LAMBDA_URL"] = self.urls["checkout_lambda"]
        if self.sweeper_started:
            env["STOCKBRIDGE_SWEEPER_LAMBDA_URL"] = self.urls["sweeper"]
        if self.webhook_started:
            env["STOCKBRIDGE_WEBHOOK_URL"] = self.urls["webhook"]
            env["STOCKBRIDGE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
        if self.broadcaster_started:
            env["STOCKBRIDGE_STREAM_TRIGGER_URL"] = self.urls["stream_trigger"]
        env["STOCKBRIDGE_STATE_DIR"] = str(self.state_dir)
        self.env = env

    def _write_env_file(self) -> None:
        assert self.env_file is not None
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.env_file.with_name(self.env_file.name + f".tmp.{os.getpid()}")
        tmp.write_text("# generated by devstack.stack; removed when the stack stops\n" + self.env_lines())
        os.replace(tmp, self.env_file)

    @staticmethod
    def _terminate(children: list[_Child], grace: float) -> None:
        for c in children:
            if c.proc.poll() is None:
                try:
                    c.proc.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for c in children:
            try:
                c.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()


class _Interrupted(Exception):
    pass


def _raise_interrupted(signum, _frame) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir).resolve()
    env_file = Path(args.env_file).resolve() if args.env_file else state_dir / "env"
    binary = Path(args.inventory_binary).resolve()
    stack = Stack(
        state_dir=state_dir, env_file=env_file, inventory_binary=binary, workers=args.workers,
        lambda_enabled=not args.no_lambda, ready_timeout=args.ready_timeout,
        lambda_timeout=args.lambda_timeout, stripe_fixtures=args.stripe_fixtures,
        mosquitto=args.mosquitto, verbose=args.verbose,
        catalog_sync_binary=Path(args.catalog_sync_binary).resolve(),
        checkout_binary=Path(args.checkout_binary).resolve(),
        sweeper_binary=Path(args.sweeper_binary).resolve(),
        sweep_every=args.sweep_every or None,
        broadcaster_binary=Path(args.broadcaster_binary).resolve(),
    )
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    code = 0
    try:
        try:
            stack.start()
        except StackError as exc:
            print(f"stack: failed to start: {exc}", file=sys.stderr, flush=True)
            return 1
        if not stack.lambda_started:
            why = "--no-lambda given" if args.no_lambda else f"{binary} does not exist (cargo build -p inventory)"
            print(f"# lambda_driver not started: {why}", flush=True)
        if not stack.catalog_started:
            why = "--no-lambda given" if args.no_lambda else \
                f"{args.catalog_sync_binary} does not exist (cargo build -p catalog-sync)"
            print(f"# catalog sync (driver + pipe) not started: {why}", flush=True)
        if not stack.checkout_started:
            why = "--no-lambda given" if args.no_lambda else \
                f"{args.checkout_binary} does not exist (cargo build -p checkout)"
            print(f"# checkout (driver + Function URL) not started: {why}", flush=True)
        if not stack.sweeper_started:
            why = "--no-lambda given" if args.no_lambda else \
                f"{args.sweeper_binary} does not exist (cargo build -p sweeper)"
            print(f"# sweeper not started: {why}", flush=True)
        elif stack.sweep_every:
            print(f"# sweeper scheduled every {stack.sweep_every:g}s", flush=True)
        if not stack.broadcaster_started:
            why = "--no-lambda given" if args.no_lambda else \
                f"{args.broadcaster_binary} does not exist (cargo build -p stockbridge-broadcaster)"
            print(f"# broadcaster not started: {why}; each function publishes its own levels",
                  flush=True)
        sys.stdout.write(stack.env_lines())
        print(f"# env file: {stack.env_file}   (source it: . {shlex.quote(str(stack.env_file))})")
        print(f"# logs: {stack.state_dir}/*.log")
        print("# stack is up; Ctrl-C (SIGINT) or SIGTERM stops it", flush=True)
        while True:
            dead = stack.dead_children()
            if dead:
                for name, rc in dead:
                    print(f"stack: {name} exited early with code {rc}; log {stack.logs[name]}:\n"
                          f"{log_tail(stack.logs[name])}", file=sys.stderr, flush=True)
                code = 1
                break
            time.sleep(0.5)
    except _Interrupted as exc:
        print(f"# {exc}: stopping the stack", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("# stack stopped", flush=True)
    return code


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.stack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack and stay in the foreground")
    up.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="logs, configs, ready files (default .stack)")
    up.add_argument("--env-file", help="default: <state-dir>/env")
    up.add_argument("--inventory-binary", default=str(DEFAULT_INVENTORY_BINARY))
    up.add_argument("--catalog-sync-binary", default=str(DEFAULT_CATALOG_SYNC_BINARY),
                    help="started (with the catalog pipe) only if it exists")
    up.add_argument("--checkout-binary", default=str(DEFAULT_CHECKOUT_BINARY),
                    help="started (behind a local Function URL) only if it exists")
    up.add_argument("--sweeper-binary", default=str(DEFAULT_SWEEPER_BINARY),
                    help="started only if it exists")
    up.add_argument("--broadcaster-binary", default=str(DEFAULT_BROADCASTER_BINARY),
                    help="started (with the stream trigger) only if it exists; the other "
                    "functions then publish no level themselves (STOCK_LEVELS_FROM_STREAM)")
    up.add_argument("--sweep-every", type=float, default=DEFAULT_SWEEP_EVERY_S,
                    metavar="SECONDS", help="invoke the sweeper on this schedule "
                    "(default: %(default)s, like production; 0 = never)")
    up.add_argument("--workers", type=int, default=4, help="lambda worker processes")
    up.add_argument("--no-lambda", action="store_true", help="do not start the lambda_driver")
    up.add_argument("--ready-timeout", type=float, default=30.0, help="seconds per component")
    up.add_argument("--lambda-timeout", type=float, default=60.0, help="seconds per invocation")
    up.add_argument("--stripe-fixtures", help="passed to fake_stripe --fixtures")
    up.add_argument("--mosquitto", help="mosquitto binary (default: PATH, /usr/sbin/mosquitto)")
    up.add_argument("--verbose", action="store_true", help="servers log every request")
    args = parser.parse_args(argv)
    if args.command == "up" and args.sweep_every < 0:
        parser.error("--sweep-every must be >= 0 (0 = never)")
    if args.command == "up":
        return cmd_up(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
