"""Benchmark (not a test): one Stripe budget for the whole deployment (issue 12 §4), with the
fake Stripe's rate limiter as referee.

    .venv/bin/python -m bench.stripe_budget [--functions 3] [--callers 6] [--seconds 10]
                                            [--limit 25] [--budget 20]

Several processes ("functions") of crates/bootstrap/examples/stripe_budget.rs call the fake
Stripe as fast as their callers ask, through the real adapter: line items (selling), refunds
(settling), event pages (background), a third each. The fake answers 429 beyond `--limit`
requests a second (a token bucket whose burst is half of that plus 2: the quarter-second slots
let at most half a second's budget through at a slot's edge). Two runs on one stack:
  before: each process on its own bucket (STRIPE_MAX_RPS, default 10), as before the budget;
  after:  STRIPE_BUDGET_RPS=--budget shared through the table.
Reports, per run, the referee's allowed / rejected and per priority calls, 429s seen by the
callers and p50/p95 latency. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import requests

from devstack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "target/debug/examples/stripe_budget"


def one_run(stack: Stack, functions: int, callers: int, seconds: int, limit: float,
            budget: float | None) -> dict:
    stripe = stack.urls["stripe"]
    requests.post(f"{stripe}/_test/rate_limit",
                  json={"per_second": limit, "burst": int(limit / 2) + 2}).raise_for_status()
    env = {**os.environ, **stack.env, "RUST_LOG": "warn"}
    env.pop("STRIPE_BUDGET_RPS", None)
    if budget is not None:
        env["STRIPE_BUDGET_RPS"] = str(budget)
    procs = [subprocess.Popen([str(EXAMPLE), str(seconds), str(callers)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(functions)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    referee = requests.get(f"{stripe}/_test/rate_limit").json()
    requests.post(f"{stripe}/_test/rate_limit", json={}).raise_for_status()
    merged = {}
    for kind in ("sell", "settle", "background"):
        merged[kind] = {
            "calls": sum(o[kind]["calls"] for o in outs),
            "rate_limited": sum(o[kind]["rate_limited"] for o in outs),
            "p50_ms_worst": max(o[kind]["p50_ms"] for o in outs),
            "p95_ms_worst": max(o[kind]["p95_ms"] for o in outs),
        }
    return {"budget": budget, "referee_allowed": referee["allowed"],
            "referee_rejected": referee["rejected"],
            "allowed_per_s": round(referee["allowed"] / seconds, 1), **merged}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--functions", type=int, default=3)
    ap.add_argument("--callers", type=int, default=6)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--limit", type=float, default=25)
    ap.add_argument("--budget", type=float, default=20)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "-q", "-p", "stockbridge-bootstrap", "--example",
                    "stripe_budget", "-p", "stockbridge-cli"], cwd=ROOT, check=True)
    with Stack() as stack:
        subprocess.run([str(ROOT / "target/debug/stockbridge"), "table", "create"],
                       env={**os.environ, **stack.env}, check=True, capture_output=True)
        for budget in (None, a.budget):
            print(json.dumps(one_run(stack, a.functions, a.callers, a.seconds, a.limit, budget)),
                  flush=True)


if __name__ == "__main__":
    main()
