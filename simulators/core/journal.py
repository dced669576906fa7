"""The request journal: every request and response per role, bounded by count and age.

Entries are buffered and written in batches so recording stays off the hot
path; a query flushes this process's buffer first. Bodies are redacted of
secrets before they are kept.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from sqlalchemy import JSON, Column, Float, Integer, String, Text, bindparam, delete, func, select
from sqlalchemy.exc import OperationalError

from .store import CORE_ROLE, Store, role_table

journal_table = role_table(
    CORE_ROLE,
    "journal",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("role", String(16), nullable=False, index=True),
    # inbound: a request a fake served; outbound: a fake calling a peer; callback: a webhook.
    Column("direction", String(10), nullable=False),
    Column("method", String(8), nullable=False),
    Column("url", Text, nullable=False),
    Column("operation_id", String(80), nullable=True),
    Column("status", Integer, nullable=True),
    Column("correlation_id", String(256), nullable=True, index=True),
    Column("partner_id", String(64), nullable=True),
    Column("duration_ms", Float, nullable=True),
    Column("request_body", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("extra", JSON, nullable=True),
)

log = logging.getLogger("handoff.journal")

_COLUMNS = [column.name for column in journal_table.columns if column.name != "id"]
# The bounds in one indexed statement, built once: older than the age bound, or further
# than the count bound behind the newest entry.
_TRIM = delete(journal_table).where(
    (journal_table.c.at < bindparam("cutoff"))
    | (
        journal_table.c.id
        <= select(func.max(journal_table.c.id)).scalar_subquery() - bindparam("keep")
    )
)
BODY_LIMIT = 4096
FLUSH_EVERY_S = 0.25


_SECRET_NAMES = (
    "apiKey api_key secret token password authorization pan cardNumber cvv cvc ki opc"
    # OAuth 2.0 / OpenID Connect: the tokens an authorization server answers, and what a
    # client presents to get one.
    " access_token refresh_token id_token client_secret auth_req_id assertion client_assertion"
).split()
_SECRET_MEMBER = re.compile(
    rf'"({"|".join(_SECRET_NAMES)})"'
    r'\s*:\s*"[^"]*(?:"|$)',  # a value cut off by the size bound is blanked too
    re.IGNORECASE,
)
# A member the regex could blank is one of these, quoted: looking for them in the lowered
# text first is a third of the regex's cost, and almost no body holds one.
_SECRET_KEYS = tuple(f'"{name.lower()}"' for name in _SECRET_NAMES)
# The same parameters in a form-encoded body (an OAuth 2.0 token request).
_SECRET_PARAMETER = re.compile(
    r"(?<![A-Za-z0-9_])(access_token|refresh_token|id_token|client_secret|auth_req_id"
    r"|assertion|client_assertion|password)=[^&\s]*",
    re.IGNORECASE,
)


def body_text(raw: bytes | str | None) -> str | None:
    """A bounded, redacted text form of a body for the journal.

    Cut first, then blank secret members with one regex: parsing and re-serialising
    every body cost more than the rest of a request.
    """
    if not raw:
        return None
    text = raw[: BODY_LIMIT + 1].decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text[: BODY_LIMIT + 1]
    lowered = text.lower()
    if any(key in lowered for key in _SECRET_KEYS):
        text = _SECRET_MEMBER.sub(r'"\1":"***"', text)
    if "=" in text:
        text = _SECRET_PARAMETER.sub(r"\1=***", text)
    # PostgreSQL text cannot hold NUL: keep it visible as its JSON escape instead.
    text = text.replace("\x00", "\\u0000")
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + "...(truncated)"


class Journal:
    def __init__(self, store: Store, max_entries: int, max_age_s: int) -> None:
        self.store = store
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        # A flush waits for one already writing, so "flush, then query" sees everything.
        self._flush_lock = threading.Lock()
        self._closed = threading.Event()

    def record(self, **fields: Any) -> None:
        # One shape for every row, so a batch is a single executemany.
        entry = dict.fromkeys(_COLUMNS)
        entry.update(fields)
        entry["at"] = entry["at"] or time.time()
        with self._lock:
            self._buffer.append(entry)
            full = len(self._buffer) >= 200
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_forever, daemon=True)
                self._flusher.start()
        if full:
            try:
                self.flush()
            except Exception:  # the journal must never fail the request it describes
                log.warning("journal flush failed; entries kept for the next one", exc_info=True)

    def _flush_forever(self) -> None:
        """Other workers' entries become visible within FLUSH_EVERY_S."""
        while not self._closed.wait(FLUSH_EVERY_S):
            try:
                self.flush()
            except Exception:  # a busy store must not kill the flusher; next round retries
                continue

    def close(self) -> None:
        """Stop the background flusher after a last flush."""
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()

    def flush(self) -> None:
        """Write what is buffered; returns only once every entry recorded before it is stored."""
        with self._flush_lock:
            self._flush()

    def discard(self) -> None:
        """Drop what is buffered, once any flush under way has landed (a scenario's store
        is about to be put back to its snapshot: writing these entries first is wasted)."""
        with self._flush_lock, self._lock:
            self._buffer = []

    def _flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            with self.store.write() as conn:
                conn.execute(journal_table.insert(), batch)
                # One indexed delete: cheap enough to keep the bounds exact on every flush.
                self._trim(conn)
        except OperationalError:
            with self._lock:  # a busy or unreachable store: keep the entries for the next flush
                self._buffer[:0] = batch[-self.max_entries :]
            raise
        except Exception:
            # Anything else would fail again on every flush: drop this batch, keep serving.
            log.exception("journal batch of %d entries dropped", len(batch))

    def _trim(self, conn: Any) -> None:
        conn.execute(_TRIM, {"cutoff": time.time() - self.max_age_s, "keep": self.max_entries})

    def query(
        self,
        *,
        correlation_id: str | None = None,
        role: str | None = None,
        partner_id: str | None = None,
        direction: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        self.flush()
        conditions = []
        if correlation_id:
            conditions.append(journal_table.c.correlation_id == correlation_id)
        if role:
            conditions.append(journal_table.c.role == role)
        if partner_id:
            conditions.append(journal_table.c.partner_id == partner_id)
        if direction:
            conditions.append(journal_table.c.direction == direction)
        with self.store.read() as conn:
            total = conn.execute(
                select(func.count()).select_from(journal_table).where(*conditions)
            ).scalar_one()
            rows = conn.execute(
                select(journal_table)
                .where(*conditions)
                .order_by(journal_table.c.at, journal_table.c.id)
                .offset(offset)
                .limit(limit)
            ).all()
        return total, [dict(row._mapping) for row in rows]
