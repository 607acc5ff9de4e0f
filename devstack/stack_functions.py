"""The functions of the offline stack, each behind its Lambda driver, and what invokes them
(the catalog pipe, the Function URL, the sweeper's schedule, the stream trigger): the part of
`devstack.stack.Stack` that starts and waits for them."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

from devstack.stack_base import *  # noqa: F401,F403
from devstack.stack_base import _get_json, _post_json  # noqa: F401


class FunctionsMixin:
    """Starts and waits for the functions; mixed into `Stack` (its state lives there)."""

    def sweep(self, timeout: Optional[float] = None) -> object:
        """One synchronous sweeper invocation with a scheduler event; returns the function's
        JSON result.  Raises StackError when the function fails."""
        if not self.sweeper_started:
            raise StackError("the sweeper is not running")
        out = self._invoke_sweeper(timeout)
        if not out.get("ok"):
            raise StackError(f"sweeper failed: {json.dumps(out.get('error'))}")
        return out.get("response")

    def _invoke_sweeper(self, timeout: Optional[float] = None) -> dict:
        from devstack.lambda_driver import invoke
        event = dict(SCHEDULED_EVENT, id=str(uuid.uuid4()),
                     time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return invoke(self.urls["sweeper"], event,
                      timeout=timeout if timeout is not None else self.lambda_timeout + 10.0)

    def _sweep_loop(self) -> None:
        """The schedule: every sweep_every seconds, one invocation; failures are logged and
        counted, never fatal."""
        assert self.sweep_every
        while not self._sweep_stop.wait(self.sweep_every):
            try:
                out = self._invoke_sweeper()
                error = None if out.get("ok") else out.get("error")
            except Exception as exc:  # driver gone, timeout, ...
                out, error = {}, f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.sweep_stats["runs"] += 1
                if error is None:
                    self.sweep_stats["ok"] += 1
                    self.sweep_stats["last_result"] = out.get("response")
                else:
                    self.sweep_stats["failures"] += 1
                    self.sweep_stats["last_error"] = error
            if error is not None and not self._sweep_stop.is_set():
                print(f"stack: scheduled sweep failed: {json.dumps(error)}", file=sys.stderr,
                      flush=True)

    def wait_stripe_events(self, timeout: float = 60.0) -> dict:
        """Waits until the fake Stripe has POSTed every payment_intent.* event to its event
        sink (each POST returns once the function handled it).  Returns its
        ``GET /_test/event_sink``."""
        deadline = time.monotonic() + timeout
        while True:
            sink = _get_json(self.urls["stripe"] + "/_test/event_sink")
            if sink.get("pending") == 0:
                return sink
            if time.monotonic() > deadline:
                raise StackError(f"stripe events still pending after {timeout:.0f}s: {sink}")
            time.sleep(0.05)

    def wait_catalog_idle(self, timeout: float = 60.0) -> dict:
        """Waits until the fake Stripe has posted every catalog event to the pipe and the pipe
        is idle (stream read, queue drained, no invocation running).  Returns ``/_idle``."""
        if not self.catalog_started:
            raise StackError("the catalog pipe is not running")

        def idle() -> tuple[bool, dict]:
            sink = _get_json(self.urls["stripe"] + "/_test/catalog_event_sink")
            if sink.get("pending") != 0:
                return False, {"sink": sink}
            pipe = _get_json(self.urls["catalog_pipe"] + "/_idle")
            return bool(pipe.get("idle")), pipe

        return _wait_idle(idle, timeout, 0.1, "catalog pipe")

    def _start_lambda(self) -> None:
        assert self.state_dir is not None and self.inventory_binary is not None
        rf = self.state_dir / "lambda.port"
        rf.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(self._lambda_env())
        child = self._python_module(
            "lambda_driver", "devstack.lambda_driver",
            ["--host", HOST, "--port", "0", "--binary", str(self.inventory_binary),
             "--workers", str(self.workers), "--function-name", "inventory",
             "--timeout", str(self.lambda_timeout),
             "--log-file", str(self.state_dir / "inventory.log"), "--ready-file", str(rf)],
            env=env,
        )
        self.logs["inventory"] = self.state_dir / "inventory.log"
        self._wait({"lambda_driver": (child, lambda: self._port_ready(rf))}, self.ready_timeout)
        self.urls["lambda"] = f"http://{HOST}:{read_ready_file(rf)}"
        self.lambda_started = True

    def _start_catalog(self) -> None:
        """The catalog-sync function behind its own driver, then the pipe that feeds it."""
        assert self.state_dir is not None and self.catalog_sync_binary is not None
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(self._lambda_env())
        env["STRIPE_MAX_RPS"] = "20"
        # The pipe creates the queues after the function starts; moto's queue URLs are
        # predictable ({endpoint}/{account}/{name}), checked against the pipe's below.
        dlq_url = f"{self.urls['moto']}/{MOTO_ACCOUNT}/{CATALOG_QUEUE_NAME}-dlq"
        env["CATALOG_SYNC_DLQ_URL"] = dlq_url
        # As CloudFormation requires: the queue's visibility timeout >= the function timeout.
        timeout = min(self.lambda_timeout, float(self.catalog_visibility_timeout))
        rf = self.state_dir / "catalog_sync.port"
        rf.unlink(missing_ok=True)
        driver = self._python_module(
            "catalog_sync_driver", "devstack.lambda_driver",
            ["--host", HOST, "--port", "0", "--binary", str(self.catalog_sync_binary),
             "--workers", "2", "--function-name", "catalog-sync", "--timeout", str(timeout),
             "--log-file", str(self.state_dir / "catalog-sync.log"), "--ready-file", str(rf)],
            env=env,
        )
        self.logs["catalog-sync"] = self.state_dir / "catalog-sync.log"
        self._wait({"catalog_sync_driver": (driver, lambda: self._port_ready(rf))},
                   self.ready_timeout)
        self.urls["catalog_sync"] = f"http://{HOST}:{read_ready_file(rf)}"

        table = self._lambda_env()["TABLE_NAME"]
        prf = self.state_dir / "catalog_pipe.port"
        prf.unlink(missing_ok=True)
        pipe = self._python_module(
            "catalog_pipe", "devstack.catalog_pipe",
            ["--host", HOST, "--port", "0", "--ready-file", str(prf), "--table", table,
             "--lambda-url", self.urls["catalog_sync"], "--queue-name", CATALOG_QUEUE_NAME,
             "--max-receive-count", str(self.catalog_max_receive_count),
             "--visibility-timeout", str(self.catalog_visibility_timeout)],
            env=env,
        )
        self._wait({"catalog_pipe": (pipe, lambda: self._port_ready(prf))}, self.ready_timeout)
        self.urls["catalog_pipe"] = f"http://{HOST}:{read_ready_file(prf)}"
        health = _get_json(self.urls["catalog_pipe"] + "/_health")
        self.catalog_queue = {"queue_url": health["queue_url"], "dlq_url": health["dlq_url"]}
        if health["dlq_url"] != dlq_url:
            raise StackError(f"the catalog DLQ is {health['dlq_url']}, the function was given "
                             f"{dlq_url}")
        # fake_stripe started before the pipe existed: point its catalog sink at it now.
        _post_json(self.urls["stripe"] + "/_test/catalog_event_sink",
                   {"url": self.urls["catalog_pipe"] + "/events"})
        self.catalog_started = True

    def _start_driver(self, name: str, key: str, binary: Path, function: str, workers: int,
                      log: str, env: dict[str, str]) -> str:
        """A lambda_driver for ``binary``; returns its base URL."""
        assert self.state_dir is not None
        rf = self.state_dir / f"{key}.port"
        rf.unlink(missing_ok=True)
        child = self._python_module(
            name, "devstack.lambda_driver",
            ["--host", HOST, "--port", "0", "--binary", str(binary), "--workers", str(workers),
             "--function-name", function, "--timeout", str(self.lambda_timeout),
             "--log-file", str(self.state_dir / log), "--ready-file", str(rf)],
            env=env,
        )
        self.logs[function] = self.state_dir / log
        self._wait({name: (child, lambda: self._port_ready(rf))}, self.ready_timeout)
        return f"http://{HOST}:{read_ready_file(rf)}"

    def _function_env(self, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(self._lambda_env())
        env.update(extra or {})
        env.update(self.extra_lambda_env)  # the caller's overrides win
        return env

    def _start_checkout(self) -> None:
        """The checkout function behind its driver, and its Function URL."""
        self.urls["checkout"] = self.start_checkout_variant("", {})
        self.checkout_started = True

    def start_checkout_variant(self, tag: str, env: dict[str, str]) -> str:
        """Another checkout function (binary, table, Stripe and broker of this stack) with
        ``env`` over its environment, behind its own Function URL; returns that URL.  Its
        processes and logs are named ``checkout_driver{tag}``, ``checkout{tag}.log``, ...
        (``tag`` "" is the stack's own checkout).  Stopped with the stack."""
        assert self.state_dir is not None and self.checkout_binary is not None
        own_log = self.logs.get("checkout")
        lambda_url = self._start_driver(
            f"checkout_driver{tag}", f"checkout{tag}", self.checkout_binary, "checkout", 4,
            f"checkout{tag}.log", {**self._function_env(CHECKOUT_ENV), **env})
        self.logs[f"checkout{tag}"] = self.logs["checkout"]
        if tag and own_log is not None:
            self.logs["checkout"] = own_log
        self.urls[f"checkout{tag}_lambda"] = lambda_url
        port = getattr(self, "checkout_url_port", 0) if not tag else 0
        return self._function_url(f"checkout_url{tag}", lambda_url, port)

    def _function_url(self, name: str, lambda_url: str, port: int = 0) -> str:
        """A local Function URL (devstack.function_url) in front of ``lambda_url``, on
        ``port`` (0: any free one)."""
        assert self.state_dir is not None
        rf = self.state_dir / f"{name}.port"
        rf.unlink(missing_ok=True)
        gateway = self._python_module(
            name, "devstack.function_url",
            ["--host", HOST, "--port", str(port), "--ready-file", str(rf),
             "--lambda-url", lambda_url])
        self._wait({name: (gateway, lambda: self._port_ready(rf))}, self.ready_timeout)
        return f"http://{HOST}:{read_ready_file(rf)}"

    def _start_webhook(self) -> None:
        """The webhook function behind its driver and its Function URL, signed deliveries
        checked against ``WEBHOOK_SECRET``; catalog events go to the catalog pipe's queue."""
        assert self.webhook_binary is not None
        env = self._function_env({"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET})
        if self.catalog_queue:
            env["CATALOG_SYNC_QUEUE_URL"] = self.catalog_queue["queue_url"]
        lambda_url = self._start_driver("webhook_driver", "webhook", self.webhook_binary,
                                        "webhook", 2, "webhook.log", env)
        self.urls["webhook_lambda"] = lambda_url
        self.urls["webhook"] = self._function_url("webhook_url", lambda_url)
        self.webhook_started = True

    def _start_sweeper(self) -> None:
        assert self.sweeper_binary is not None
        self.urls["sweeper"] = self._start_driver(
            "sweeper_driver", "sweeper", self.sweeper_binary, "sweeper", 1, "sweeper.log",
            self._function_env())
        self.sweeper_started = True

    def _start_broadcaster(self) -> None:
        """The broadcaster behind its driver, then the stream trigger that feeds it."""
        assert self.state_dir is not None and self.broadcaster_binary is not None
        env = self._function_env()
        lambda_url = self._start_driver(
            "broadcaster_driver", "broadcaster", self.broadcaster_binary, "broadcaster", 1,
            "broadcaster.log", env)
        self.urls["broadcaster"] = lambda_url
        rf = self.state_dir / "stream_trigger.port"
        rf.unlink(missing_ok=True)
        trigger = self._python_module(
            "stream_trigger", "devstack.stream_trigger",
            ["--host", HOST, "--port", "0", "--ready-file", str(rf),
             "--table", env["TABLE_NAME"], "--lambda-url", lambda_url], env=env)
        self._wait({"stream_trigger": (trigger, lambda: self._port_ready(rf))},
                   self.ready_timeout)
        self.urls["stream_trigger"] = f"http://{HOST}:{read_ready_file(rf)}"
        self.broadcaster_started = True

    def wait_broadcasts(self, timeout: float = 60.0) -> dict:
        """Waits until the stream trigger has handed every stock change to the broadcaster
        and no invocation runs; returns its ``/_idle``."""
        if not self.broadcaster_started:
            raise StackError("the broadcaster is not running")

        def idle() -> tuple[bool, dict]:
            last = _get_json(self.urls["stream_trigger"] + "/_idle")
            return bool(last.get("idle")), last

        return _wait_idle(idle, timeout, 0.05, "broadcasts")


def _wait_idle(probe, timeout: float, every: float, what: str) -> dict:
    """Polls ``probe`` (-> ``(idle, what it read)``) until idle; returns what it read then.
    The stream followers' ``/_idle`` waits (catalog pipe, stream trigger) share it."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    while True:
        done, last = probe()
        if done:
            return last
        if time.monotonic() > deadline:
            raise StackError(f"{what} not idle after {timeout:.0f}s: {last}")
        time.sleep(every)
