#!/usr/bin/env python3
"""moto_server with DynamoDB's writes (transactions and single-item conditional writes) applied one
at a time, as DynamoDB itself isolates them, and transactions rolled back item by item rather than
by copying whole tables.

moto checks a write's condition and then writes without a lock, so two concurrent writes on the
same key can both pass their check: two transactions their `attribute_not_exists` (seen under load
in the contract check of concurrent inserts with one dedup key), two `UpdateItem`s their
`enabled = true` (seen as two `subscription.disabled` events for one subscription disabled by two
concurrent 410s). Serialising the writes here makes the emulator keep the promise the code
relies on: a conditional write is atomic for its item.

moto also backs up every table a transaction names with `copy.deepcopy` before applying it, so
each insert costs time in proportion to the table: tests that store a few thousand events slowed
to a few inserts per second. Here a transaction backs up only the items it names, and restores
those when moto cancels it; what DynamoDB answers is unchanged.

Three more costs grew with the size of a table or queue and slowed the long moto tests (the
2,000-pair recovery, profiled with py-spy) to a crawl as they filled up; each is removed without
changing an answer:
- a `Query` sorted the whole table before filtering it (and, on the base table, scanned every
  partition for its one hash key). Here it reads the one partition, or the unsorted items for an
  index; moto sorts what matches afterwards as before.
- `ReceiveMessage` computed every attribute of the queue, counting all its messages, for each
  message received, only to read its retention period; `SendMessage` did the same for each
  message sent, only to read `ContentBasedDeduplication`, which a standard queue does not have.
  Deleting a message or changing its visibility looks its receipt handle up in every message,
  each building a list of its handles to do so; the lookup now builds nothing.
- werkzeug logged a line per request, and each request matched its host against every
  service's URL patterns (listing moto's modules on disk each time); the answer for a host is
  now remembered.
"""
import copy
import logging
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.sqs.models import Message, Queue, SQSBackend
from moto.core.utils import unix_time

# Re-entrant: moto's transaction calls the single-item writes, which take it too.
_lock = threading.RLock()
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


def _one_at_a_time(write):
    def serialised(self, *args, **kwargs):
        with _lock:
            return write(self, *args, **kwargs)

    return serialised


for _name in ("put_item", "update_item", "delete_item"):
    setattr(DynamoDBBackend, _name, _one_at_a_time(getattr(DynamoDBBackend, _name)))

_query_scope = threading.local()
_table_query = Table.query
_all_items = Table.all_items


def _query(self, hash_key, *args, **kwargs):
    # moto's query calls `all_items()` for its candidates; narrowed while it runs. `index_name`
    # is the eighth parameter, passed by position or by name.
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    _query_scope.key = (index_name or None, hash_key)
    try:
        return _table_query(self, hash_key, *args, **kwargs)
    finally:
        _query_scope.key = None


def _candidates(self):
    scope = getattr(_query_scope, "key", None)
    if scope is None:
        return _all_items(self)  # Scan and exports keep the sorted order
    index_name, hash_key = scope
    if index_name is None and hash_key is not None:
        partition = self.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if self.range_key_attr else [partition]
    # `list()` of a dict view copies it in one step, safe against concurrent writes.
    partitions = list(self.items.values())
    if not self.range_key_attr:
        return partitions
    return [item for partition in partitions for item in list(partition.values())]


Table.query = _query
Table.all_items = _candidates


def _retained(self, queue_name, message):
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _retained

_sending = threading.local()
_queue_attributes = Queue.attributes.fget
_send_message = SQSBackend.send_message


def _attributes(self):
    if getattr(_sending, "on", False) and not self.fifo_queue:
        return {}  # all a send reads is ContentBasedDeduplication, a FIFO queue's attribute
    return _queue_attributes(self)


def _send(self, *args, **kwargs):
    _sending.on = True
    try:
        return _send_message(self, *args, **kwargs)
    finally:
        _sending.on = False


Queue.attributes = property(_attributes)
SQSBackend.send_message = _send


def _had_receipt_handle(self, receipt_handle):
    return receipt_handle == self.receipt_handle or receipt_handle in self._old_receipt_handles


Message.had_receipt_handle = _had_receipt_handle
logging.getLogger("werkzeug").setLevel(logging.WARNING)

_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backends_by_host = {}


def _remembered_backend(self, host):
    if host not in _backends_by_host:
        _backends_by_host[host] = _backend_for_host(self, host)
    return _backends_by_host[host]


DomainDispatcherApplication.get_backend_for_host = _remembered_backend

if __name__ == "__main__":
    sys.exit(main())
