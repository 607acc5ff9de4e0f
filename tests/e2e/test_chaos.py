"""The CI-sized chaos run (bench/chaos.py): a few hundred orders through 4 instances of the real
`inventory` binary while instances are killed, events shuffled and duplicated, payments delayed,
and DynamoDB, Stripe and IoT fail (their shares in bench.chaos.Settings). Every invariant is
checked from outside; the 10,000-order run is `python -m bench.chaos` (docs/benchmarks.md).

It runs on a stack of its own (the DynamoDB model's faults must not reach other tests).
"""

from __future__ import annotations

import os

from bench.chaos import ROOT, Settings, run_chaos

INVENTORY_BIN = os.environ.get("STOCKBRIDGE_E2E_INVENTORY", str(ROOT / "target" / "debug" / "inventory"))


def test_every_invariant_holds_through_chaos_and_the_checks_can_fail():
    report = run_chaos(Settings(orders=300, workers=4, clients=12, seed=11,
                                binary=INVENTORY_BIN, self_check=True))
    assert report["violations"] == [], report
    # The chaos happened: each kind of trouble at least once.
    assert report["kills"] > 0 and report["retried_deliveries"] > 0
    assert report["stripe_faults"] > 0 and report["iot_faults"] > 0
    db = report["dynamodb"]
    assert db["fault_throughput"] + db["fault_internal_error"] + db["fault_transaction_conflict"] > 0
    assert report["refunds"] > 0 and 0 in report["finals"].values()
    assert report["events"] > 300  # delayed payments and duplicates
    # And the checks see each invariant broken on purpose afterwards.
    self_check = report["self_check_caught"]
    assert set(self_check["broken"]) == {"units", "refund_twice", "failed_refunded", "link", "topic"}
    assert self_check["missed"] == [], self_check
