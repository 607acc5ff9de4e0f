"""End-to-end harness: the real `inventory` binary behind the devstack (moto DynamoDB, fake
Stripe, IoT bridge -> mosquitto, Lambda Runtime API driver), plus the `stockbridge` CLI.

ONE stack is started per session (4 Lambda workers) and ONE table is created in it.  Every test
uses its own store id and product / session / event ids (uuid suffix), so tests never see each
other's data and the table stays small.

The stack also runs catalog sync: the `catalog-sync` binary behind its own driver and
`devstack.catalog_pipe` (table stream and Stripe catalog events -> SQS -> catalog-sync, DLQ).
`E2E.wait_catalog_idle()` waits until every catalog event was delivered and the queue drained.

A second, in-process Lambda driver (`crash_driver`) runs the same code, built with its test-only
crash hook (`inventory-crash-hook`, `--features crash-hook`), against the same services with
``STOCKBRIDGE_FAULT=crash-after-commit``: its workers abort right after their first commit.  Redeliveries go to the stack's normal workers.

Environment knobs:
  STOCKBRIDGE_E2E_CLI_WAIT   seconds to wait at session start for a working `stockbridge` CLI
                             (default 0: use it if it works, else seed through boto3)
  STOCKBRIDGE_E2E_INVENTORY  inventory binary (default target/debug/inventory)
  STOCKBRIDGE_E2E_CLI        CLI binary (default target/debug/stockbridge)
  STOCKBRIDGE_E2E_CATALOG_SYNC  catalog-sync binary (default target/debug/catalog-sync)
  STOCKBRIDGE_E2E_CHECKOUT   checkout binary (default target/debug/checkout)
  STOCKBRIDGE_E2E_SWEEPER    sweeper binary (default target/debug/sweeper)

The stack also runs the checkout function behind its local Function URL
(``E2E.checkout_url``, ``E2E.post_checkout``) and the sweeper (not scheduled: tests call
``E2E.sweep()``).  The ``payment_events`` fixture points the fake Stripe's event sink at the
inventory Lambda for one test (payment_intent.* events are delivered in the background:
``E2E.wait_stripe_events()``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Iterable

import pytest

from harness import *  # noqa: F401,F403 - the tests import the harness's names from here
from harness import (CATALOG_SYNC_BIN, CHECKOUT_BIN, CLI_BIN, E2E, INVENTORY_BIN,
                     INVENTORY_CRASH_BIN, RECONCILER_BIN, SWEEPER_BIN, WEBHOOK_BIN)

from devstack.lambda_driver import LambdaDriver
from devstack.stack import SCHEDULED_EVENT, Stack

def _wait_for_cli(e2e: E2E, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not e2e.cli_ready(refresh=True) and time.monotonic() < deadline:
        time.sleep(5)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterable[Stack]:
    if not INVENTORY_BIN.exists():
        pytest.exit(f"{INVENTORY_BIN} is not built (cargo build -p stockbridge-inventory)", returncode=2)
    if not CATALOG_SYNC_BIN.exists():
        pytest.exit(f"{CATALOG_SYNC_BIN} is not built (cargo build -p stockbridge-catalog-sync)", returncode=2)
    state = tmp_path_factory.mktemp("stack")
    s = Stack(state_dir=state, inventory_binary=INVENTORY_BIN, workers=4, lambda_enabled=True,
                      ready_timeout=60, lambda_timeout=120, catalog_sync_binary=CATALOG_SYNC_BIN,
                      checkout_binary=CHECKOUT_BIN, sweeper_binary=SWEEPER_BIN, sweep_every=None,
                      webhook_binary=WEBHOOK_BIN,
                      # The suite's reservation races hold every unit of items that also have
                      # Payment Links; test_checkout_hoarder.py runs a checkout with the
                      # template's share of 50 %.
                      extra_lambda_env={"CHECKOUT_HOLD_SHARE_PERCENT": "100"})
    s.start()
    try:
        assert s.lambda_started, "the lambda driver did not start"
        assert s.catalog_started, "catalog sync (driver + pipe) did not start"
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def e2e(stack, tmp_path_factory) -> E2E:
    h = E2E(stack, stack.env["TABLE_NAME"], tmp_path_factory.mktemp("work"))
    _wait_for_cli(h, float(os.environ.get("STOCKBRIDGE_E2E_CLI_WAIT", "0")))
    # The CLI is part of what is tested: a missing or broken one fails the run, never skips it.
    assert h.cli_ready(refresh=True), f"{CLI_BIN} is not the stockbridge CLI: build the workspace"
    h.create_table_via = h.create_table()
    _wait_workers_ready(h, 4)
    return h


def _wait_workers_ready(h: E2E, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        workers = h.http.get(f"{h.lambda_url}/_health").json()["workers"]
        if sum(1 for w in workers if w.get("ready") and w.get("alive")) >= n:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"lambda workers not ready: {workers}\n{h.inventory_log_tail()}")
        time.sleep(0.1)


def _crashing(e2e, fault: str) -> LambdaDriver:
    assert INVENTORY_CRASH_BIN.exists(), (
        f"{INVENTORY_CRASH_BIN} is not built: cargo build --workspace "
        "--features stockbridge-inventory/crash-hook --bin inventory-crash-hook")
    env = dict(e2e.env)
    env["STOCKBRIDGE_FAULT"] = fault
    return LambdaDriver(str(INVENTORY_CRASH_BIN), workers=1,
                        log_file=str(Path(e2e.stack.state_dir) / f"inventory-{fault}.log"),
                        timeout=120, function_name=f"inventory-{fault}", extra_env=env)


@pytest.fixture(scope="session")
def crash_driver(e2e) -> Iterable[LambdaDriver]:
    """The inventory built with its test-only crash hook (`inventory-crash-hook`, see
    scripts/test), on the same services, one worker, STOCKBRIDGE_FAULT=crash-after-commit."""
    driver = _crashing(e2e, "crash-after-commit")
    driver.start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="session")
def take_crash_driver(e2e) -> Iterable[LambdaDriver]:
    """As `crash_driver`, with STOCKBRIDGE_FAULT=crash-after-take: its worker aborts right after
    its first take (the hot path's conditional update) and before the take's record."""
    driver = _crashing(e2e, "crash-after-take")
    driver.start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="session")
def reconciler(e2e) -> Iterable[LambdaDriver]:
    """The `reconciler` Lambda on the same services (all stores, no grace period, no catalog
    check), invoked with `reconciler.invoke(scheduled_event())`."""
    assert RECONCILER_BIN.exists(), f"{RECONCILER_BIN} is not built"
    env = dict(e2e.env, RECONCILER_SESSION_GRACE_SECS="0", RECONCILER_CATALOG_SEGMENTS="0")
    driver = LambdaDriver(str(RECONCILER_BIN), workers=1,
                          log_file=str(Path(e2e.stack.state_dir) / "reconciler.log"),
                          timeout=120, function_name="reconciler", extra_env=env)
    driver.start()
    try:
        yield driver
    finally:
        driver.stop()


def scheduled_event() -> bytes:
    """What EventBridge Scheduler sends the reconciler."""
    return json.dumps(dict(SCHEDULED_EVENT, id=str(uuid.uuid4()))).encode()


@pytest.fixture
def checkout_stack(e2e) -> E2E:
    """The checkout function and the sweeper are running (missing binaries fail, never skip)."""
    assert e2e.stack.checkout_started, f"checkout did not start: is {CHECKOUT_BIN} built?"
    assert e2e.stack.sweeper_started, f"the sweeper did not start: is {SWEEPER_BIN} built?"
    return e2e


@pytest.fixture
def payment_events(checkout_stack) -> Iterable[E2E]:
    """For one test, the fake Stripe's event sink is the inventory Lambda (payment_intent.*
    events, delivered in the background); afterwards every event is delivered and the sink unset."""
    e2e = checkout_stack
    e2e.set_event_sink(f"{e2e.lambda_url}/_invoke")
    try:
        yield e2e
    finally:
        try:
            e2e.wait_stripe_events()
        finally:
            e2e.set_event_sink(None)


@pytest.fixture
def ids() -> dict[str, str]:
    """Fresh per-test ids: a store and a suffix for products, sessions, events."""
    u = uid()
    return {"store": f"store_e2e_{u}", "u": u}


class Catalog:
    """One test's store with products, links and sessions in the fake Stripe."""

    def __init__(self, e2e, store: str, u: str) -> None:
        self.e2e, self.store, self.u = e2e, store, u

    def product(self, name: str, stock: int, link: bool = True) -> tuple[str, str | None]:
        product = f"prod_{name}_{self.u}"
        plink = self.e2e.stripe_payment_link(product, f"plink_{name}_{self.u}") if link else None
        self.e2e.seed(self.store, [{"product_id": product, "name": f"E2E {name}", "stock": stock,
                                    "payment_links": [plink] if plink else []}])
        return product, plink

    def checkout(self, lines: list[tuple[str, int]], paid: bool = True, link: str | None = None,
                 kind: str = "completed", evt: str | None = None) -> tuple[dict, dict]:
        """Creates the session in the fake Stripe and returns (session, event)."""
        s = self.e2e.stripe_session(lines, self.store, paid=paid, payment_link=link)
        ev = self.e2e.event(kind, cs_id=s["id"], evt_id=evt or f"evt_e2e_{uid()}", store=self.store,
                            payment_intent=s["payment_intent"], payment_link=link,
                            payment_status="paid" if paid else "unpaid")
        return s, ev


@pytest.fixture
def cat(e2e, ids) -> Catalog:
    return Catalog(e2e, ids["store"], ids["u"])


@pytest.fixture
def paid_links(e2e):
    """Stripe's payment and charge events go to the inventory Lambda (as EventBridge would) for
    one test."""
    e2e.set_event_sink(f"{e2e.lambda_url}/_invoke")
    try:
        yield e2e
    finally:
        e2e.set_event_sink(None)
