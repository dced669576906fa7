"""Tests for simulators.core.identifiers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.core.identifiers import (
    FICTITIOUS_UK_CAPACITY,
    ICCID_PATTERN,
    IMSI_PATTERN,
    MSISDN_PATTERN,
    TEST_MCC,
    TEST_MNC,
    TelecomProvider,
    eid_check_digits,
    iccid_for,
    iccid_with_check_digit,
    imsi_for,
    is_fictitious_msisdn,
    is_valid_eid,
    is_valid_iccid,
    is_valid_imsi,
    is_valid_msisdn,
    luhn_check_digit,
    uk_fictitious_msisdn,
)

# Keep hypothesis from writing an example database into the working tree.
NO_DB = settings(database=None, max_examples=200, deadline=None)

VALID_ICCID = "8900101000000000019"
VALID_EID = "89049032123451234512345678901235"
NON_STRINGS: list[object] = [None, 8900101000000000019, 89.0, b"8900101000000000019", ["89"]]
ACTIVATION_CODE = re.compile(r"LPA:1\$smdp\.handoff\.test\$[-0-9A-Z]*")


def _seeded_faker(seed: int = 1234) -> Faker:
    fake = Faker()
    fake.add_provider(TelecomProvider)
    fake.seed_instance(seed)
    return fake


def _replace_digit(value: str, index: int, offset: int) -> str:
    new_digit = str((int(value[index]) + offset) % 10)
    return value[:index] + new_digit + value[index + 1 :]


# --- Luhn / ICCID -------------------------------------------------------------------------


def test_luhn_worked_example() -> None:
    assert luhn_check_digit("890010100000000001") == 9


@pytest.mark.parametrize(
    ("payload", "check"),
    [("7992739871", 3), ("0", 0), ("1", 8), ("89441000000000000", 0)],
)
def test_luhn_known_values(payload: str, check: int) -> None:
    assert luhn_check_digit(payload) == check


@pytest.mark.parametrize("bad", ["", "12a4", "12 34", "١٢٣", "²3"])
def test_luhn_rejects_non_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        luhn_check_digit(bad)


def test_iccid_with_check_digit_appends_luhn() -> None:
    assert iccid_with_check_digit("890010100000000001") == VALID_ICCID
    assert is_valid_iccid(VALID_ICCID)


@pytest.mark.parametrize(
    "bad",
    [
        "8900101000000000018",  # wrong check digit
        "890010100000000019",  # 18 digits
        "890010100000000000019",  # 21 digits
        "8800101000000000011",  # prefix 88, Luhn-valid
        iccid_with_check_digit("790010100000000001"),  # prefix 79, Luhn-valid
        "89001010000000000a9",
        " 8900101000000000019",
        "8900101000000000019\n",
        "",
    ],
)
def test_is_valid_iccid_rejects(bad: str) -> None:
    assert not is_valid_iccid(bad)


@pytest.mark.parametrize("bad", NON_STRINGS)
def test_is_valid_iccid_rejects_non_str(bad: object) -> None:
    assert not is_valid_iccid(bad)


def test_is_valid_iccid_accepts_20_digits() -> None:
    twenty = iccid_with_check_digit("8944100000000000001")
    assert len(twenty) == 20
    assert is_valid_iccid(twenty)


@pytest.mark.parametrize("length", [19, 20])
def test_iccid_pattern_agrees(length: int) -> None:
    iccid = iccid_for("44", "10", 42, length)
    assert re.fullmatch(ICCID_PATTERN, iccid)
    assert not re.fullmatch(ICCID_PATTERN, "8" * length)


def test_iccid_for_layout() -> None:
    assert iccid_for("001", "01", 1) == VALID_ICCID
    iccid = iccid_for("44", "10", 7)
    assert iccid.startswith("894410")
    assert iccid[:-1] == "894410" + "7".zfill(12)
    assert len(iccid) == 19
    assert is_valid_iccid(iccid)
    assert len(iccid_for("44", "10", 7, length=20)) == 20


def test_iccid_for_is_deterministic_and_distinct() -> None:
    first = [iccid_for("44", "10", n) for n in range(50)]
    assert first == [iccid_for("44", "10", n) for n in range(50)]
    assert len(set(first)) == 50


def test_iccid_for_max_serial_fits() -> None:
    assert is_valid_iccid(iccid_for("44", "10", 10**12 - 1))


@pytest.mark.parametrize(
    ("country_code", "issuer", "serial", "length"),
    [
        ("44", "10", 10**12, 19),  # one digit too many
        ("44", "10", 10**13, 20),
        ("44", "10", -1, 19),
        ("44", "1234567890123456", 0, 19),  # no room left for a serial
        ("44", "10", 0, 18),
        ("44", "10", 0, 21),
        ("4a", "10", 0, 19),
        ("44", "", 0, 19),
    ],
)
def test_iccid_for_rejects(country_code: str, issuer: str, serial: int, length: int) -> None:
    with pytest.raises(ValueError):
        iccid_for(country_code, issuer, serial, length)


@NO_DB
@given(body=st.text(alphabet="0123456789", min_size=16, max_size=17))
def test_iccid_with_check_digit_always_valid(body: str) -> None:
    assert is_valid_iccid(iccid_with_check_digit("89" + body))


@NO_DB
@given(
    body=st.text(alphabet="0123456789", min_size=16, max_size=17),
    data=st.data(),
)
def test_single_digit_change_breaks_iccid(body: str, data: st.DataObject) -> None:
    iccid = iccid_with_check_digit("89" + body)
    index = data.draw(st.integers(min_value=0, max_value=len(iccid) - 1))
    offset = data.draw(st.integers(min_value=1, max_value=9))
    tampered = _replace_digit(iccid, index, offset)
    assert not is_valid_iccid(tampered)
    # Luhn alone must notice the change, not just the "89" prefix rule.
    assert luhn_check_digit(tampered[:-1]) != int(tampered[-1])


# --- IMSI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "good", ["001010000000001", "310260123456789", "234150", "00101123456", "90128" + "1"]
)
def test_is_valid_imsi_accepts(good: str) -> None:
    assert is_valid_imsi(good)


@pytest.mark.parametrize(
    "bad",
    [
        "00101",  # 5 digits
        "0010100000000012",  # 16 digits
        "002010000000001",  # MCC starts with 0, not the test MCC
        "000010000000001",
        "0010100000000a1",
        "+00101000000001",
        "",
    ],
)
def test_is_valid_imsi_rejects(bad: str) -> None:
    assert not is_valid_imsi(bad)


@pytest.mark.parametrize("bad", [None, 1010000000001, b"001010000000001"])
def test_is_valid_imsi_rejects_non_str(bad: object) -> None:
    assert not is_valid_imsi(bad)


def test_imsi_for() -> None:
    assert (TEST_MCC, TEST_MNC) == ("001", "01")
    assert imsi_for(1) == "001010000000001"
    assert imsi_for(9_999_999_999) == "001019999999999"
    assert imsi_for(5, mcc="310", mnc="260") == "310260000000005"
    assert imsi_for(5, mcc="310", mnc="410") == "310410000000005"  # 3-digit MNC
    assert is_valid_imsi(imsi_for(123))
    assert re.fullmatch(IMSI_PATTERN, imsi_for(123))


@pytest.mark.parametrize(
    ("msin", "mcc", "mnc"),
    [
        (10**10, TEST_MCC, TEST_MNC),  # 16 digits
        (10**9, "310", "410"),  # 16 digits with a 3-digit MNC
        (-1, TEST_MCC, TEST_MNC),
        (0, "01", TEST_MNC),
        (0, "002", TEST_MNC),
        (0, TEST_MCC, "1"),
        (0, TEST_MCC, "0001"),
        (0, "0a1", TEST_MNC),
    ],
)
def test_imsi_for_rejects(msin: int, mcc: str, mnc: str) -> None:
    with pytest.raises(ValueError):
        imsi_for(msin, mcc=mcc, mnc=mnc)


# --- MSISDN -------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["+447700900123", "+12025550143", "+12345", "+123456789012345"])
def test_is_valid_msisdn_accepts(good: str) -> None:
    assert is_valid_msisdn(good)
    assert re.fullmatch(MSISDN_PATTERN, good)


@pytest.mark.parametrize(
    "bad",
    [
        "447700900123",  # no plus
        "+047700900123",  # leading zero
        "+1234",  # too short
        "+1234567890123456",  # 16 digits
        "+44 7700 900123",
        "+447700900123\n",
        "+44770090012a",
        "",
    ],
)
def test_is_valid_msisdn_rejects(bad: str) -> None:
    assert not is_valid_msisdn(bad)


@pytest.mark.parametrize("bad", [None, 447700900123, b"+447700900123"])
def test_is_valid_msisdn_rejects_non_str(bad: object) -> None:
    assert not is_valid_msisdn(bad)
    assert not is_fictitious_msisdn(bad)


@pytest.mark.parametrize(
    "inside",
    [
        "+447700900000",
        "+447700900999",
        "+12025550100",
        "+12025550199",
        "+19995550150",
        "+61491570156",
        "+61491570159",
    ],
)
def test_is_fictitious_msisdn_inside(inside: str) -> None:
    assert is_fictitious_msisdn(inside)
    assert is_valid_msisdn(inside)


@pytest.mark.parametrize(
    "outside",
    [
        "+447701900000",
        "+447700901000",
        "+4477009000000",
        "+44770090099",
        "+12025550099",
        "+12025550200",
        "+11025550100",  # area code starting with 1
        "+10205550100",  # area code starting with 0
        "+12025560100",
        "+61491570155",
        "+61491570160",
        "447700900000",
        "+447700900000 ",
        "",
    ],
)
def test_is_fictitious_msisdn_outside(outside: str) -> None:
    assert not is_fictitious_msisdn(outside)


def test_uk_fictitious_msisdn() -> None:
    assert FICTITIOUS_UK_CAPACITY == 1000
    assert uk_fictitious_msisdn(0) == "+447700900000"
    assert uk_fictitious_msisdn(42) == "+447700900042"
    assert uk_fictitious_msisdn(999) == "+447700900999"
    numbers = {uk_fictitious_msisdn(n) for n in range(FICTITIOUS_UK_CAPACITY)}
    assert len(numbers) == FICTITIOUS_UK_CAPACITY
    assert all(is_fictitious_msisdn(n) and is_valid_msisdn(n) for n in numbers)


@pytest.mark.parametrize("n", [-1, 1000, 10**6])
def test_uk_fictitious_msisdn_rejects(n: int) -> None:
    with pytest.raises(ValueError):
        uk_fictitious_msisdn(n)


# --- EID ----------------------------------------------------------------------------------


def test_known_eid() -> None:
    assert int(VALID_EID) % 97 == 1
    assert is_valid_eid(VALID_EID)
    assert eid_check_digits(VALID_EID[:30]) == VALID_EID[30:]


def test_tampered_eid_invalid() -> None:
    assert not is_valid_eid(VALID_EID[:-1] + "6")
    assert not is_valid_eid(_replace_digit(VALID_EID, 10, 1))
    # Swapping two adjacent different digits is also caught by MOD 97-10.
    swapped = VALID_EID[:8] + VALID_EID[9] + VALID_EID[8] + VALID_EID[10:]
    assert swapped != VALID_EID
    assert not is_valid_eid(swapped)


def test_eid_check_digits_zero_padded() -> None:
    # Find a body whose check value is below 10 to prove the leading zero is kept.
    body = next(f"{n:030d}" for n in range(1000) if 98 - int(f"{n:030d}00") % 97 < 10)
    check = eid_check_digits(body)
    assert len(check) == 2
    assert check.startswith("0")
    assert is_valid_eid(body + check)


@pytest.mark.parametrize(
    "bad",
    [
        VALID_EID[:-1],  # 31 digits
        VALID_EID + "0",  # 33 digits
        VALID_EID[:-2] + "3a",
        "",
        " " + VALID_EID[1:],
    ],
)
def test_is_valid_eid_rejects(bad: str) -> None:
    assert not is_valid_eid(bad)


@pytest.mark.parametrize("bad", [None, int(VALID_EID), b"89049032123451234512345678901235"])
def test_is_valid_eid_rejects_non_str(bad: object) -> None:
    assert not is_valid_eid(bad)


@pytest.mark.parametrize("bad", ["", "8904903212345123451234567890", "8" * 31, "a" * 30])
def test_eid_check_digits_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        eid_check_digits(bad)


@NO_DB
@given(
    body=st.text(alphabet="0123456789", min_size=30, max_size=30),
    data=st.data(),
)
def test_eid_property(body: str, data: st.DataObject) -> None:
    eid = body + eid_check_digits(body)
    assert is_valid_eid(eid)
    index = data.draw(st.integers(min_value=0, max_value=31))
    offset = data.draw(st.integers(min_value=1, max_value=9))
    assert not is_valid_eid(_replace_digit(eid, index, offset))


# --- Faker provider -----------------------------------------------------------------------


PROVIDER_CHECKS: list[tuple[str, Callable[[object], bool]]] = [
    ("iccid", is_valid_iccid),
    ("imsi", is_valid_imsi),
    ("msisdn", lambda v: is_valid_msisdn(v) and is_fictitious_msisdn(v)),
    (
        "uk_msisdn",
        lambda v: isinstance(v, str) and v.startswith("+447700900") and is_fictitious_msisdn(v),
    ),
    ("eid", is_valid_eid),
    (
        "esim_activation_code",
        lambda v: isinstance(v, str) and ACTIVATION_CODE.fullmatch(v) is not None,
    ),
]


@pytest.mark.parametrize(("method", "check"), PROVIDER_CHECKS)
def test_provider_output_is_valid(method: str, check: Callable[[object], bool]) -> None:
    fake = _seeded_faker()
    values = [getattr(fake, method)() for _ in range(500)]
    invalid = [v for v in values if not check(v)]
    assert invalid == []
    assert len(set(values)) > 1


def test_provider_imsi_uses_test_network() -> None:
    fake = _seeded_faker()
    assert all(fake.imsi().startswith(TEST_MCC + TEST_MNC) for _ in range(100))


def test_provider_iccid_20_digits() -> None:
    fake = _seeded_faker()
    for _ in range(100):
        iccid = fake.iccid(length=20)
        assert len(iccid) == 20
        assert is_valid_iccid(iccid)


def test_provider_msisdn_covers_all_regions() -> None:
    fake = _seeded_faker()
    prefixes = {fake.msisdn()[:3] for _ in range(500)}
    assert prefixes == {"+44", "+61"} | {p for p in prefixes if p.startswith("+1")}
    assert "+44" in prefixes
    assert "+61" in prefixes
    assert any(p.startswith("+1") for p in prefixes)


def test_provider_activation_code_shape() -> None:
    fake = _seeded_faker()
    code = fake.esim_activation_code()
    matching_id = code.split("$")[2]
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", matching_id)
    assert fake.esim_activation_code(host="smdp.example.test").startswith(
        "LPA:1$smdp.example.test$"
    )


def test_provider_ki_redacted() -> None:
    fake = _seeded_faker()
    assert fake.ki_redacted() == "*" * 32


def test_provider_is_reproducible() -> None:
    methods = [name for name, _ in PROVIDER_CHECKS]
    first, second = _seeded_faker(), _seeded_faker()
    run_a = [getattr(first, m)() for _ in range(100) for m in methods]
    run_b = [getattr(second, m)() for _ in range(100) for m in methods]
    assert run_a == run_b
    other = _seeded_faker(seed=4321)
    assert [getattr(other, m)() for _ in range(100) for m in methods] != run_a
