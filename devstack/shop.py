"""The shop, locally, in one command: the storefront over the whole offline pipeline.

    python -m devstack.shop [--port 0] [--store store_demo] [--workers 4]
                            [--simulate N [--exit-after-simulate] [--summary-json PATH]]
                            [--state-dir DIR] [--ready-file PATH] [--verbose]

(``scripts/shop`` installs and builds what is missing first, then runs this.)

1. starts the devstack ``Stack`` (mosquitto subscribe-only for anonymous clients, moto, the IoT
   bridge, the fake Stripe and the real ``inventory`` binary behind the Lambda Runtime API) and
   points the fake Stripe's event sink at the Lambda driver's ``/_invoke``: paying on a hosted
   payment page is Stripe -> Event Destination -> EventBridge -> Lambda, synchronously;
2. ``stockbridge table create``, then seeds a demo catalog: four products with small stocks and
   SVG images (``devstack/demo_assets``) in the fake Stripe, one payment link each with
   ``metadata[store_id]``, and ``stockbridge catalog import``;
3. serves on 127.0.0.1:<port>: ``/`` and the files of ``web/dist`` (the built storefront; a plain
   page if it is not built), ``/config.json``, ``/catalog/<store>.json`` (``stockbridge catalog
   export``; built here the same way from Stripe + ``stock show --json`` when the CLI has no
   ``export`` yet) and ``/assets/demo/<file>``;
4. prints the storefront URL and stays up until Ctrl-C / SIGTERM, then stops everything.

``--simulate N``: N buyers (threads) each open the checkout page of a random active payment link,
and once all are on their page (a rush), pay after a small random pause.  Buyers paying after
their product sold out get refunded by the Lambda.  Prints the summary (confirmed, refunded,
final stock) and keeps serving unless ``--exit-after-simulate``.  Exit status 1 if a payment
was neither confirmed nor refunded.

Python API (tests)::

    with Shop(port=0) as shop:
        shop.url, shop.stripe_url, shop.stack
        summary = shop.simulate(20)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional, Union

import requests
from flask import Flask, Response, abort, send_from_directory
from werkzeug.serving import WSGIRequestHandler, make_server

from devstack.stack import (
    DEFAULT_CHECKOUT_BINARY,
    DEFAULT_INVENTORY_BINARY,
    DEFAULT_SWEEPER_BINARY,
    DEFAULT_BROADCASTER_BINARY,
    HOST,
    SCRUBBED_ENV,
    REPO_ROOT,
    Stack,
    StackError,
    log_tail,
)

DEFAULT_CLI = REPO_ROOT / "target" / "debug" / "stockbridge"
WEB_DIST = REPO_ROOT / "web" / "dist"
ASSETS_DIR = Path(__file__).resolve().parent / "demo_assets"
DEFAULT_STORE = "store_demo"
STRIPE_KEY = "sk_test_local_fake"
# What the checkout page (web/checkout.html) confirms with at the fake Stripe (config.json).
STRIPE_PUBLISHABLE_KEY = "pk_test_local"

# name, description, price (usd cents), stock, image
DEMO_CATALOG = [
    ("Stockbridge mug", "Stoneware, 350 ml, hand-glazed in navy.", 1200, 5, "mug.svg"),
    ("Canvas tote", "Heavy cotton canvas that says what it means.", 1800, 3, "tote.svg"),
    ("Enamel pin", "Hard enamel, gold-plated rim, 25 mm.", 500, 2, "pin.svg"),
    ("Signed poster", "A3 print, signed by the artist. One of one.", 2500, 1, "poster.svg"),
]

_TESTIDS = ("order-ok", "order-refunded", "order-pending", "order-no-sink")


class ShopError(RuntimeError):
    pass


def _rfc3339_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


class Shop:
    """Stack + demo catalog + storefront server.  ``start()`` returns once serving."""

    def __init__(
        self,
        port: int = 0,
        store: str = DEFAULT_STORE,
        workers: int = 4,
        state_dir: Union[str, Path, None] = None,
        inventory_binary: Union[str, Path] = DEFAULT_INVENTORY_BINARY,
        cli: Union[str, Path] = DEFAULT_CLI,
        web_dist: Union[str, Path] = WEB_DIST,
        verbose: bool = False,
        checkout_binary: Union[str, Path, None] = DEFAULT_CHECKOUT_BINARY,
        sweeper_binary: Union[str, Path, None] = DEFAULT_SWEEPER_BINARY,
        sweep_every: Optional[float] = 60.0,
        broadcaster_binary: Union[str, Path, None] = DEFAULT_BROADCASTER_BINARY,
    ) -> None:
        self.port = port
        self.store = store
        self.workers = workers
        self.state_dir = state_dir
        self.inventory_binary = Path(inventory_binary)
        self.cli_path = Path(cli)
        self.web_dist = Path(web_dist)
        self.verbose = verbose
        # The checkout API and the sweeper run when their binaries exist (config: checkoutUrl).
        self.checkout_binary = checkout_binary
        self.sweeper_binary = sweeper_binary
        self.sweep_every = sweep_every
        # Stock levels reach the storefront as in the template: from the table's stream.
        self.broadcaster_binary = broadcaster_binary
        self.stack: Optional[Stack] = None
        self.url = ""  # storefront base URL, with trailing slash
        self.stripe_url = ""
        self.lambda_url = ""
        self.products: dict[str, dict] = {}  # product id -> {name, link, stock, price, ...}
        self._server = None
        self._thread: Optional[threading.Thread] = None
        self._http = requests.Session()
        self._http.trust_env = False  # loopback only: never through a proxy
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Shop":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> "Shop":
        for path, what in ((self.inventory_binary, "the inventory binary"),
                           (self.cli_path, "the stockbridge CLI")):
            if not path.exists():
                raise ShopError(f"{path} ({what}) does not exist: cargo build --workspace")
        # Bind first: product image URLs need the port.  Requests wait in the backlog until
        # the catalog is seeded and serve_forever runs.
        self._server = make_server(HOST, self.port, self.app(), threaded=True,
                                   request_handler=self._handler())
        self.port = self._server.server_port
        self.url = f"http://{HOST}:{self.port}/"
        try:
            self.stack = Stack(state_dir=self.state_dir, inventory_binary=self.inventory_binary,
                               workers=self.workers, lambda_enabled=True, verbose=self.verbose,
                               checkout_binary=self.checkout_binary,
                               sweeper_binary=self.sweeper_binary, sweep_every=self.sweep_every,
                               broadcaster_binary=self.broadcaster_binary)
            self.stack.start()
            if not self.stack.lambda_started:
                raise ShopError("the Lambda driver did not start")
            self.stripe_url = self.stack.urls["stripe"]
            self.lambda_url = self.stack.urls["lambda"]
            r = self._http.post(f"{self.stripe_url}/_test/event_sink",
                                json={"url": f"{self.lambda_url}/_invoke"}, timeout=10)
            r.raise_for_status()
            self.cli("table", "create")
            self._seed()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, name="shop-http",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(5)
            self._server.server_close()
        if self.stack is not None:
            self.stack.stop()
        self._http.close()

    # ------------------------------------------------------------------ the CLI
    def cli_env(self) -> dict[str, str]:
        assert self.stack is not None
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(self.stack.env)
        return env

    def run_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.cli_path), *args], env=self.cli_env(), cwd=REPO_ROOT,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def cli(self, *args: str) -> str:
        done = self.run_cli(*args)
        if done.returncode != 0:
            raise ShopError(f"stockbridge {shlex.join(args)} failed ({done.returncode}):\n"
                            f"{done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    # ------------------------------------------------------------------ seeding
    def _seed(self) -> None:
        rows = []
        for name, description, amount, stock, image in DEMO_CATALOG:
            r = self._http.post(f"{self.stripe_url}/_test/products", json={
                "name": name, "description": description, "unit_amount": amount,
                "currency": "usd", "images": [f"{self.url}assets/demo/{image}"],
                "metadata": {"store_id": self.store}}, timeout=10)
            r.raise_for_status()
            pid, price = r.json()["product"]["id"], r.json()["price"]["id"]
            r = self._http.post(f"{self.stripe_url}/_test/payment_links", json={
                "price": price, "metadata": {"store_id": self.store}}, timeout=10)
            r.raise_for_status()
            link = r.json()
            self.products[pid] = {"name": name, "stock": stock, "amount": amount,
                                  "link": link["id"], "link_url": link["url"]}
            # unit_amount/currency (and the rest of the details, the same as at Stripe) give the
            # product a catalog price: the checkout API sells only products that have one.
            rows.append({"product_id": pid, "store_id": self.store, "name": name,
                         "stock": stock, "payment_links": [link["id"]],
                         "unit_amount": amount, "currency": "usd", "description": description,
                         "images": [f"{self.url}assets/demo/{image}"]})
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="shop-catalog-",
                                         delete=False) as f:
            json.dump(rows, f)
        try:
            self.cli("catalog", "import", f.name)
        finally:
            os.unlink(f.name)

    # ------------------------------------------------------------------ documents
    @property
    def topic_prefix(self) -> str:
        assert self.stack is not None
        return self.stack.env.get("IOT_TOPIC_PREFIX", "stockbridge")

    def config(self) -> dict:
        assert self.stack is not None
        doc = {"store_id": self.store, "topic_prefix": self.topic_prefix,
               "catalog_url": f"catalog/{self.store}.json",
               "mqtt": {"auth": "none", "url": self.stack.urls["mqtt_ws"]}}
        checkout_url = self.stack.env.get("STOCKBRIDGE_CHECKOUT_URL")
        if checkout_url:
            # The checkout page: POST {checkoutUrl}/checkout, then confirm with a test card
            # directly at the fake Stripe (stripeApiBase: local only, Stripe.js is never loaded).
            doc["checkoutUrl"] = checkout_url
            doc["stripePublishableKey"] = STRIPE_PUBLISHABLE_KEY
            doc["stripeApiBase"] = self.stack.env["STOCKBRIDGE_STRIPE_URL"]
        return doc

    def catalog(self, store: Optional[str] = None) -> tuple[dict, str]:
        """(document, source): ``stockbridge catalog export`` when the CLI has it, else the
        same document built here ("fallback")."""
        store = store or self.store
        done = self.run_cli("catalog", "export", "--store", store)
        if done.returncode == 0:
            try:
                return json.loads(done.stdout), "cli"
            except ValueError as e:
                raise ShopError(f"stockbridge catalog export printed no JSON: {e}") from None
        if done.returncode == 2 and "subcommand" in done.stderr:  # clap: no such command yet
            return self._catalog_fallback(store), "fallback"
        raise ShopError(f"stockbridge catalog export --store {store} failed "
                        f"({done.returncode}): {done.stderr.strip()}")

    def stock(self, product_id: str, store: Optional[str] = None) -> dict:
        return json.loads(self.cli("stock", "show", product_id, "--store", store or self.store,
                                   "--json"))

    def _stripe_get(self, path: str) -> dict:
        r = self._http.get(f"{self.stripe_url}{path}", timeout=10,
                           headers={"Authorization": f"Bearer {STRIPE_KEY}"})
        r.raise_for_status()
        return r.json()

    def _catalog_fallback(self, store: str) -> dict:
        """What crates/app/src/storefront.rs builds: per catalog item, the first payment link
        and its first line item's price and product, read from Stripe; stock from the table.
        Only the products this shop seeded are known here (the CLI lists the whole store)."""
        products = []
        for pid in sorted(self.products) if store == self.store else []:
            item = self.stock(pid, store)
            entry: dict[str, Any] = {"product_id": pid, "name": item["name"], "description": None,
                                     "images": [], "price": None, "payment_link": None,
                                     "available": item["available"],
                                     "held": item.get("held", 0), "version": item["version"]}
            if item.get("payment_links"):
                lid = item["payment_links"][0]
                pl = self._stripe_get(f"/v1/payment_links/{lid}")
                lines = self._stripe_get(f"/v1/payment_links/{lid}/line_items"
                                         "?limit=1&expand[0]=data.price.product")["data"]
                price = lines[0]["price"] if lines else None
                product = price["product"] if price and isinstance(price["product"], dict) else None
                if product:
                    entry.update(name=product["name"], description=product.get("description"),
                                 images=list(product.get("images") or []))
                if price and price.get("unit_amount") is not None:
                    entry["price"] = {"amount": price["unit_amount"], "currency": price["currency"]}
                entry["payment_link"] = {"id": lid, "url": pl["url"], "active": pl["active"]}
            products.append(entry)
        return {"store_id": store, "generated_at": _rfc3339_now(),
                "topic_prefix": self.topic_prefix, "products": products}

    # ------------------------------------------------------------------ HTTP
    def _handler(self) -> type:
        verbose = self.verbose

        class Handler(WSGIRequestHandler):
            def log_request(self, code: Any = "-", size: Any = "-") -> None:
                if verbose:
                    super().log_request(code, size)

        return Handler

    def app(self) -> Flask:
        app = Flask("stockbridge_shop", static_folder=None)

        def no_store(resp: Response) -> Response:
            resp.headers["Cache-Control"] = "no-store"
            return resp

        @app.get("/config.json")
        def config() -> Response:
            return no_store(app.response_class(json.dumps(self.config(), indent=2) + "\n",
                                               mimetype="application/json"))

        @app.get("/catalog/<store>.json")
        def catalog(store: str) -> Response:
            try:
                doc, source = self.catalog(store)
            except (ShopError, requests.RequestException, subprocess.TimeoutExpired) as e:
                return no_store(app.response_class(json.dumps({"error": str(e)}) + "\n", 502,
                                                   mimetype="application/json"))
            resp = app.response_class(json.dumps(doc, indent=2) + "\n",
                                      mimetype="application/json")
            resp.headers["X-Catalog-Source"] = source
            return no_store(resp)

        @app.get("/assets/demo/<path:name>")
        def demo_asset(name: str) -> Response:
            return send_from_directory(ASSETS_DIR, name, max_age=300)

        @app.get("/")
        def index() -> Response:
            if (self.web_dist / "index.html").is_file():
                return no_store(send_from_directory(self.web_dist, "index.html"))
            return no_store(self._plain_index())

        @app.get("/checkout")
        def checkout_page() -> Response:
            if (self.web_dist / "checkout.html").is_file():
                return no_store(send_from_directory(self.web_dist, "checkout.html"))
            abort(404)

        @app.get("/<path:path>")
        def static_file(path: str) -> Response:
            if self.web_dist.is_dir() and (self.web_dist / path).is_file():
                resp = send_from_directory(self.web_dist, path)
                return no_store(resp) if path.endswith(".html") else resp
            abort(404)

        return app

    def _plain_index(self) -> Response:
        import html

        rows = []
        try:
            doc, _ = self.catalog()
            for p in doc["products"]:
                link = p.get("payment_link") or {}
                buy = (f"<a href=\"{html.escape(link['url'])}?return={html.escape(self.url)}\">"
                       "Buy</a>" if link.get("active") else "sold out")
                rows.append(f"<li>{html.escape(p['name'])}: {p['available']} left — {buy}</li>")
        except Exception as e:  # the page must render anyway
            rows.append(f"<li>catalog unavailable: {html.escape(str(e))}</li>")
        body = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<title>stockbridge shop</title></head><body><main>"
                "<h1>The storefront is not built</h1>"
                "<p>Build it with <code>(cd web &amp;&amp; npm ci &amp;&amp; npm run build)</code> "
                "(<code>scripts/shop</code> does it when <code>web/package.json</code> exists), "
                "then reload. Meanwhile:</p>"
                f"<ul>{''.join(rows)}</ul>"
                f"<p><a href=\"config.json\">config.json</a> · "
                f"<a href=\"catalog/{html.escape(self.store)}.json\">catalog</a></p>"
                "</main></body></html>")
        return Response(body, mimetype="text/html")

    # ------------------------------------------------------------------ simulation
    def active_links(self) -> dict[str, str]:
        """product id -> payment link id, for this store's active links (fake Stripe state)."""
        state = self._http.get(f"{self.stripe_url}/_test/state", timeout=30).json()
        links = state["payment_links"]
        return {pid: p["link"] for pid, p in self.products.items()
                if links.get(p["link"], {}).get("active")}

    def simulate(self, buyers: int, rng: Optional[random.Random] = None,
                 open_pause: float = 0.3, pay_pause: float = 0.6) -> dict:
        """``buyers`` threads: open a random active link's checkout, wait until everyone is on
        a checkout page, pause, pay.  Returns the summary (also see print_summary)."""
        rng = rng or random.Random()
        before = {pid: self.stock(pid)["available"] for pid in self.products}
        active = self.active_links()
        pauses = [(rng.uniform(0, open_pause), rng.uniform(0, pay_pause)) for _ in range(buyers)]
        picks = [rng.choice(sorted(active)) if active else None for _ in range(buyers)]
        barrier = threading.Barrier(buyers) if buyers else None
        results: list[dict] = [{} for _ in range(buyers)]

        def buyer(i: int) -> None:
            out = results[i]
            out.update(buyer=i, product_id=picks[i], outcome="turned_away")
            session_id = None
            http = requests.Session()
            http.trust_env = False
            try:
                try:
                    time.sleep(pauses[i][0])
                    if picks[i] is not None:
                        link = active[picks[i]]
                        out["link"] = link
                        r = http.get(f"{self.stripe_url}/pay/{link}",
                                     params={"return": self.url}, timeout=30)
                        m = re.search(r'name="session" value="([^"]+)"', r.text)
                        if r.status_code == 200 and m:
                            session_id = m.group(1)
                except requests.RequestException as e:
                    out.update(outcome="error", error=str(e))
                finally:
                    assert barrier is not None
                    try:
                        barrier.wait(timeout=120)  # everyone is on a checkout page: the rush
                    except threading.BrokenBarrierError:
                        pass
                if session_id is None:
                    return
                time.sleep(pauses[i][1])
                r = http.post(f"{self.stripe_url}/pay/{out['link']}",
                              data={"session": session_id, "return": self.url}, timeout=300)
                found = re.search(r'data-testid="(%s)"[^>]*data-order-id="([^"]*)"'
                                  r'[^>]*data-payment-intent="([^"]*)"' % "|".join(_TESTIDS),
                                  r.text)
                if r.status_code != 200 or not found:
                    out.update(outcome="error", error=f"HTTP {r.status_code}: {r.text[:300]}")
                    return
                kind = found.group(1)
                out.update(outcome={"order-ok": "confirmed", "order-refunded": "refunded",
                                    "order-pending": "failed",
                                    "order-no-sink": "failed"}[kind],
                           session=found.group(2), payment_intent=found.group(3))
            except Exception as e:  # a buyer never takes the simulation down
                out.update(outcome="error", error=f"{type(e).__name__}: {e}")
            finally:
                http.close()

        threads = [threading.Thread(target=buyer, args=(i,), name=f"buyer-{i}", daemon=True)
                   for i in range(buyers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = {pid: self.stock(pid)["available"] for pid in self.products}
        count = lambda k: sum(1 for r in results if r["outcome"] == k)  # noqa: E731
        return {
            "buyers": buyers,
            "confirmed": count("confirmed"),
            "refunded": count("refunded"),
            "failed": count("failed") + count("error"),
            "turned_away": count("turned_away"),
            "orders": results,
            "stock": {pid: {"name": p["name"], "before": before[pid], "after": after[pid]}
                      for pid, p in self.products.items()},
        }

    @staticmethod
    def format_summary(summary: dict) -> str:
        lines = [f"== {summary['buyers']} simulated buyers",
                 f"  orders confirmed:                  {summary['confirmed']}",
                 f"  refunded (sold out while paying):  {summary['refunded']}"]
        if summary["failed"]:
            lines.append(f"  failed:                            {summary['failed']}")
            for o in summary["orders"]:
                if o["outcome"] in ("failed", "error"):
                    lines.append(f"    buyer {o['buyer']}: {o.get('error') or o.get('session')}")
        if summary["turned_away"]:
            lines.append(f"  turned away (nothing to buy):      {summary['turned_away']}")
        lines.append("  final stock:")
        for s in summary["stock"].values():
            flag = "  (sold out)" if s["after"] == 0 else ""
            lines.append(f"    {s['name']:<18} {s['before']} -> {s['after']}{flag}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


class _Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack.shop",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="storefront port (0 = a free one)")
    ap.add_argument("--store", default=DEFAULT_STORE, help="store id (default %(default)s)")
    ap.add_argument("--workers", type=int, default=4, help="Lambda worker processes")
    ap.add_argument("--simulate", type=int, default=0, metavar="N", help="N simulated buyers")
    ap.add_argument("--exit-after-simulate", action="store_true",
                    help="stop after the simulation's summary instead of serving on")
    ap.add_argument("--summary-json", metavar="PATH", help="also write the summary here")
    ap.add_argument("--seed", type=int, help="random seed of the simulation")
    ap.add_argument("--state-dir", help="logs and configs (default: a temporary directory, "
                    "removed at exit)")
    ap.add_argument("--ready-file", metavar="PATH",
                    help='write {"url", "stripe_url", ...} as JSON here once serving')
    ap.add_argument("--verbose", action="store_true", help="log every request")
    args = ap.parse_args(argv)
    if args.simulate < 0:
        ap.error("--simulate must be >= 0")
    if args.exit_after_simulate and not args.simulate:
        ap.error("--exit-after-simulate needs --simulate N")

    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    shop = Shop(port=args.port, store=args.store, workers=args.workers,
                state_dir=args.state_dir, verbose=args.verbose)
    code = 0
    try:
        try:
            shop.start()
        except (ShopError, StackError, requests.RequestException) as e:
            print(f"shop: failed to start: {e}", file=sys.stderr, flush=True)
            return 1
        assert shop.stack is not None
        print(f"Storefront:  {shop.url}", flush=True)
        print(f"Fake Stripe: {shop.stripe_url}   (state: {shop.stripe_url}/_test/state)")
        print(f"MQTT (WebSocket, subscribe-only): {shop.stack.urls['mqtt_ws']}")
        if shop.stack.checkout_started:
            print(f"Checkout API: {shop.stack.urls['checkout']}/checkout   (page: {shop.url}checkout"
                  "?product=<id>, or \"Buy with reserved stock\" on a card)")
        print(f"Stack env:   . {shop.stack.env_file}   (logs: {shop.stack.state_dir}/*.log)")
        for pid, p in shop.products.items():
            print(f"  {p['name']:<18} {p['stock']} in stock  {p['link_url']}")
        sys.stdout.flush()
        if args.ready_file:
            tmp = f"{args.ready_file}.tmp.{os.getpid()}"
            Path(tmp).write_text(json.dumps({
                "url": shop.url, "stripe_url": shop.stripe_url, "lambda_url": shop.lambda_url,
                "mqtt_ws": shop.stack.urls["mqtt_ws"], "store": shop.store, "pid": os.getpid(),
                "checkout_url": shop.stack.urls.get("checkout"),
                "stack_pids": shop.stack.pids(), "products": shop.products}))
            os.replace(tmp, args.ready_file)
        if args.simulate:
            rng = random.Random(args.seed)
            summary = shop.simulate(args.simulate, rng)
            print(shop.format_summary(summary), flush=True)
            if args.summary_json:
                Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n")
            if summary["failed"]:
                code = 1
            if args.exit_after_simulate:
                return code
        print("Serving; Ctrl-C or SIGTERM stops everything.", flush=True)
        while True:
            dead = shop.stack.dead_children()
            if dead:
                for name, rc in dead:
                    print(f"shop: {name} exited with code {rc}:\n{log_tail(shop.stack.logs[name])}",
                          file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
    except _Interrupted as e:
        print(f"# {e}: stopping", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shop.stop()
        print("# shop stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
