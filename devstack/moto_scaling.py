"""Two patches that make moto's DynamoDB scale with table size (issue 11 §2).

Installed by ``devstack.moto_server`` before it serves anything (``install()``), unless
``STOCKBRIDGE_MOTO_STOCK=1`` asks for moto exactly as released (the benchmark's "before").

WHY
---
Measured on moto 5.1 (docs/benchmarks.md, "moto that scales"):

* ``TransactWriteItems`` deep-copied the WHOLE table once per action, to roll back on failure:
  ~100 tx/s on an empty table, under 2 tx/s at 10,000 items.
* A table with a stream keeps every stream record ever written in ``StreamShard.items``, and the
  per-action table copy copied those too: a 3,000-order run drove moto to 23 GB.

WHAT
----
1. ``transact_write_items`` goes action by action exactly as moto does (check the key and the
   condition, then write), but keeps an undo log of the items it writes (a deep copy of ONE
   item each) instead of a deep copy of every table.  A failed transaction restores those items
   and drops the stream records its writes produced, so it stays all or nothing, with moto's
   errors and cancellation reasons, at a cost that does not grow with the table.
2. A stream shard keeps only its newest ``MOTO_STREAM_RETAIN`` records (default 10,000).  Real
   DynamoDB keeps them 24 hours; a reader that falls further behind than the window here loses
   the trimmed records (real DynamoDB answers ``TrimmedDataAccessException``); the catalog pipe
   reads within a second (a reader asking for trimmed records is warned about on stderr).
   Sequence numbers keep counting, so iterators stay valid.  moto also keeps every shard
   iterator ever made; only the newest 1,000 are kept (AWS expires them after 15 minutes).

Both are tested in ``devstack/tests/test_moto_scaling.py`` against moto's own behaviour.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any, Optional

STOCK_VAR = "STOCKBRIDGE_MOTO_STOCK"
RETAIN_VAR = "MOTO_STREAM_RETAIN"
DEFAULT_RETAIN = 10_000
ITERATORS_KEPT = 1_000


class RetainedLog:
    """A list of stream records that forgets all but the newest ``keep``.

    ``len()`` counts every record ever appended and slices take absolute positions, which is
    all moto's ``StreamShard`` and shard iterators do with their list."""

    def __init__(self, keep: int) -> None:
        self.keep = max(1, keep)
        self._items: list[Any] = []
        self._first = 0  # absolute position of self._items[0]
        self._warned = False

    def __len__(self) -> int:
        return self._first + len(self._items)

    def __iter__(self):
        return iter(self._items)

    def append(self, record: Any) -> None:
        self._items.append(record)
        # Compact in halves so an append stays O(1) amortised.
        if len(self._items) >= 2 * self.keep:
            drop = len(self._items) - self.keep
            del self._items[:drop]
            self._first += drop

    def __getitem__(self, index: Any) -> Any:
        if not isinstance(index, slice):
            if index < 0:
                index += len(self)
            if index < self._first:
                raise IndexError("stream record trimmed")
            return self._items[index - self._first]
        if (index.start or 0) < self._first and not self._warned:
            self._warned = True
            print(f"moto_scaling: a stream reader asked for records before the newest {self.keep} "
                  f"(position {index.start}, oldest kept {self._first}): they were trimmed "
                  "(real DynamoDB answers TrimmedDataAccessException)", file=sys.stderr, flush=True)
        start = max(index.start or 0, self._first)
        stop = len(self) if index.stop is None else min(index.stop, len(self))
        return self._items[start - self._first:max(start, stop) - self._first]

    def __delitem__(self, index: slice) -> None:
        """``del log[n:]``, as on a list: forget the records appended after the log was n long."""
        if not isinstance(index, slice) or index.stop is not None or index.step is not None:
            raise TypeError("a RetainedLog only forgets its newest records: del log[n:]")
        del self._items[max(0, (index.start or 0) - self._first):]


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``DynamoDBBackend.transact_write_items``, action by action exactly as moto does it
    (check the key and the condition, then write), but undone from a log of the touched items
    instead of restoring deep copies of whole tables."""
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import get_filter_expression

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo: list[tuple[Any, Any, Any, Optional[Any]]] = []
    streams: dict[int, tuple[Any, int]] = {}
    seen: set[tuple[str, str]] = set()
    errors: list[tuple] = []
    for action in transact_items:
        original_item = None
        if len(action) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(action.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            table = self.get_table(table_name)
            key = _key_of(table, op_type, op)
            marker = (str(table_name), str(key))
            if marker in seen:
                raise MultipleTransactionsException()
            seen.add(marker)
            current = self.get_item(table_name, key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                condition_op = get_filter_expression(
                    condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues"))
                if not condition_op.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                if table.stream_shard is not None and id(table) not in streams:
                    streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
                hash_value, range_value = self.get_keys_value(table, key)
                undo.append((table, hash_value, range_value, copy.deepcopy(current)))
                _apply(self, op_type, op)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            _roll_back(undo, streams)
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: BLE001 - the same capture moto does
            errors.append((type(e).__name__, str(e), original_item))
    if any(code is not None for code, _, _ in errors):
        _roll_back(undo, streams)
        raise TransactionCanceledException(errors)


def _key_of(table: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return op["Key"]
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _apply(self: Any, op_type: str, op: dict[str, Any]) -> None:
    """One write of a transaction, its condition already checked (moto checks it again, harmlessly)."""
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    condition = op.get("ConditionExpression")
    if op_type == "Put":
        self.put_item(op["TableName"], op["Item"], condition_expression=condition,
                      expression_attribute_names=names, expression_attribute_values=values)
    elif op_type == "Delete":
        self.delete_item(op["TableName"], op["Key"], condition_expression=condition,
                         expression_attribute_names=names, expression_attribute_values=values)
    elif op_type == "Update":
        self.update_item(op["TableName"], op["Key"], update_expression=op["UpdateExpression"],
                         condition_expression=condition, expression_attribute_names=names,
                         expression_attribute_values=values)


def _roll_back(undo: list[tuple], streams: dict[int, tuple[Any, int]]) -> None:
    for table, hash_value, range_value, old in reversed(undo):
        if range_value is not None:
            if old is None:
                table.items[hash_value].pop(range_value, None)
            else:
                table.items[hash_value][range_value] = old
        elif old is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = old
    for shard, length in streams.values():
        del shard.items[length:]  # a RetainedLog, or the list a Lambda mapping swapped in


def install() -> bool:
    """Patch moto in this process; False (and nothing patched) when STOCKBRIDGE_MOTO_STOCK=1.
    ``MOTO_STREAM_RETAIN`` is read whenever a table's stream is created."""
    if os.environ.get(STOCK_VAR) == "1":
        return False
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    if getattr(DynamoDBBackend, "_stockbridge_scaling", False):
        return True
    original_init = StreamShard.__init__
    original_get_records = DynamoDBStreamsBackend.get_records

    def shard_init(shard: Any, *args: Any, **kwargs: Any) -> None:
        original_init(shard, *args, **kwargs)
        shard.items = RetainedLog(int(os.environ.get(RETAIN_VAR, DEFAULT_RETAIN)))

    def get_records(backend: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        # moto keeps every shard iterator ever made (two per catalog-pipe poll); AWS expires
        # them after 15 minutes. Keep the newest ITERATORS_KEPT.
        answer = original_get_records(backend, iterator_arn, limit)
        while len(backend.shard_iterators) > ITERATORS_KEPT:
            backend.shard_iterators.pop(next(iter(backend.shard_iterators)))
        return answer

    StreamShard.__init__ = shard_init
    DynamoDBStreamsBackend.get_records = get_records
    DynamoDBBackend.transact_write_items = _transact_write_items
    DynamoDBBackend._stockbridge_scaling = True
    return True
