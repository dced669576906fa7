"""Core statements the stack runs again and again, executed straight on sqlite3.

SQLAlchemy builds an execution context, a cursor wrapper and a result object around
every statement: measured on this project's 2-CPU machine, a keyed SELECT cost ~58 us
through `Connection.execute` and ~12 us through sqlite3 with the same SQL, and an
activation order (nine statements) spent about a third of its in-process time there.
SQLAlchemy offers no lighter way to run a compiled statement, so this module does it:
a statement object seen a second time is compiled once (by SQLAlchemy, for this
dialect, through its public compiler API) and from then on runs on the driver's cursor
with SQLAlchemy's own bind and result processors; an IN list is rendered by SQLAlchemy
once per length and that SQL kept. Anything it does not fully cover
(executemany, RETURNING, Python-side defaults, tuple IN lists, execution options,
text()) goes through SQLAlchemy unchanged, and so does every statement on PostgreSQL.

Statements are remembered by identity, weakly: a module-level statement reused with new
parameters is the case this serves; a statement built for one call is never compiled
here and is forgotten with it.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.sql.selectable import Select
from sqlalchemy.types import TupleType

Processor = Callable[[Any], Any] | None

# Row attributes that a tuple already has: a column of that name stays with SQLAlchemy's
# Row, whose rules for it differ from a named tuple's.
_TUPLE_NAMES = frozenset(dir(tuple))


class DirectRow(tuple):  # type: ignore[type-arg]
    """What a Row offers the stack: attributes by column name, indexes, `_mapping`."""

    __slots__ = ()
    _fields: tuple[str, ...]  # the named tuple's, which comes after this class

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))


def _row_type(names: Sequence[str]) -> type[DirectRow] | None:
    if len(set(names)) != len(names) or any(
        not name.isidentifier() or name.startswith("_") or name in _TUPLE_NAMES for name in names
    ):
        return None
    try:
        base = namedtuple("Row", names)  # type: ignore[misc]  # noqa: PYI024 - C-level getters
    except ValueError:  # a keyword
        return None
    return type("Row", (DirectRow, base), {"__slots__": ()})


Slot = tuple[str, int | None, Any, bool, Processor]
# The renderings kept per statement: enough for every length of the dispatcher's claims
# (up to callback concurrency x 8 rows leased at once); a read in chunks of hundreds of
# keys would otherwise keep a rendering of every length it met.
_MOST_LENGTHS_KEPT = 256


class Prepared:
    """One statement compiled for SQLite, or why it must go through SQLAlchemy."""

    def __init__(self, conn: Connection, statement: Any, keys: tuple[str, ...] | None) -> None:
        compiled = statement.compile(
            dialect=conn.dialect, column_keys=list(keys) if keys is not None else None
        )
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        self.is_select = isinstance(statement, Select)
        dialect = conn.dialect
        self.row_type: type[DirectRow] | None = None
        self.processors: list[Processor] | None = None
        self.direct = self._covered(compiled)
        # The parameters that are IN lists: SQLAlchemy renders one placeholder per value, so
        # the SQL is kept per combination of list lengths, each rendered by SQLAlchemy once.
        self.expanding = tuple(
            sorted(bind.key for bind in compiled.binds.values() if bind.expanding)
        )
        self._by_lengths: dict[tuple[int, ...], tuple[str, list[Slot]]] = {}
        self.sql = compiled.string
        # Per position: the parameter it takes (and which of a list's values), the value
        # written into the statement for when the parameters lack it (or whether one is
        # required), the bind processor.
        self.slots: list[Slot] = []
        if self.direct and not self.expanding:
            for name in compiled.positiontup or []:
                bind = compiled.binds[name]  # no escaped names, no computed values (_covered)
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                self.slots.append((bind.key, None, bind.value, bind.required, processor))
        if self.direct and self.is_select:
            columns = list(statement.selected_columns)
            self.row_type = _row_type([str(key) for key in statement.selected_columns.keys()])
            processors = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ]
            self.processors = processors if any(processors) else None
            self.direct = self.row_type is not None

    def _covered(self, compiled: SQLCompiler) -> bool:
        if (
            compiled.positiontup is None
            or compiled.effective_returning
            or compiled.escaped_bind_names
        ):
            return False
        # Set on DML compilers only: defaults SQLAlchemy computes or fetches around the row.
        # An UPDATE's postfetch columns are those it sets to SQL expressions: only named
        # in its result's metadata, never fetched unless asked for (the stack never asks).
        fetched: tuple[str, ...] = ("insert_prefetch", "update_prefetch")
        if not isinstance(compiled.statement, Update):
            fetched += ("postfetch",)
        if any(getattr(compiled, name, None) for name in fetched):
            return False
        return not any(
            bind.literal_execute
            or bind.callable is not None
            or (bind.expanding and isinstance(bind.type, TupleType))
            for bind in compiled.binds.values()
        )

    def _expanded(self, given: dict[str, Any], lengths: tuple[int, ...]) -> tuple[str, list[Slot]]:
        """The SQL and slots for IN lists of these lengths, as SQLAlchemy expands them."""
        state = self._compiled.construct_expanded_state(dict(given))
        value_of = {
            expanded: (key, position)
            for key, names in state.parameter_expansion.items()
            for position, expanded in enumerate(names)
        }
        binds = self._compiled.binds
        slots: list[Slot] = []
        for name in state.positiontup or []:
            processor = state.processors.get(name)
            if name in value_of:
                key, position = value_of[name]
                slots.append((key, position, None, True, processor))
            else:
                bind = binds[name]
                slots.append((bind.key, None, bind.value, bind.required, processor))
        if len(self._by_lengths) < _MOST_LENGTHS_KEPT:
            self._by_lengths[lengths] = (state.statement, slots)
        return state.statement, slots

    def arguments(self, parameters: dict[str, Any] | None) -> tuple[str, list[Any]] | None:
        """The SQL to run and the driver's positional arguments, as SQLAlchemy's
        `construct_params` and bind processors make them (without its per-call bookkeeping:
        a tenth of a statement); None when a required one is missing, for SQLAlchemy to
        refuse in its own words."""
        given = parameters or {}
        sql, slots = self.sql, self.slots
        if self.expanding:
            lengths = []
            for key in self.expanding:
                values = given.get(key)
                if not isinstance(values, (list, tuple)):
                    return None
                lengths.append(len(values))
            shape = tuple(lengths)
            sql, slots = self._by_lengths.get(shape) or self._expanded(given, shape)
        arguments = []
        for key, position, written, required, processor in slots:
            if key in given:
                value = given[key] if position is None else given[key][position]
            elif required:
                return None
            else:
                value = written
            if processor is not None and value is not None:
                value = processor(value)
            arguments.append(value)
        return sql, arguments


class DirectResult:
    """The part of SQLAlchemy's result API the stack uses, over a sqlite3 cursor.

    Rows are read as they are asked for, as SQLAlchemy's result does: iterating a large
    SELECT does not hold it all in memory."""

    def __init__(self, cursor: Any, prepared: Prepared | None) -> None:
        self._cursor = cursor
        self._prepared = prepared
        self.rowcount: int = cursor.rowcount
        self.lastrowid: int | None = cursor.lastrowid
        if prepared is None:
            cursor.close()

    def _row(self, raw: tuple[Any, ...]) -> DirectRow:
        prepared = self._prepared
        assert prepared is not None and prepared.row_type is not None
        processors = prepared.processors
        if processors is None:
            return prepared.row_type._make(raw)  # type: ignore[attr-defined,no-any-return]
        return prepared.row_type._make(  # type: ignore[attr-defined,no-any-return]
            value if processor is None or value is None else processor(value)
            for processor, value in zip(processors, raw, strict=True)
        )

    def _rows(self, raws: list[Any]) -> list[Any]:
        self.close()
        return [self._row(raw) for raw in raws]

    def __iter__(self) -> Iterator[Any]:
        if self._prepared is None:
            return
        try:
            for raw in self._cursor:
                yield self._row(raw)
        finally:
            self.close()

    def close(self) -> None:
        self._cursor.close()

    def fetchone(self) -> Any:
        raw = self._cursor.fetchone()
        return None if raw is None else self._row(raw)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        raws = self._cursor.fetchmany(size) if size else self._cursor.fetchmany()
        return [self._row(raw) for raw in raws]

    def all(self) -> list[Any]:
        return self._rows(self._cursor.fetchall())

    fetchall = all

    def first(self) -> Any:
        raw = self._cursor.fetchone()
        self.close()
        return None if raw is None else self._row(raw)

    def one_or_none(self) -> Any:
        raws = self._cursor.fetchmany(2)
        self.close()
        if len(raws) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return self._row(raws[0]) if raws else None

    def one(self) -> Any:
        row = self.one_or_none()
        if row is None:
            raise exc.NoResultFound("No row was found when one was required")
        return row

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> ScalarRows:
        return ScalarRows(row[0] for row in self)


class ScalarRows(list[Any]):
    """`result.scalars()`: the first column of every row."""

    def all(self) -> list[Any]:
        return list(self)

    def first(self) -> Any:
        return self[0] if self else None

    def one(self) -> Any:
        if len(self) != 1:
            error = exc.NoResultFound if not self else exc.MultipleResultsFound
            raise error("Expected exactly one row")
        return self[0]


_DML = (Insert, Update, Delete)
# Per statement seen, its compilations by parameter names (none yet after a first sight).
_prepared: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...] | None, Prepared]] = (
    weakref.WeakKeyDictionary()
)


def _prepared_for(
    conn: Connection, statement: Any, keys: tuple[str, ...] | None
) -> Prepared | None:
    """The statement compiled for these parameter names, once it has come back."""
    try:
        by_keys = _prepared.get(statement)
        if by_keys is None:
            _prepared[statement] = {}
            return None  # first sight: maybe built for this one call
    except TypeError:  # not weakly referable: nothing to remember it by
        return None
    prepared = by_keys.get(keys)
    if prepared is None:
        prepared = by_keys[keys] = Prepared(conn, statement, keys)
    return prepared


class DirectConnection(Connection):
    """A Connection that runs statements it has seen before straight on sqlite3."""

    def execute(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> Any:
        if (
            isinstance(parameters, list)
            and len(parameters) == 1
            and isinstance(parameters[0], dict)
        ):
            # One row in a list is one execution to SQLAlchemy too, not an executemany.
            parameters = parameters[0]
        if (
            execution_options
            or not isinstance(statement, (Select, *_DML))
            or not (parameters is None or isinstance(parameters, dict))
        ):
            return super().execute(statement, parameters, execution_options=execution_options)
        keys = tuple(sorted(parameters or ())) if isinstance(statement, (Insert, Update)) else None
        prepared = _prepared_for(self, statement, keys)
        to_run = prepared.arguments(parameters) if prepared and prepared.direct else None
        if prepared is None or to_run is None:
            return super().execute(statement, parameters)
        return self._run(prepared, *to_run)

    def _run(self, prepared: Prepared, sql: str, arguments: list[Any]) -> DirectResult:
        if not self.in_transaction():
            self.begin()  # SQLAlchemy's autobegin, with its "begin" event
        dispatch = self.dispatch
        # Asked first: iterating an empty listener collection costs more than the check.
        if dispatch.before_cursor_execute:
            for listener in dispatch.before_cursor_execute:
                listener(self, None, sql, arguments, None, False)
        dbapi_connection = self.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, arguments)
        except sqlite3.Error as error:
            cursor.close()
            raise exc.DBAPIError.instance(
                sql, arguments, error, sqlite3.Error, dialect=self.dialect
            ) from error
        if dispatch.after_cursor_execute:
            for listener in dispatch.after_cursor_execute:
                listener(self, cursor, sql, arguments, None, False)
        return DirectResult(cursor, prepared if prepared.is_select else None)
