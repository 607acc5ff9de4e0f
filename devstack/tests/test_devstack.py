"""Tests of the offline test bed itself: moto behind its lock, the IoT bridge,
the Lambda Runtime API driver and the Stack that starts them all.

    cd /work/main && .venv/bin/python -m pytest devstack/tests/test_devstack.py -q

Every process started here is stopped again (and checked to be gone).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import paho.mqtt.client as mqtt
import pytest
import requests
from botocore.config import Config

from devstack.lambda_driver import invoke
from devstack.stack import (
    REPO_ROOT,
    Stack,
    find_mosquitto,
    free_ports,
    mosquitto_config,
    read_ready_file,
    tcp_ready,
)

PY = sys.executable


# --------------------------------------------------------------------------- helpers


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{proc.args} ignored SIGTERM")


class Service:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"


def start_module(tmp: Path, name: str, module: str, args: list[str], timeout: float = 30.0,
                 env: dict | None = None) -> Service:
    ready = tmp / f"{name}.port"
    log = tmp / f"{name}.log"
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            [PY, "-m", module, "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready), *args],
            cwd=REPO_ROOT, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{module} exited with {proc.returncode}:\n{log.read_text()}")
        port = read_ready_file(ready)
        if port and tcp_ready(port):
            return Service(proc, port, log)
        if time.monotonic() > deadline:
            _stop(proc)
            raise AssertionError(f"{module} not ready:\n{log.read_text()}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- moto


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    svc = start_module(tmp_path_factory.mktemp("moto"), "moto", "devstack.moto_server", [])
    yield svc
    _stop(svc.proc)
    assert svc.proc.returncode is not None


def _dynamodb(url: str, pool: int = 10):
    return boto3.client(
        "dynamodb", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(max_pool_connections=pool, retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_moto_serialised_conditional_transactions_are_exact(moto):
    ddb = _dynamodb(moto.url, pool=60)
    table = f"counter-{uuid.uuid4().hex[:6]}"
    ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    ddb.put_item(TableName=table, Item={"pk": {"S": "sku"}, "n": {"N": "20"}})
    assert requests.post(f"{moto.url}/_stats/reset").json() == {}

    barrier = threading.Barrier(50)

    def decrement(_i: int) -> bool:
        barrier.wait()
        try:
            ddb.transact_write_items(TransactItems=[{
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": "sku"}},
                    "UpdateExpression": "SET n = n - :one",
                    "ConditionExpression": "n >= :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            }])
            return True
        except ddb.exceptions.TransactionCanceledException:
            return False

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(decrement, range(50)))

    assert sum(results) == 20
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "sku"}}, ConsistentRead=True)["Item"]
    assert item["n"] == {"N": "0"}
    stats = requests.get(f"{moto.url}/_stats").json()
    assert stats["DynamoDB_20120810.TransactWriteItems"] == 50
    assert stats["DynamoDB_20120810.GetItem"] == 1


def test_moto_stats_reset(moto):
    ddb = _dynamodb(moto.url)
    ddb.list_tables()
    assert requests.get(f"{moto.url}/_stats").json().get("DynamoDB_20120810.ListTables", 0) >= 1
    assert requests.post(f"{moto.url}/_stats/reset").status_code == 200
    assert requests.get(f"{moto.url}/_stats").json() == {}


# --------------------------------------------------------------------------- mosquitto + bridge


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    binary = find_mosquitto()
    if not binary:
        pytest.skip("mosquitto not installed")
    tmp = tmp_path_factory.mktemp("mosquitto")
    mqtt_port, ws_port = free_ports(2)
    conf = tmp / "mosquitto.conf"
    conf.write_text(mosquitto_config(mqtt_port, ws_port))
    log = open(tmp / "mosquitto.log", "ab")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not (tcp_ready(mqtt_port) and tcp_ready(ws_port)):
        assert proc.poll() is None, (tmp / "mosquitto.log").read_text()
        assert time.monotonic() < deadline, "mosquitto not ready"
        time.sleep(0.05)
    yield {"port": mqtt_port, "ws_port": ws_port}
    _stop(proc)
    log.close()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, mosquitto):
    svc = start_module(tmp_path_factory.mktemp("bridge"), "bridge", "devstack.iot_bridge",
                       ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(mosquitto["port"])])
    yield svc
    _stop(svc.proc)


def receive_retained(port: int, topic: str, transport: str = "tcp", timeout: float = 5.0) -> mqtt.MQTTMessage:
    """Subscribe (after the publish happened) and return the first message on topic."""
    got: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}",
                         transport=transport)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, m: got.put(m)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        return got.get(timeout=timeout)
    finally:
        client.disconnect()
        client.loop_stop()


def test_bridge_publish_is_retained_on_mosquitto(bridge, mosquitto):
    requests.post(f"{bridge.url}/_publishes/reset")
    r = requests.post(f"{bridge.url}/topics/a%2Fb?qos=1&retain=true", data=b'{"available":7}',
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {}

    msg = receive_retained(mosquitto["port"], "a/b")
    assert msg.topic == "a/b"
    assert msg.payload == b'{"available":7}'
    assert msg.retain is True
    assert msg.qos == 1

    # also over MQTT-over-WebSocket (what browsers use)
    ws_msg = receive_retained(mosquitto["ws_port"], "a/b", transport="websockets")
    assert ws_msg.payload == b'{"available":7}'

    pubs = requests.get(f"{bridge.url}/_publishes").json()["publishes"]
    assert abs(pubs[0].pop("at_ms") - time.time() * 1000) < 60_000, "when the bridge took it"
    assert pubs == [{"topic": "a/b", "qos": 1, "retain": True, "payload": '{"available":7}'}]
    assert requests.get(f"{bridge.url}/_stats").json()["publishes"] >= 1
    retained = requests.get(f"{bridge.url}/retainedMessage/a%2Fb").json()
    assert retained["topic"] == "a/b" and retained["qos"] == 1


def test_bridge_faults_fail_the_next_publishes_without_publishing(bridge):
    requests.post(f"{bridge.url}/_publishes/reset")
    assert requests.post(f"{bridge.url}/_faults", json={"count": 2}).json() == {"pending": 2}
    codes = [requests.post(f"{bridge.url}/topics/f%2Fg?qos=1", data=b"x").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert len(requests.get(f"{bridge.url}/_publishes").json()["publishes"]) == 1
    assert requests.post(f"{bridge.url}/_faults", json={"count": -1}).status_code == 400


def test_bridge_qos0_not_retained_and_percent_decoding(bridge):
    requests.post(f"{bridge.url}/_publishes/reset")
    r = requests.post(f"{bridge.url}/topics/stockbridge%2Fstores%2Fmy%20store%2Fsku%3A1", data=b"x")
    assert r.status_code == 200
    pubs = requests.get(f"{bridge.url}/_publishes").json()["publishes"]
    assert [{k: v for k, v in p.items() if k != "at_ms"} for p in pubs] == [
        {"topic": "stockbridge/stores/my store/sku:1", "qos": 0, "retain": False, "payload": "x"}]


def test_bridge_accepts_aws_sdk_publish_and_concurrency(bridge, mosquitto):
    """boto3's iot-data client builds the same request as the Rust SDK (POST /topics/a%2Fb?qos=1&retain=true)."""
    iot = boto3.client("iot-data", endpoint_url=bridge.url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test",
                       config=Config(max_pool_connections=50))
    requests.post(f"{bridge.url}/_publishes/reset")
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda i: iot.publish(topic=f"sdk/t{i}", qos=1, retain=True,
                                            payload=json.dumps({"i": i}).encode()), range(100)))
    pubs = requests.get(f"{bridge.url}/_publishes").json()["publishes"]
    assert sorted(p["topic"] for p in pubs) == sorted(f"sdk/t{i}" for i in range(100))
    assert all(p["qos"] == 1 and p["retain"] for p in pubs)
    assert receive_retained(mosquitto["port"], "sdk/t42").payload == b'{"i": 42}'
    got = iot.get_retained_message(topic="sdk/t42")
    assert got["payload"] == b'{"i": 42}' and got["qos"] == 1


@pytest.mark.parametrize("path", ["/topics/a%2F%2B", "/topics/%23", "/topics/", "/topics/a%2Fb?qos=2"])
def test_bridge_rejects_bad_requests(bridge, path):
    r = requests.post(f"{bridge.url}{path}", data=b"x")
    assert r.status_code == 400
    assert "message" in r.json()


def test_bridge_503_when_broker_unreachable(tmp_path):
    (dead_port,) = free_ports(1)
    svc = start_module(tmp_path, "bridge", "devstack.iot_bridge",
                       ["--mqtt-port", str(dead_port), "--connect-timeout", "0.3"])
    try:
        r = requests.post(f"{svc.url}/topics/a%2Fb?qos=1&retain=true", data=b"x")
        assert r.status_code == 503
        assert "message" in r.json()
        assert requests.get(f"{svc.url}/_publishes").json() == {"publishes": []}
    finally:
        _stop(svc.proc)


# --------------------------------------------------------------------------- lambda driver

ECHO_RUNTIME = textwrap.dedent('''\
    #!{python}
    """A tiny custom runtime speaking the Lambda Runtime API (stands in for the Rust binary)."""
    import json, os, sys, time, urllib.request
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
    if os.environ.get("FAIL_INIT"):
        req = urllib.request.Request(api + "/init/error", method="POST",
            data=json.dumps({{"errorType": "Init.Boom", "errorMessage": "bad config"}}).encode())
        urllib.request.urlopen(req).read()
        sys.exit(7)
    print("runtime started", flush=True)
    while True:
        with urllib.request.urlopen(api + "/invocation/next") as r:
            rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
            headers = dict(r.headers)
            event = json.loads(r.read())
        ctl = event if isinstance(event, dict) else {{}}
        if ctl.get("crash"):
            os._exit(3)
        if ctl.get("sleep"):
            time.sleep(ctl["sleep"])
        if ctl.get("fail"):
            body, kind = {{"errorType": "Handler.Failed", "errorMessage": ctl["fail"]}}, "error"
        else:
            body, kind = {{"echo": event, "pid": os.getpid(), "headers": headers,
                          "env": {{k: v for k, v in os.environ.items()
                                  if k.startswith(("AWS_", "TABLE_", "STRIPE_", "IOT_", "DEFAULT_"))}}}}, "response"
        req = urllib.request.Request(f"{{api}}/invocation/{{rid}}/{{kind}}", data=json.dumps(body).encode(),
                                     method="POST")
        urllib.request.urlopen(req).read()
''')


@pytest.fixture(scope="module")
def echo_binary(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bin") / "bootstrap"
    path.write_text(ECHO_RUNTIME.format(python=PY))
    path.chmod(0o755)
    return path


def _start_driver(tmp: Path, binary: Path, workers: int, timeout: float = 30, env: dict | None = None) -> Service:
    return start_module(tmp, "driver", "devstack.lambda_driver",
                        ["--binary", str(binary), "--workers", str(workers),
                         "--log-file", str(tmp / "workers.log"), "--timeout", str(timeout)], env=env)


def _wait_workers_ready(url: str, n: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        workers = requests.get(f"{url}/_health").json()["workers"]
        if sum(1 for w in workers if w.get("ready") and w.get("alive")) >= n:
            return workers
        assert time.monotonic() < deadline, workers
        time.sleep(0.05)


@pytest.fixture(scope="module")
def driver(tmp_path_factory, echo_binary):
    tmp = tmp_path_factory.mktemp("driver")
    svc = _start_driver(tmp, echo_binary, workers=2, timeout=30)
    yield svc
    pids = [w["pid"] for w in requests.get(f"{svc.url}/_health").json()["workers"]]
    _stop(svc.proc)
    time.sleep(0.1)
    assert not [p for p in pids if p and _pid_alive(p)], "worker processes survived the driver"


def test_driver_invoke_ok_with_runtime_headers(driver):
    out = invoke(driver.url, {"hello": "world"})
    assert out["ok"] is True, out
    assert out["error"] is None
    assert out["response"]["echo"] == {"hello": "world"}
    headers = {k.lower(): v for k, v in out["response"]["headers"].items()}
    assert headers["lambda-runtime-aws-request-id"] == out["request_id"]
    assert int(headers["lambda-runtime-deadline-ms"]) > time.time() * 1000
    assert headers["lambda-runtime-invoked-function-arn"].endswith(":function:bootstrap")
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
    env = out["response"]["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "bootstrap"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/bootstrap"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")


def test_driver_raw_bytes_event(driver):
    out = invoke(driver.url, b'[1, 2, 3]')
    assert out["ok"] and out["response"]["echo"] == [1, 2, 3]


def test_driver_handler_error(driver):
    out = invoke(driver.url, {"fail": "out of stock"})
    assert out["ok"] is False
    assert out["response"] is None
    assert out["error"] == {"errorType": "Handler.Failed", "errorMessage": "out of stock"}


def test_driver_many_concurrent_invocations_queue_up(driver):
    _wait_workers_ready(driver.url, 2)
    with ThreadPoolExecutor(200) as pool:
        outs = list(pool.map(lambda i: invoke(driver.url, {"i": i}), range(200)))
    assert all(o["ok"] for o in outs), [o for o in outs if not o["ok"]][:3]
    assert sorted(o["response"]["echo"]["i"] for o in outs) == list(range(200))
    assert len({o["request_id"] for o in outs}) == 200
    assert {o["worker"] for o in outs} == {0, 1}


def test_driver_worker_crash_fails_invocation_and_restarts(driver):
    workers = _wait_workers_ready(driver.url, 2)
    old_pids = {w["pid"] for w in workers}
    restarts = requests.get(f"{driver.url}/_health").json()["stats"]["restarts"]

    out = invoke(driver.url, {"crash": True})
    assert out["ok"] is False
    assert out["error"] == {"errorType": "Runtime.ExitError", "errorMessage": "worker exited with code 3"}

    health = requests.get(f"{driver.url}/_health").json()
    assert health["stats"]["restarts"] == restarts + 1
    workers = _wait_workers_ready(driver.url, 2)
    new_pids = {w["pid"] for w in workers}
    assert len(new_pids - old_pids) == 1  # exactly the crashed one was replaced
    for crashed in old_pids - new_pids:
        assert not _pid_alive(crashed)
    # and the pool still serves
    outs = [invoke(driver.url, {"after": i}) for i in range(4)]
    assert all(o["ok"] for o in outs)


def test_driver_timeout_returns_504_and_replaces_worker(tmp_path, echo_binary):
    svc = _start_driver(tmp_path, echo_binary, workers=1, timeout=2)
    try:
        (old,) = [w["pid"] for w in _wait_workers_ready(svc.url, 1)]
        r = requests.post(f"{svc.url}/_invoke", data=json.dumps({"sleep": 30}))
        assert r.status_code == 504
        out = r.json()
        assert out["ok"] is False and out["timed_out"] is True
        assert out["error"]["errorType"] == "Sandbox.Timedout"
        # The driver kills and replaces the timed-out worker asynchronously: wait for the swap
        # (bounded), then check the old process is really gone.
        deadline = time.monotonic() + 15
        while True:
            (new,) = [w["pid"] for w in _wait_workers_ready(svc.url, 1)]
            if new != old or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert new != old and not _pid_alive(old)
        assert invoke(svc.url, {"x": 1})["ok"]
        assert requests.get(f"{svc.url}/_health").json()["stats"]["restarts"] == 1
    finally:
        _stop(svc.proc)


def test_driver_init_error_fails_invocation_fast(tmp_path, echo_binary):
    svc = _start_driver(tmp_path, echo_binary, workers=1, timeout=20, env={"FAIL_INIT": "1"})
    try:
        t0 = time.monotonic()
        out = invoke(svc.url, {"x": 1})
        assert time.monotonic() - t0 < 10
        assert out["ok"] is False
        assert out["error"] == {"errorType": "Init.Boom", "errorMessage": "bad config"}
    finally:
        _stop(svc.proc)


# --------------------------------------------------------------------------- the whole stack


@pytest.mark.skipif(not (REPO_ROOT / "devstack" / "fake_stripe" / "__init__.py").exists(), reason="fake_stripe not there yet")
def test_stack_starts_everything_and_stops_cleanly(tmp_path, echo_binary):
    env_file = tmp_path / "env"
    stack = Stack(state_dir=tmp_path / "state", env_file=env_file, inventory_binary=echo_binary,
                  workers=1, lambda_timeout=20)
    with stack:
        pids = stack.pids()
        assert set(pids) == {"mosquitto", "moto_server", "iot_bridge", "fake_stripe", "lambda_driver"}
        env = stack.env
        for name in ("TABLE_NAME", "STRIPE_API_KEY", "STRIPE_API_BASE", "AWS_ENDPOINT_URL_DYNAMODB",
                     "AWS_ENDPOINT_URL_IOT_DATA_PLANE", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                     "AWS_SECRET_ACCESS_KEY", "DEFAULT_STORE_ID", "IOT_TOPIC_PREFIX",
                     "STRIPE_EVENT_SOURCE_PREFIX", "STRIPE_LIVEMODE", "MQTT_HOST", "MQTT_PORT",
                     "MQTT_WS_URL", "STOCKBRIDGE_STRIPE_URL", "STOCKBRIDGE_MOTO_URL",
                     "STOCKBRIDGE_IOT_BRIDGE_URL", "STOCKBRIDGE_LAMBDA_URL"):
            assert env.get(name), name
        assert env["MQTT_WS_URL"].startswith("ws://127.0.0.1:")
        text = env_file.read_text()
        assert f"export STOCKBRIDGE_LAMBDA_URL={env['STOCKBRIDGE_LAMBDA_URL']}\n" in text
        # env file is shell-sourceable
        sourced = subprocess.run(["bash", "-c", f". {env_file} && echo $STRIPE_EVENT_SOURCE_PREFIX"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        assert sourced == "aws.partner/stripe.com/"

        # the lambda sees the stack's endpoints
        out = invoke(env["STOCKBRIDGE_LAMBDA_URL"], {"ping": 1})
        assert out["ok"], out
        lenv = out["response"]["env"]
        assert lenv["AWS_ENDPOINT_URL_DYNAMODB"] == env["STOCKBRIDGE_MOTO_URL"]
        assert lenv["AWS_ENDPOINT_URL_IOT_DATA_PLANE"] == env["STOCKBRIDGE_IOT_BRIDGE_URL"]
        assert lenv["STRIPE_API_BASE"] == env["STOCKBRIDGE_STRIPE_URL"]
        assert lenv["TABLE_NAME"] == "stockbridge"
        worker_pids = [w["pid"] for w in requests.get(f"{env['STOCKBRIDGE_LAMBDA_URL']}/_health").json()["workers"]]

        # bridge -> mosquitto
        r = requests.post(f"{env['STOCKBRIDGE_IOT_BRIDGE_URL']}/topics/stockbridge%2Ftest%2Fproducts%2Fp%2Fstock?qos=1&retain=true",
                          data=b"hi")
        assert r.status_code == 200
        assert receive_retained(int(env["MQTT_PORT"]), "stockbridge/test/products/p/stock").payload == b"hi"
        # moto answers
        assert _dynamodb(env["AWS_ENDPOINT_URL_DYNAMODB"]).list_tables()["TableNames"] == []
        # fake stripe answers HTTP
        assert requests.get(env["STOCKBRIDGE_STRIPE_URL"] + "/v1/products",
                            headers={"Authorization": "Bearer sk_test_local_fake"}).status_code < 500
    assert not env_file.exists()
    time.sleep(0.1)
    leftovers = [p for p in list(pids.values()) + worker_pids if _pid_alive(p)]
    assert not leftovers, leftovers


@pytest.mark.skipif(not (REPO_ROOT / "devstack" / "fake_stripe" / "__init__.py").exists(), reason="fake_stripe not there yet")
def test_stack_cli_up_and_sigterm(tmp_path):
    state = tmp_path / "state"
    env_file = tmp_path / "env"
    proc = subprocess.Popen(
        [PY, "-m", "devstack.stack", "up", "--state-dir", str(state), "--env-file", str(env_file),
         "--no-lambda", "--ready-timeout", "30"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 40
        while not env_file.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        env = dict(line[len("export "):].split("=", 1) for line in env_file.read_text().splitlines()
                   if line.startswith("export "))
        assert "STOCKBRIDGE_LAMBDA_URL" not in env
        assert requests.get(env["STOCKBRIDGE_MOTO_URL"] + "/_stats").status_code == 200
        # the child processes (own sessions) are there
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 4, children
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stack stopped" in out
    assert not env_file.exists()
    time.sleep(0.1)
    assert not [p for p in children if _pid_alive(int(p))]
