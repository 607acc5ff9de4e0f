"""Benchmark (not a test): every Lambda's size and init (issue 13 §5).

    .venv/bin/python -m bench.binaries [--dir target/release] [--runs 7]

For each function binary (inventory, reconciler, catalog-sync, checkout, sweeper) in ``--dir``:
its size as built, stripped (a copy, `strip`), and as the deployed zip (`bootstrap`,
deflated, as `sam build` packages it); then ``--runs`` cold starts against the local stack:
the time from spawning the process to its first ``GET /2018-06-01/runtime/invocation/next``
(the end of init: configuration read, clients built) and its resident memory then
(``VmRSS``), median and max.

What a local init leaves out: on AWS, the Stripe key comes from Secrets Manager (one TLS
handshake and a call, ~20-60 ms in the same region), credentials from the Lambda environment,
and the binary is read from the function's image on first use. Here the key is an environment
variable and every endpoint is plain HTTP on loopback, so the figure is the binary's own work:
loading, parsing configuration, building SDK clients.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devstack.stack import CHECKOUT_ENV, Stack

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["inventory", "reconciler", "catalog-sync", "checkout", "sweeper", "broadcaster"]


class _FirstPoll:
    """A Runtime API that only notes when the function first asks for work."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.polled = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if outer.at is None:
                    outer.at = time.perf_counter()
                outer.polled.set()
                time.sleep(5)  # never answers: the process is killed first

            def do_POST(self) -> None:  # noqa: N802 (an init error)
                n = int(self.headers.get("Content-Length", 0))
                outer.error = self.rfile.read(n).decode(errors="replace")
                outer.polled.set()
                self.send_response(202)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.error: str | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cold_start(binary: Path, env: dict[str, str]) -> tuple[float, int]:
    """Milliseconds to the first poll, and the resident memory (KB) then."""
    api = _FirstPoll()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server.server_address[1]}",
               AWS_LAMBDA_FUNCTION_NAME=binary.name, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", RUST_LOG="warn")
    t0 = time.perf_counter()
    p = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        if not api.polled.wait(30):
            raise RuntimeError(f"{binary.name} never polled")
        if api.error is not None:
            raise RuntimeError(f"{binary.name} failed its init: {api.error}")
        assert api.at is not None
        return (api.at - t0) * 1000, _rss_kb(p.pid)
    finally:
        p.kill()
        p.wait()
        api.close()


def sizes(binary: Path) -> dict:
    with tempfile.TemporaryDirectory() as d:
        stripped = Path(d) / "bootstrap"
        shutil.copy(binary, stripped)
        subprocess.run(["strip", str(stripped)], check=True)
        zipped = Path(d) / "function.zip"
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(stripped, "bootstrap")
        return {"built_mb": round(binary.stat().st_size / 1e6, 1),
                "stripped_mb": round(stripped.stat().st_size / 1e6, 1),
                "zip_mb": round(zipped.stat().st_size / 1e6, 1)}


def function_env(stack: Stack, name: str) -> dict[str, str]:
    extra = dict(CHECKOUT_ENV) if name == "checkout" else {}
    if name == "catalog-sync":
        extra.update(STRIPE_MAX_RPS="20", CATALOG_SYNC_DLQ_URL=f"{stack.urls['moto']}/q/dlq")
    return stack._function_env(extra)  # noqa: SLF001 (the stack's own per-function env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=str(ROOT / "target" / "release"))
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    with Stack(lambda_enabled=False) as stack:
        for name in FUNCTIONS:
            binary = Path(a.dir) / name
            env = function_env(stack, name)
            starts = [cold_start(binary, env) for _ in range(a.runs)]
            ms = sorted(s[0] for s in starts)
            print(json.dumps({"function": name, **sizes(binary),
                              "init_ms_median": round(statistics.median(ms), 1),
                              "init_ms_max": round(ms[-1], 1),
                              "rss_mb_median": round(statistics.median(s[1] for s in starts) / 1024, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
