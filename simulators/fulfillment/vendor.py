"""The fake SIM vendor: its output file for a production order, with the defects vendors
really make, and the file's rows read back once the MVNE has accepted it.

The format, its writer and the ICCID/IMSI arithmetic are the stack's
(`simulators.core.simfile`), shared with the MVNE that loads the file; what is the
vendor's own is here: which PINs, PUKs and matching IDs it issues, and its mistakes.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from simulators.core.simfile import (
    FileHeader,
    SimRow,
    activation_code,
    columns_for,
    iccid_at,
    imsi_at,
    write_file,
)

__all__ = [
    "DEFECTS",
    "BatchSpec",
    "Defect",
    "VendorRow",
    "activation_code",
    "header",
    "iccid_at",
    "imsi_at",
    "lines",
    "matching_id",
    "read_rows",
    "sha256",
    "write",
]

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


def matching_id(seed_text: str, n: int) -> str:
    """A deterministic SGP.22 matching ID: upper-case letters and digits, in dashed groups."""
    digest = hashlib.blake2b(f"{seed_text}:mid:{n}".encode(), digest_size=15).digest()
    text = base64.b32encode(digest).decode().rstrip("=")[:20]
    return "-".join(text[i : i + 5] for i in range(0, 20, 5))


def _rows(spec: BatchSpec, seed_text: str, defect: Defect | None) -> Iterator[SimRow]:
    """The vendor's rows: consecutive ICCIDs and IMSIs, PINs and PUKs from `seed_text`,
    and from the defect's row on, the defect."""
    secrets = random.Random(f"{seed_text}:pins")
    kind = defect.kind if defect else None
    start = (defect.row if defect else 1) - 1
    esim = spec.profile_type == "eSIM"
    # One card personalised too many and listed: the file promises Quantity rows, holds one more.
    count = spec.quantity + 1 if kind == ROW_COUNT else spec.quantity
    for n in range(count):
        affected = kind is not None and n >= start
        # Off by one: from the defect's row on, the vendor's serial counter ran one ahead.
        iccid = iccid_at(spec.first_iccid, n + 1 if affected and kind == OFF_BY_ONE else n)
        if affected and kind == NO_CHECK_DIGIT:
            iccid = iccid[:-1]
        imsi = imsi_at(spec.first_imsi, n)
        if affected and kind == LONG_IMSI:
            imsi += "0"  # a padded 16-digit IMSI, longer than E.212 allows
        yield SimRow(
            number=n + 1,
            iccid=iccid,
            imsi=imsi,
            pin1=f"{secrets.randrange(10_000):04d}",
            puk1=f"{secrets.randrange(10**8):08d}",
            matching_id=matching_id(seed_text, n) if esim else None,
        )


def lines(
    spec: BatchSpec, *, seed_text: str, defect: Defect | None = None, file_batch: str | None = None
) -> Iterator[str]:
    """The output file line by line. `file_batch` is the batch number the vendor writes in
    the header (another batch's, when it reuses one); `seed_text` fixes PINs, PUKs and
    matching IDs, so the same order always yields the same file."""
    written = FileHeader(
        customer=spec.customer,
        profile_type=spec.profile_type,
        batch=file_batch or spec.batch_number,
        quantity=spec.quantity,
        first_iccid=spec.first_iccid,
        first_imsi=spec.first_imsi,
        columns=columns_for(spec.profile_type),
    )
    return write_file(written, _rows(spec, seed_text, defect))


def write(
    spec: BatchSpec, *, seed_text: str, defect: Defect | None = None, file_batch: str | None = None
) -> str:
    return "".join(lines(spec, seed_text=seed_text, defect=defect, file_batch=file_batch))


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
    """The data rows of a file the MVNE accepted, in order. The MVNE checked every row
    (core.simfile's reader); reading them back takes only the columns, by position."""
    remaining = iter(_lines(text))
    for line in remaining:
        if line.startswith("Var_Out:"):
            columns = line.partition(":")[2].strip().split("/")
            break
    else:
        return
    iccid, imsi = columns.index("ICCID"), columns.index("IMSI")
    matching = columns.index("MATCHING_ID") if "MATCHING_ID" in columns else None
    for line in remaining:
        fields = line.split()
        if fields:
            yield VendorRow(
                fields[iccid], fields[imsi], None if matching is None else fields[matching]
            )


def _lines(text: str) -> Iterable[str]:
    return (line.rstrip("\r") for line in text.split("\n"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
