"""moto_server with its DynamoDB backend serialised by one lock.

moto 5.2.5 serves requests on threads but its DynamoDB backend takes no lock: TransactWriteItems
deep-copies every table it touches (to roll back), and a write to that table from another
request meanwhile fails the transaction with HTTP 500 ("dictionary changed size during
iteration"); a Scan racing a write fails the same way. DynamoDB has neither failure. Under the
chain's concurrency (several executor pollers, each ending runs with a transaction) that made
about one transaction in five fail on the emulator. Serialising the backend's table operations
costs nothing that matters (moto runs under the GIL anyway) and makes the emulator answer like
DynamoDB. SQS and the other services are untouched.

Usage: the same arguments as moto_server (local/emulator.sh runs it).
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
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


for _name in _OPERATIONS:
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main())
