#!/usr/bin/env python3
"""Replay the Stripe events parked in one of the stack's dead-letter queues.

Both DLQs hold the original EventBridge envelope as the message body:
  function  InventoryFunctionDLQ - the function failed on the event after Lambda's retries,
            or the event aged out (message attributes RequestID, ErrorCode, ErrorMessage);
  rule      StripeEventsRuleDLQ - EventBridge could not deliver the event to the function
            (message attributes ERROR_CODE, ERROR_MESSAGE, RULE_ARN, TARGET_ARN, ...).

Each message is sent to the function with a synchronous invoke; it is deleted from the queue
only when the function returned without error, otherwise it stays (visible again after the
visibility timeout) and is reported. Processing is idempotent per Stripe event id, so
replaying an event that was in fact applied changes nothing.

    python3 infra/replay-dlq.py function --dry-run      # list what is there
    python3 infra/replay-dlq.py function                # replay it
    python3 infra/replay-dlq.py rule --stack-name stockbridge-staging

Needs the AWS CLI v2 with credentials for the stack's account and region (AWS_PROFILE,
AWS_REGION as usual). Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

QUEUE_OUTPUT = {"function": "InventoryFunctionDLQUrl", "rule": "StripeEventsRuleDLQUrl"}


def aws(*args: str) -> dict:
    proc = subprocess.run(["aws", *args, "--output", "json"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"aws {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def stack_outputs(stack: str) -> dict[str, str]:
    stacks = aws("cloudformation", "describe-stacks", "--stack-name", stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def describe(message: dict) -> str:
    attrs = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
    try:
        body = json.loads(message["Body"])
        what = f'{body.get("detail-type")} {body.get("detail", {}).get("id")}'
    except (json.JSONDecodeError, AttributeError):
        what = "(body is not JSON)"
    error = attrs.get("ErrorMessage") or attrs.get("ERROR_MESSAGE") or ""
    code = attrs.get("ErrorCode") or attrs.get("ERROR_CODE") or ""
    return f"{message['MessageId']}  {what}  {code} {error}".rstrip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Replay a stockbridge DLQ into the inventory function.")
    parser.add_argument("queue", choices=sorted(QUEUE_OUTPUT), help="which dead-letter queue")
    parser.add_argument("--stack-name", default="stockbridge")
    parser.add_argument("--max", type=int, default=100, help="stop after this many messages (default 100)")
    parser.add_argument("--dry-run", action="store_true", help="list the messages, replay nothing")
    args = parser.parse_args(argv)

    outputs = stack_outputs(args.stack_name)
    if QUEUE_OUTPUT[args.queue] not in outputs:
        # The rule's DLQ exists only with an EventBridge destination (StripeEventSourceName).
        print(f"stack {args.stack_name} has no {QUEUE_OUTPUT[args.queue]} output: nothing to "
              f"replay (a webhook-only stack has no EventBridge rule)", file=sys.stderr)
        return 0
    queue_url = outputs[QUEUE_OUTPUT[args.queue]]
    function = outputs["InventoryFunctionName"]
    # Long enough that a message being replayed is not received twice in this run.
    visibility = "30" if args.dry_run else "300"

    seen: set[str] = set()
    replayed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        payload_path = os.path.join(tmp, "payload.json")
        response_path = os.path.join(tmp, "response.json")
        while len(seen) < args.max:
            batch = aws(
                "sqs", "receive-message", "--queue-url", queue_url,
                "--max-number-of-messages", str(min(10, args.max - len(seen))),
                "--wait-time-seconds", "2", "--visibility-timeout", visibility,
                "--message-attribute-names", "All",
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                print(describe(message))
                if args.dry_run:
                    continue
                with open(payload_path, "w", encoding="utf-8") as f:
                    f.write(message["Body"])
                result = aws(
                    "lambda", "invoke", "--function-name", function,
                    "--invocation-type", "RequestResponse",
                    "--payload", f"fileb://{payload_path}", response_path,
                )
                if result.get("FunctionError"):
                    failed += 1
                    with open(response_path, encoding="utf-8") as f:
                        print(f"  still failing, kept: {f.read().strip()}", file=sys.stderr)
                    continue
                aws("sqs", "delete-message", "--queue-url", queue_url,
                    "--receipt-handle", message["ReceiptHandle"])
                replayed += 1

    if args.dry_run:
        print(f"{len(seen)} message(s) in {args.queue} DLQ (left in place)")
    else:
        print(f"replayed and deleted {replayed}, still failing {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
