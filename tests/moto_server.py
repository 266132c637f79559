#!/usr/bin/env python3
"""moto_server with DynamoDB transactions applied one at a time, as DynamoDB itself isolates them.

moto checks a TransactWriteItems' conditions and then writes its items without a lock, so two
concurrent transactions on the same key can both pass their `attribute_not_exists` check (seen
under load in the contract check of concurrent inserts with one dedup key). Serialising
transactions here makes the emulator keep the promise the code relies on; nothing else changes.
"""
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_lock = threading.Lock()
_transact_write_items = DynamoDBBackend.transact_write_items


def _serialised(self, *args, **kwargs):
    with _lock:
        return _transact_write_items(self, *args, **kwargs)


DynamoDBBackend.transact_write_items = _serialised

if __name__ == "__main__":
    sys.exit(main())
