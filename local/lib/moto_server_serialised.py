"""moto_server with its DynamoDB backend serialised by one lock, and a TransactWriteItems that
checks before it writes.

moto 5.2.5 serves requests on threads but its DynamoDB backend takes no lock: TransactWriteItems
deep-copies every table it touches (to roll back), and a write to that table from another
request meanwhile fails the transaction with HTTP 500 ("dictionary changed size during
iteration"); a Scan racing a write fails the same way. DynamoDB has neither failure. Under the
chain's concurrency (several executor pollers, each ending runs with a transaction) that made
about one transaction in five fail on the emulator. Serialising the backend's table operations
costs nothing that matters (moto runs under the GIL anyway) and makes the emulator answer like
DynamoDB. SQS and the other services are untouched.

The deep copy also made every transaction cost time in proportion to the size of the tables it
touches (each run's end copies the executions and orders tables: quadratic over a long run).
Under the lock nothing else runs meanwhile, so the transaction here checks every condition first
and writes only when all hold (what DynamoDB promises), keeping a copy of just the items it
writes, to put them back if a write fails (an item over the size limit).

SQS, two constant-factor fixes (same answers, no lock): moto checks a message's visibility and
delay with `unix_time_millis()`, datetime arithmetic of ~10 us, and `SendMessage` reads the
queue's whole `attributes` (which counts visible, in-flight and delayed messages by checking
every message) only to learn whether content-based deduplication is on. So each message sent
cost time in proportion to the queue's depth: 58 ms per SendMessageBatch of 10 on an empty queue,
~350 ms at 2,000 messages (BENCHMARKS.md, "A batch with 2,000 fan-outs"). Here the clock is
`time.time()` (what `unix_time_millis()` computes, without the datetimes), and during a send the
queue's `attributes` are only that one attribute (from the same field).

CloudFormation, two resource types moto 5.2.5 leaves out (it logs "No Moto CloudFormation
support" and creates nothing): `AWS::SNS::Subscription` (the signals queue's subscription to the
signals topic, with `RawMessageDelivery`) and `AWS::SQS::QueuePolicy` (the queue's `Policy`
attribute). Without them the template's topic would deliver to no one on the emulator. Both
call the same backend methods as the Subscribe and SetQueueAttributes APIs. (moto never checks
a queue policy: the policy is stored, so tests can read it, and nothing more.)

Usage: the same arguments as moto_server (local/emulator.sh runs it).
"""

import copy
import functools
import sys
import threading
import time

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.sqs import models as sqs_models
from moto.server import main

_LOCK = threading.RLock()

_OPERATIONS = (
    "create_table",
    "delete_table",
    "update_table",
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_write_item",
    "transact_write_items",
    "transact_get_items",
)


def _serialised(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return call


def _transact_write_items(self, transact_items):
    """All conditions checked, then all writes; nothing written if one condition fails."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    targets = set()
    errors = []
    planned = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        if op_type == "Put":
            table = self.get_table(table_name)
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        target = (str(table_name), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition is not None:
            check = get_filter_expression(
                condition,
                op.get("ExpressionAttributeNames"),
                op.get("ExpressionAttributeValues"),
            )
            if not check.expr(current):
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                continue
        errors.append((None, None, None))
        if op_type != "ConditionCheck":
            planned.append((op_type, op, table_name, key, copy.deepcopy(current)))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    written = []
    try:
        for op_type, op, table_name, key, before in planned:
            if op_type == "Put":
                self.put_item(table_name, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table_name, key)
            else:
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=op.get("ExpressionAttributeNames"),
                    expression_attribute_values=op.get("ExpressionAttributeValues"),
                )
            written.append((table_name, key, before))
    except Exception:
        for table_name, key, before in reversed(written):
            if before is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before.to_json()["Attributes"])
        raise


DynamoDBBackend.transact_write_items = _transact_write_items

for _name in _OPERATIONS:
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))

# ---------------------------------------------------------------- SQS

_sqs_unix_time_millis = sqs_models.unix_time_millis


def _unix_time_millis(dt=None):
    if dt is None:
        return time.time() * 1000.0
    return _sqs_unix_time_millis(dt)


sqs_models.unix_time_millis = _unix_time_millis

_SENDING = threading.local()
_queue_attributes = sqs_models.Queue.attributes


def _attributes(self):
    if getattr(_SENDING, "on", False):
        # All SendMessage reads: whether content-based deduplication is on (FIFO queues only).
        if not self.fifo_queue:
            return {}
        value = getattr(self, "content_based_deduplication", None)
        if isinstance(value, bool):
            value = str(value).lower()
        return {"ContentBasedDeduplication": value}
    return _queue_attributes.fget(self)


sqs_models.Queue.attributes = property(_attributes)
_send_message = sqs_models.SQSBackend.send_message


@functools.wraps(_send_message)
def _send_message_cheap(self, *args, **kwargs):
    _SENDING.on = True
    try:
        return _send_message(self, *args, **kwargs)
    finally:
        _SENDING.on = False


sqs_models.SQSBackend.send_message = _send_message_cheap


# ---------------------------------------------------------------- CloudFormation

import json  # noqa: E402

from moto.core.common_models import CloudFormationModel  # noqa: E402
from moto.sns.models import sns_backends  # noqa: E402
from moto.sqs.models import sqs_backends  # noqa: E402


def _true(value):
    return str(value).lower() == "true"


class CfnSnsSubscription(CloudFormationModel):
    """AWS::SNS::Subscription: Subscribe, then the attributes the template sets."""

    # moto files its models by service, read from the module path.
    __module__ = "moto.sns.models"

    def __init__(self, arn, account_id, region_name):
        self.arn = arn
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self):
        return self.arn

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::SNS::Subscription"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name):
        return self.arn

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        props = cloudformation_json["Properties"]
        backend = sns_backends[account_id][region_name]
        subscription = backend.subscribe(props["TopicArn"], props["Endpoint"], props["Protocol"])
        if _true(props.get("RawMessageDelivery", False)):
            # moto's delivery tests the attribute for truth: only ever set it to "true".
            backend.set_subscription_attributes(subscription.arn, "RawMessageDelivery", "true")
        if "FilterPolicy" in props:
            policy = props["FilterPolicy"]
            backend.set_subscription_attributes(
                subscription.arn,
                "FilterPolicy",
                policy if isinstance(policy, str) else json.dumps(policy),
            )
        return cls(subscription.arn, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id, region_name):
        sns_backends[account_id][region_name].unsubscribe(self.arn)

    def is_created(self):
        return True


class CfnSqsQueuePolicy(CloudFormationModel):
    """AWS::SQS::QueuePolicy: the `Policy` attribute of each queue (by URL, as `!Ref` gives)."""

    __module__ = "moto.sqs.models"

    def __init__(self, queues, account_id, region_name):
        self.queues = queues
        self.account_id = account_id
        self.region_name = region_name
        self.id = f"queue-policy-{'-'.join(queues)}"

    @property
    def physical_resource_id(self):
        return self.id

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::SQS::QueuePolicy"

    @classmethod
    def has_cfn_attr(cls, attr):
        return False

    @staticmethod
    def _set(queues, account_id, region_name, policy):
        backend = sqs_backends[account_id][region_name]
        for name in queues:
            backend.set_queue_attributes(name, {"Policy": policy})

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        props = cloudformation_json["Properties"]
        queues = [url.rstrip("/").rsplit("/", 1)[-1] for url in props["Queues"]]
        document = props["PolicyDocument"]
        policy = document if isinstance(document, str) else json.dumps(document)
        cls._set(queues, account_id, region_name, policy)
        return cls(queues, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id, region_name):
        try:
            self._set(self.queues, account_id, region_name, "")
        except Exception:  # the queue went first: nothing left to clear
            pass

    def is_created(self):
        return True


if __name__ == "__main__":
    sys.exit(main())
