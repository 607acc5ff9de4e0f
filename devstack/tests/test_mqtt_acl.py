"""The stack's mosquitto is subscribe-only for anonymous clients (storefronts), like an IoT Core
policy granting iot:Subscribe/iot:Receive only: they may read ``{IOT_TOPIC_PREFIX}/#`` and
nothing else, over TCP and WebSocket alike; only the IoT bridge's user publishes.

    .venv/bin/python -m pytest -q devstack/tests/test_mqtt_acl.py
"""

from __future__ import annotations

import os
import queue
import stat
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
import requests

from devstack.stack import Stack, find_mosquitto, mosquitto_acl, mosquitto_config

pytestmark = pytest.mark.skipif(not find_mosquitto(), reason="mosquitto not installed")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    st = Stack(state_dir=tmp_path_factory.mktemp("acl") / "state", lambda_enabled=False)
    with st:
        yield st


def client(port: int, transport: str = "tcp", user: tuple[str, str] | None = None,
           on_message=None) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                    transport=transport)
    if user:
        c.username_pw_set(*user)
    if on_message:
        c.on_message = on_message
    connected = queue.Queue()
    c.on_connect = lambda cl, u, f, rc, p: connected.put(rc)
    c.connect("127.0.0.1", port)
    c.loop_start()
    rc = connected.get(timeout=5)
    assert not rc.is_failure, rc
    return c


def subscriber(port: int, topic: str, transport: str = "tcp"):
    got: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
    subscribed = queue.Queue()
    c = client(port, transport, on_message=lambda cl, u, m: got.put(m))
    c.on_subscribe = lambda cl, u, mid, rcs, p: subscribed.put(rcs)
    c.subscribe(topic, qos=1)
    assert not subscribed.get(timeout=5)[0].is_failure
    return c, got


def drain(got: queue.Queue, until: bytes, timeout: float = 5.0) -> list[tuple[str, bytes]]:
    """Messages up to and including the marker payload ``until`` (then a little more)."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = got.get(timeout=0.1)
        except queue.Empty:
            continue
        out.append((m.topic, m.payload))
        if m.payload == until:
            deadline = min(deadline, time.monotonic() + 0.3)
    return out


def stop(*clients: mqtt.Client) -> None:
    for c in clients:
        c.disconnect()
        c.loop_stop()


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
def test_anonymous_publish_never_reaches_subscribers_but_the_bridges_does(stack, transport):
    port = stack.mqtt_port if transport == "tcp" else stack.mqtt_ws_port
    topic = f"stockbridge/store_acl/products/prod_{uuid.uuid4().hex[:8]}/stock"
    sub, got = subscriber(port, topic, transport)
    anon = client(port, transport)
    try:
        info = anon.publish(topic, b'{"available":999,"version":999}', qos=1, retain=True)
        info.wait_for_publish(5)  # MQTT 3.1.1: a denied publish is acknowledged, then dropped
        r = requests.post(f"{stack.urls['iot_bridge']}/topics/{topic.replace('/', '%2F')}"
                          "?qos=1&retain=true", data=b'{"available":3,"version":1}')
        assert r.status_code == 200, r.text
        seen = drain(got, b'{"available":3,"version":1}')
        assert seen == [(topic, b'{"available":3,"version":1}')]
    finally:
        stop(sub, anon)
    # the retained message is the bridge's, not the forged one
    late, got = subscriber(port, topic, transport)
    try:
        m = got.get(timeout=5)
        assert (m.payload, m.retain) == (b'{"available":3,"version":1}', True)
    finally:
        stop(late)


def test_anonymous_clients_read_only_the_stock_topics(stack):
    sub, got = subscriber(stack.mqtt_port, "#")
    try:
        bridge = stack.urls["iot_bridge"]
        requests.post(f"{bridge}/topics/elsewhere%2Fsecret?qos=1", data=b"hidden").raise_for_status()
        requests.post(f"{bridge}/topics/stockbridge%2Fother%2Ftopic?qos=1", data=b"internal").raise_for_status()
        requests.post(f"{bridge}/topics/stockbridge%2Fs1%2Fproducts%2Fp1%2Fstock?qos=1",
                      data=b"shown").raise_for_status()
        seen = drain(got, b"shown")
        assert (("stockbridge/s1/products/p1/stock", b"shown") in seen
                and all(t.startswith("stockbridge/") and t.endswith("/stock") for t, _ in seen)), seen
    finally:
        stop(sub)


def test_the_bridge_user_may_publish_directly(stack):
    topic = "stockbridge/store_acl/products/direct/stock"
    sub, got = subscriber(stack.mqtt_port, topic)
    pub = client(stack.mqtt_port, user=stack.mqtt_bridge_credentials)
    try:
        pub.publish(topic, b"ok", qos=1).wait_for_publish(5)
        assert got.get(timeout=5).payload == b"ok"
    finally:
        stop(sub, pub)
    # a wrong password is refused
    bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    bad.username_pw_set("bridge", "wrong")
    refused = queue.Queue()
    bad.on_connect = lambda cl, u, f, rc, p: refused.put(rc)
    bad.connect("127.0.0.1", stack.mqtt_port)
    bad.loop_start()
    try:
        assert refused.get(timeout=5).is_failure
    finally:
        stop(bad)


def test_the_password_stays_secret(stack):
    user, password = stack.mqtt_bridge_credentials
    assert user == "bridge" and len(password) >= 24
    passwd = stack.state_dir / "mosquitto.passwd"
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    assert passwd.read_text().startswith("bridge:$7$") and password not in passwd.read_text()
    assert password not in stack.env_file.read_text()
    assert password not in "".join(stack.env.values())
    for log in stack.state_dir.glob("*.log"):
        assert password not in log.read_text(errors="replace"), log
    with open(f"/proc/{stack.pids()['iot_bridge']}/cmdline", "rb") as f:
        assert password.encode() not in f.read()
    conf = (stack.state_dir / "mosquitto.conf").read_text()
    assert "per_listener_settings false" in conf and "allow_anonymous true" in conf
    assert f"acl_file {stack.state_dir / 'mosquitto.acl'}" in conf
    assert f"password_file {passwd}" in conf


def test_acl_follows_the_topic_prefix(tmp_path):
    acl = mosquitto_acl("shopx")
    assert acl.splitlines()[2] == "topic read shopx/+/products/+/stock"
    assert "user bridge\ntopic readwrite #" in acl
    st = Stack(state_dir=tmp_path / "state", lambda_enabled=False,
               extra_lambda_env={"IOT_TOPIC_PREFIX": "shopx"})
    assert st.topic_prefix == "shopx"
    # without files the config stays fully anonymous (the unit tests' broker)
    plain = mosquitto_config(1, 2)
    assert "acl_file" not in plain and "password_file" not in plain


def test_password_file_is_removed_at_stop(tmp_path):
    st = Stack(state_dir=tmp_path / "state", lambda_enabled=False)
    with st:
        assert (tmp_path / "state" / "mosquitto.passwd").exists()
    assert not (tmp_path / "state" / "mosquitto.passwd").exists()
    assert not os.path.exists(tmp_path / "state" / "env")


def test_password_file_without_mosquitto_passwd_is_accepted_by_mosquitto(tmp_path, monkeypatch):
    """The PBKDF2 fallback (no mosquitto_passwd on PATH) writes what mosquitto verifies."""
    import subprocess

    from devstack import stack as stack_mod

    monkeypatch.setattr(stack_mod.shutil, "which", lambda _name: None)
    real_access = os.access
    monkeypatch.setattr(stack_mod.os, "access",
                        lambda p, m: False if "mosquitto_passwd" in str(p) else real_access(p, m))
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    stack_mod.write_mosquitto_password_file(passwd, "bridge", "s3cret-fallback")
    monkeypatch.undo()
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    acl.write_text(mosquitto_acl("stockbridge"))
    port, ws = stack_mod.free_ports(2)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, ws, acl_file=acl, password_file=passwd))
    proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not stack_mod.tcp_ready(port):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        sub, got = subscriber(port, "stockbridge/x/products/y/stock")
        pub = client(port, user=("bridge", "s3cret-fallback"))
        try:
            pub.publish("stockbridge/x/products/y/stock", b"via-fallback", qos=1).wait_for_publish(5)
            assert got.get(timeout=5).payload == b"via-fallback"
        finally:
            stop(sub, pub)
    finally:
        proc.terminate()
        proc.wait(10)
