#!/usr/bin/env python3
"""moto_server with DynamoDB transactions applied one at a time, as DynamoDB itself isolates them,
and rolled back item by item rather than by copying whole tables.

moto checks a TransactWriteItems' conditions and then writes its items without a lock, so two
concurrent transactions on the same key can both pass their `attribute_not_exists` check (seen
under load in the contract check of concurrent inserts with one dedup key). Serialising
transactions here makes the emulator keep the promise the code relies on.

moto also backs up every table a transaction names with `copy.deepcopy` before applying it, so
each insert costs time in proportion to the table: tests that store a few thousand events slowed
to a few inserts per second. Here a transaction backs up only the items it names, and restores
those when moto cancels it; what DynamoDB answers is unchanged.
"""
import copy
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import main

_lock = threading.Lock()
_transact_write_items = DynamoDBBackend.transact_write_items
_deepcopy = copy.deepcopy


class _CopyShim:
    """moto's module-level `copy`, with whole-table copies made no-ops (the wrapper below keeps
    the backups); every other deep copy is the real one."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return _deepcopy(value, memo)


dynamodb_models.copy = _CopyShim


def _key_of(table, op_type, op):
    attrs = op["Item"] if op_type == "Put" else op["Key"]
    hash_value = DynamoType(attrs[table.hash_key_attr])
    range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _restore(table, hash_value, range_value, old):
    if range_value is None:
        if old is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = old
        return
    partition = table.items[hash_value]
    if old is None:
        partition.pop(range_value, None)
        if not partition:
            table.items.pop(hash_value, None)
    else:
        partition[range_value] = old


def _serialised(self, transact_items, *args, **kwargs):
    with _lock:
        backups = []
        for item in transact_items:
            try:
                op_type, op = next(iter(item.items()))
                table = self.get_table(op["TableName"])
                hash_value, range_value = _key_of(table, op_type, op)
            except Exception:  # malformed: moto's own validation answers it
                continue
            current = table.get_item(hash_value, range_value)
            backups.append((table, hash_value, range_value, _deepcopy(current)))
        try:
            return _transact_write_items(self, transact_items, *args, **kwargs)
        except Exception:
            for table, hash_value, range_value, old in reversed(backups):
                _restore(table, hash_value, range_value, old)
            raise


DynamoDBBackend.transact_write_items = _serialised

if __name__ == "__main__":
    sys.exit(main())
