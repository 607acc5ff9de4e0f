"""The stack with the checkout function (behind its Function URL) and the sweeper (with its
schedule), using small Python runtimes standing in for the Rust binaries.

    .venv/bin/python -m pytest -q devstack/tests/test_stack_checkout.py
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import requests

from devstack.stack import SCHEDULED_EVENT, Stack, StackError
from devstack.tests.test_devstack import PY, REPO_ROOT, _pid_alive

ENV_KEYS = ("CHECKOUT_ALLOWED_ORIGINS", "CHECKOUT_HOLD_SECONDS", "AWS_LAMBDA_FUNCTION_NAME",
            "TABLE_NAME", "STRIPE_API_BASE", "AWS_ENDPOINT_URL_DYNAMODB", "STRIPE_API_KEY")

# The checkout stand-in answers every HTTP event with the event and its environment.
CHECKOUT = textwrap.dedent('''\
    #!{python}
    import json, os, urllib.request
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
    while True:
        with urllib.request.urlopen(api + "/invocation/next") as r:
            rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        env = {{k: os.environ.get(k) for k in {keys!r}}}
        out = {{"statusCode": 200, "headers": {{"content-type": "application/json",
                                               "access-control-allow-origin": "*"}},
               "body": json.dumps({{"event": event, "env": env}})}}
        req = urllib.request.Request(f"{{api}}/invocation/{{rid}}/response",
                                     data=json.dumps(out).encode(), method="POST")
        urllib.request.urlopen(req).read()
''')

# The sweeper stand-in counts its runs in a file next to itself; a run fails when a file
# FAIL exists there.
SWEEPER = textwrap.dedent('''\
    #!{python}
    import json, os, urllib.request
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
    here = os.path.dirname(os.path.abspath(__file__))
    runs = 0
    while True:
        with urllib.request.urlopen(api + "/invocation/next") as r:
            rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        runs += 1
        if os.path.exists(os.path.join(here, "FAIL")):
            kind, out = "error", {{"errorType": "Sweep.Failed", "errorMessage": "boom"}}
        else:
            kind, out = "response", {{"released": 0, "run": runs, "event": event,
                                      "env": {{k: os.environ.get(k) for k in {keys!r}}}}}
        req = urllib.request.Request(f"{{api}}/invocation/{{rid}}/{{kind}}",
                                     data=json.dumps(out).encode(), method="POST")
        urllib.request.urlopen(req).read()
''')


def write(path: Path, template: str) -> Path:
    path.write_text(template.format(python=PY, keys=ENV_KEYS))
    path.chmod(0o755)
    return path


def test_stack_runs_checkout_behind_a_function_url_and_the_sweeper(tmp_path):
    bins = tmp_path / "bin"
    bins.mkdir()
    checkout = write(bins / "checkout", CHECKOUT)
    sweeper = write(bins / "sweeper", SWEEPER)
    env_file = tmp_path / "env"
    stack = Stack(state_dir=tmp_path / "state", env_file=env_file, inventory_binary=None,
                  checkout_binary=checkout, sweeper_binary=sweeper, sweep_every=0.3,
                  extra_lambda_env={"CHECKOUT_HOLD_SECONDS": "5"}, lambda_timeout=20)
    with stack:
        pids = stack.pids()
        assert {"checkout_driver", "checkout_url", "sweeper_driver"} <= set(pids)
        assert "lambda_driver" not in pids and stack.checkout_started and stack.sweeper_started
        env = stack.env
        text = env_file.read_text()
        for name in ("STOCKBRIDGE_CHECKOUT_URL", "STOCKBRIDGE_CHECKOUT_LAMBDA_URL",
                     "STOCKBRIDGE_SWEEPER_LAMBDA_URL"):
            assert env[name].startswith("http://127.0.0.1:"), name
            assert f"export {name}={env[name]}\n" in text
        assert env["STOCKBRIDGE_CHECKOUT_URL"] == stack.urls["checkout"]
        assert env["STOCKBRIDGE_CHECKOUT_LAMBDA_URL"] == stack.urls["checkout_lambda"]
        # HTTP -> Function URL -> checkout function
        r = requests.post(f"{env['STOCKBRIDGE_CHECKOUT_URL']}/checkout?store=s1",
                          json={"items": []}, headers={"Origin": "http://127.0.0.1:9"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        out = r.json()
        ev = out["event"]
        assert (ev["version"], ev["rawPath"], ev["queryStringParameters"]) == (
            "2.0", "/checkout", {"store": "s1"})
        assert json.loads(ev["body"]) == {"items": []}
        assert out["env"]["CHECKOUT_ALLOWED_ORIGINS"] == "*"
        assert out["env"]["CHECKOUT_HOLD_SECONDS"] == "5"  # extra_lambda_env wins
        assert out["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "checkout"
        assert out["env"]["STRIPE_API_BASE"] == env["STOCKBRIDGE_STRIPE_URL"]
        assert out["env"]["AWS_ENDPOINT_URL_DYNAMODB"] == env["STOCKBRIDGE_MOTO_URL"]
        health = requests.get(f"{env['STOCKBRIDGE_CHECKOUT_LAMBDA_URL']}/_health").json()
        assert len(health["workers"]) == 4
        # the sweeper: one synchronous run, and the schedule
        res = stack.sweep()
        assert res["released"] == 0
        assert res["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "sweeper"
        assert res["env"]["CHECKOUT_ALLOWED_ORIGINS"] is None
        assert res["env"]["TABLE_NAME"] == "stockbridge"
        sev = res["event"]
        assert (sev["source"], sev["detail-type"], sev["detail"]) == (
            "aws.scheduler", "Scheduled Event", {})
        assert set(SCHEDULED_EVENT) == set(sev) and sev["id"] and sev["time"]
        health = requests.get(f"{env['STOCKBRIDGE_SWEEPER_LAMBDA_URL']}/_health").json()
        assert len(health["workers"]) == 1
        deadline = time.monotonic() + 15
        while stack.sweep_stats["ok"] < 2:
            assert time.monotonic() < deadline, stack.sweep_stats
            time.sleep(0.05)
        # a failing run is counted and logged, never fatal
        (bins / "FAIL").write_text("")
        with pytest.raises(StackError, match="Sweep.Failed"):
            stack.sweep()
        deadline = time.monotonic() + 15
        while stack.sweep_stats["failures"] < 1:
            assert time.monotonic() < deadline, stack.sweep_stats
            time.sleep(0.05)
        assert stack.sweep_stats["last_error"]["errorType"] == "Sweep.Failed"
        (bins / "FAIL").unlink()
        assert stack.dead_children() == []
        # the Stripe event sink counts are there for wait_stripe_events
        assert stack.wait_stripe_events(5)["pending"] == 0
        workers = [w["pid"] for url in (env["STOCKBRIDGE_CHECKOUT_LAMBDA_URL"],
                                        env["STOCKBRIDGE_SWEEPER_LAMBDA_URL"])
                   for w in requests.get(f"{url}/_health").json()["workers"]]
    assert not env_file.exists()
    assert stack._sweep_thread is not None and not stack._sweep_thread.is_alive()
    time.sleep(0.1)
    assert not [p for p in list(pids.values()) + workers if _pid_alive(p)]


def test_stack_without_the_binaries_starts_as_before(tmp_path):
    stack = Stack(state_dir=tmp_path / "state", inventory_binary=None,
                  checkout_binary=tmp_path / "nope", sweeper_binary=tmp_path / "nope2",
                  sweep_every=1)
    with stack:
        assert not stack.checkout_started and not stack.sweeper_started
        assert not any(k.startswith(("STOCKBRIDGE_CHECKOUT", "STOCKBRIDGE_SWEEPER"))
                       for k in stack.env)
        assert stack._sweep_thread is None
        with pytest.raises(StackError):
            stack.sweep()
    with pytest.raises(ValueError):
        Stack(sweep_every=-1)


def test_cli_options(tmp_path):
    out = subprocess.run([PY, "-m", "devstack.stack", "up", "--help"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=30)
    assert "--checkout-binary" in out.stdout and "--sweeper-binary" in out.stdout
    assert "--sweep-every" in out.stdout
    bad = subprocess.run([PY, "-m", "devstack.stack", "up", "--sweep-every", "-1"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--sweep-every" in bad.stderr
