"""The payment gateway's rules: card data it refuses (PCI DSS), tokenised cards (TMF670), and
payments with their authorisation, capture, void and refunds (TMF676).

No web layer here: every rule takes a `Connection` and plain values, so tests call it directly.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    Row,
    String,
    bindparam,
    select,
)

from simulators.core import audit
from simulators.core.store import count_and_page, role_table, select_equal, update_equal
from simulators.core.tenancy import BILLING_MERCHANT, create_partner, partners, peer_api_key

from . import errors

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

ROLE = "payments"
CLIENT_CAPABILITIES = (
    "MANAGE_PAYMENT_METHODS",
    "TAKE_PAYMENTS",
    "REFUND_PAYMENTS",
    "MANAGE_EVENTS",
)

# TMF676 payment statuses, plus `voided` for an authorisation released before capture.
PENDING_AUTHORIZATION = "pendingAuthorization"
AUTHORIZED = "authorized"
CAPTURED = "captured"
FAILED = "failed"
DENIED = "denied"
VOIDED = "voided"

METHOD_ACTIVE = "active"
METHOD_EXPIRED = "expired"
METHOD_BLOCKED = "blocked"

REFUND_COMPLETED = "completed"

SOFT = "soft"
HARD = "hard"

# ISO 4217 minor units of the currencies the gateway settles in.
MINOR_UNITS = {"EUR": 2, "GBP": 2, "USD": 2, "AUD": 2, "CAD": 2, "CHF": 2, "JPY": 0, "KWD": 3}

# The issuer's test cards, by token (documented in contracts/payments.yaml).
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
ISSUER_UNAVAILABLE = "ISSUER_UNAVAILABLE"
STOLEN_CARD = "STOLEN_CARD"
DO_NOT_HONOR = "DO_NOT_HONOR"
EXPIRED_CARD = "EXPIRED_CARD"
ISSUER_UNAVAILABLE_FOR_S = 600.0
TEST_TOKENS = {
    "tok_soft_insufficient_funds": INSUFFICIENT_FUNDS,
    "tok_soft_issuer_unavailable": ISSUER_UNAVAILABLE,
    "tok_hard_stolen_card": STOLEN_CARD,
    "tok_hard_do_not_honor": DO_NOT_HONOR,
}
DECLINES = {
    INSUFFICIENT_FUNDS: (
        SOFT,
        "The issuer declined for insufficient funds; a later attempt may pass",
    ),
    ISSUER_UNAVAILABLE: (SOFT, "The issuer did not answer; retry after retryAfter"),
    STOLEN_CARD: (HARD, "The issuer reports the card stolen; do not retry"),
    DO_NOT_HONOR: (HARD, "The issuer will not honour this card; do not retry"),
    EXPIRED_CARD: (HARD, "The card is past its expiration date; do not retry"),
}

payment_methods = role_table(
    ROLE,
    "payment_method",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("account_id", String(64), nullable=False),
    Column("account_name", String(100), nullable=True),
    Column("name", String(100), nullable=True),
    Column("brand", String(16), nullable=False),
    Column("last_four", String(4), nullable=False),
    Column("token", String(64), nullable=False),
    Column("expiration", String(7), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deleted_at", Float, nullable=True),
    # What the issuer said before: the hard decline that blocks the card, and the state of
    # the test cards' soft declines (attempts declined, time of the first decline).
    Column("hard_decline", String(32), nullable=True),
    Column("soft_declines", Integer, nullable=False, default=0),
    Column("first_soft_decline_at", Float, nullable=True),
)

payments = role_table(
    ROLE,
    "payment",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("method_id", String(40), nullable=False, index=True),
    Column("account_id", String(64), nullable=False),
    # The card as it was when paid: a deleted payment method leaves its payments readable.
    Column("brand", String(16), nullable=False),
    Column("last_four", String(4), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("authorized_minor", BigInteger, nullable=True),
    Column("captured_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("status_date", Float, nullable=False),
    Column("payment_date", Float, nullable=False),
    Column("decline_code", String(32), nullable=True),
    Column("retry_after", Float, nullable=True),
    Column("authorization_code", String(6), nullable=True),
    Column("description", String(200), nullable=True),
    Column("correlation_id", String(256), nullable=True),
)

refunds = role_table(
    ROLE,
    "payment_refund",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("payment_id", String(40), nullable=False, index=True),
    Column("account_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("reason", String(200), nullable=True),
    Column("refund_date", Float, nullable=False),
    Column("correlation_id", String(256), nullable=True),
)

# Built once and run with bound values (see simulators/core/store.py). FOR UPDATE locks the
# row on PostgreSQL until the operation on it commits; SQLite ignores it.
_METHOD_FOR_UPDATE = (
    select(payment_methods)
    .where(
        payment_methods.c.id == bindparam("id"),
        payment_methods.c.client_id == bindparam("client_id"),
        payment_methods.c.deleted_at.is_(None),
    )
    .with_for_update()
)
_PAYMENT_FOR_UPDATE = (
    select(payments)
    .where(payments.c.id == bindparam("id"), payments.c.client_id == bindparam("client_id"))
    .with_for_update()
)


# --- card data (PCI DSS) ---------------------------------------------------------------------

# A run of digits, spaces or dashes between them (how people and forms write a PAN): any
# number of them, as the contract's definition sets no limit ("4111  1111", "4111 - 1111").
_DIGIT_RUN = re.compile(r"[0-9](?:[ -]*[0-9])*")
# A run with a letter on either side is part of a word, such as a hexadecimal identifier
# ("9f4111111111111111ab..."), not a number written on its own. Card scanners bound a PAN
# the same way; without it, an identifier whose digits happen to pass Luhn is refused.
_LETTER = re.compile(r"[A-Za-z]")
# A UUID is an identifier however many of its leading groups happen to be digits
# ("41111111-1111-1111-..." reads as 16 digits in groups): correlation IDs are UUIDs.
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_SEPARATOR = re.compile(r"[ -]+")
_CVV_NAMES = frozenset(
    {
        "cvv",
        "cvc",
        "cvv2",
        "cvc2",
        "cid",
        "csc",
        "securitycode",
        "cardsecuritycode",
        "cardverificationvalue",
        "cardverificationcode",
    }
)
_CVV_MEMBER = re.compile(r'"([A-Za-z0-9_-]{3,40})"\s*:')


def luhn_valid(digits: str) -> bool:
    """ISO/IEC 7812 check: from the right, double every second digit, subtract 9 above 9."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def holds_card_number(text: str) -> bool:
    """Whether `text` holds a PAN: 13 to 19 digits passing Luhn, alone in its run of digits
    or as whole separated groups of a longer run ("4111 1111 1111 1111 99"). A group that
    a letter touches belongs to a word and is not part of one ("9f41111111111111ab" is an
    identifier), but the whole groups beside it still count ("card1 4111 1111 1111 1111");
    a UUID is never one."""
    if "-" in text:
        text = _UUID.sub("/", text)
    for match in _DIGIT_RUN.finditer(text):
        start, end = match.span()
        groups = _SEPARATOR.split(match.group())
        if start and _LETTER.match(text, start - 1):
            groups = groups[1:]
        if _LETTER.match(text, end):
            groups = groups[:-1]
        for first in range(len(groups)):
            digits = ""
            for group in groups[first:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    return True
    return False


def is_cvv_name(name: str) -> bool:
    return name.replace("_", "").replace("-", "").lower() in _CVV_NAMES


WITHHELD = "[withheld]"


def mask_card_numbers(text: str) -> str:
    """`text` with every run of 13 digits or more replaced, for what may be kept of it."""
    return re.sub(r"[0-9](?:[ -]*[0-9]){12,}", WITHHELD, text)


def url_without_card_data(url: str) -> str:
    """`url` (path and raw query string) as the journal may keep it: each path segment and
    each query name or value that `find_card_data` finds card data in is replaced whole.

    Whole rather than masking the digits in place: a number in a URL can be written in any
    encoding the screen decodes (`+`, `%20` or `%2D` between groups, `%34` for a digit), and
    a mask run over the raw text would have to undo every one of them exactly as the screen
    does; testing the decoded part with the screen's own rule and dropping the raw part
    cannot miss a spelling the screen refuses. If what is left still decodes to a card
    number, the whole path or query goes.
    """
    path, mark, query = url.partition("?")
    path = "/".join(
        WITHHELD if holds_card_number(unquote_plus(segment)) else segment
        for segment in path.split("/")
    )
    if holds_card_number(unquote_plus(path)):
        path = f"/{WITHHELD}"
    if query:
        pairs = []
        for pair in query.split("&"):
            name, equals, value = pair.partition("=")
            named = unquote_plus(name)
            if is_cvv_name(named) or holds_card_number(unquote_plus(value)):
                value = WITHHELD
            if holds_card_number(named):
                name = WITHHELD
            pairs.append(f"{name}{equals}{value}")
        query = "&".join(pairs)
        if holds_card_number(unquote_plus(query)):
            query = WITHHELD
    return mask_card_numbers(f"{path}{mark}{query}")


def _members(value: Any, where: str) -> Iterator[tuple[str, str, str | None]]:
    """(field, member name or None, text) for every key and scalar of a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            field = f"{where}.{key}" if where else str(key)
            yield field, str(key), str(key)
            yield from _members(item, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _members(item, f"{where}[{index}]")
    elif isinstance(value, str | int | float | Decimal) and not isinstance(value, bool):
        yield where or "(body)", "", str(value)


def find_card_data(raw: bytes, url: str) -> str | None:
    """Where a request holds card data (a PAN or a CVV member), or None.

    The body is read as JSON when it is JSON, so a PAN written with JSON escapes is found
    and the culprit is named by its path; and as text in any case, so a body that is not
    JSON, or not what its Content-Type says, is screened too.
    """
    if raw:
        text = raw.decode("utf-8", "replace")
        try:
            document = json.loads(text, parse_float=Decimal)
        except (ValueError, RecursionError):
            document = None
        if document is not None:
            for field, name, value in _members(document, ""):
                if name and is_cvv_name(name):
                    return field
                if value is not None and holds_card_number(value):
                    return field
        if any(is_cvv_name(name) for name in _CVV_MEMBER.findall(text)):
            return "(body)"
        if holds_card_number(text):
            return "(body)"
    # Split at the first "?" only, as `url_without_card_data` does: `urlsplit` would drop
    # what follows a "#" (a decoded %23 in the path) unscreened, and the journal keeps it.
    path, _, query = url.partition("?")
    if holds_card_number(unquote_plus(path)):
        return "(path)"
    for name, value in parse_qsl(query, keep_blank_values=True):
        if is_cvv_name(name) or holds_card_number(name) or holds_card_number(value):
            return f"query.{mask_card_numbers(name)}"
    if holds_card_number(unquote_plus(query)):
        return "(query)"
    return None


# --- money -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Money:
    minor: int
    currency: str

    @property
    def amount(self) -> str:
        """The decimal string in the major unit, with exactly the currency's minor digits."""
        exponent = MINOR_UNITS[self.currency]
        return str((Decimal(self.minor) / (10**exponent)).quantize(Decimal(1).scaleb(-exponent)))

    def json(self) -> dict[str, str]:
        return {"amount": self.amount, "units": self.currency}


def parse_money(value: Any, field: str) -> Money:
    """A Money from `{amount, units}`: exact in the currency's minor unit, above zero.

    Nothing is rounded: an amount with more fraction digits than its currency has is a
    refusal, as a card network would refuse it.
    """
    currency = str(value["units"])
    if currency not in MINOR_UNITS:
        raise errors.UnsupportedCurrency(
            f"{field}.units: {currency} is not a currency this gateway settles in",
            field=f"{field}.units",
        )
    try:
        amount = Decimal(str(value["amount"]))
    except InvalidOperation:
        raise errors.AmountNotExact(
            f"{field}.amount is not a decimal number", field=f"{field}.amount"
        ) from None
    exponent = MINOR_UNITS[currency]
    minor = amount.scaleb(exponent)
    if not amount.is_finite() or minor != minor.to_integral_value():
        raise errors.AmountNotExact(
            f"{field}.amount: {currency} has {exponent} decimal places; "
            f"{value['amount']} is not exact in it",
            field=f"{field}.amount",
        )
    if minor <= 0:
        raise errors.AmountNotPositive(
            f"{field}.amount must be more than zero", field=f"{field}.amount"
        )
    return Money(int(minor), currency)


# --- what the rules hand back ----------------------------------------------------------------


@dataclass(frozen=True)
class PaymentMethod:
    id: str
    client_id: str
    account_id: str
    account_name: str | None
    name: str | None
    brand: str
    last_four: str
    token: str
    expiration: str
    created_at: float
    hard_decline: str | None
    status: str


@dataclass(frozen=True)
class Payment:
    id: str
    client_id: str
    method_id: str
    account_id: str
    brand: str
    last_four: str
    currency: str
    amount_minor: int
    authorized_minor: int | None
    captured_minor: int
    refunded_minor: int
    status: str
    status_date: float
    payment_date: float
    decline_code: str | None
    retry_after: float | None
    authorization_code: str | None
    description: str | None

    def money(self, minor: int) -> Money:
        return Money(minor, self.currency)

    @property
    def refundable_minor(self) -> int:
        return self.captured_minor - self.refunded_minor

    def as_pending(self) -> Payment:
        """The payment as it stood before the issuer answered (what PaymentCreateEvent shows)."""
        return replace(
            self,
            status=PENDING_AUTHORIZATION,
            status_date=self.payment_date,
            authorized_minor=None,
            captured_minor=0,
            decline_code=None,
            retry_after=None,
            authorization_code=None,
        )


@dataclass(frozen=True)
class Refund:
    id: str
    client_id: str
    payment_id: str
    account_id: str
    currency: str
    amount_minor: int
    reason: str | None
    refund_date: float


# Hex digits written as the letters a-p: an id the gateway mints holds no digit at all, so
# no id a merchant sends back can ever be taken for a card number.
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex.translate(_LETTERS)}"


def expires_at(expiration: str) -> float:
    """The end of the card's expiration month, UTC: a card is good through its last day."""
    year, month = (int(part) for part in expiration.split("-"))
    last_day = calendar.monthrange(year, month)[1]
    return datetime(year, month, last_day, 23, 59, 59, 999999, UTC).timestamp()


def _method_from_row(row: Row[Any], now: float) -> PaymentMethod:
    if row.hard_decline is not None:
        status = METHOD_BLOCKED
    elif now > expires_at(row.expiration):
        status = METHOD_EXPIRED
    else:
        status = METHOD_ACTIVE
    return PaymentMethod(
        id=row.id,
        client_id=row.client_id,
        account_id=row.account_id,
        account_name=row.account_name,
        name=row.name,
        brand=row.brand,
        last_four=row.last_four,
        token=row.token,
        expiration=row.expiration,
        created_at=row.created_at,
        hard_decline=row.hard_decline,
        status=status,
    )


def _payment_from_row(row: Row[Any]) -> Payment:
    return Payment(
        id=row.id,
        client_id=row.client_id,
        method_id=row.method_id,
        account_id=row.account_id,
        brand=row.brand,
        last_four=row.last_four,
        currency=row.currency,
        amount_minor=row.amount_minor,
        authorized_minor=row.authorized_minor,
        captured_minor=row.captured_minor,
        refunded_minor=row.refunded_minor,
        status=row.status,
        status_date=row.status_date,
        payment_date=row.payment_date,
        decline_code=row.decline_code,
        retry_after=row.retry_after,
        authorization_code=row.authorization_code,
        description=row.description,
    )


def _refund_from_row(row: Row[Any]) -> Refund:
    return Refund(
        id=row.id,
        client_id=row.client_id,
        payment_id=row.payment_id,
        account_id=row.account_id,
        currency=row.currency,
        amount_minor=row.amount_minor,
        reason=row.reason,
        refund_date=row.refund_date,
    )


def _audit(
    conn: Connection, client_id: str, action: str, entity: str, entity_id: str, now: float,
    correlation_id: str | None, **details: Any,
) -> None:  # fmt: skip
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=f"client:{client_id}",
        partner_id=client_id,
        action=action,
        entity_type=entity,
        entity_id=entity_id,
        correlation_id=correlation_id,
        details={key: value for key, value in details.items() if value is not None} or None,
    )


# --- payment methods (TMF670) ----------------------------------------------------------------


def create_payment_method(
    conn: Connection,
    *,
    client_id: str,
    body: dict[str, Any],
    now: float,
    correlation_id: str | None = None,
) -> PaymentMethod:
    """Register a tokenised card; the gateway keeps the token and the card's summary only."""
    method_id = new_id("pm")
    account = body["account"]
    conn.execute(
        payment_methods.insert(),
        {
            "id": method_id,
            "client_id": client_id,
            "account_id": account["id"],
            "account_name": account.get("name"),
            "name": body.get("name"),
            "brand": body["brand"],
            "last_four": body["lastFourDigits"],
            "token": body["token"],
            "expiration": body["expirationDate"],
            "created_at": now,
            "soft_declines": 0,
        },
    )
    _audit(conn, client_id, "paymentMethod.create", "paymentMethod", method_id, now,
           correlation_id, brand=body["brand"], lastFourDigits=body["lastFourDigits"])  # fmt: skip
    return get_payment_method(conn, client_id, method_id, now)


def _method_row(conn: Connection, client_id: str, method_id: str) -> Row[Any] | None:
    return conn.execute(_METHOD_FOR_UPDATE, {"id": method_id, "client_id": client_id}).first()


def get_payment_method(
    conn: Connection, client_id: str, method_id: str, now: float
) -> PaymentMethod:
    row = _method_row(conn, client_id, method_id)
    if row is None:
        raise errors.PaymentMethodNotFound(f"No payment method {method_id}")
    return _method_from_row(row, now)


def list_payment_methods(
    conn: Connection,
    client_id: str,
    *,
    now: float,
    account_id: str | None = None,
    status: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[PaymentMethod]]:
    conditions: list[Any] = [
        payment_methods.c.client_id == client_id,
        payment_methods.c.deleted_at.is_(None),
    ]
    if account_id is not None:
        conditions.append(payment_methods.c.account_id == account_id)
    if status is None:
        total, rows = count_and_page(
            conn, payment_methods, conditions, [payment_methods.c.pk], offset, limit
        )
        return total, [_method_from_row(row, now) for row in rows]
    # The status depends on the clock (expiry), so it is filtered after it is known.
    every = conn.execute(
        select(payment_methods).where(*conditions).order_by(payment_methods.c.pk)
    ).all()
    found = [m for m in (_method_from_row(row, now) for row in every) if m.status == status]
    return len(found), found[offset : offset + limit]


def delete_payment_method(
    conn: Connection, client_id: str, method_id: str, now: float, correlation_id: str | None = None
) -> None:
    """Remove the card from use; its payments keep their own summary of it."""
    get_payment_method(conn, client_id, method_id, now)
    update_equal(conn, payment_methods, {"id": method_id}, deleted_at=now)
    _audit(conn, client_id, "paymentMethod.delete", "paymentMethod", method_id, now, correlation_id)


# --- the issuer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerAnswer:
    approved: bool
    decline_code: str | None = None
    retry_after: float | None = None

    @property
    def decline_type(self) -> str | None:
        return DECLINES[self.decline_code][0] if self.decline_code else None


def ask_issuer(conn: Connection, method: Row[Any], now: float) -> IssuerAnswer:
    """The test issuer's answer for this card at `now`, remembering what the test cards need
    to answer the next attempt (a soft decline passes on retry, a hard one blocks the card)."""
    code = TEST_TOKENS.get(method.token)
    answer = IssuerAnswer(approved=True)
    values: dict[str, Any] = {}
    if now > expires_at(method.expiration):
        answer = IssuerAnswer(approved=False, decline_code=EXPIRED_CARD)
    elif code == INSUFFICIENT_FUNDS and method.soft_declines == 0:
        answer = IssuerAnswer(approved=False, decline_code=code)
        values["soft_declines"] = method.soft_declines + 1
    elif code == ISSUER_UNAVAILABLE:
        first = method.first_soft_decline_at
        if first is None:
            first = values["first_soft_decline_at"] = now
        if now < first + ISSUER_UNAVAILABLE_FOR_S:
            answer = IssuerAnswer(
                approved=False, decline_code=code, retry_after=first + ISSUER_UNAVAILABLE_FOR_S
            )
            values["soft_declines"] = method.soft_declines + 1
    elif code in (STOLEN_CARD, DO_NOT_HONOR):
        answer = IssuerAnswer(approved=False, decline_code=code)
    if answer.decline_type == HARD:
        values["hard_decline"] = answer.decline_code
    if values:
        update_equal(conn, payment_methods, {"id": method.id}, **values)
    return answer


def authorization_code(payment_id: str) -> str:
    """Six characters, as issuers return them (ISO 8583 field 38), derived from the payment."""
    digest = hashlib.sha256(payment_id.encode()).hexdigest().upper()
    return digest[:6]


# --- payments (TMF676) -----------------------------------------------------------------------


def create_payment(
    conn: Connection,
    *,
    client_id: str,
    method_id: str,
    amount: Money,
    capture: bool,
    description: str | None,
    now: float,
    correlation_id: str | None = None,
) -> Payment:
    """Ask the issuer to authorise `amount` on the card (and capture it all with `capture`).

    A card a hard decline blocked is refused before the issuer is asked: card network rules
    (e.g. Visa's "issuer will never approve" category) forbid retrying it.
    """
    method = _method_row(conn, client_id, method_id)
    if method is None:
        raise errors.UnknownPaymentMethod(
            f"paymentMethod.id: no payment method {method_id}", field="paymentMethod.id"
        )
    if method.hard_decline is not None:
        raise errors.HardDeclineNotRetryable(
            f"This card was declined with {method.hard_decline}, which must not be retried",
            field="paymentMethod.id",
            declineCode=method.hard_decline,
        )
    answer = ask_issuer(conn, method, now)
    payment_id = new_id("pay")
    values: dict[str, Any] = {
        "id": payment_id,
        "client_id": client_id,
        "method_id": method.id,
        "account_id": method.account_id,
        "brand": method.brand,
        "last_four": method.last_four,
        "currency": amount.currency,
        "amount_minor": amount.minor,
        "captured_minor": 0,
        "refunded_minor": 0,
        "status_date": now,
        "payment_date": now,
        "description": description,
        "correlation_id": correlation_id,
    }
    if answer.approved:
        values.update(
            status=CAPTURED if capture else AUTHORIZED,
            authorized_minor=amount.minor,
            captured_minor=amount.minor if capture else 0,
            authorization_code=authorization_code(payment_id),
        )
    else:
        values.update(
            status=FAILED if answer.decline_type == SOFT else DENIED,
            decline_code=answer.decline_code,
            retry_after=answer.retry_after,
        )
    conn.execute(payments.insert(), values)
    _audit(conn, client_id, "payment.create", "payment", payment_id, now, correlation_id,
           status=values["status"], amount=amount.amount, currency=amount.currency,
           declineCode=answer.decline_code)  # fmt: skip
    return get_payment(conn, client_id, payment_id)


def _payment_row(conn: Connection, client_id: str, payment_id: str) -> Row[Any] | None:
    return conn.execute(_PAYMENT_FOR_UPDATE, {"id": payment_id, "client_id": client_id}).first()


def get_payment(conn: Connection, client_id: str, payment_id: str) -> Payment:
    row = _payment_row(conn, client_id, payment_id)
    if row is None:
        raise errors.PaymentNotFound(f"No payment {payment_id}")
    return _payment_from_row(row)


def list_payments(
    conn: Connection,
    client_id: str,
    *,
    status: str | None = None,
    account_id: str | None = None,
    method_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Payment]]:
    conditions: list[Any] = [payments.c.client_id == client_id]
    if status is not None:
        conditions.append(payments.c.status == status)
    if account_id is not None:
        conditions.append(payments.c.account_id == account_id)
    if method_id is not None:
        conditions.append(payments.c.method_id == method_id)
    total, rows = count_and_page(conn, payments, conditions, [payments.c.pk], offset, limit)
    return total, [_payment_from_row(row) for row in rows]


def _not_in_status(payment: Payment, operation: str) -> errors.PaymentStateConflict:
    """The refusal of `operation` on a payment in a status that does not allow it."""
    kind: type[errors.PaymentStateConflict]
    if payment.status == VOIDED:
        kind = errors.PaymentVoided
    elif payment.status == CAPTURED:
        kind = errors.PaymentAlreadyCaptured
    else:
        kind = errors.PaymentNotAuthorized
    return kind(
        f"A payment that is {payment.status} cannot be {operation}",
        paymentStatus=payment.status,
    )


def _check_currency(payment: Payment, amount: Money, field: str) -> None:
    if amount.currency != payment.currency:
        raise errors.CurrencyMismatch(
            f"{field}.units: the payment is in {payment.currency}, not {amount.currency}",
            field=f"{field}.units",
        )


def capture_payment(
    conn: Connection,
    *,
    client_id: str,
    payment_id: str,
    amount: Money | None,
    now: float,
    correlation_id: str | None = None,
) -> Payment:
    """Capture an authorised payment once, all of it or part (the rest is released)."""
    payment = get_payment(conn, client_id, payment_id)
    if payment.status != AUTHORIZED:
        raise _not_in_status(payment, "captured")
    authorized = payment.authorized_minor or 0
    if amount is not None:
        _check_currency(payment, amount, "amount")
        if amount.minor > authorized:
            raise errors.CaptureExceedsAuthorized(
                f"Capturing {amount.amount} {amount.currency} exceeds the authorised "
                f"{payment.money(authorized).amount}",
                field="amount.amount",
                paymentStatus=payment.status,
            )
    captured = authorized if amount is None else amount.minor
    update_equal(
        conn,
        payments,
        {"id": payment.id},
        status=CAPTURED,
        captured_minor=captured,
        status_date=now,
    )
    _audit(conn, client_id, "payment.capture", "payment", payment.id, now, correlation_id,
           amount=payment.money(captured).amount)  # fmt: skip
    return get_payment(conn, client_id, payment.id)


def void_payment(
    conn: Connection,
    *,
    client_id: str,
    payment_id: str,
    now: float,
    correlation_id: str | None = None,
) -> Payment:
    """Release an authorisation nothing was captured from."""
    payment = get_payment(conn, client_id, payment_id)
    if payment.status != AUTHORIZED:
        raise _not_in_status(payment, "voided")
    update_equal(conn, payments, {"id": payment.id}, status=VOIDED, status_date=now)
    _audit(conn, client_id, "payment.void", "payment", payment.id, now, correlation_id)
    return get_payment(conn, client_id, payment.id)


def create_refund(
    conn: Connection,
    *,
    client_id: str,
    payment_id: str,
    amount: Money | None,
    reason: str | None,
    now: float,
    correlation_id: str | None = None,
) -> tuple[Refund, Payment]:
    """Refund what was captured, all that is left or part of it; never more in total."""
    row = _payment_row(conn, client_id, payment_id)
    if row is None:
        raise errors.UnknownPayment(f"payment.id: no payment {payment_id}", field="payment.id")
    payment = _payment_from_row(row)
    if payment.status != CAPTURED:
        raise errors.PaymentNotCaptured(
            f"A payment that is {payment.status} has nothing captured to refund",
            paymentStatus=payment.status,
        )
    left = payment.refundable_minor
    if amount is not None:
        _check_currency(payment, amount, "amount")
    refunded = left if amount is None else amount.minor
    if refunded > left or refunded <= 0:
        raise errors.RefundExceedsCaptured(
            f"Refunding {payment.money(refunded).amount} {payment.currency} exceeds the "
            f"{payment.money(left).amount} captured and not yet refunded",
            field="amount.amount" if amount is not None else "payment.id",
            paymentStatus=payment.status,
        )
    refund_id = new_id("re")
    conn.execute(
        refunds.insert(),
        {
            "id": refund_id,
            "client_id": client_id,
            "payment_id": payment.id,
            "account_id": payment.account_id,
            "currency": payment.currency,
            "amount_minor": refunded,
            "reason": reason,
            "refund_date": now,
            "correlation_id": correlation_id,
        },
    )
    update_equal(
        conn, payments, {"id": payment.id}, refunded_minor=payment.refunded_minor + refunded
    )
    _audit(conn, client_id, "refund.create", "refund", refund_id, now, correlation_id,
           payment=payment.id, amount=payment.money(refunded).amount)  # fmt: skip
    return get_refund(conn, client_id, refund_id), get_payment(conn, client_id, payment.id)


def get_refund(conn: Connection, client_id: str, refund_id: str) -> Refund:
    row = select_equal(conn, refunds, id=refund_id, client_id=client_id).first()
    if row is None:
        raise errors.RefundNotFound(f"No refund {refund_id}")
    return _refund_from_row(row)


def list_refunds(
    conn: Connection,
    client_id: str,
    *,
    payment_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Refund]]:
    conditions: list[Any] = [refunds.c.client_id == client_id]
    if payment_id is not None:
        conditions.append(refunds.c.payment_id == payment_id)
    total, rows = count_and_page(conn, refunds, conditions, [refunds.c.pk], offset, limit)
    return total, [_refund_from_row(row) for row in rows]


# --- reference data --------------------------------------------------------------------------


def seed_reference_data(runtime: Runtime, conn: Connection, seed: int) -> None:
    """The billing platform as the gateway's merchant client; only added when missing."""
    known = conn.execute(select(partners.c.id).where(partners.c.id == BILLING_MERCHANT)).first()
    if known is not None:
        return
    create_partner(
        conn,
        secret_key=runtime.settings.secret_key,
        partner_id=BILLING_MERCHANT,
        role=ROLE,
        name="Billing platform",
        agreement={"capabilities": list(CLIENT_CAPABILITIES)},
        granted=list(CLIENT_CAPABILITIES),
        now=runtime.clock.now(conn),
        api_key=peer_api_key(runtime.settings, BILLING_MERCHANT),
    )
