"""The SIM vendor's output file: what the writer produces, and every refusal of the reader."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from simulators.core import simfile
from simulators.core.identifiers import iccid_with_check_digit, is_valid_iccid
from simulators.core.simfile import FileHeader, SimFileReader

FIRST_ICCID = iccid_with_check_digit("894477000000000001")
FIRST_IMSI = "001010000000100"
REAL_KI = "0123456789ABCDEF0123456789ABCDEF"


def header(quantity: int = 3, profile_type: str = "UICC", **changes: object) -> FileHeader:
    values: dict[str, object] = dict(
        customer="mvno-alpha",
        profile_type=profile_type,
        batch="B-TEST-1",
        quantity=quantity,
        first_iccid=FIRST_ICCID,
        first_imsi=FIRST_IMSI,
        columns=simfile.columns_for(profile_type),
    )
    values.update(changes)
    return FileHeader(**values)  # type: ignore[arg-type]


def rows(head: FileHeader, count: int | None = None) -> list[simfile.SimRow]:
    return list(
        simfile.consecutive_rows(
            head,
            pin1=lambda n: f"{n % 10_000:04d}",
            puk1=lambda n: f"{n:08d}",
            matching_id=lambda n: f"MID-{n:06d}",
            count=count,
        )
    )


def text(head: FileHeader, body: list[simfile.SimRow] | None = None) -> str:
    return "".join(simfile.write_file(head, rows(head) if body is None else body))


def lines_of(content: str) -> list[bytes]:
    return [line.encode() for line in content.splitlines(keepends=True)]


def read(content: str) -> tuple[FileHeader, list[simfile.SimRow], SimFileReader]:
    reader = SimFileReader(lines_of(content))
    found = reader.header()
    return found, list(reader.rows()), reader


def refusal(content: str) -> simfile.SimFileRejection:
    with pytest.raises(simfile.SimFileRejection) as caught:
        read(content)
    return caught.value


def replace_row(content: str, number: int, old: str, new: str) -> str:
    """The file with one data row's field changed (rows follow the 13 header lines)."""
    lines = content.splitlines(keepends=True)
    index = 13 + number - 1
    assert old in lines[index], (old, lines[index])
    lines[index] = lines[index].replace(old, new, 1)
    return "".join(lines)


def test_written_file_reads_back_with_consecutive_identifiers_and_its_digest():
    head = header(quantity=5)
    content = text(head)
    found, loaded, reader = read(content)
    assert found == head
    assert [row.number for row in loaded] == [1, 2, 3, 4, 5]
    assert loaded[0].iccid == FIRST_ICCID and loaded[0].imsi == FIRST_IMSI
    assert all(is_valid_iccid(row.iccid) for row in loaded)
    assert [int(row.iccid[:-1]) for row in loaded] == list(
        range(int(FIRST_ICCID[:-1]), int(FIRST_ICCID[:-1]) + 5)
    )
    assert loaded[4].imsi == "001010000000104"
    assert reader.sha256 == hashlib.sha256(content.encode()).hexdigest()
    assert "*" * 32 in content.splitlines()[13]


def test_esim_file_carries_matching_ids_and_activation_codes():
    head = header(quantity=2, profile_type="eSIM")
    found, loaded, _ = read(text(head))
    assert found.is_esim and found.columns[-1] == "MATCHING_ID"
    assert [row.matching_id for row in loaded] == ["MID-000001", "MID-000002"]
    assert simfile.activation_code("MID-000001") == "LPA:1$smdp.handoff.example$MID-000001"


def test_crlf_line_ends_columns_in_another_order_and_vendor_keys_are_accepted():
    head = header(columns=("IMSI", "ICCID", "KI", "PUK1", "PIN1"))
    content = text(head).replace("Quantity: 3\n", "Quantity: 3\nTransport_key: 17\n")
    found, loaded, reader = read(content.replace("\n", "\r\n"))
    assert found.columns == ("IMSI", "ICCID", "KI", "PUK1", "PIN1")
    assert [row.iccid for row in loaded] == [r.iccid for r in rows(head)]
    assert reader.sha256 == hashlib.sha256(content.replace("\n", "\r\n").encode()).hexdigest()


def test_reader_takes_the_file_a_line_at_a_time():
    """Nothing past the row being checked has been read: the file is never held whole."""
    content = lines_of(text(header(quantity=1000)))
    pulled = 0

    def source() -> Iterator[bytes]:
        nonlocal pulled
        for line in content:
            pulled += 1
            yield line

    reader = SimFileReader(source())
    reader.header()
    assert pulled == 13
    checked = reader.rows()
    for _ in range(10):
        next(checked)
    assert pulled == 23
    assert sum(1 for _ in checked) == 990
    assert pulled == len(content)


# --- refusals: each names the row ---------------------------------------------------------


def test_surplus_row_is_a_quantity_mismatch_at_the_first_surplus_row():
    head = header(quantity=3)
    problem = refusal(text(head, rows(head, count=4)))
    assert problem.code == "QUANTITY_MISMATCH" and problem.row == 4 and problem.line == 17


def test_missing_rows_are_a_quantity_mismatch_at_the_count():
    head = header(quantity=5)
    problem = refusal(text(head, rows(head, count=3)))
    assert problem.code == "QUANTITY_MISMATCH" and problem.row == 3
    assert "3 rows" in problem.detail and "Quantity is 5" in problem.detail


def test_iccid_without_its_check_digit_is_refused_at_its_row():
    content = text(header())
    second = rows(header())[1].iccid
    problem = refusal(replace_row(content, 2, second, second[:-1]))
    assert problem.code == "ICCID_CHECK_DIGIT" and problem.row == 2 and problem.line == 15
    assert problem.members["field"] == "ICCID"


def test_iccid_with_a_wrong_check_digit_is_refused_at_its_row():
    third = rows(header())[2].iccid
    wrong = third[:-1] + str((int(third[-1]) + 1) % 10)
    problem = refusal(replace_row(text(header()), 3, third, wrong))
    assert problem.code == "ICCID_CHECK_DIGIT" and problem.row == 3


def test_first_iccid_without_check_digit_in_the_header_is_refused():
    problem = refusal(
        text(header()).replace(f"Ser_Nb: {FIRST_ICCID}", f"Ser_Nb: {FIRST_ICCID[:-1]}")
    )
    assert problem.code == "ICCID_CHECK_DIGIT" and problem.line == 9 and problem.row is None


def test_sixteen_digit_imsi_is_refused_at_its_row():
    problem = refusal(replace_row(text(header()), 2, "001010000000101", "0010100000001010"))
    assert problem.code == "IMSI_INVALID" and problem.row == 2
    assert "16 characters" in problem.detail


def test_imsi_off_the_test_network_is_refused():
    problem = refusal(text(header()).replace(f"IMSI: {FIRST_IMSI}", "IMSI: 234150000000100"))
    assert problem.code == "IMSI_INVALID" and problem.line == 10


def test_range_off_by_one_from_the_header_is_broken_at_row_1():
    head = header()
    shifted = header(first_iccid=simfile.iccid_at(FIRST_ICCID, 1))
    body = [
        simfile.SimRow(r.number, r.iccid, r.imsi, r.pin1, r.puk1) for r in rows(shifted)
    ]  # rows start one ICCID past Ser_Nb
    problem = refusal(text(head, body))
    assert problem.code == "RANGE_BROKEN" and problem.row == 1
    assert FIRST_ICCID in problem.detail


def test_a_skipped_iccid_breaks_the_range_at_its_row():
    head = header(quantity=4)
    body = rows(head)
    body[2] = simfile.SimRow(3, simfile.iccid_at(FIRST_ICCID, 3), body[2].imsi, "1111", "22222222")
    problem = refusal(text(head, body))
    assert (
        problem.code == "RANGE_BROKEN" and problem.row == 3 and problem.members["field"] == "ICCID"
    )


def test_a_skipped_imsi_breaks_the_range_at_its_row():
    problem = refusal(replace_row(text(header()), 3, "001010000000102", "001010000000103"))
    assert (
        problem.code == "RANGE_BROKEN" and problem.row == 3 and problem.members["field"] == "IMSI"
    )


def test_a_real_ki_is_refused_without_being_echoed():
    problem = refusal(replace_row(text(header()), 2, "*" * 32, REAL_KI))
    assert problem.code == "SECRET_IN_FILE" and problem.row == 2
    assert REAL_KI not in str(problem.to_problem(correlation_id=None, instance=None))


@pytest.mark.parametrize(
    ("change", "line", "field"),
    [
        (lambda c: c.replace("Quantity: 3\n", ""), 12, "Quantity"),
        (lambda c: c.replace("Profile_Type: UICC", "Profile_Type: USIM"), 4, "Profile_Type"),
        (lambda c: c.replace("Batch: B-TEST-1", "Batch: b test"), 5, "Batch"),
        (lambda c: c.replace("Quantity: 3", "Quantity: 100001"), 6, "Quantity"),
        (lambda c: c.replace("PUK1/KI", "PUK1/KI/OPC"), 13, "Var_Out"),
        (lambda c: c.replace("/KI", ""), 13, "Var_Out"),
        (
            lambda c: c.replace("Customer: mvno-alpha\n", "Customer: mvno-alpha\nnot a header\n"),
            4,
            None,
        ),
        (lambda c: c.split("Var_Out")[0], 12, None),
    ],
    ids=[
        "no-quantity",
        "bad-profile-type",
        "bad-batch",
        "quantity-over-limit",
        "unknown-column",
        "missing-column",
        "stray-line",
        "no-var-out",
    ],
)
def test_bad_header_is_malformed_at_its_line(change, line, field):
    problem = refusal(change(text(header())))
    assert problem.code == "FILE_MALFORMED" and problem.line == line and problem.row is None
    assert problem.members.get("field") == field


def test_wrong_field_count_is_malformed_at_its_row_and_line():
    problem = refusal(replace_row(text(header()), 2, " 0002", ""))
    assert problem.code == "FILE_MALFORMED" and problem.row == 2 and problem.line == 15


@pytest.mark.parametrize(
    ("old", "new", "field"), [(" 0003 ", " 003 ", "PIN1"), (" 00000003 ", " 0000000X ", "PUK1")]
)
def test_bad_pin_or_puk_is_malformed_without_echoing_it(old, new, field):
    problem = refusal(replace_row(text(header()), 3, old, new))
    assert problem.code == "FILE_MALFORMED" and problem.row == 3
    assert problem.members["field"] == field and new.strip() not in problem.detail


def test_repeated_matching_id_is_malformed_at_the_repeat():
    head = header(quantity=3, profile_type="eSIM")
    problem = refusal(replace_row(text(head), 3, "MID-000003", "MID-000001"))
    assert problem.code == "FILE_MALFORMED" and problem.row == 3 and "row 1" in problem.detail


def test_line_that_is_not_utf8_is_malformed_at_its_line():
    content = lines_of(text(header()))
    content[14] = b"\xff" + content[14]
    with pytest.raises(simfile.FileMalformed) as caught:
        reader = SimFileReader(content)
        list(reader.rows())
    assert caught.value.line == 15
