"""The gateway's rules called directly: card data, exact money, the test issuer, transitions."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import unquote_plus

import pytest
from conftest import T0
from hypothesis import given
from hypothesis import strategies as st

from simulators.core.outbox import new_hub_id
from simulators.core.runtime import Runtime
from simulators.payments import errors, model

CLIENT = "billing-merchant"


def with_check_digit(body: str) -> str:
    for digit in "0123456789":
        if model.luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable")


pans = (
    st.integers(12, 18)
    .flatmap(lambda n: st.from_regex(rf"[1-9][0-9]{{{n - 1}}}", fullmatch=True))
    .map(with_check_digit)
)


SURROUNDINGS = st.text(alphabet=' :"{},_/=', max_size=5)


@given(
    pan=pans,
    separator=st.sampled_from(["", " ", "-", "  ", " - ", "--"]),
    group=st.integers(1, 6),
    before=SURROUNDINGS,
    after=SURROUNDINGS,
)
def test_every_pan_is_found_however_it_is_grouped(pan, separator, group, before, after):
    written = separator.join(pan[i : i + group] for i in range(0, len(pan), group))
    assert model.holds_card_number(before + written + after)
    assert model.find_card_data(json.dumps({"x": before + written}).encode(), "/p") == "x"
    assert "[withheld]" in model.mask_card_numbers(written) and pan not in model.mask_card_numbers(
        written
    )


@given(st.from_regex(r"[0-9]{13,19}", fullmatch=True))
def test_a_run_is_a_pan_exactly_when_luhn_says_so(digits):
    assert model.holds_card_number(digits) == model.luhn_valid(digits)


def test_known_numbers():
    assert model.luhn_valid("4111111111111111") and model.luhn_valid("378282246310005")
    assert not model.holds_card_number("89001012012341234566")  # a 20-digit run: an ICCID
    assert not model.holds_card_number("2026-03-02T09:00:00.000Z")
    assert model.find_card_data(b"", "/p?cvv=1") == "query.cvv"


@given(pan=pans, before=st.sampled_from(["", "9f", "ba-c"]), after=st.sampled_from(["", "e7d0"]))
def test_a_run_inside_a_word_is_not_a_pan(pan, before, after):
    # Hexadecimal identifiers carry long digit runs; only a run standing on its own is a PAN.
    if before or after:
        assert not model.holds_card_number(before + pan + after)
    assert model.holds_card_number(f"{before} {pan} {after}")


@pytest.mark.parametrize(
    "written",
    [
        "card1 4111 1111 1111 1111",
        "v2 4111 1111 1111 1111",
        "4111-1111-1111-1111 7x",
        "no.5 4111111111111111",
    ],
)
def test_a_pan_beside_a_group_that_touches_a_letter_is_found(written):
    # The group a letter touches ("card1", "7x") is part of a word; the groups beside it
    # are a card number written on its own.
    assert model.holds_card_number(written)
    assert model.find_card_data(json.dumps({"note": written}).encode(), "/p") == "note"


def test_a_uuid_is_not_a_pan_even_when_its_leading_groups_are_digits():
    pan = "4111111111111111"
    uuid_shaped = f"{pan[:8]}-{pan[8:12]}-{pan[12:]}-a0b1-c2d3e4f5a6b7"
    assert model.holds_card_number(f"{pan[:8]}-{pan[8:12]}-{pan[12:]}")
    assert not model.holds_card_number(uuid_shaped)
    assert model.holds_card_number(f"{uuid_shaped} {pan}")
    assert model.find_card_data(b'{"a": [{"Card_Verification_Value": 1}]}', "/p") == (
        "a[0].Card_Verification_Value"
    )
    assert model.find_card_data(b'{"token": "tok_visa"}', "/p?limit=10") is None


@pytest.mark.parametrize(
    "written", ["4111  1111  1111  1111", "4111 - 1111 - 1111 - 1111", "4111--1111 -- 1111 1111"]
)
def test_a_pan_with_several_spaces_or_dashes_between_its_groups_is_found(written):
    # The contract allows "spaces or dashes" between the digits, not one of them.
    assert model.holds_card_number(f"card {written} exp 12/29")
    assert model.find_card_data(json.dumps({"name": written}).encode(), "/p") == "name"
    assert model.mask_card_numbers(f"card {written} exp") == f"card {model.WITHHELD} exp"


# How a URL can spell what the screen decodes to a separator, and a digit percent-encoded.
URL_SEPARATORS = ["", " ", "+", "%20", "-", "%2D", "%2d", "++", "%20-%20", "+-+"]


def _digit(char: str, encoded: bool) -> str:
    return f"%{ord(char):X}" if encoded else char


@given(
    pan=pans,
    separator=st.sampled_from(URL_SEPARATORS),
    group=st.integers(1, 6),
    encoded=st.lists(st.booleans(), min_size=19, max_size=19),
    where=st.sampled_from(["value", "name", "path"]),
)
def test_a_url_refused_for_a_pan_keeps_nothing_of_it_however_it_is_encoded(
    pan, separator, group, encoded, where
):
    digits = [_digit(char, flag) for char, flag in zip(pan, encoded, strict=False)]
    written = separator.join("".join(digits[i : i + group]) for i in range(0, len(pan), group))
    url, rest = {
        "value": (f"/p?status=captured&account.id={written}", "/p?status=captured&account.id="),
        "name": (f"/p?{written}=1&limit=10", "=1&limit=10"),
        "path": (f"/p/{written}?limit=10", "/p/"),
    }[where]
    assert model.find_card_data(b"", url) is not None
    kept = model.url_without_card_data(url)
    assert model.WITHHELD in kept and rest in kept
    assert not model.holds_card_number(unquote_plus(unquote_plus(kept)))


@pytest.mark.parametrize(("url", "kept"), [
    ("/p?account.id=4111+1111+1111+1111", "/p?account.id=[withheld]"),
    ("/p?account.id=4111%201111%201111%201111", "/p?account.id=[withheld]"),
    ("/p?account.id=%34111111111111111&limit=5", "/p?account.id=[withheld]&limit=5"),
    ("/p?status=captured&cvv=737", "/p?status=captured&cvv=[withheld]"),
    ("/p?4111+1111+1111+1111", "/p?[withheld]"),
    ("/p/4111+1111+1111+1111/x?limit=5", "/p/[withheld]/x?limit=5"),
    # A decoded %23 in the path: a "#" that is no fragment here, so what follows is screened.
    ("/p/x#4111 1111 1111 1111", "/p/[withheld]"),
    ("/p?limit=10&account.id=ba-1001", "/p?limit=10&account.id=ba-1001"),
])  # fmt: skip
def test_a_url_is_kept_with_only_its_card_data_withheld(url, kept):
    assert model.url_without_card_data(url) == kept


@pytest.mark.parametrize(("amount", "units", "minor"), [
    ("12.50", "EUR", 1250), ("12.5", "EUR", 1250), ("1200", "JPY", 1200), ("0.001", "KWD", 1),
])  # fmt: skip
def test_money_is_kept_in_minor_units(amount, units, minor):
    money = model.parse_money({"amount": amount, "units": units}, "amount")
    assert money == model.Money(minor, units)
    assert Decimal(money.amount) == Decimal(amount)


@given(st.integers(1, 10**12), st.sampled_from(sorted(model.MINOR_UNITS)))
def test_money_round_trips_exactly(minor, currency):
    money = model.Money(minor, currency)
    assert model.parse_money(money.json(), "amount") == money


def test_money_is_never_rounded():
    with pytest.raises(errors.AmountNotExact):
        model.parse_money({"amount": "0.005", "units": "USD"}, "amount")
    with pytest.raises(errors.UnsupportedCurrency):
        model.parse_money({"amount": "1", "units": "XTS"}, "amount")


def _card(runtime: Runtime, token: str, expiration: str = "2030-01") -> str:
    with runtime.store.write() as conn:
        method = model.create_payment_method(
            conn,
            client_id=CLIENT,
            body={"account": {"id": "ba-1"}, "brand": "visa", "lastFourDigits": "0004",
                  "token": token, "expirationDate": expiration},
            now=T0,
        )  # fmt: skip
    return method.id


def _pay(runtime: Runtime, method_id: str, now: float = T0, capture: bool = False) -> model.Payment:
    with runtime.store.write() as conn:
        return model.create_payment(
            conn,
            client_id=CLIENT,
            method_id=method_id,
            amount=model.Money(1000, "EUR"),
            capture=capture,
            description=None,
            now=now,
        )


def test_the_card_is_good_through_the_last_day_of_its_month(runtime):
    assert model.expires_at("2028-02") == pytest.approx(1835481599.999999)  # 2028-02-29 (leap)
    method_id = _card(runtime, "tok_visa", "2026-03")
    assert _pay(runtime, method_id, now=model.expires_at("2026-03")).status == model.AUTHORIZED
    late = _pay(runtime, method_id, now=model.expires_at("2026-03") + 1)
    assert (late.status, late.decline_code) == (model.DENIED, model.EXPIRED_CARD)


def test_transitions_follow_the_state_machine(runtime):
    method_id = _card(runtime, "tok_visa")
    payment = _pay(runtime, method_id)
    with runtime.store.write() as conn:
        voided = model.void_payment(conn, client_id=CLIENT, payment_id=payment.id, now=T0 + 1)
        assert (voided.status, voided.status_date) == (model.VOIDED, T0 + 1)
        with pytest.raises(errors.PaymentVoided):
            model.capture_payment(conn, client_id=CLIENT, payment_id=payment.id, amount=None,
                                  now=T0 + 2)  # fmt: skip
    sale = _pay(runtime, method_id, capture=True)
    assert (sale.status, sale.captured_minor) == (model.CAPTURED, 1000)
    with runtime.store.write() as conn:
        refund, after = model.create_refund(conn, client_id=CLIENT, payment_id=sale.id,
                                            amount=None, reason="goodwill", now=T0 + 3)  # fmt: skip
        assert (refund.amount_minor, after.refunded_minor, after.refundable_minor) == (
            1000,
            1000,
            0,
        )
        with pytest.raises(errors.RefundExceedsCaptured):
            model.create_refund(conn, client_id=CLIENT, payment_id=sale.id, amount=None,
                                reason=None, now=T0 + 4)  # fmt: skip


def test_the_pending_snapshot_is_the_payment_before_the_issuer(runtime):
    payment = _pay(runtime, _card(runtime, "tok_visa"))
    pending = payment.as_pending()
    assert (pending.status, pending.authorized_minor, pending.authorization_code) == (
        model.PENDING_AUTHORIZATION, None, None,
    )  # fmt: skip
    assert pending.id == payment.id and pending.amount_minor == payment.amount_minor


def test_ids_the_stack_mints_are_never_taken_for_card_numbers():
    # Ids travel back in paths, queries and bodies, which the card data screen reads.
    minted = [model.new_id("pay") for _ in range(2000)] + [new_hub_id() for _ in range(2000)]
    assert [found for found in minted if model.find_card_data(b"", f"/x/{found}")] == []
