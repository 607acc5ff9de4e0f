"""What the offline stack is made of: its paths, names and environment, and the helpers that
start, wait for and stop its processes (`devstack.stack` runs them)."""

from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Optional, Union

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".stack"
DEFAULT_INVENTORY_BINARY = REPO_ROOT / "target" / "debug" / "inventory"
DEFAULT_CATALOG_SYNC_BINARY = REPO_ROOT / "target" / "debug" / "catalog-sync"
DEFAULT_CHECKOUT_BINARY = REPO_ROOT / "target" / "debug" / "checkout"
DEFAULT_SWEEPER_BINARY = REPO_ROOT / "target" / "debug" / "sweeper"
DEFAULT_BROADCASTER_BINARY = REPO_ROOT / "target" / "debug" / "broadcaster"
DEFAULT_SWEEP_EVERY_S = 60.0  # production's schedule (rate(1 minute))
# What the checkout function gets on top of the inventory's environment (extra_lambda_env wins).
# The per-address ceiling is raised above the template's 300: every test and the shop itself
# call from 127.0.0.1 (the hoarder e2e uses its own loopback address to reach it).
CHECKOUT_ENV = {"CHECKOUT_ALLOWED_ORIGINS": "*", "CHECKOUT_HOLD_SECONDS": "900",
                "CHECKOUT_HOLDS_PER_CLIENT": "400"}
# What an EventBridge Scheduler schedule hands the sweeper (time and id filled in per run).
SCHEDULED_EVENT = {"version": "0", "id": "", "detail-type": "Scheduled Event",
                   "source": "aws.scheduler", "account": "123456789012",
                   "time": "", "region": "us-east-1",
                   "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/"
                                 "stockbridge-sweeper"],
                   "detail": {}}
CATALOG_QUEUE_NAME = "stockbridge-catalog-sync"
MOTO_ACCOUNT = "123456789012"  # moto's default account id
# Stop order: the pipe first (it invokes the drivers), then the drivers (they need their grace
# period to stop their own workers), then the rest.
DRIVERS = ("lambda_driver", "catalog_sync_driver", "checkout_driver", "sweeper_driver",
           "broadcaster_driver")
# What invokes the drivers: stopped before them.
FRONTS = ("catalog_pipe", "checkout_url", "stream_trigger")
HOST = "127.0.0.1"
STOP_GRACE_S = 5.0
MQTT_BRIDGE_USER = "bridge"
# How iot_bridge gets its MQTT password from us (not argv: argv is logged and visible in ps).
MQTT_PASSWORD_ENV = "IOT_BRIDGE_MQTT_PASSWORD"

# Environment of the inventory Lambda (values that do not depend on ports).
# The local webhook endpoint's signing secret (the fake Stripe signs with it when its event sink
# is the webhook, POST /_test/event_sink {"format": "webhook", "secrets": [...]}).
WEBHOOK_SECRET = "whsec_devstack_local_endpoint"

STATIC_LAMBDA_ENV = {
    "TABLE_NAME": "stockbridge",
    "STRIPE_API_KEY": "sk_test_local_fake",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_EC2_METADATA_DISABLED": "true",
    "DEFAULT_STORE_ID": "default",
    "IOT_TOPIC_PREFIX": "stockbridge",
    "STRIPE_EVENT_SOURCE_PREFIX": "aws.partner/stripe.com/",
    "STRIPE_LIVEMODE": "false",
    # The back-in-stock waitlist's link-signing secret (docs/waitlist.md); a generated one in AWS.
    "WAITLIST_SECRET": "local-waitlist-secret-0123456789abcdef0123",
}
# Never leak a developer's real AWS configuration into the local stack.
SCRUBBED_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
                "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


class StackError(RuntimeError):
    pass


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (sockets held until all are picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tcp_ready(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_ready_file(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def log_tail(path: Union[str, Path], lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(data.splitlines()[-lines:])


def find_mosquitto() -> Optional[str]:
    env = os.environ.get("MOSQUITTO_BIN")
    if env and os.access(env, os.X_OK):
        return env
    found = shutil.which("mosquitto")
    if found:
        return found
    for cand in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/local/bin/mosquitto",
                 "/opt/homebrew/sbin/mosquitto"):
        if os.access(cand, os.X_OK):
            return cand
    return None


def mosquitto_config(mqtt_port: int, ws_port: int, acl_file: Union[str, Path, None] = None,
                     password_file: Union[str, Path, None] = None) -> str:
    """Both listeners share one security setup (``per_listener_settings false``).  Without
    acl_file / password_file anonymous clients may do anything (the test bed's unit tests);
    with them, see :func:`mosquitto_acl`."""
    security = ["allow_anonymous true"]
    if password_file is not None:
        security.append(f"password_file {password_file}")
    if acl_file is not None:
        security.append(f"acl_file {acl_file}")
    return "\n".join([
        "# generated by devstack.stack -- loopback only, in-memory",
        # Run as ourselves: when started as root, mosquitto would otherwise switch to
        # the 'mosquitto' user, which clears PR_SET_PDEATHSIG (no cleanup if we die).
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        "per_listener_settings false",
        *security,
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "log_timestamp true",
        "log_timestamp_format %H:%M:%S",
        "connection_messages true",
        "max_queued_messages 10000",
        "",
        f"listener {mqtt_port} {HOST}",
        "protocol mqtt",
        "",
        f"listener {ws_port} {HOST}",
        "protocol websockets",
        "",
    ])


def mosquitto_acl(topic_prefix: str, publisher: str = MQTT_BRIDGE_USER) -> str:
    """Anonymous clients (storefronts) may only subscribe under the prefix; ``publisher``
    may do anything.  Topic lines before the first ``user`` line apply to anonymous clients."""
    return "\n".join([
        "# generated by devstack.stack",
        "# anonymous clients: subscribe-only, stock topics only",
        f"topic read {topic_prefix}/+/products/+/stock",
        "",
        f"user {publisher}",
        "topic readwrite #",
        "",
    ])


def write_mosquitto_password_file(path: Path, user: str, password: str) -> None:
    """``mosquitto_passwd -b -c`` when available, else the same PBKDF2-SHA512 entry
    (mosquitto 2's ``$7$`` format) computed here.  The file is private (0600) from the start."""
    path.unlink(missing_ok=True)
    tool = shutil.which("mosquitto_passwd") or next(
        (c for c in ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd")
         if os.access(c, os.X_OK)), None)
    if tool:
        # The password is in argv for a few milliseconds (-b); it is never logged.
        done = subprocess.run([tool, "-b", "-c", str(path), user, password],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              preexec_fn=lambda: os.umask(0o077))
        if done.returncode == 0 and path.exists():
            os.chmod(path, 0o600)
            return
        path.unlink(missing_ok=True)
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{user}:$7$101${base64.b64encode(salt).decode()}$"
                f"{base64.b64encode(digest).decode()}\n")


def _pdeathsig() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _Child:
    def __init__(self, name: str, proc: subprocess.Popen, log_path: Path, log_handle) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path
        self._log_handle = log_handle

    def close_log(self) -> None:
        try:
            self._log_handle.close()
        except OSError:
            pass


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float = 10.0) -> dict:
    with _NO_PROXY.open(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _post_json(url: str, body: dict, timeout: float = 10.0) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with _NO_PROXY.open(req, timeout=timeout) as resp:
        return json.loads(resp.read())


# --------------------------------------------------------------------------- CLI
