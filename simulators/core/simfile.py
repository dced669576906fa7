"""The SIM vendor's output file (".out"): its format, a streaming reader, and a writer.

A SIM vendor answers a production order with one text file per batch: header lines
(`*` comments and `Key: value` pairs) up to `Var_Out:`, which names the columns, then one
data row per SIM. The fulfillment role writes such files and the MVNE loads them, so the
format lives here, in one place. The reader takes the file a line at a time (bytes, line
ends kept, as they arrive) and checks every row as it goes: a 100,000-row file is never
held whole, and the first bad row stops it with a problem that names the row.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .identifiers import TEST_MCC, TEST_MNC, is_valid_iccid, luhn_check_digit
from .problems import Unprocessable

# A real Ki never travels in this file: the vendor sends it to the HLR/HSS over its own
# secured channel (transport-key encrypted), and the column carries this mask only.
REDACTED_KI = "*" * 32
SMDP_HOST = "smdp.handoff.example"
MAX_ROWS = 100_000
# Rows are under 200 bytes; the bound keeps one endless "line" from being held.
MAX_LINE_BYTES = 1024
PROFILE_TYPES = ("UICC", "eSIM")
UICC_COLUMNS = ("ICCID", "IMSI", "PIN1", "PUK1", "KI")
ESIM_COLUMNS = (*UICC_COLUMNS, "MATCHING_ID")
BATCH_NUMBER_PATTERN = r"^[A-Z0-9-]{1,32}$"
MATCHING_ID_PATTERN = r"^[-0-9A-Z]{1,64}$"
CUSTOMER_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

_BATCH_NUMBER = re.compile(BATCH_NUMBER_PATTERN)
_MATCHING_ID = re.compile(MATCHING_ID_PATTERN)
_CUSTOMER = re.compile(CUSTOMER_PATTERN)
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)[ \t]*:[ \t]*(.*?)[ \t]*$")
_DIGITS = re.compile(r"[0-9]+")
_IMSI_PREFIX = TEST_MCC + TEST_MNC
_IMSI_LENGTH = 15
# The header keys this format defines, by the lower-case spelling they are matched on;
# vendors add keys of their own (transport key references, addresses), which are skipped.
_HEADER_KEYS = {
    "customer": "Customer",
    "profile_type": "Profile_Type",
    "batch": "Batch",
    "quantity": "Quantity",
    "ser_nb": "Ser_Nb",
    "imsi": "IMSI",
}


# --- rejections: each names the row (1-based data row) and the line where they apply --------


class SimFileRejection(Unprocessable):
    """A vendor file refused as a whole; `row` and `line` say where."""

    def __init__(
        self, detail: str, *, row: int | None = None, line: int | None = None, **members: Any
    ) -> None:
        super().__init__(detail, row=row, line=line, **members)
        self.row = row
        self.line = line


class FileMalformed(SimFileRejection):
    code = "FILE_MALFORMED"
    title = "The vendor file does not follow the format (header, columns or fields)"


class QuantityMismatch(SimFileRejection):
    code = "QUANTITY_MISMATCH"
    title = "The number of rows is not the header's Quantity"


class IccidCheckDigit(SimFileRejection):
    code = "ICCID_CHECK_DIGIT"
    title = "An ICCID fails the E.118 Luhn check digit, or lacks it"


class ImsiInvalid(SimFileRejection):
    code = "IMSI_INVALID"
    title = "An IMSI is not 15 digits on the test network 001/01"


class RangeBroken(SimFileRejection):
    code = "RANGE_BROKEN"
    title = "The ICCIDs or IMSIs are not one consecutive range from the header's first values"


class SecretInFile(SimFileRejection):
    code = "SECRET_IN_FILE"
    title = "The KI column holds a value that is not redacted"


# --- what a file holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class FileHeader:
    customer: str
    profile_type: str
    batch: str
    quantity: int
    first_iccid: str
    first_imsi: str
    columns: tuple[str, ...]

    @property
    def is_esim(self) -> bool:
        return self.profile_type == "eSIM"


@dataclass(frozen=True, slots=True)
class SimRow:
    number: int
    iccid: str
    imsi: str
    pin1: str
    puk1: str
    matching_id: str | None = None


def activation_code(matching_id: str) -> str:
    """SGP.22 activation code of an eSIM profile held by the stack's SM-DP+."""
    return f"LPA:1${SMDP_HOST}${matching_id}"


def iccid_at(first_iccid: str, offset: int) -> str:
    """The ICCID `offset` places after `first_iccid` (account part + offset, same length,
    its own Luhn digit recomputed)."""
    body = str(int(first_iccid[:-1]) + offset).zfill(len(first_iccid) - 1)
    return body + str(luhn_check_digit(body))


def imsi_at(first_imsi: str, offset: int) -> str:
    """The IMSI `offset` places after `first_imsi` (MSINs are consecutive)."""
    return str(int(first_imsi) + offset).zfill(len(first_imsi))


def consecutive_rows(
    header: FileHeader,
    *,
    pin1: Callable[[int], str],
    puk1: Callable[[int], str],
    matching_id: Callable[[int], str] | None = None,
    count: int | None = None,
) -> Iterator[SimRow]:
    """The rows a vendor produces for `header`: `count` (default its Quantity) consecutive
    ICCIDs and IMSIs from the header's first ones; PINs, PUKs and matching IDs come from the
    callables, given the 1-based row number."""
    for number in range(1, (header.quantity if count is None else count) + 1):
        yield SimRow(
            number=number,
            iccid=iccid_at(header.first_iccid, number - 1),
            imsi=imsi_at(header.first_imsi, number - 1),
            pin1=pin1(number),
            puk1=puk1(number),
            matching_id=matching_id(number) if matching_id and header.is_esim else None,
        )


# --- writing -------------------------------------------------------------------------------


def write_file(header: FileHeader, rows: Iterable[SimRow]) -> Iterator[str]:
    """The file as lines ("\\n"-terminated), row by row as `rows` yields them.

    Writes what it is given, defects included (a vendor's file may carry them); the KI
    column is always the redacted mask.
    """
    yield "*HEADER DESCRIPTION\n"
    yield "*==================\n"
    yield f"Customer: {header.customer}\n"
    yield f"Profile_Type: {header.profile_type}\n"
    yield f"Batch: {header.batch}\n"
    yield f"Quantity: {header.quantity}\n"
    yield "*INPUT VARIABLES\n"
    yield "*===============\n"
    yield f"Ser_Nb: {header.first_iccid}\n"
    yield f"IMSI: {header.first_imsi}\n"
    yield "*OUTPUT VARIABLES\n"
    yield "*================\n"
    yield f"Var_Out: {'/'.join(header.columns)}\n"
    for row in rows:
        values = {
            "ICCID": row.iccid,
            "IMSI": row.imsi,
            "PIN1": row.pin1,
            "PUK1": row.puk1,
            "KI": REDACTED_KI,
            "MATCHING_ID": row.matching_id or "",
        }
        yield " ".join(values[column] for column in header.columns) + "\n"


def columns_for(profile_type: str) -> tuple[str, ...]:
    return ESIM_COLUMNS if profile_type == "eSIM" else UICC_COLUMNS


# --- reading -------------------------------------------------------------------------------


def _shown(value: str, limit: int = 20) -> str:
    """A refused value as a problem may quote it: short ones only, since a value in the wrong
    column may be a key (a Ki is 32 characters)."""
    return repr(value) if len(value) <= limit else f"({len(value)} characters, not shown)"


def _is_iccid_shaped(value: str) -> bool:
    # 18 digits is an ICCID whose check digit was left off; 19-20 is E.118 with it.
    return _DIGITS.fullmatch(value) is not None and value.startswith("89") and 18 <= len(value)


def _check_first_iccid(value: str, line: int) -> None:
    if not _is_iccid_shaped(value) or len(value) > 20:
        raise FileMalformed(
            f"Line {line}: Ser_Nb {_shown(value)} is not an ICCID (18-20 digits starting 89)",
            line=line,
            field="Ser_Nb",
        )
    if not is_valid_iccid(value):
        raise IccidCheckDigit(
            f"Line {line}: Ser_Nb {value} fails the Luhn check digit, or lacks it",
            line=line,
            field="Ser_Nb",
        )


def _imsi_problem(value: str) -> str | None:
    if _DIGITS.fullmatch(value) is None or len(value) != _IMSI_LENGTH:
        return f"is not {_IMSI_LENGTH} digits ({len(value)} characters)"
    if not value.startswith(_IMSI_PREFIX):
        return f"is not on the test network MCC {TEST_MCC} MNC {TEST_MNC}"
    return None


class SimFileReader:
    """Reads one vendor file from its lines (bytes, as they arrive), checking as it goes.

    `header()` reads up to the `Var_Out` line; `rows()` then yields each data row once it
    passed every check, and raises at the first that does not. `sha256` is the digest of
    every byte read so far: after `rows()` or `drain()`, of the whole file.
    """

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self._digest = hashlib.sha256()
        self._header: FileHeader | None = None
        self.line_number = 0
        self.bytes_read = 0

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def _next_line(self) -> str | None:
        """The next line as text without its line end, or None at the end of the file."""
        raw = next(self._lines, None)
        if raw is None:
            return None
        self._digest.update(raw)
        self.bytes_read += len(raw)
        self.line_number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise FileMalformed(
                f"Line {self.line_number} is longer than {MAX_LINE_BYTES} bytes",
                line=self.line_number,
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FileMalformed(
                f"Line {self.line_number} is not UTF-8", line=self.line_number
            ) from None
        if self.line_number == 1:
            text = text.removeprefix("\ufeff")
        return text.rstrip("\r\n")

    def drain(self) -> None:
        """Read the rest of the file unchecked (for its digest)."""
        for raw in self._lines:
            self._digest.update(raw)
            self.bytes_read += len(raw)

    def header(self) -> FileHeader:
        if self._header is None:
            self._header = self._read_header()
        return self._header

    def _read_header(self) -> FileHeader:
        values: dict[str, tuple[str, int]] = {}
        while True:
            text = self._next_line()
            if text is None:
                raise FileMalformed(
                    f"The file ends after line {self.line_number} without a Var_Out line",
                    line=self.line_number or None,
                )
            stripped = text.strip()
            if not stripped or stripped.startswith("*"):
                continue
            found = _HEADER_LINE.match(stripped)
            if found is None:
                raise FileMalformed(
                    f"Line {self.line_number} is neither a '*' line nor 'Key: value' "
                    "before Var_Out",
                    line=self.line_number,
                )
            key, value = found[1].lower(), found[2]
            if key == "var_out":
                return self._header_from(values, value)
            if key in _HEADER_KEYS:
                if key in values:
                    raise FileMalformed(
                        f"Line {self.line_number}: {_HEADER_KEYS[key]} is given twice",
                        line=self.line_number,
                        field=_HEADER_KEYS[key],
                    )
                values[key] = (value, self.line_number)

    def _header_from(self, values: dict[str, tuple[str, int]], var_out: str) -> FileHeader:
        var_out_line = self.line_number
        for key, name in _HEADER_KEYS.items():
            if key not in values or not values[key][0]:
                raise FileMalformed(
                    f"The header has no {name} before Var_Out (line {var_out_line})",
                    line=var_out_line,
                    field=name,
                )
        customer, line = values["customer"]
        if not _CUSTOMER.match(customer):
            raise FileMalformed(
                f"Line {line}: Customer is not a partner id", line=line, field="Customer"
            )
        profile_type, line = values["profile_type"]
        if profile_type not in PROFILE_TYPES:
            raise FileMalformed(
                f"Line {line}: Profile_Type {_shown(profile_type)} is not UICC or eSIM",
                line=line,
                field="Profile_Type",
            )
        batch, line = values["batch"]
        if not _BATCH_NUMBER.match(batch):
            raise FileMalformed(
                f"Line {line}: Batch {_shown(batch, 40)} does not match {BATCH_NUMBER_PATTERN}",
                line=line,
                field="Batch",
            )
        quantity_text, line = values["quantity"]
        if _DIGITS.fullmatch(quantity_text) is None or not 1 <= int(quantity_text) <= MAX_ROWS:
            raise FileMalformed(
                f"Line {line}: Quantity {_shown(quantity_text)} is not a whole number from 1 to "
                f"{MAX_ROWS:,}",
                line=line,
                field="Quantity",
            )
        first_iccid, line = values["ser_nb"]
        _check_first_iccid(first_iccid, line)
        first_imsi, line = values["imsi"]
        problem = _imsi_problem(first_imsi)
        if problem:
            raise ImsiInvalid(
                f"Line {line}: IMSI {_shown(first_imsi)} {problem}", line=line, field="IMSI"
            )
        columns = tuple(column.strip() for column in var_out.split("/"))
        expected = columns_for(profile_type)
        unknown = [column for column in columns if column not in ESIM_COLUMNS]
        if unknown:
            raise FileMalformed(
                f"Line {var_out_line}: Var_Out names unknown column {_shown(unknown[0])}; "
                f"a {profile_type} file has {'/'.join(expected)}",
                line=var_out_line,
                field="Var_Out",
            )
        if sorted(columns) != sorted(expected):
            raise FileMalformed(
                f"Line {var_out_line}: a {profile_type} file's Var_Out names each of "
                f"{'/'.join(expected)} once (in any order)",
                line=var_out_line,
                field="Var_Out",
            )
        return FileHeader(
            customer=customer,
            profile_type=profile_type,
            batch=batch,
            quantity=int(quantity_text),
            first_iccid=first_iccid,
            first_imsi=first_imsi,
            columns=columns,
        )

    def rows(self) -> Iterator[SimRow]:
        """Every data row, checked: field count, KI redacted, ICCID check digit, IMSI, the
        consecutive range from the header, PIN1/PUK1, matching ID; then the row count."""
        header = self.header()
        index = {column: position for position, column in enumerate(header.columns)}
        width = len(header.columns)
        i_iccid, i_imsi, i_pin1, i_puk1, i_ki = (
            index["ICCID"],
            index["IMSI"],
            index["PIN1"],
            index["PUK1"],
            index["KI"],
        )
        i_matching = index.get("MATCHING_ID")
        iccid_body = header.first_iccid[:-1]
        iccid_width = len(iccid_body)
        iccid_start = int(iccid_body)
        imsi_start = int(header.first_imsi)
        matching_ids: dict[str, int] = {}
        number = 0
        while (text := self._next_line()) is not None:
            fields = text.split()
            if not fields:
                continue
            number += 1
            line = self.line_number
            if number > header.quantity:
                raise QuantityMismatch(
                    f"Row {number} (line {line}) is past the header's Quantity {header.quantity}",
                    row=number,
                    line=line,
                )
            if len(fields) != width:
                raise FileMalformed(
                    f"Row {number} (line {line}) has {len(fields)} fields; Var_Out names {width}",
                    row=number,
                    line=line,
                )
            if fields[i_ki] != REDACTED_KI:
                # Never echo the value: it may be a subscriber's real key.
                raise SecretInFile(
                    f"Row {number} (line {line}): the KI column must be {len(REDACTED_KI)} '*'; "
                    "a Ki must never be sent in this file, and this one was not kept",
                    row=number,
                    line=line,
                    field="KI",
                )
            iccid = fields[i_iccid]
            moved = str(iccid_start + number - 1).zfill(iccid_width)
            if iccid != moved + str(luhn_check_digit(moved)):
                self._refuse_iccid(header, iccid, number, line)
            imsi = fields[i_imsi]
            if imsi != str(imsi_start + number - 1).zfill(_IMSI_LENGTH):
                problem = _imsi_problem(imsi)
                if problem:
                    raise ImsiInvalid(
                        f"Row {number} (line {line}): IMSI {_shown(imsi)} {problem}",
                        row=number,
                        line=line,
                        field="IMSI",
                    )
                expected = imsi_at(header.first_imsi, number - 1)
                raise RangeBroken(
                    f"Row {number} (line {line}): IMSI {imsi} is not the previous + 1 "
                    f"(expected {expected})",
                    row=number,
                    line=line,
                    field="IMSI",
                )
            pin1, puk1 = fields[i_pin1], fields[i_puk1]
            if len(pin1) != 4 or _DIGITS.fullmatch(pin1) is None:
                raise FileMalformed(
                    f"Row {number} (line {line}): PIN1 is not 4 digits",
                    row=number,
                    line=line,
                    field="PIN1",
                )
            if len(puk1) != 8 or _DIGITS.fullmatch(puk1) is None:
                raise FileMalformed(
                    f"Row {number} (line {line}): PUK1 is not 8 digits",
                    row=number,
                    line=line,
                    field="PUK1",
                )
            matching_id = None
            if i_matching is not None:
                matching_id = fields[i_matching]
                if not _MATCHING_ID.match(matching_id):
                    raise FileMalformed(
                        f"Row {number} (line {line}): MATCHING_ID {_shown(matching_id, 64)} "
                        f"does not match {MATCHING_ID_PATTERN}",
                        row=number,
                        line=line,
                        field="MATCHING_ID",
                    )
                earlier = matching_ids.setdefault(matching_id, number)
                if earlier != number:
                    raise FileMalformed(
                        f"Row {number} (line {line}): MATCHING_ID {matching_id} repeats row "
                        f"{earlier}'s",
                        row=number,
                        line=line,
                        field="MATCHING_ID",
                    )
            yield SimRow(number, iccid, imsi, pin1, puk1, matching_id)
        if number != header.quantity:
            raise QuantityMismatch(
                f"The file has {number} rows; the header's Quantity is {header.quantity}",
                row=number or None,
                line=self.line_number,
            )

    def _refuse_iccid(self, header: FileHeader, iccid: str, number: int, line: int) -> None:
        if not _is_iccid_shaped(iccid) or len(iccid) > 20:
            raise FileMalformed(
                f"Row {number} (line {line}): ICCID {_shown(iccid)} is not 18-20 digits "
                "starting 89",
                row=number,
                line=line,
                field="ICCID",
            )
        if not is_valid_iccid(iccid):
            raise IccidCheckDigit(
                f"Row {number} (line {line}): ICCID {iccid} fails the Luhn check digit, "
                "or lacks it",
                row=number,
                line=line,
                field="ICCID",
            )
        expected = iccid_at(header.first_iccid, number - 1)
        where = "the header's Ser_Nb" if number == 1 else "the previous + 1"
        raise RangeBroken(
            f"Row {number} (line {line}): ICCID {iccid} is not {where} (expected {expected})",
            row=number,
            line=line,
            field="ICCID",
        )
