"""Telecom identifier validators, deterministic builders and a Faker provider.

Covers ICCID (E.118), IMSI (E.212), MSISDN (E.164), EID (SGP.29) and eSIM activation codes.
"""

from __future__ import annotations

import re
import string
from typing import TypeGuard

from faker.providers import BaseProvider

__all__ = [
    "FICTITIOUS_UK_CAPACITY",
    "ICCID_PATTERN",
    "IMSI_PATTERN",
    "MSISDN_PATTERN",
    "TEST_MCC",
    "TEST_MNC",
    "TelecomProvider",
    "eid_check_digits",
    "iccid_for",
    "iccid_with_check_digit",
    "imsi_for",
    "is_fictitious_msisdn",
    "is_valid_eid",
    "is_valid_iccid",
    "is_valid_imsi",
    "is_valid_msisdn",
    "luhn_check_digit",
    "uk_fictitious_msisdn",
]

# ITU-T E.212 reserves MCC 001 for test networks (001-01 is the usual test PLMN), so seeded
# SIMs can never collide with a live operator's subscribers.
TEST_MCC = "001"
TEST_MNC = "01"

# Written in the ECMA-262 subset OpenAPI 3 uses, so the same strings go into schemas.
ICCID_PATTERN = r"^89[0-9]{16,17}[0-9]$"
IMSI_PATTERN = r"^[0-9]{6,15}$"
# CAMARA Commonalities phoneNumber pattern.
MSISDN_PATTERN = r"^\+[1-9][0-9]{4,14}$"

FICTITIOUS_UK_CAPACITY = 1000

_DIGITS = re.compile(r"[0-9]+")
_MSISDN = re.compile(MSISDN_PATTERN)
# Ofcom reserves 07700 900000-900999 for drama use.
_FICTITIOUS_UK = re.compile(r"\+447700900[0-9]{3}")
# NANP reserves 555-0100..0199 in every area code for fiction; area codes start with 2-9.
_FICTITIOUS_NA = re.compile(r"\+1[2-9][0-9]{2}55501[0-9]{2}")
# ACMA reserves 0491 570 156-159 among its fictitious mobile numbers.
_FICTITIOUS_AU = re.compile(r"\+6149157015[6-9]")

_UK_FICTITIOUS_BASE = "+447700900"
_AU_FICTITIOUS_BASE = "+6149157015"
# E.118 caps an ICCID at 20 digits including the Luhn digit; 19-digit ones remain common.
_ICCID_LENGTHS = (19, 20)
# E.212 caps an IMSI at 15 digits.
_IMSI_LENGTH = 15
# SGP.29 EID: 30 digits followed by two ISO 7064 MOD 97-10 check digits.
_EID_BODY_LENGTH = 30
_EID_LENGTH = 32
# Shaped like a real SGP.29 EUM prefix (89, country 049, issuer) so parsers reading it behave.
_EID_PREFIX = "89049032"
_DEFAULT_SMDP_HOST = "smdp.handoff.test"
# SGP.22 restricts the activation code matching ID to upper-case alphanumerics and '-'.
_MATCHING_ID_ALPHABET = string.digits + string.ascii_uppercase
_ICCID_COUNTRY_CODES = ("1", "33", "44", "49", "61")


def _is_digits(value: object) -> TypeGuard[str]:
    # str.isdigit() accepts non-ASCII digits such as "²" or Arabic-Indic numerals.
    return isinstance(value, str) and _DIGITS.fullmatch(value) is not None


def luhn_check_digit(digits: str) -> int:
    """Return the Luhn (ISO/IEC 7812-1) check digit for ``digits``, which excludes the check digit.

    Raises ValueError when ``digits`` is not a non-empty string of ASCII digits.
    """
    if not _is_digits(digits):
        raise ValueError(f"expected a string of ASCII digits, got {digits!r}")
    total = 0
    # The check digit will be appended on the right, so the payload's rightmost digit
    # sits in an even position of the final number and is the first one doubled.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def iccid_with_check_digit(body: str) -> str:
    """Return ``body`` followed by its Luhn check digit."""
    return body + str(luhn_check_digit(body))


def is_valid_iccid(value: object) -> bool:
    """True if ``value`` is an ITU-T E.118 ICCID: 19-20 digits, "89" prefix, Luhn-valid."""
    if not _is_digits(value):
        return False
    if len(value) not in _ICCID_LENGTHS or not value.startswith("89"):
        return False
    return luhn_check_digit(value[:-1]) == int(value[-1])


def is_valid_imsi(value: object) -> bool:
    """True if ``value`` is an ITU-T E.212 IMSI: 6-15 digits with a plausible MCC."""
    if not _is_digits(value):
        return False
    if not 6 <= len(value) <= _IMSI_LENGTH:
        return False
    mcc = value[:3]
    # E.212 assigns no MCC starting with 0 except the reserved test code 001.
    return mcc == TEST_MCC or not mcc.startswith("0")


def is_valid_msisdn(value: object) -> bool:
    """True if ``value`` is an E.164 number in the CAMARA ``+<digits>`` form."""
    return isinstance(value, str) and _MSISDN.fullmatch(value) is not None


def is_fictitious_msisdn(value: object) -> bool:
    """True if ``value`` lies in a UK, North American or Australian fictitious range."""
    if not isinstance(value, str):
        return False
    return any(
        pattern.fullmatch(value) is not None
        for pattern in (_FICTITIOUS_UK, _FICTITIOUS_NA, _FICTITIOUS_AU)
    )


def eid_check_digits(first30: str) -> str:
    """Return the two SGP.29 check digits for the first 30 digits of an EID.

    Raises ValueError unless ``first30`` is exactly 30 ASCII digits.
    """
    if not _is_digits(first30) or len(first30) != _EID_BODY_LENGTH:
        raise ValueError(f"expected {_EID_BODY_LENGTH} ASCII digits, got {first30!r}")
    # ISO 7064 MOD 97-10, as in IBAN: chosen so the full 32-digit number is 1 mod 97.
    return f"{98 - int(first30 + '00') % 97:02d}"


def is_valid_eid(value: object) -> bool:
    """True if ``value`` is a 32-digit EID whose SGP.29 check digits are correct."""
    if not _is_digits(value):
        return False
    return len(value) == _EID_LENGTH and int(value) % 97 == 1


def iccid_for(country_code: str, issuer: str, serial: int, length: int = 19) -> str:
    """Build the ICCID "89" + country calling code + issuer + zero-padded serial + Luhn digit.

    Raises ValueError if ``length`` is not 19 or 20, the codes are not digits, or ``serial``
    is negative or too wide for the space left.
    """
    if length not in _ICCID_LENGTHS:
        raise ValueError(f"ICCID length must be 19 or 20, got {length}")
    if not _is_digits(country_code) or not _is_digits(issuer):
        raise ValueError("country_code and issuer must be strings of ASCII digits")
    prefix = "89" + country_code + issuer
    width = length - 1 - len(prefix)
    if serial < 0 or width < 1 or serial >= 10**width:
        raise ValueError(f"serial {serial} does not fit in {max(width, 0)} digits after {prefix}")
    return iccid_with_check_digit(f"{prefix}{serial:0{width}d}")


def imsi_for(msin: int, mcc: str = TEST_MCC, mnc: str = TEST_MNC) -> str:
    """Build a 15-digit IMSI from MCC + MNC + zero-padded MSIN.

    Raises ValueError if the MCC/MNC are malformed or ``msin`` is negative or too wide.
    """
    if not _is_digits(mcc) or len(mcc) != 3:
        raise ValueError(f"MCC must be 3 ASCII digits, got {mcc!r}")
    if not _is_digits(mnc) or len(mnc) not in (2, 3):
        raise ValueError(f"MNC must be 2 or 3 ASCII digits, got {mnc!r}")
    width = _IMSI_LENGTH - len(mcc) - len(mnc)
    if msin < 0 or msin >= 10**width:
        raise ValueError(f"MSIN {msin} does not fit in {width} digits")
    imsi = f"{mcc}{mnc}{msin:0{width}d}"
    if not is_valid_imsi(imsi):
        raise ValueError(f"MCC {mcc!r} is not a valid E.212 country code")
    return imsi


def uk_fictitious_msisdn(n: int) -> str:
    """Return the ``n``-th Ofcom drama number, ``+447700900000`` + n, for n in 0..999."""
    if not 0 <= n < FICTITIOUS_UK_CAPACITY:
        raise ValueError(f"n must be in 0..{FICTITIOUS_UK_CAPACITY - 1}, got {n}")
    return f"{_UK_FICTITIOUS_BASE}{n:03d}"


class TelecomProvider(BaseProvider):
    """Faker provider for fake but well-formed SIM and subscriber identifiers.

    Every method draws from the generator's RNG, so ``Faker.seed_instance`` makes it repeatable.
    """

    def iccid(self, length: int = 19) -> str:
        """Return a Luhn-valid ICCID of ``length`` (19 or 20) digits."""
        country_code = self.random_element(_ICCID_COUNTRY_CODES)
        issuer = f"{self.random_int(0, 99):02d}"
        width = length - 1 - 2 - len(country_code) - len(issuer)
        return iccid_for(country_code, issuer, self.random_int(0, 10**width - 1), length)

    def imsi(self) -> str:
        """Return a 15-digit IMSI on the E.212 test network 001/01."""
        width = _IMSI_LENGTH - len(TEST_MCC) - len(TEST_MNC)
        return imsi_for(self.random_int(0, 10**width - 1))

    def uk_msisdn(self) -> str:
        """Return a number from the Ofcom drama range."""
        return uk_fictitious_msisdn(self.random_int(0, FICTITIOUS_UK_CAPACITY - 1))

    def msisdn(self) -> str:
        """Return a fictitious number from the UK, North American or Australian range."""
        region = self.random_element(("uk", "na", "au"))
        if region == "uk":
            return self.uk_msisdn()
        if region == "na":
            area_code = self.random_int(200, 999)
            return f"+1{area_code}55501{self.random_int(0, 99):02d}"
        return f"{_AU_FICTITIOUS_BASE}{self.random_int(6, 9)}"

    def eid(self) -> str:
        """Return a 32-digit EID with correct SGP.29 check digits."""
        width = _EID_BODY_LENGTH - len(_EID_PREFIX)
        body = f"{_EID_PREFIX}{self.random_int(0, 10**width - 1):0{width}d}"
        return body + eid_check_digits(body)

    def esim_activation_code(self, host: str = _DEFAULT_SMDP_HOST) -> str:
        """Return an SGP.22 activation code ``LPA:1$<host>$<matchingId>``."""
        groups = ("".join(self.random_choices(_MATCHING_ID_ALPHABET, length=4)) for _ in range(4))
        return f"LPA:1${host}${'-'.join(groups)}"

    def ki_redacted(self) -> str:
        """Return a fully masked Ki; the fakes never emit real subscriber keys."""
        return "*" * 32
