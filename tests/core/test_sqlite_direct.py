"""Statements run straight on sqlite3 answer exactly as SQLAlchemy does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    create_engine,
    event,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, MultipleResultsFound, NoResultFound, StatementError

from simulators.core.sqlite_direct import DirectConnection, DirectResult
from simulators.core.store import Store

metadata = MetaData()
item = Table(
    "item",
    metadata,
    Column("id", String(10), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("price", Float, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("details", JSON, nullable=True),
    Column("note", String(20), nullable=False, default="none"),
)
INSERT = item.insert()


def by_id() -> Any:
    """A statement this test has not run before (statements are remembered by identity)."""
    return select(item).where(item.c.id == bindparam("id"))


def by_kind() -> Any:
    return select(item.c.id, item.c.price).where(item.c.kind == bindparam("kind"))


@pytest.fixture
def conn(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path / 'direct.db'}")
    engine._connection_cls = DirectConnection
    metadata.create_all(engine)
    with engine.connect() as connection:
        for n in range(3):
            connection.execute(
                INSERT,
                {
                    "id": f"i{n}",
                    "kind": "sim" if n < 2 else "esim",
                    "price": 1.5 * n,
                    "active": n != 1,
                    "details": {"n": n, "tags": ["a", "b"]},
                    "note": "seeded",
                },
            )
        connection.commit()
        yield connection
    engine.dispose()


def both(conn: Connection, statement: Any, parameters: dict[str, Any]) -> tuple[Any, Any]:
    """SQLAlchemy's own answer (first sight) and the direct one (second sight)."""
    first = conn.execute(statement, parameters)
    again = conn.execute(statement, parameters)
    assert not isinstance(first, DirectResult)
    assert isinstance(again, DirectResult)
    return first, again


def test_a_repeated_select_answers_as_sqlalchemy_does(conn: Connection) -> None:
    through_sqlalchemy, direct = both(conn, by_id(), {"id": "i1"})
    expected, row = through_sqlalchemy.one(), direct.one()
    assert tuple(row) == tuple(expected)
    assert row.details == {"n": 1, "tags": ["a", "b"]}
    assert row.active is False and row.price == 1.5 and row.note == "seeded"
    assert row._mapping == dict(expected._mapping)


def test_rows_come_as_asked(conn: Connection) -> None:
    statement = by_kind()
    both(conn, statement, {"kind": "sim"})
    assert [tuple(row) for row in conn.execute(statement, {"kind": "sim"})] == [
        ("i0", 0.0),
        ("i1", 1.5),
    ]
    assert conn.execute(statement, {"kind": "sim"}).scalars().all() == ["i0", "i1"]
    assert conn.execute(statement, {"kind": "esim"}).scalar_one() == "i2"
    assert conn.execute(statement, {"kind": "none"}).first() is None
    assert conn.execute(statement, {"kind": "none"}).scalar() is None
    assert conn.execute(statement, {"kind": "none"}).one_or_none() is None
    with pytest.raises(NoResultFound):
        conn.execute(statement, {"kind": "none"}).one()
    with pytest.raises(MultipleResultsFound):
        conn.execute(statement, {"kind": "sim"}).one()


def test_a_repeated_insert_and_update_write_as_sqlalchemy_does(conn: Connection) -> None:
    insert = item.insert()
    row = {"id": "x", "kind": "sim", "price": 2.0, "active": True, "details": None, "note": "n"}
    conn.execute(insert, row)
    written = conn.execute(insert, {**row, "id": "y", "details": {"k": "v"}})
    assert isinstance(written, DirectResult) and written.rowcount == 1
    _first, again = both(conn, by_id(), {"id": "y"})
    assert again.one().details == {"k": "v"}

    update = item.update().where(item.c.kind == bindparam("want")).values(price=bindparam("p"))
    conn.execute(update, {"want": "esim", "p": 9.0})
    changed = conn.execute(update, {"want": "sim", "p": 7.0})
    assert isinstance(changed, DirectResult) and changed.rowcount == 4
    prices = select(item.c.price).where(item.c.kind == "sim")
    assert set(conn.execute(prices).scalars()) == {7.0}


def test_one_row_in_a_list_is_written_directly_as_one_execution(conn: Connection) -> None:
    insert = item.insert()
    row = {"id": "x", "kind": "sim", "price": 2.0, "active": True, "details": None, "note": "n"}
    conn.execute(insert, [row])
    written = conn.execute(insert, [{**row, "id": "y"}])
    assert isinstance(written, DirectResult) and written.rowcount == 1
    several = conn.execute(insert, [{**row, "id": "z1"}, {**row, "id": "z2"}])
    assert not isinstance(several, DirectResult)  # an executemany stays with SQLAlchemy
    ids = select(item.c.id).where(item.c.note == "n").order_by(item.c.id)
    assert conn.execute(ids).scalars().all() == ["x", "y", "z1", "z2"]


def test_an_update_to_an_sql_expression_writes_as_sqlalchemy_does(conn: Connection) -> None:
    flagged = case((item.c.active, literal("on")), else_=item.c.note)
    update = item.update().where(item.c.kind == bindparam("want")).values(note=flagged)
    conn.execute(update, {"want": "esim"})
    changed = conn.execute(update, {"want": "sim"})
    assert isinstance(changed, DirectResult) and changed.rowcount == 2
    notes = select(item.c.id, item.c.note).order_by(item.c.id)
    assert [tuple(row) for row in conn.execute(notes)] == [
        ("i0", "on"),
        ("i1", "seeded"),
        ("i2", "on"),
    ]


def test_a_missing_parameter_is_sqlalchemys_error(conn: Connection) -> None:
    statement = by_id()
    for _attempt in range(2):  # the first sight and the second alike
        with pytest.raises(StatementError, match="bind parameter 'id'"):
            conn.execute(statement, {"kind": "sim"})


def test_a_duplicate_key_is_sqlalchemys_integrity_error(conn: Connection) -> None:
    insert = item.insert()
    row = {"id": "i0", "kind": "sim", "price": 1.0, "active": True, "details": None, "note": "n"}
    for _attempt in range(2):  # the first through SQLAlchemy, the second direct
        with pytest.raises(IntegrityError):
            conn.execute(insert, row)
    assert conn.execute(select(func.count()).select_from(item)).scalar_one() == 3


def test_what_it_does_not_cover_still_goes_through_sqlalchemy(conn: Connection) -> None:
    without_note = {"id": "d", "kind": "sim", "price": 1.0, "active": True, "details": None}
    for suffix in ("1", "2"):  # Python-side default: SQLAlchemy fills it in
        result = conn.execute(INSERT, {**without_note, "id": "d" + suffix})
        assert not isinstance(result, DirectResult)
    pairs = select(item.c.note).where(
        tuple_(item.c.id, item.c.kind).in_(bindparam("pairs", expanding=True))
    )
    for _ in range(2):  # a tuple IN list
        result = conn.execute(pairs, {"pairs": [("d1", "sim"), ("d2", "sim")]})
        assert not isinstance(result, DirectResult)
        assert result.scalars().all() == ["none", "none"]


def test_in_lists_of_every_length_answer_as_sqlalchemy_does(conn: Connection) -> None:
    statement = (
        select(item.c.id)
        .where(
            item.c.id.in_(bindparam("ids", expanding=True)),
            item.c.active.in_(bindparam("flags", expanding=True)),  # a bind processor
            item.c.kind != bindparam("not_kind"),
        )
        .order_by(item.c.id)
    )
    asked = [
        (["i0", "i1", "i2"], [True, False], "none", ["i0", "i1", "i2"]),
        (["i0", "i1", "i2"], [True], "esim", ["i0"]),
        (["i1"], [False], "none", ["i1"]),
        ([], [True], "none", []),
        (["i0", "i2"], [True], "none", ["i0", "i2"]),
    ]
    first = conn.execute(statement, {"ids": ["i0"], "flags": [True], "not_kind": "none"})
    assert not isinstance(first, DirectResult)
    for ids, flags, not_kind, expected in asked:
        for _ in range(2):  # a new length, then a length seen before
            result = conn.execute(statement, {"ids": ids, "flags": flags, "not_kind": not_kind})
            assert isinstance(result, DirectResult)
            assert result.scalars().all() == expected, (ids, flags, not_kind)
    not_a_list = conn.execute(statement, {"ids": "i0", "flags": [True], "not_kind": "none"})
    assert not isinstance(not_a_list, DirectResult)  # SQLAlchemy's to refuse or accept
    update = item.update().where(item.c.id.in_(bindparam("ids", expanding=True)))
    conn.execute(update.values(note="first"), {"ids": ["i0"]})
    noted = update.values(note=bindparam("note"))
    conn.execute(noted, {"ids": ["i0"], "note": "x"})
    written = conn.execute(noted, {"ids": ["i1", "i2"], "note": "listed"})
    assert isinstance(written, DirectResult) and written.rowcount == 2
    notes = select(item.c.id, item.c.note).order_by(item.c.id)
    assert [tuple(row) for row in conn.execute(notes)] == [
        ("i0", "x"),
        ("i1", "listed"),
        ("i2", "listed"),
    ]


def test_statement_listeners_see_direct_statements(conn: Connection) -> None:
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement.split()[0])

    event.listen(conn.engine, "before_cursor_execute", listen)
    try:
        both(conn, by_id(), {"id": "i0"})
    finally:
        event.remove(conn.engine, "before_cursor_execute", listen)
    assert seen == ["SELECT", "SELECT"]


def test_only_sqlite_stores_run_statements_directly(tmp_path: Path) -> None:
    sqlite = Store(f"sqlite:///{tmp_path / 'state.db'}")
    postgresql = Store("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        assert sqlite.engine._connection_cls is DirectConnection
        assert postgresql.engine._connection_cls is Connection
    finally:
        sqlite.dispose()
        postgresql.engine.dispose()
