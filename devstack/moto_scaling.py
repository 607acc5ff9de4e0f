"""Two patches that make moto's DynamoDB scale with table size (issue 11 §2).

Installed by ``devstack.moto_server`` before it serves anything (``install()``), unless
``STOCKBRIDGE_MOTO_STOCK=1`` asks for moto exactly as released (the benchmark's "before").

WHY
---
Measured on moto 5.1 (docs/benchmarks.md, "moto scaling"):

* ``TransactWriteItems`` deep-copied the WHOLE table once per action, to roll back on failure:
  ~100 tx/s on an empty table, under 2 tx/s at 10,000 items.
* A table with a stream keeps every stream record ever written in ``StreamShard.items``, and the
  per-action table copy copied those too: a 3,000-order run drove moto to 23 GB.

WHAT
----
1. ``transact_write_items`` checks every action's key and condition first, writing nothing
   (the actions of one transaction name distinct items, so no action's condition can depend on
   another's write), and answers ``TransactionCanceledException`` with the same reasons moto
   gives.  Only then does it apply the writes, keeping an undo log of the touched items (a deep
   copy of ONE item each).  A write that still fails (a type error in an update expression)
   restores those items and drops the stream records the partial writes produced, so the
   transaction stays all or nothing, as before, at a cost that does not grow with the table.
2. A stream shard keeps only its newest ``MOTO_STREAM_RETAIN`` records (default 10,000).  Real
   DynamoDB keeps them 24 hours; a reader that falls further behind than the window here loses
   the trimmed records (real DynamoDB answers ``TrimmedDataAccessException``); the catalog pipe
   reads within a second.  Sequence numbers keep counting, so iterators stay valid.

Both are tested in ``devstack/tests/test_moto_scaling.py`` against moto's own behaviour.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Optional

STOCK_VAR = "STOCKBRIDGE_MOTO_STOCK"
RETAIN_VAR = "MOTO_STREAM_RETAIN"
DEFAULT_RETAIN = 10_000


class RetainedLog:
    """A list of stream records that forgets all but the newest ``keep``.

    ``len()`` counts every record ever appended and slices take absolute positions, which is
    all moto's ``StreamShard`` and shard iterators do with their list."""

    def __init__(self, keep: int) -> None:
        self.keep = max(1, keep)
        self._items: list[Any] = []
        self._first = 0  # absolute position of self._items[0]

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
        start = max(index.start or 0, self._first)
        stop = len(self) if index.stop is None else min(index.stop, len(self))
        return self._items[start - self._first:max(start, stop) - self._first]

    def truncate(self, length: int) -> None:
        """Forget the records appended after the log was ``length`` long."""
        del self._items[max(0, length - self._first):]

    @property
    def retained(self) -> int:
        return len(self._items)


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``DynamoDBBackend.transact_write_items`` with an undo log instead of table copies."""
    from moto.dynamodb.exceptions import (
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    for action in transact_items:
        if len(action) > 1:
            raise TransactWriteSingleOpException
    errors = _check_actions(self, transact_items)
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    undo: list[tuple[Any, Any, Any, Optional[Any]]] = []
    streams: dict[int, tuple[Any, int]] = {}
    errors = []
    failed = False
    for action in transact_items:
        op_type, op = next(iter(action.items()))
        try:
            table = self.get_table(op["TableName"])
            hash_value, range_value = self.get_keys_value(table, _key_of(table, op_type, op))
            if table.stream_shard is not None and id(table) not in streams:
                streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
            before = table.get_item(hash_value, range_value)
            undo.append((table, hash_value, range_value, copy.deepcopy(before)))
            _apply(self, op_type, op)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            _roll_back(undo, streams)
            raise
        except Exception as e:  # noqa: BLE001 - the same capture moto does
            errors.append((type(e).__name__, str(e), None))
            failed = True
    if failed:
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


def _check_actions(self: Any, transact_items: list[dict[str, Any]]) -> list[tuple]:
    """Phase 1: every action's key and condition against the current state; writes nothing."""
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
    )
    from moto.dynamodb.models import get_filter_expression

    seen: set[tuple[str, str]] = set()
    errors: list[tuple] = []
    for action in transact_items:
        original_item = None
        try:
            op_type, op = next(iter(action.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            key = _key_of(self.get_table(table_name), op_type, op)
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
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: BLE001 - the same capture moto does
            errors.append((type(e).__name__, str(e), original_item))
    return errors


def _apply(self: Any, op_type: str, op: dict[str, Any]) -> None:
    """Phase 2: one write, conditions already checked (they are checked again, harmlessly)."""
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
        shard.items.truncate(length)


def install() -> bool:
    """Patch moto in this process; False (and nothing patched) when STOCKBRIDGE_MOTO_STOCK=1."""
    if os.environ.get(STOCK_VAR) == "1":
        return False
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard

    if getattr(DynamoDBBackend, "_stockbridge_scaling", False):
        return True
    keep = int(os.environ.get(RETAIN_VAR, DEFAULT_RETAIN))
    original_init = StreamShard.__init__

    def shard_init(shard: Any, *args: Any, **kwargs: Any) -> None:
        original_init(shard, *args, **kwargs)
        shard.items = RetainedLog(keep)

    StreamShard.__init__ = shard_init
    DynamoDBBackend.transact_write_items = _transact_write_items
    DynamoDBBackend._stockbridge_scaling = True
    return True
