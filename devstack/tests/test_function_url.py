"""devstack/function_url.py: HTTP -> Lambda Function URL event (payload 2.0) -> lambda_driver ->
HTTP, with a small Python runtime standing in for the Rust ``checkout`` function.

    .venv/bin/python -m pytest -q devstack/tests/test_function_url.py
"""

from __future__ import annotations

import base64
import json
import re
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from devstack.function_url import FunctionUrl
from devstack.tests.test_devstack import PY, _stop, start_module

# Answers according to the request path (the event is echoed in most answers).
RUNTIME = textwrap.dedent('''\
    #!{python}
    import base64, json, os, time, urllib.request
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
    while True:
        with urllib.request.urlopen(api + "/invocation/next") as r:
            rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        path = event.get("rawPath", "")
        kind = "response"
        if path == "/error":
            kind, out = "error", {{"errorType": "Boom", "errorMessage": "handler failed"}}
        elif path == "/crash":
            os._exit(3)
        elif path == "/plain":
            out = "just a string"
        elif path == "/object":
            out = {{"hello": "world"}}
        elif path == "/binary":
            out = {{"statusCode": 200, "headers": {{"content-type": "image/png"}},
                   "body": base64.b64encode(bytes(range(256))).decode(),
                   "isBase64Encoded": True}}
        elif path == "/cookies":
            out = {{"statusCode": 201, "headers": {{"x-one": "1"}},
                   "cookies": ["a=1; Path=/", "b=2; HttpOnly"], "body": ""}}
        elif path == "/bad":
            out = {{"statusCode": "nope"}}
        elif path == "/sleep":
            time.sleep(0.3)
            out = {{"statusCode": 200, "body": "slept"}}
        else:
            out = {{"statusCode": 418 if path == "/teapot" else 200,
                   "headers": {{"content-type": "application/json", "x-echo": "yes"}},
                   "body": json.dumps(event)}}
        req = urllib.request.Request(f"{{api}}/invocation/{{rid}}/{{kind}}",
                                     data=json.dumps(out).encode(), method="POST")
        urllib.request.urlopen(req).read()
''')


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("function_url")
    runtime = tmp / "checkout"
    runtime.write_text(RUNTIME.format(python=PY))
    runtime.chmod(0o755)
    driver = start_module(tmp, "driver", "devstack.lambda_driver",
                          ["--binary", str(runtime), "--workers", "2", "--timeout", "20",
                           "--function-name", "checkout",
                           "--log-file", str(tmp / "workers.log")])
    try:
        url = start_module(tmp, "url", "devstack.function_url",
                           ["--lambda-url", driver.url, "--max-body", "100000"])
        try:
            yield url
        finally:
            _stop(url.proc)
    finally:
        _stop(driver.proc)


def echo(resp: requests.Response) -> dict:
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-echo"] == "yes"
    return resp.json()


def test_post_event_is_payload_format_2(gateway):
    r = requests.post(f"{gateway.url}/checkout/sessions?store=s1&x=1&x=2&empty=",
                      json={"items": [{"product": "p1", "quantity": 2}]},
                      headers={"Origin": "http://127.0.0.1:5173", "X-Multi": "a",
                               "User-Agent": "test-agent/1", "Cookie": "sid=abc; theme=dark"})
    ev = echo(r)
    assert r.headers["x-amzn-RequestId"] == ev["requestContext"]["requestId"]
    assert list(ev)[:4] == ["version", "routeKey", "rawPath", "rawQueryString"]
    assert (ev["version"], ev["routeKey"], ev["rawPath"]) == ("2.0", "$default",
                                                             "/checkout/sessions")
    assert ev["rawQueryString"] == "store=s1&x=1&x=2&empty="
    assert ev["queryStringParameters"] == {"store": "s1", "x": "1,2", "empty": ""}
    assert ev["cookies"] == ["sid=abc", "theme=dark"]
    h = ev["headers"]
    assert all(k == k.lower() for k in h)
    assert "cookie" not in h
    assert h["origin"] == "http://127.0.0.1:5173" and h["content-type"] == "application/json"
    assert h["user-agent"] == "test-agent/1" and h["x-multi"] == "a"
    assert h["x-forwarded-for"] == "127.0.0.1" and h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-port"] == str(gateway.port)
    assert h["x-amzn-trace-id"].startswith("Root=1-")
    assert h["host"] == f"127.0.0.1:{gateway.port}"
    assert json.loads(ev["body"]) == {"items": [{"product": "p1", "quantity": 2}]}
    assert ev["isBase64Encoded"] is False
    rc = ev["requestContext"]
    assert rc["accountId"] == "anonymous" and re.fullmatch(r"[a-z0-9]{32}", rc["apiId"])
    assert rc["domainName"] == f"127.0.0.1:{gateway.port}" and rc["domainPrefix"] == "127"
    assert rc["http"] == {"method": "POST", "path": "/checkout/sessions",
                          "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                          "userAgent": "test-agent/1"}
    assert (rc["routeKey"], rc["stage"]) == ("$default", "$default")
    assert re.fullmatch(r"[0-9a-f-]{36}", rc["requestId"])
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", rc["time"])
    assert abs(rc["timeEpoch"] - time.time() * 1000) < 60_000
    # the same URL id on every request, a new request id each time
    again = echo(requests.get(f"{gateway.url}/"))
    assert again["requestContext"]["apiId"] == rc["apiId"]
    assert again["requestContext"]["requestId"] != rc["requestId"]


def test_get_without_query_or_body(gateway):
    ev = echo(requests.get(f"{gateway.url}/health"))
    assert ev["rawQueryString"] == "" and "queryStringParameters" not in ev
    assert "body" not in ev and ev["isBase64Encoded"] is False
    assert "cookies" not in ev
    assert ev["requestContext"]["http"]["method"] == "GET"


def test_any_method_and_preflight_reach_the_function(gateway):
    for method in ("OPTIONS", "PUT", "DELETE", "PATCH"):
        r = requests.request(method, f"{gateway.url}/checkout/sessions",
                             headers={"Access-Control-Request-Method": "POST"})
        assert echo(r)["requestContext"]["http"]["method"] == method
    assert requests.head(f"{gateway.url}/x").status_code == 200


def test_binary_body_is_base64_and_encoded_path_is_raw(gateway):
    data = bytes(range(256))
    ev = echo(requests.post(f"{gateway.url}/a%20b/c", data=data,
                            headers={"Content-Type": "application/octet-stream"}))
    assert ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == data
    assert ev["rawPath"] == "/a%20b/c"
    text = echo(requests.post(f"{gateway.url}/t", data="héllo".encode()))
    assert text["isBase64Encoded"] is False and text["body"] == "héllo"


def test_response_mapping(gateway):
    r = requests.get(f"{gateway.url}/teapot")
    assert r.status_code == 418 and r.json()["rawPath"] == "/teapot"
    r = requests.get(f"{gateway.url}/binary")
    assert r.status_code == 200 and r.content == bytes(range(256))
    assert r.headers["content-type"] == "image/png"
    r = requests.get(f"{gateway.url}/cookies")
    assert r.status_code == 201 and r.content == b"" and r.headers["x-one"] == "1"
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    r = requests.get(f"{gateway.url}/plain")
    assert r.status_code == 200 and r.json() == "just a string"
    assert r.headers["content-type"] == "application/json"
    r = requests.get(f"{gateway.url}/object")
    assert r.status_code == 200 and r.json() == {"hello": "world"}


@pytest.mark.parametrize("path", ["/error", "/crash", "/bad"])
def test_function_errors_are_502(gateway, path):
    r = requests.get(f"{gateway.url}{path}")
    assert r.status_code == 502
    assert r.json() == {"message": "Internal Server Error"}
    assert r.headers["x-amzn-RequestId"]


def test_body_limit(gateway):
    ok = requests.post(f"{gateway.url}/big", data=b"x" * 100_000)
    assert len(echo(ok)["body"]) == 100_000
    r = requests.post(f"{gateway.url}/big", data=b"x" * 100_001)
    assert r.status_code == 413 and r.json() == {"message": "Request Entity Too Large"}

    def chunks():
        for _ in range(30):
            yield b"y" * 5000

    r = requests.post(f"{gateway.url}/big", data=chunks())  # chunked, 150,000 bytes
    assert r.status_code == 413
    small = requests.post(f"{gateway.url}/chunked", data=iter([b"ab", b"cd"]))
    ev = echo(small)
    assert ev["body"] == "abcd" and ev["headers"]["content-length"] == "4"
    assert "transfer-encoding" not in ev["headers"]


def test_concurrent_requests(gateway):
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: requests.get(f"{gateway.url}/sleep?i={i}"), range(8)))
    assert [r.status_code for r in outs] == [200] * 8 and {r.text for r in outs} == {"slept"}


def test_driver_unreachable_is_502():
    app = FunctionUrl("http://127.0.0.1:1", log=lambda _m: None)
    from werkzeug.test import Client
    r = Client(app).get("/x")
    assert r.status_code == 502 and r.get_json() == {"message": "Internal Server Error"}


def test_default_limit_is_6_mb_and_cli_checks_it(tmp_path):
    assert FunctionUrl("http://127.0.0.1:1").max_body == 6 * 1024 * 1024
    import subprocess
    bad = subprocess.run([PY, "-m", "devstack.function_url", "--lambda-url", "http://x",
                          "--max-body", str(7 * 1024 * 1024)],
                         cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "--max-body" in bad.stderr
