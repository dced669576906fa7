"""The fake SIM vendor's output file: writing it (with the defects vendors really make)
and reading its rows back.

The format is the one SIM vendors deliver as ".out" files: `*` comment lines and
`Key: value` header lines, then a `Var_Out:` line naming the columns, then one
row per SIM with fields separated by spaces. The Ki column is always 32 `*`: a
real Ki never leaves the vendor's secure environment over this path.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from simulators.core.identifiers import iccid_with_check_digit

SMDP_HOST = "smdp.handoff.example"
KI_REDACTED = "*" * 32
UICC_COLUMNS = ("ICCID", "IMSI", "PIN1", "PUK1", "KI")
ESIM_COLUMNS = (*UICC_COLUMNS, "MATCHING_ID")

# The vendor-file defects a data fault makes the vendor write (VENDOR_FILE_<kind>).
OFF_BY_ONE = "OFF_BY_ONE"
NO_CHECK_DIGIT = "NO_CHECK_DIGIT"
LONG_IMSI = "LONG_IMSI"
ROW_COUNT = "ROW_COUNT"
DUPLICATE_BATCH = "DUPLICATE_BATCH"
DEFECTS = (OFF_BY_ONE, NO_CHECK_DIGIT, LONG_IMSI, ROW_COUNT, DUPLICATE_BATCH)


@dataclass(frozen=True)
class BatchSpec:
    """What the production order asked the vendor for (the vendor's input file)."""

    customer: str
    profile_type: str
    batch_number: str
    quantity: int
    first_iccid: str
    first_imsi: str


@dataclass(frozen=True)
class Defect:
    """A mistake in the vendor's output file, from data row `row` (1-based) on."""

    kind: str
    row: int = 1


@dataclass(frozen=True)
class VendorRow:
    iccid: str
    imsi: str
    matching_id: str | None


def iccid_at(first_iccid: str, n: int) -> str:
    """The n-th ICCID (0-based) of a consecutive range: the account part + n, with its own
    Luhn check digit (E.118)."""
    body = first_iccid[:-1]
    return iccid_with_check_digit(str(int(body) + n).zfill(len(body)))


def imsi_at(first_imsi: str, n: int) -> str:
    return str(int(first_imsi) + n).zfill(len(first_imsi))


def matching_id(seed_text: str, n: int) -> str:
    """A deterministic SGP.22 matching ID: upper-case letters and digits, in dashed groups."""
    digest = hashlib.blake2b(f"{seed_text}:mid:{n}".encode(), digest_size=15).digest()
    text = base64.b32encode(digest).decode().rstrip("=")[:20]
    return "-".join(text[i : i + 5] for i in range(0, 20, 5))


def activation_code(matching: str) -> str:
    """SGP.22 activation code: `LPA:1$<SM-DP+ address>$<matching ID>`."""
    return f"LPA:1${SMDP_HOST}${matching}"


def lines(
    spec: BatchSpec, *, seed_text: str, defect: Defect | None = None, file_batch: str | None = None
) -> Iterator[str]:
    """The output file line by line. `file_batch` is the batch number the vendor writes in
    the header (another batch's, when it reuses one); `seed_text` fixes PINs, PUKs and
    matching IDs, so the same order always yields the same file."""
    esim = spec.profile_type == "eSIM"
    columns = ESIM_COLUMNS if esim else UICC_COLUMNS
    yield "*HEADER DESCRIPTION"
    yield "*=================="
    yield f"Customer: {spec.customer}"
    yield f"Profile_Type: {spec.profile_type}"
    yield f"Batch: {file_batch or spec.batch_number}"
    yield f"Quantity: {spec.quantity}"
    yield "*INPUT VARIABLES"
    yield "*==============="
    yield f"Ser_Nb: {spec.first_iccid}"
    yield f"IMSI: {spec.first_imsi}"
    yield "*OUTPUT VARIABLES"
    yield "*================"
    yield f"Var_Out: {'/'.join(columns)}"
    secrets = random.Random(f"{seed_text}:pins")
    kind = defect.kind if defect else None
    start = (defect.row if defect else 1) - 1
    # One card personalised too many and listed: the file promises Quantity rows, holds one more.
    rows = spec.quantity + 1 if kind == ROW_COUNT else spec.quantity
    for n in range(rows):
        affected = kind is not None and n >= start
        # Off by one: from the defect's row on, the vendor's serial counter ran one ahead.
        iccid = iccid_at(spec.first_iccid, n + 1 if affected and kind == OFF_BY_ONE else n)
        if affected and kind == NO_CHECK_DIGIT:
            iccid = iccid[:-1]
        imsi = imsi_at(spec.first_imsi, n)
        if affected and kind == LONG_IMSI:
            imsi += "0"  # a padded 16-digit IMSI, longer than E.212 allows
        fields = [iccid, imsi, f"{secrets.randrange(10_000):04d}"]
        fields += [f"{secrets.randrange(10**8):08d}", KI_REDACTED]
        if esim:
            fields.append(matching_id(seed_text, n))
        yield " ".join(fields)


def write(
    spec: BatchSpec, *, seed_text: str, defect: Defect | None = None, file_batch: str | None = None
) -> str:
    return "\n".join(lines(spec, seed_text=seed_text, defect=defect, file_batch=file_batch)) + "\n"


def header(text: str) -> dict[str, str]:
    """The `Key: value` header lines, up to and including Var_Out."""
    found: dict[str, str] = {}
    for line in _lines(text):
        if not line or line.startswith("*"):
            continue
        key, _, value = line.partition(":")
        found[key.strip()] = value.strip()
        if key.strip() == "Var_Out":
            break
    return found


def read_rows(text: str) -> Iterator[VendorRow]:
    """The data rows of a file the MVNE accepted (so well formed), in order."""
    lines = iter(_lines(text))
    for line in lines:
        if line.startswith("Var_Out:"):
            columns = line.partition(":")[2].strip().split("/")
            break
    else:
        return
    iccid, imsi = columns.index("ICCID"), columns.index("IMSI")
    matching = columns.index("MATCHING_ID") if "MATCHING_ID" in columns else None
    for line in lines:
        fields = line.split()
        if fields:
            yield VendorRow(
                fields[iccid], fields[imsi], None if matching is None else fields[matching]
            )


def _lines(text: str) -> Iterable[str]:
    return (line.rstrip("\r") for line in text.split("\n"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
