"""A local AWS Lambda Function URL (auth type NONE, invoke mode BUFFERED) in front of a
lambda_driver.

Usage::

    python -m devstack.function_url --host 127.0.0.1 --port 0 --ready-file .stack/checkout_url.port \
        --lambda-url http://127.0.0.1:PORT_OF_THE_DRIVER [--max-body 6291456] [--verbose]

Every request, whatever its method and path (OPTIONS included: with no CORS configuration on
the URL, AWS hands preflights to the function), becomes one invocation through
``devstack.lambda_driver.invoke`` with the event AWS sends, payload format 2.0::

    {"version": "2.0", "routeKey": "$default", "rawPath": "/a/b", "rawQueryString": "x=1&x=2",
     "cookies": ["a=1", "b=2"],                        # only when the request had cookies
     "headers": {"content-type": "...", ...},           # lower-case names, repeats comma-joined
     "queryStringParameters": {"x": "1,2"},             # only when there is a query string
     "requestContext": {"accountId": "anonymous", "apiId": URL_ID,
                        "domainName": HOST, "domainPrefix": FIRST_LABEL_OF_HOST,
                        "http": {"method", "path", "protocol", "sourceIp", "userAgent"},
                        "requestId": UUID, "routeKey": "$default", "stage": "$default",
                        "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": MILLISECONDS},
     "body": "...",                                     # only when there is a body
     "isBase64Encoded": false}                          # true when the body is not UTF-8

Like AWS it adds ``x-forwarded-for``, ``x-forwarded-proto``, ``x-forwarded-port`` and
``x-amzn-trace-id`` to the headers, and ``domainName`` is the ``Host`` the client used (AWS:
``<url-id>.lambda-url.<region>.on.aws``).

The function's result becomes the HTTP response:

* ``{"statusCode", "headers"?, "body"?, "isBase64Encoded"?, "cookies"?}`` -> that status,
  those headers, the body (base64-decoded when ``isBase64Encoded``), one ``Set-Cookie`` per
  cookie;
* any other JSON value (an object without ``statusCode``, a string, a number, ...) -> 200,
  ``content-type: application/json``, the value as JSON, as AWS infers it;
* a function error (handler error, crash, timeout) or an unusable response -> 502
  ``{"message": "Internal Server Error"}``, as AWS answers.

Every response carries ``x-amzn-RequestId``.  A request body larger than ``--max-body``
(default 6 MB, the Function URL limit; the function enforces its own, smaller limits) is
refused with 413 ``{"message": "Request Entity Too Large"}`` without invoking the function.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import secrets
import string
import sys
import time
import urllib.parse
import uuid
from typing import Any, Callable, Iterable, Optional

from devstack.lambda_driver import invoke
from devstack.serving import QueueServer, make_handler, serve_until_signalled

MAX_BODY = 6 * 1024 * 1024  # Function URLs: 6 MB request payload (buffered mode)
_ALNUM = string.ascii_lowercase + string.digits
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
            404: "Not Found", 413: "Payload Too Large", 502: "Bad Gateway"}


def _status_line(code: int) -> str:
    from http import HTTPStatus
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} {_REASONS.get(code, 'Unknown')}"


class FunctionUrl:
    """The WSGI app: request -> payload 2.0 event -> invoke -> HTTP response."""

    def __init__(self, lambda_url: str, max_body: int = MAX_BODY,
                 invoke_fn: Callable[[str, Any], dict] = invoke,
                 log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr,
                                                                flush=True)) -> None:
        self.lambda_url = lambda_url.rstrip("/")
        self.max_body = max_body
        self.invoke = invoke_fn
        self.log = log
        self.url_id = "".join(secrets.choice(_ALNUM) for _ in range(32))

    # -- request -> event ---------------------------------------------------------
    def _read_body(self, environ: dict) -> Optional[bytes]:
        """The body, or None when it is larger than max_body."""
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            try:
                n = int(length)
            except ValueError:
                n = 0
            if n > self.max_body:
                return None
            return stream.read(n) if n > 0 else b""
        if environ.get("wsgi.input_terminated") or \
                environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                chunk = stream.read(65536)
                if not chunk:
                    break
                total += len(chunk)
                if total > self.max_body:
                    return None
                chunks.append(chunk)
            return b"".join(chunks)
        return b""

    def event(self, environ: dict, body: bytes) -> dict:
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw_uri:
            raw_path = raw_uri.split("?", 1)[0] or "/"
        else:
            raw_path = urllib.parse.quote(environ.get("PATH_INFO", "") or "/")
        raw_query = environ.get("QUERY_STRING", "")
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:].replace("_", "-").lower()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                name = key.replace("_", "-").lower()
            else:
                continue
            if value == "" and key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                continue
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        if "transfer-encoding" in headers:  # the body arrives whole
            del headers["transfer-encoding"]
            headers["content-length"] = str(len(body))
        cookies = None
        if "cookie" in headers:
            cookies = [c.strip() for c in headers.pop("cookie").replace(",", ";").split(";")
                       if c.strip()]
        source_ip = environ.get("REMOTE_ADDR", "127.0.0.1")
        request_id = str(uuid.uuid4())
        now = time.time()
        trace = f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"
        headers.setdefault("x-forwarded-for", source_ip)
        headers.setdefault("x-forwarded-proto", environ.get("wsgi.url_scheme", "http"))
        headers.setdefault("x-forwarded-port", str(environ.get("SERVER_PORT", "")))
        headers.setdefault("x-amzn-trace-id", trace)
        host = headers.get("host") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": raw_query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        if raw_query:
            params: dict[str, str] = {}
            for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
                params[k] = f"{params[k]},{v}" if k in params else v
            event["queryStringParameters"] = params
        event["requestContext"] = {
            "accountId": "anonymous",
            "apiId": self.url_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": environ.get("REQUEST_METHOD", "GET"),
                "path": raw_path,
                "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        }
        if body:
            try:
                event["body"] = body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["isBase64Encoded"] = False
        return event

    # -- result -> response ----------------------------------------------------------
    @staticmethod
    def response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        """The function's JSON result -> (status, headers, body); ValueError if unusable."""
        if isinstance(result, dict) and "statusCode" in result:
            code = result["statusCode"]
            if isinstance(code, str) and code.isdigit():
                code = int(code)
            if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
                raise ValueError(f"bad statusCode {result['statusCode']!r}")
            headers: list[tuple[str, str]] = []
            raw_headers = result.get("headers") or {}
            if not isinstance(raw_headers, dict):
                raise ValueError("headers must be an object")
            for k, v in raw_headers.items():
                if isinstance(v, list):
                    v = ",".join(str(x) for x in v)
                headers.append((str(k), str(v)))
            for k, vs in (result.get("multiValueHeaders") or {}).items():
                headers.append((str(k), ",".join(str(x) for x in vs)))
            cookies = result.get("cookies") or []
            if not isinstance(cookies, list):
                raise ValueError("cookies must be a list")
            headers += [("Set-Cookie", str(c)) for c in cookies]
            body = result.get("body")
            if body is None:
                data = b""
            elif not isinstance(body, str):
                data = json.dumps(body).encode()
            elif result.get("isBase64Encoded"):
                try:
                    data = base64.b64decode(body, validate=True)
                except (binascii.Error, ValueError) as e:
                    raise ValueError(f"body is not base64: {e}") from None
            else:
                data = body.encode("utf-8")
            return code, headers, data
        return 200, [("content-type", "application/json")], json.dumps(result).encode()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = self._read_body(environ)
        if body is None:
            return self._reply(start_response, 413, [("content-type", "application/json")],
                               b'{"message":"Request Entity Too Large"}', str(uuid.uuid4()),
                               close=True)
        event = self.event(environ, body)
        rid = event["requestContext"]["requestId"]
        try:
            out = self.invoke(self.lambda_url, event)
        except Exception as e:  # driver unreachable, bad answer
            self.log(f"function_url: {event['requestContext']['http']['method']} "
                     f"{event['rawPath']}: invoke failed: {type(e).__name__}: {e}")
            return self._internal_error(start_response, rid)
        if not out.get("ok"):
            self.log(f"function_url: {event['requestContext']['http']['method']} "
                     f"{event['rawPath']}: function error: {json.dumps(out.get('error'))}")
            return self._internal_error(start_response, rid)
        if "response_raw" in out:  # not JSON: AWS cannot read it either
            self.log(f"function_url: {event['rawPath']}: response is not JSON")
            return self._internal_error(start_response, rid)
        try:
            code, headers, data = self.response(out.get("response"))
        except ValueError as e:
            self.log(f"function_url: {event['rawPath']}: unusable response: {e}")
            return self._internal_error(start_response, rid)
        return self._reply(start_response, code, headers, data, rid,
                           head=environ.get("REQUEST_METHOD") == "HEAD")

    def _internal_error(self, start_response: Callable, rid: str) -> Iterable[bytes]:
        return self._reply(start_response, 502, [("content-type", "application/json")],
                           b'{"message":"Internal Server Error"}', rid)

    @staticmethod
    def _reply(start_response: Callable, code: int, headers: list[tuple[str, str]],
               data: bytes, rid: str, close: bool = False, head: bool = False
               ) -> Iterable[bytes]:
        drop = {"content-length", "connection", "transfer-encoding"}
        out = [(k, v) for k, v in headers if k.lower() not in drop]
        out.append(("Content-Length", str(len(data))))
        out.append(("x-amzn-RequestId", rid))
        if close:
            out.append(("Connection", "close"))
        start_response(_status_line(code), out)
        return [] if head else [data]


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="a local Lambda Function URL (payload 2.0)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--ready-file", help="write the bound port here once listening")
    parser.add_argument("--lambda-url", required=True,
                        help="base URL of the lambda_driver running the function")
    parser.add_argument("--max-body", type=int, default=MAX_BODY,
                        help="largest request body in bytes (default and most: 6 MB, the "
                        "Function URL limit; larger -> 413)")
    parser.add_argument("--verbose", action="store_true", help="log every request line")
    args = parser.parse_args(argv)
    if not 0 < args.max_body <= MAX_BODY:
        parser.error(f"--max-body must be in 1..{MAX_BODY}")
    app = FunctionUrl(args.lambda_url, args.max_body)
    server = QueueServer(args.host, args.port, app, handler=make_handler(args.verbose))
    serve_until_signalled(server, "function_url", args.host, args.ready_file)


if __name__ == "__main__":
    main()
