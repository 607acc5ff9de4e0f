"""Every kind of the fake Stripe's responses against the deserializers generated in
async-stripe 1.0.0-rc.10 (required fields, enum values), when the crate sources are in the
cargo registry; skipped otherwise."""

from __future__ import annotations

import copy
import glob
import json
import os
import re
from pathlib import Path

import pytest

from devstack.fake_stripe import DEFAULT_FIXTURES, create_app
from devstack.tests.test_fake_stripe import AUTH, make_session


@pytest.fixture()
def client():
    c = create_app(str(DEFAULT_FIXTURES)).test_client()
    assert c.post("/_test/reset").status_code == 200
    return c


# --------------------------------------------------------------------------- async-stripe contract


def _stripe_crates():
    pattern = os.path.expanduser("~/.cargo/registry/src/*/async-stripe-shared-1.0.0-rc.10")
    found = glob.glob(pattern)
    return Path(found[0]).parent if found else None


class RustSchema:
    """Reads the miniserde builders async-stripe generates for each struct: which JSON
    keys it reads, which may be absent (``deser_default`` gives ``Some(..)``), and the
    strings each enum knows.  Good enough for the generated code of this crate version."""

    CRATES = ["shared", "checkout", "payment", "core", "types"]
    PRIMS = {"i64": int, "u64": int, "i32": int, "u32": int, "u8": int, "f64": (int, float),
             "bool": bool, "String": str, "stripe_types::Timestamp": int}

    def __init__(self, root: Path) -> None:
        self.structs: dict[str, dict] = {}
        self.enums: dict[str, str] = {}
        for c in self.CRATES:
            for p in (root / f"async-stripe-{c}-1.0.0-rc.10" / "src").rglob("*.rs"):
                self._parse(p.read_text())

    def _parse(self, src: str) -> None:
        src = re.sub(r"^\s*//.*$", "", src, flags=re.M)
        for m in re.finditer(r"pub struct (\w+)(?:<[^>]*>)? \{(.*?)\n\}", src, re.S):
            if m.group(1).endswith("Builder"):
                continue
            fields = {f: re.sub(r"\s+", "", t) for f, t in re.findall(
                r"pub (\w+):\s*(.*?),\s*(?=\n\s*(?:pub |#|$))", m.group(2) + "\n", re.S)}
            self.structs.setdefault(m.group(1), {"fields": fields})
        for m in re.finditer(r"impl MapBuilder for (\w+)Builder \{(.*?)\n        fn take_out",
                             src, re.S):
            body = m.group(2)
            keys = dict(re.findall(
                r'"([^"]+)" => \{?\s*Deserialize::begin\(&mut self\.(\w+)\)', body))
            dd = re.search(r"fn deser_default\(\) -> Self \{\s*Self \{(.*?)\}\s*\}", body, re.S)
            if dd is None:  # tagged enums (PaymentSource, ...): left "not understood"
                continue
            optional = {f for f, v in re.findall(r"(\w+):\s*(None|Some\(.*?\))\s*(?:,|$)",
                                                 dd.group(1).strip()) if v != "None"}
            if m.group(1) in self.structs:
                self.structs[m.group(1)].update(keys=keys, optional=optional)
        for m in re.finditer(r"impl std::str::FromStr for (\w+) \{(.*?)\n\}", src, re.S):
            self.enums.setdefault(m.group(1), m.group(2))

    @staticmethod
    def _unwrap(t: str, w: str):
        return t[len(w) + 1:-1] if t.startswith(w + "<") and t.endswith(">") else None

    def check(self, v, t: str, path: str, errs: list) -> None:
        t = t.replace("std::collections::", "")
        for wrapper in ("Box", "Option"):
            inner = self._unwrap(t, wrapper)
            if inner is not None:
                if wrapper == "Option" and v is None:
                    return
                return self.check(v, inner, path, errs)
        if v is None:
            return errs.append(f"{path}: null for required {t}")
        if (inner := self._unwrap(t, "Vec")) is not None:
            if not isinstance(v, list):
                return errs.append(f"{path}: not a list")
            for i, x in enumerate(v):
                self.check(x, inner, f"{path}[{i}]", errs)
            return
        if (inner := self._unwrap(t, "HashMap")) is not None:
            if not isinstance(v, dict):
                return errs.append(f"{path}: not a map")
            for k, x in v.items():
                self.check(x, inner.split(",", 1)[1], f"{path}.{k}", errs)
            return
        if (inner := self._unwrap(t, "stripe_types::Expandable")) is not None:
            return None if isinstance(v, str) else self.check(v, inner, path, errs)
        if (inner := self._unwrap(t, "stripe_types::List")) is not None:
            for k in ("data", "has_more", "url"):
                if k not in v:
                    errs.append(f"{path}.{k}: MISSING (List)")
            for i, x in enumerate(v.get("data", [])):
                self.check(x, inner, f"{path}.data[{i}]", errs)
            return
        if t in self.PRIMS:
            want = self.PRIMS[t]
            if (want is int and isinstance(v, bool)) or not isinstance(v, want):
                errs.append(f"{path}: {v!r} is not {t}")
            return
        name = t.split("::")[-1]
        if name in self.structs and "keys" in self.structs[name]:
            s = self.structs[name]
            if not isinstance(v, dict):
                return errs.append(f"{path}: {v!r} is not a {name} object")
            for key, field in s["keys"].items():
                if key in v:
                    self.check(v[key], s["fields"][field], f"{path}.{key}", errs)
                elif field not in s["optional"]:
                    errs.append(f"{path}.{key}: MISSING, required by {name}.{field}")
            return
        if name in self.enums:
            known = re.findall(r'"([^"]+)" => Ok\(', self.enums[name])
            lenient = "Unknown(" in self.enums[name]
            if not isinstance(v, str) or (v not in known and not lenient):
                errs.append(f"{path}: {v!r} does not fit enum {name}")
            return
        if name == "Currency" or name.endswith("Id"):
            if not isinstance(v, str):
                errs.append(f"{path}: {v!r} is not a string id/currency")
            return
        errs.append(f"{path}: type {t} not understood by this check")


def test_responses_fit_async_stripe(client):
    root = _stripe_crates()
    if root is None:
        pytest.skip("async-stripe 1.0.0-rc.10 sources not in ~/.cargo/registry")
    schema = RustSchema(root)
    assert {"CheckoutSession", "CheckoutSessionItem", "PaymentLink", "PaymentIntent", "Refund",
            "Price", "Product", "Error"} <= set(schema.structs)

    s = make_session(client, payment_link="plink_abc",
                     lines=[{"product": "prod_a", "unit_amount": 1500, "quantity": 2},
                            {"product": "prod_b", "unit_amount": 99, "quantity": 1}])
    unpaid = make_session(client, paid=False)
    price = client.post("/_test/products", json={"name": "P", "unit_amount": 5,
                                                 "currency": "usd"}).json["price"]
    pl = client.post("/_test/payment_links", json={"price": price["id"], "quantity": 3}).json
    sid, pi = s["id"], s["payment_intent"]
    responses = [
        ("GET", f"/v1/checkout/sessions/{sid}", None, "CheckoutSession"),
        ("GET", f"/v1/checkout/sessions/{sid}?expand[0]=line_items&expand[1]=payment_intent",
         None, "CheckoutSession"),
        ("GET", f"/v1/checkout/sessions/{unpaid['id']}", None, "CheckoutSession"),
        ("GET", f"/v1/checkout/sessions/{sid}/line_items?limit=1",
         None, "stripe_types::List<CheckoutSessionItem>"),
        ("GET", f"/v1/checkout/sessions/{sid}/line_items?expand[0]=data.price.product",
         None, "stripe_types::List<CheckoutSessionItem>"),
        ("GET", f"/v1/payment_links/{pl['id']}", None, "PaymentLink"),
        ("GET", f"/v1/payment_links/{pl['id']}?expand[0]=line_items", None, "PaymentLink"),
        ("POST", f"/v1/payment_links/{pl['id']}",
         {"active": "false", "inactive_message": "gone"}, "PaymentLink"),
        ("POST", "/v1/payment_links",
         {"line_items[0][price]": price["id"], "line_items[0][quantity]": "1"}, "PaymentLink"),
        ("GET", f"/v1/payment_intents/{pi}", None, "PaymentIntent"),
        ("GET", f"/v1/payment_intents/{unpaid['payment_intent']}", None, "PaymentIntent"),
        ("POST", "/v1/refunds", {"payment_intent": pi, "amount": "10"}, "Refund"),
        ("GET", f"/v1/refunds?payment_intent={pi}", None, "stripe_types::List<Refund>"),
        ("GET", "/v1/products/prod_a", None, "Product"),
        ("GET", f"/v1/prices/{price['id']}", None, "Price"),
        ("GET", "/v1/payment_intents/pi_missing", None, "Error"),
        ("POST", "/v1/refunds", {"payment_intent": unpaid["payment_intent"]}, "Error"),
        ("GET", "/v1/refunds", None, "stripe_types::List<Refund>"),
    ]
    problems = []
    for method, url, data, type_ in responses:
        rv = client.open(url, method=method, headers=AUTH, data=data)
        errs: list = []
        schema.check(rv.json, type_, f"{method} {url}", errs)
        problems += errs
    for status in (429, 500, 503):
        client.post("/_test/faults", json={"path_regex": ".", "status": status, "count": 1})
        schema.check(client.get(f"/v1/payment_intents/{pi}", headers=AUTH).json, "Error",
                     f"fault {status}", problems)
    schema.check(client.get(f"/v1/payment_intents/{pi}").json, "Error", "401", problems)
    # the fixtures themselves, untouched, as a canary for a fixtures3.json refresh
    fixtures = json.loads(Path(DEFAULT_FIXTURES).read_text())["resources"]
    for res, type_ in [("checkout.session", "CheckoutSession"), ("item", "CheckoutSessionItem"),
                       ("payment_link", "PaymentLink"), ("payment_intent", "PaymentIntent"),
                       ("refund", "Refund"), ("product", "Product"), ("price", "Price")]:
        schema.check(copy.deepcopy(fixtures[res]), type_, f"fixture {res}", problems)
    assert problems == []


def test_schema_check_catches_a_missing_required_field(client):
    root = _stripe_crates()
    if root is None:
        pytest.skip("async-stripe 1.0.0-rc.10 sources not in ~/.cargo/registry")
    schema = RustSchema(root)
    s = make_session(client)
    item = client.get(f"/v1/checkout/sessions/{s['id']}/line_items",
                      headers=AUTH).json["data"][0]
    del item["amount_total"]
    del item["price"]["billing_scheme"]
    errs: list = []
    schema.check(item, "CheckoutSessionItem", "item", errs)
    assert len(errs) == 2 and all("MISSING" in e for e in errs)
