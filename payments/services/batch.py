"""Writes whose results nobody reads in the transaction, sent together.

A confirmed payment is six to eleven rows (payment method, payment, charge,
events, outbox rows, ledger lines) plus the savepoints of nested atomic
blocks; sent one by one they cost a round trip each, and on a 2-core box
each round trip is a context switch to PostgreSQL and back. Inside
`batched()` the write path queues them (`insert`, `update`, and Django's
own SAVEPOINT / RELEASE statements) and they travel in one multi-statement
query (psycopg's client-side binding uses the simple query protocol, which
allows several statements):

- before any other statement that runs on the connection — a read, a lock,
  a `ROLLBACK TO SAVEPOINT`, an ORM write — in the same query as it, so
  everything still executes in program order and every read sees the
  writes before it;
- when the outermost `batched()` block ends, inside the transaction (the
  block must sit inside `transaction.atomic`), so the writes commit or roll
  back with everything else, exactly as if each had run at once;
  `transaction()` — an outermost atomic block with its writes batched —
  sends its COMMIT in that same query (psycopg then finds the connection
  idle and sends none of its own).

Nothing is reordered and nothing is skipped: an exception leaving the block
still flushes (a caller may catch it and commit), unless the transaction is
already marked for rollback. A constraint violation in a queued statement
surfaces at the flush, still inside the transaction.

On SQLite (embedded mode; its driver runs one statement per call) and
outside `batched()`, `insert` and `update` execute at once.

The SQL is built from the model's fields once per model and column set:
Django's compiler costs more Python than the round trip it would send.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models
from django.db import transaction as django_transaction
from psycopg.types.json import Jsonb

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=models.Model)

# Statements queued without their result being needed (Django runs them
# with no parameters; they return nothing).
_QUEUEABLE = ("SAVEPOINT ", "RELEASE SAVEPOINT ")


class _Unquotable(Exception):
    """A value `_literal` leaves to psycopg."""


def _text(value: str) -> str:
    if "\x00" in value:
        raise _Unquotable  # psycopg refuses it with its own error
    return "'" + value.replace("'", "''") + "'"


def _integer(value: int) -> str:
    text = int.__repr__(value)
    # A space keeps `x - -1` from reading as `x -` and a `--` comment (psycopg does the same).
    return text if value >= 0 else " " + text


def _timestamp(value: datetime) -> str:
    if value.utcoffset() is None:
        raise _Unquotable
    return "'" + value.isoformat(" ") + "'::timestamptz"


def _jsonb(value: Jsonb) -> str:
    dumps = value.dumps or json.dumps
    text = dumps(value.obj)
    return _text(text if isinstance(text, str) else text.decode()) + "::jsonb"


_LITERALS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "NULL",
    bool: lambda value: "true" if value else "false",
    int: _integer,
    str: _text,
    datetime: _timestamp,
    bytes: lambda value: "'\\x" + value.hex() + "'::bytea",
    Jsonb: _jsonb,
}
# Subclasses met on the write path (psycopg's Int2/Int4/Int8 wrappers,
# TextChoices members) are looked up once through their base.
_BASES = (bool, int, str, datetime, bytes, Jsonb)


def _literal(value: Any) -> str:
    """`value` as an SQL literal, for the types the write path sends; the
    rest (floats, decimals, naive datetimes, …) raise `_Unquotable`."""
    kind = type(value)
    quote = _LITERALS.get(kind)
    if quote is None:
        base = next((b for b in _BASES if issubclass(kind, b)), None)
        if base is None:
            raise _Unquotable
        quote = _LITERALS[kind] = _LITERALS[base]
    return quote(value)


class _Queue:
    """Statements with their parameters merged in, in program order.

    Merged as each is queued: the query they end up in is sent without
    parameters, so psycopg does not parse it again — a joined query is new
    text every time (savepoint names change), and parsing a long one for
    placeholders costs more than merging its short, cached parts. The
    merge is psycopg's client-side binding for every type the write path
    sends, done here with one function per type instead of psycopg's
    per-parameter dumper lookup (the most expensive Python on the write
    path); anything else, or a server not using standard-conforming
    strings (where a backslash in a literal escapes), goes to psycopg's
    `mogrify`."""

    __slots__ = ("depth", "flushing", "mogrify", "quotes", "sql")

    def __init__(self, mogrify: Callable[[str, Sequence[Any]], str], *, quotes: bool) -> None:
        self.sql: list[str] = []
        self.mogrify = mogrify
        self.quotes = quotes
        self.depth = 0
        self.flushing = False

    def merge(self, sql: str, params: Sequence[Any]) -> str:
        if self.quotes:
            try:
                return sql % tuple(_literal(value) for value in params)
            except _Unquotable:
                pass
        return self.mogrify(sql, params)

    def add(self, sql: str, params: Sequence[Any] | None) -> None:
        self.sql.append(sql if params is None else self.merge(sql, params))

    def take(self) -> str:
        joined = ";\n".join(self.sql)
        self.sql = []
        return joined


def _queue() -> _Queue | None:
    queue: _Queue | None = getattr(connection, "_paylab_batch", None)
    return queue


def _coalesce(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Execute wrapper active inside `batched()`: queue savepoints, send
    the queue in front of any other statement."""
    queue = _queue()
    if queue is None or queue.flushing:
        return execute(sql, params, many, context)
    if not many and params is None and sql.startswith(_QUEUEABLE):
        queue.add(sql, None)
        return None
    if not queue.sql:
        return execute(sql, params, many, context)
    if many or isinstance(params, dict):
        _flush(queue)
        return execute(sql, params, many, context)
    queue.add(sql, params)
    result = execute(queue.take(), None, False, context)
    # The caller reads the result of its own statement: the last one.
    cursor = context["cursor"].cursor
    while cursor.nextset():
        pass
    return result


def _flush(queue: _Queue) -> None:
    if not queue.sql:
        return
    # Through Django's cursor (its wrappers and query log see it); ours
    # passes it through, the queue being empty now.
    joined = queue.take()
    queue.flushing = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(joined)
    finally:
        queue.flushing = False


def flush() -> None:
    """Send what is queued now (a caller about to read by other means)."""
    queue = _queue()
    if queue is not None:
        _flush(queue)


@contextmanager
def batched(*, commit: bool = False) -> Iterator[None]:
    """Queue the write path's statements until they are needed (see the
    module docstring). Re-entrant: only the outermost block flushes.
    `commit`: the block ends the outermost atomic block (see `transaction`)."""
    if not settings.DATABASE_IS_POSTGRES:
        yield
        return
    queue = _queue()
    if queue is not None:
        queue.depth += 1
        try:
            yield
        finally:
            queue.depth -= 1
        return
    if not connection.in_atomic_block:
        raise RuntimeError("batched() must run inside transaction.atomic")
    connection.ensure_connection()
    raw = connection.connection
    merger = raw.cursor()
    conforming = raw.info.parameter_status("standard_conforming_strings") == "on"
    queue = _Queue(merger.mogrify, quotes=conforming)
    connection._paylab_batch = queue  # type: ignore[attr-defined]
    try:
        with connection.execute_wrapper(_coalesce):
            try:
                yield
            except BaseException:
                if not connection.needs_rollback:
                    _flush(queue)
                raise
            if commit and queue.sql and not connection.needs_rollback:
                # The block ends its transaction (see `transaction`): nothing
                # runs between here and the atomic block's commit.
                queue.add("COMMIT", None)
            _flush(queue)
    finally:
        connection._paylab_batch = None  # type: ignore[attr-defined]
        merger.close()


@contextmanager
def transaction() -> Iterator[None]:
    """`transaction.atomic()` with its writes batched; when it is the
    outermost block, the COMMIT travels with the last writes (one round
    trip fewer). Nested in another atomic block (a test's, a caller's), it
    is `atomic()` + `batched()`."""
    outermost = not connection.in_atomic_block
    with django_transaction.atomic(), batched(commit=outermost):
        yield


def atomic(func: F) -> F:
    """`transaction.atomic` with the write path's statements batched."""

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        with django_transaction.atomic(), batched():
            return func(*args, **kwargs)

    return inner  # type: ignore[return-value]


# --- SQL for model rows ------------------------------------------------------------


@functools.cache
def _columns(
    model: type[models.Model], names: tuple[str, ...] | None
) -> tuple[str, tuple[models.Field[Any, Any], ...]]:
    """(quoted table, the fields to write): every concrete field but an
    automatic primary key, or the named ones."""
    meta = model._meta
    if names is None:
        fields = tuple(
            f
            for f in meta.concrete_fields
            if not (f.primary_key and isinstance(f, models.AutoField | models.BigAutoField))
            and not getattr(f, "generated", False)
        )
    else:
        fields = tuple(meta.get_field(name) for name in names)  # type: ignore[misc]
    return connection.ops.quote_name(meta.db_table), fields


@functools.cache
def _insert_sql(model: type[models.Model], rows: int) -> str:
    table, fields = _columns(model, None)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * rows)  # noqa: S608


@functools.cache
def _update_sql(model: type[models.Model], names: tuple[str, ...] | None) -> str:
    table, fields = _columns(model, names)
    quote = connection.ops.quote_name
    pk = model._meta.pk
    assert pk is not None
    assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in fields if not f.primary_key)
    return f"UPDATE {table} SET {assignments} WHERE {quote(str(pk.column))} = %s"  # noqa: S608


def _values(obj: models.Model, fields: Iterable[models.Field[Any, Any]], add: bool) -> list[Any]:
    return [f.get_db_prep_save(f.pre_save(obj, add), connection) for f in fields]


def execute(sql: str, params: list[Any]) -> None:
    """A statement whose result (not even its row count) nobody reads:
    queued inside `batched()`, run at once elsewhere."""
    queue = _queue()
    if queue is not None:
        queue.add(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# Column kinds whose values need no preparation when they are of the plain type.
_PLAIN: tuple[tuple[Any, type], ...] = (
    (models.BooleanField, bool),
    (models.IntegerField | models.AutoField, int),
    (models.CharField | models.TextField, str),
    (models.DateTimeField, datetime),
)


def _quoter(field: models.Field[Any, Any], add: bool) -> Callable[[models.Model], str]:
    """obj -> the SQL literal of its `field`, what `get_db_prep_save` then
    `_literal` give, with Django's preparation skipped for the values that
    need none: a text in a text column, an int in an integer column, an
    aware datetime, a dict or list in a JSON column. Anything else goes
    through the field's own preparation."""
    attname = field.attname

    def prepared(obj: models.Model) -> str:
        return _literal(field.get_db_prep_save(field.pre_save(obj, add), connection))

    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return prepared  # pre_save sets the value
    target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
    if isinstance(target, models.JSONField):
        dumps = functools.partial(json.dumps, cls=target.encoder) if target.encoder else json.dumps

        def quote_json(obj: models.Model) -> str:
            value = getattr(obj, attname)
            if value is None:
                return "NULL"
            if type(value) in (dict, list):
                return _text(dumps(value)) + "::jsonb"
            return prepared(obj)

        return quote_json
    base = next((b for kinds, b in _PLAIN if isinstance(target, kinds)), None)
    if base is None:
        return prepared
    literal = _LITERALS[base]

    def quote(obj: models.Model) -> str:
        value = getattr(obj, attname)
        if value is None:
            return "NULL"
        # Exact types (a bool or an IntegerChoices member is not a plain int
        # here), but any str (a TextChoices member is its value); a naive
        # datetime goes through Django, which makes it aware.
        plain = isinstance(value, str) if base is str else type(value) is base
        if plain and (base is not datetime or value.tzinfo is not None):
            return literal(value)
        return prepared(obj)

    return quote


@functools.cache
def _row(model: type[models.Model]) -> tuple[str, tuple[Callable[[models.Model], str], ...]]:
    """("INSERT INTO … VALUES ", a quoter per column) for queued inserts."""
    table, fields = _columns(model, None)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    return f"INSERT INTO {table} ({columns}) VALUES ", tuple(_quoter(f, True) for f in fields)  # noqa: S608


def _queued_insert(queue: _Queue, objs: Sequence[models.Model]) -> bool:
    """Queue the INSERT with the rows written straight to literals; False
    when a value is one `_literal` leaves to psycopg."""
    head, quoters = _row(type(objs[0]))
    try:
        rows = ["(" + ", ".join([quote(obj) for quote in quoters]) + ")" for obj in objs]
    except _Unquotable:
        return False
    queue.sql.append(head + ", ".join(rows))
    return True


def insert(objs: Sequence[models.Model]) -> None:
    """INSERT new rows of one model (their primary keys, unless automatic,
    set by the caller), in one statement. Like `save(force_insert=True)`
    without signals, which the payments models do not use; an automatic
    primary key stays unset (nothing on the write path reads it)."""
    if not objs:
        return
    queue = _queue()
    if not (queue is not None and queue.quotes and _queued_insert(queue, objs)):
        model = type(objs[0])
        _, fields = _columns(model, None)
        params: list[Any] = []
        for obj in objs:
            params.extend(_values(obj, fields, True))
        execute(_insert_sql(model, len(objs)), params)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = "default"


@functools.cache
def _assignments(
    model: type[models.Model], names: tuple[str, ...] | None
) -> tuple[str, tuple[tuple[str, Callable[[models.Model], str]], ...], str]:
    """("UPDATE … SET ", (column = , quoter) per field, " WHERE pk = ") for queued updates."""
    table, fields = _columns(model, names)
    quote = connection.ops.quote_name
    pk = model._meta.pk
    assert pk is not None
    pairs = tuple(
        (f"{quote(str(f.column))} = ", _quoter(f, False)) for f in fields if not f.primary_key
    )
    return f"UPDATE {table} SET ", pairs, f" WHERE {quote(str(pk.column))} = "  # noqa: S608 (names from the model)


def _queued_update(queue: _Queue, obj: models.Model, names: tuple[str, ...] | None) -> bool:
    """Queue the UPDATE with its values written straight to literals; False
    when one is a value `_literal` leaves to psycopg."""
    head, pairs, where = _assignments(type(obj), names)
    try:
        sets = ", ".join([column + quote(obj) for column, quote in pairs])
        key = _literal(obj.pk)
    except _Unquotable:
        return False
    queue.sql.append(head + sets + where + key)
    return True


def update(obj: models.Model, fields: Sequence[str] | None = None) -> None:
    """UPDATE a row known to exist (locked by the caller): every field, or
    the named ones. Like `save(update_fields=…)` without signals."""
    model = type(obj)
    names = tuple(fields) if fields is not None else None
    queue = _queue()
    if queue is not None and queue.quotes and _queued_update(queue, obj, names):
        return
    _, columns = _columns(model, names)
    params = _values(obj, (f for f in columns if not f.primary_key), False)
    params.append(obj.pk)
    execute(_update_sql(model, names), params)


@functools.cache
def _select(
    model: type[models.Model], where: str, lock: bool
) -> tuple[str, list[str], list[tuple[int, Any, list[Any]]]]:
    """(SQL, attribute names, (position, column, converters) of the values
    that need converting) for `select_one`: the compiler's work, done once.
    SQLite has no row locks (its writers are serialised at BEGIN)."""
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    fields = meta.concrete_fields
    columns = ", ".join(f"{table}.{quote(str(f.column))}" for f in fields)
    sql = f"SELECT {columns} FROM {table} WHERE {where}"  # noqa: S608 (fixed text of the caller's)
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    converting = []
    for index, f in enumerate(fields):
        column = f.get_col(meta.db_table)
        converters = connection.ops.get_db_converters(column) + f.get_db_converters(connection)
        if converters:
            converting.append((index, column, converters))
    return sql, [f.attname for f in fields], converting


def select_one(
    model: type[M], where: str, params: Sequence[Any], *, lock: bool = False
) -> M | None:
    """The row of `model` matching `where` (SQL over its own columns, with
    `%s` placeholders), or None; `lock` adds FOR UPDATE. What
    `filter(…).first()` returns, without building and compiling a queryset
    on every call — the write path's lookups by primary key run once per
    payment, and Django's query machinery cost more Python than the row."""
    sql, names, converting = _select(model, where, lock)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, column, converters in converting:
        for converter in converters:
            values[index] = converter(values[index], column, connection)
    return model.from_db(connection.alias, names, values)
