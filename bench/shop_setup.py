"""What the benchmarks share: one product with a Payment Link imported into a store, and
paid Checkout Session events for it, as Stripe's Event Destination delivers them."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

import requests

ROOT = Path(__file__).resolve().parent.parent


def one_product(cli: str, env: dict, stripe: str, units: int, store: str = "bench",
                name: str = "Burst") -> tuple[str, str]:
    """Create the table, a product with a Payment Link in the fake Stripe, and import it with
    ``units`` in stock. Returns (product id, link id)."""
    subprocess.run([cli, "table", "create"], env=env, check=True, capture_output=True)
    p = requests.post(f"{stripe}/_test/products",
                      json={"name": name, "unit_amount": 100, "currency": "usd"}).json()
    pid = p["product"]["id"]
    link = requests.post(f"{stripe}/_test/payment_links", json={"price": p["price"]["id"]}).json()["id"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([{"product_id": pid, "store_id": store, "name": name, "stock": units,
                    "payment_links": [link]}], f)
    subprocess.run([cli, "catalog", "import", f.name], env=env, check=True, capture_output=True)
    return pid, link


def synced_product(stack, cli: str, env: dict, units: int, store: str = "bench",
                   name: str = "Burst", unit_amount: int = 100) -> tuple[str, str]:
    """Like ``one_product``, the way the demo shop does it: a catalog row with a price, which the
    catalog sync takes to Stripe (product, price, and a Payment Link whose terms it records, so
    an order through it needs no Stripe call). Returns (product id, link id)."""
    subprocess.run([cli, "table", "create"], env=env, check=True, capture_output=True)
    pid = f"prod_bench_{uuid.uuid4().hex[:10]}"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([{"product_id": pid, "store_id": store, "name": name, "stock": units,
                    "unit_amount": unit_amount, "currency": "usd"}], f)
    subprocess.run([cli, "catalog", "import", f.name], env=env, check=True, capture_output=True)
    stack.wait_catalog_idle(timeout=120)
    (link,) = stock_show(cli, env, pid, store)["payment_links"]
    return pid, link


def stock_show(cli: str, env: dict, pid: str, store: str = "bench") -> dict:
    """`stockbridge stock show --json` of one product: the level as stockbridge reads it."""
    out = subprocess.run([cli, "stock", "show", pid, "--store", store, "--json"], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def envelope(kind: str, session: str, payment_intent: str, link: Optional[str], store: str) -> dict:
    """The events/ fixture ``kind`` (e.g. ``checkout.session.completed.paid``) for this session,
    with fresh ids, stamped "now" (an event from before the catalog import would be history)."""
    e = json.loads((ROOT / "events" / f"{kind}.json").read_text())
    e["id"] = str(uuid.uuid4())
    e["detail"]["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    now = int(time.time())
    e["detail"]["created"] = now
    e["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    e["detail"]["data"]["object"].update({"id": session, "payment_intent": payment_intent,
                                          "payment_link": link, "metadata": {"store_id": store}})
    return e


def paid_events(stripe: str, pid: str, link: str, n: int, store: str = "bench") -> list[dict]:
    """``n`` paid Checkout Sessions of one unit each (made in the fake Stripe, so line items
    and refunds work) and their ``checkout.session.completed`` envelopes."""
    events = []
    for _ in range(n):
        s = requests.post(f"{stripe}/_test/checkout_sessions", json={
            "payment_status": "paid", "payment_link": link, "metadata": {"store_id": store},
            "line_items": [{"product": pid, "quantity": 1}]}).json()
        e = envelope("checkout.session.completed.paid", s["id"], s["payment_intent"], link, store)
        # The session's own amounts, as Stripe sends them.
        e["detail"]["data"]["object"].update(amount_subtotal=s["amount_subtotal"],
                                             currency=s["currency"])
        events.append(e)
    return events
