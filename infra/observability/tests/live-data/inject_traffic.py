#!/usr/bin/env python3
"""Sends bad traffic to the local stack while `tradeflow-local demo` runs, so the rejection,
duplicate, FAILED/SKIPPED and DLQ panels and alerts get real data (docs/observability.md,
"Proving the dashboards"). Needs boto3 (the project venv: local/.venv/bin/python3) and
AWS_ENDPOINT_URL (source local/env.sh).

    local/.venv/bin/python3 inject_traffic.py [STACK]      # default tradeflow-local

- two poison messages on the signals queue (messages_rejected_total{job="trigger-dispatcher"});
- a request for a pipeline that does not exist (SKIPPED), one for another user's pipeline
  (FAILED), a bad body (messages_rejected_total{reason="invalid_request"}) on the executions queue;
- a message straight into the signals DLQ (dlq_depth{queue="signals"} = 1);
- the SKIPPED request again 12 and 24 s later (execution_duplicates_total{status="skipped"}).
"""
import hashlib
import json
import os
import sys
import time

import boto3

stack = sys.argv[1] if len(sys.argv) > 1 else "tradeflow-local"
endpoint = os.environ["AWS_ENDPOINT_URL"]
sqs = boto3.client("sqs", endpoint_url=endpoint)
outputs = {o["OutputKey"]: o["OutputValue"] for o in boto3.client("cloudformation", endpoint_url=endpoint)
           .describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}


def queue(key):
    return sqs.get_queue_url(QueueName=outputs[key])["QueueUrl"]


signals, executions, signals_dlq = queue("SignalsQueueName"), queue("ExecutionsQueueName"), queue("SignalsDlqName")


def execution_id(pipeline, ticker, signal_id):
    """tradeflow_core::ids::execution_id: sha256 of the parts, each followed by a NUL byte."""
    h = hashlib.sha256()
    for part in (pipeline, ticker, signal_id):
        h.update(part.encode())
        h.update(b"\0")
    return "exe-" + h.hexdigest()[:32]


def request(pipeline, user, ticker="AAPL"):
    signal_id = f"sig-injected-{time.time_ns()}"
    now = int(time.time())
    return json.dumps({
        "execution_id": execution_id(pipeline, ticker, signal_id), "pipeline_id": pipeline,
        "user_id": user, "ticker": ticker,
        "signal_context": {"signal_id": signal_id, "signal_type": "rsi_oversold", "source": "rsi_generator",
                           "timestamp": now, "tickers": [ticker], "confidence": 75.0, "signal": "BULLISH",
                           "metadata": {"timeframe": "5"}},
        "lease_expires_at": now + 600, "enqueued_at_ms": int(time.time() * 1000)})


def send(url, body):
    sqs.send_message(QueueUrl=url, MessageBody=body)


send(signals, "this is not a signal")
send(signals, json.dumps({"signal_id": "x", "signal_type": "rsi_oversold"}))
skipped = request("pl-does-not-exist", "user-alice")
send(executions, skipped)
send(executions, request("pl-rsi-reversal", "user-mallory"))  # a seeded pipeline of user-alice
send(executions, json.dumps({"execution_id": 1}))
send(signals_dlq, "a dead letter")
for _ in range(2):
    time.sleep(12)
    send(executions, skipped)
print("injected")
