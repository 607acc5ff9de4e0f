"""Local AWS IoT Core *data plane* that forwards publishes to mosquitto.

Usage::

    python -m devstack.iot_bridge --host 127.0.0.1 --port 0 \
        --mqtt-host 127.0.0.1 --mqtt-port 1883 --ready-file .stack/iot.port \
        [--mqtt-username bridge --mqtt-password ...]

With ``--mqtt-username`` the bridge logs in to the broker (the stack's mosquitto lets only
that user publish; anonymous clients may only subscribe).  The password comes from
``--mqtt-password`` or, better (argv is visible in ``ps``), from the environment variable
``IOT_BRIDGE_MQTT_PASSWORD``; it is never printed.

Point the Rust SDK at it with ``AWS_ENDPOINT_URL_IOT_DATA_PLANE=http://127.0.0.1:<port>``.

What the SDK sends (aws-sdk-iotdataplane ``Publish``, from its generated
serializer ``src/operation/publish.rs``)::

    POST /topics/{topic}?qos=1&retain=true[&contentType=..&responseTopic=..&messageExpiry=..]
    Content-Type: application/octet-stream
    <payload bytes>

``{topic}`` is a non-greedy Smithy ``httpLabel``: percent-encoded with '/'
encoded as ``%2F`` (``a/b`` -> ``/topics/a%2Fb``).  The SigV4 signature is
ignored.  The bridge decodes the topic from the *raw* request URI (werkzeug's
PATH_INFO is already decoded, which would turn ``%25`` ambiguities into
guesses), publishes to mosquitto with the requested QoS / retain flag, waits
for the publish to complete (PUBACK for QoS 1) and only then answers
``200 {}``.

Errors: ``400 {"message": ...}`` for an empty topic, a topic containing ``+``
or ``#`` or a bad ``qos``; ``503 {"message": ...}`` if mosquitto is unreachable.

Test hooks::

    GET  /_publishes        -> {"publishes": [{topic, qos, retain, payload, at_ms}, ...]}
                               (at_ms: when the bridge took it, epoch milliseconds)
    POST /_publishes/reset  -> {}
    GET  /_stats            -> {"publishes": n, "errors": n, "connected": bool}
    GET  /_health           -> {"ok": true, "connected": bool}
    POST /_faults {"count": n} -> the next n publishes answer 503 without publishing (0 clears)

Read side (as the IoT data plane offers it, answered from what went through
the bridge)::

    GET /retainedMessage/{topic}  -> {topic, payload (base64), qos, lastModifiedTime}
    GET /retainedMessage          -> {"retainedTopics": [{topic, payloadSize, qos, lastModifiedTime}]}
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt

from devstack.serving import QueueServer, make_handler, serve_until_signalled

PUBLISH_TIMEOUT_S = 10.0
PASSWORD_ENV = "IOT_BRIDGE_MQTT_PASSWORD"


class BadRequest(Exception):
    pass


class Unavailable(Exception):
    pass


class MqttPublisher:
    """One paho client shared by all request threads (paho's publish is thread-safe)."""

    def __init__(self, host: str, port: int, client_id: Optional[str] = None,
                 username: Optional[str] = None, password: Optional[str] = None) -> None:
        self.host = host
        self.port = port
        self.connected = threading.Event()
        self.last_refusal: Optional[str] = None
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"stockbridge-iot-bridge-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        # Up to this many QoS-1 messages outstanding at once (paho default is 20).
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            self.connected.set()
            self.last_refusal = None
        elif str(reason_code) != self.last_refusal:  # log each distinct refusal once
            self.last_refusal = str(reason_code)
            print(f"iot_bridge: mqtt://{self.host}:{self.port} refused the connection: "
                  f"{reason_code}", file=sys.stderr, flush=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()

    def start(self, wait_s: float) -> bool:
        # connect_async + loop_start: keeps retrying until mosquitto is there.
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self.connected.wait(wait_s)

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if not self.connected.is_set():
            raise Unavailable(f"MQTT broker {self.host}:{self.port} is unreachable")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            raise Unavailable(f"MQTT broker {self.host}:{self.port} is unreachable")
        try:
            info.wait_for_publish(timeout=PUBLISH_TIMEOUT_S)
        except (ValueError, RuntimeError) as exc:
            raise Unavailable(f"MQTT publish failed: {exc}") from exc
        if not info.is_published():
            raise Unavailable(f"MQTT publish not acknowledged within {PUBLISH_TIMEOUT_S}s")


def validate_topic(topic: str) -> None:
    if not topic:
        raise BadRequest("topic must not be empty")
    if "+" in topic or "#" in topic:
        raise BadRequest(f"invalid topic {topic!r}: wildcards '+' and '#' are not allowed in a publish topic")
    if len(topic.encode()) > 65535:
        raise BadRequest("topic too long")


def parse_bool(value: Optional[str]) -> bool:
    if value is None:
        return False
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0", ""):
        return False
    raise BadRequest(f"invalid boolean {value!r}")


def raw_path(environ: dict) -> str:
    """The request path exactly as sent (still percent-encoded)."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        return urlsplit(raw).path if "://" in raw else raw.split("?", 1)[0]
    # Fallback: PATH_INFO is decoded already; re-quote is impossible, use as is.
    return environ.get("PATH_INFO", "")


class IotBridge:
    def __init__(self, publisher: MqttPublisher) -> None:
        self.publisher = publisher
        self._lock = threading.Lock()
        self._publishes: list[dict[str, Any]] = []
        self._retained: dict[str, dict[str, Any]] = {}
        self._n_ok = 0
        self._n_err = 0
        self._faults = 0

    # -- WSGI ----------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = raw_path(environ)
        try:
            if path.startswith("/topics/") and method == "POST":
                return self._publish(environ, path[len("/topics/"):], start_response)
            if path in ("/topics", "/topics/") and method == "POST":
                raise BadRequest("topic must not be empty")
            if path == "/_publishes" and method == "GET":
                with self._lock:
                    return _json(start_response, 200, {"publishes": list(self._publishes)})
            if path == "/_publishes/reset" and method == "POST":
                with self._lock:
                    self._publishes.clear()
                return _json(start_response, 200, {})
            if path == "/_stats" and method == "GET":
                with self._lock:
                    stats = {"publishes": self._n_ok, "errors": self._n_err}
                stats["connected"] = self.publisher.connected.is_set()
                return _json(start_response, 200, stats)
            if path == "/_faults" and method == "POST":
                count = json.loads(_read_body(environ) or b"{}").get("count", 1)
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise BadRequest("count must be a non-negative integer")
                with self._lock:
                    self._faults = count
                    return _json(start_response, 200, {"pending": self._faults})
            if path == "/_health" and method == "GET":
                return _json(start_response, 200, {"ok": True, "connected": self.publisher.connected.is_set()})
            if path.startswith("/retainedMessage/") and method == "GET":
                return self._get_retained(unquote(path[len("/retainedMessage/"):]), start_response)
            if path == "/retainedMessage" and method == "GET":
                return self._list_retained(start_response)
            return _json(start_response, 404, {"message": f"no route for {method} {path}"})
        except BadRequest as exc:
            with self._lock:
                self._n_err += 1
            return _json(start_response, 400, {"message": str(exc)})
        except Unavailable as exc:
            with self._lock:
                self._n_err += 1
            return _json(start_response, 503, {"message": str(exc)})

    def _publish(self, environ: dict, encoded_topic: str, start_response: Callable) -> Iterable[bytes]:
        topic = unquote(encoded_topic)
        validate_topic(topic)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        qos_raw = query.get("qos", ["0"])[0]
        try:
            qos = int(qos_raw)
        except ValueError:
            raise BadRequest(f"invalid qos {qos_raw!r}") from None
        if qos not in (0, 1):
            raise BadRequest(f"invalid qos {qos}: must be 0 or 1")
        retain = parse_bool(query.get("retain", [None])[0])
        payload = _read_body(environ)
        with self._lock:
            faulted, self._faults = self._faults > 0, max(0, self._faults - 1)
        if faulted:
            raise Unavailable("injected fault: this publish was not made")

        self.publisher.publish(topic, payload, qos, retain)

        record = {
            "topic": topic,
            "qos": qos,
            "retain": retain,
            "payload": payload.decode("utf-8", errors="replace"),
            "at_ms": int(time.time() * 1000),
        }
        with self._lock:
            self._n_ok += 1
            self._publishes.append(record)
            if retain:
                if payload:
                    self._retained[topic] = {
                        "payload": payload,
                        "qos": qos,
                        "lastModifiedTime": int(time.time() * 1000),
                    }
                else:  # an empty retained publish clears the retained message
                    self._retained.pop(topic, None)
        return _json(start_response, 200, {})

    def _get_retained(self, topic: str, start_response: Callable) -> Iterable[bytes]:
        with self._lock:
            msg = self._retained.get(topic)
        if msg is None:
            # As IoT answers (restJson1): the error's type in a header, for the SDK's error kind.
            return _json(start_response, 404, {"message": f"No retained message found for topic {topic}"},
                         [("x-amzn-ErrorType", "ResourceNotFoundException")])
        return _json(
            start_response,
            200,
            {
                "topic": topic,
                "payload": base64.b64encode(msg["payload"]).decode(),
                "qos": msg["qos"],
                "lastModifiedTime": msg["lastModifiedTime"],
            },
        )

    def _list_retained(self, start_response: Callable) -> Iterable[bytes]:
        with self._lock:
            topics = [
                {
                    "topic": t,
                    "payloadSize": len(m["payload"]),
                    "qos": m["qos"],
                    "lastModifiedTime": m["lastModifiedTime"],
                }
                for t, m in sorted(self._retained.items())
            ]
        return _json(start_response, 200, {"retainedTopics": topics})


def _read_body(environ: dict) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return stream.read()
    return b""


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}


def _json(start_response: Callable, code: int, obj: Any,
          extra: Optional[list[tuple[str, str]]] = None) -> list[bytes]:
    body = json.dumps(obj).encode()
    start_response(
        f"{code} {_REASONS.get(code, 'Error')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + (extra or []),
    )
    return [body]










def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="IoT data plane Publish -> mosquitto bridge")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--mqtt-username", help="broker user (default: anonymous)")
    parser.add_argument("--mqtt-password",
                        help=f"broker password (default: ${PASSWORD_ENV}; prefer the variable)")
    parser.add_argument("--ready-file", help="write the bound port here once ready")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the broker before serving anyway (publishes answer 503 until connected)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    if args.mqtt_password is not None and not args.mqtt_username:
        parser.error("--mqtt-password needs --mqtt-username")
    password = args.mqtt_password if args.mqtt_password is not None else os.environ.get(PASSWORD_ENV)
    publisher = MqttPublisher(args.mqtt_host, args.mqtt_port, username=args.mqtt_username,
                              password=password)
    if publisher.start(args.connect_timeout):
        who = f" as {args.mqtt_username}" if args.mqtt_username else " (anonymous)"
        print(f"iot_bridge connected to mqtt://{args.mqtt_host}:{args.mqtt_port}{who}", flush=True)
    else:
        print(
            f"iot_bridge WARNING: mqtt://{args.mqtt_host}:{args.mqtt_port} unreachable; "
            "serving anyway, publishes answer 503 until it is up",
            flush=True,
        )
    server = QueueServer(args.host, args.port, IotBridge(publisher), make_handler(args.verbose))
    try:
        serve_until_signalled(server, "iot_bridge", args.host, args.ready_file)
    finally:
        publisher.stop()


if __name__ == "__main__":
    main()
