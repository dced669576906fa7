"""SIM intake on the MVNE: vendor batch files loaded exactly once and all or nothing, the
ICCID mapping handoff, and activation of batch SIMs only once they are mapped."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ORDERS, SIMS, conforms, first_sims, order_body, settle
from sqlalchemy import func, select, text

from simulators.core import simfile
from simulators.core.admin import reset_state
from simulators.core.http import BodyStream
from simulators.core.identifiers import iccid_with_check_digit
from simulators.core.problems import PayloadTooLarge
from simulators.core.store import Store, metadata
from simulators.core.tenancy import capabilities, get_partner
from simulators.mvne import inventory
from simulators.mvne.model import sim_table

BATCHES = "/mvne/v1/simBatches"
MAPPINGS = "/mvne/v1/iccidMappings"
FIRST_ICCID = iccid_with_check_digit("894477000000000001")
FIRST_IMSI = "001010000000100"
REAL_KI = "0123456789ABCDEF0123456789ABCDEF"
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def vendor_file(
    batch: str = "B-0001",
    quantity: int = 3,
    *,
    customer: str = "mvno-alpha",
    profile_type: str = "UICC",
    first_iccid: str = FIRST_ICCID,
    first_imsi: str = FIRST_IMSI,
    rows: int | None = None,
) -> bytes:
    header = simfile.FileHeader(
        customer=customer,
        profile_type=profile_type,
        batch=batch,
        quantity=quantity,
        first_iccid=first_iccid,
        first_imsi=first_imsi,
        columns=simfile.columns_for(profile_type),
    )
    body = simfile.consecutive_rows(
        header,
        pin1=lambda n: f"{n % 10_000:04d}",
        puk1=lambda n: f"{n:08d}",
        matching_id=lambda n: f"{batch}-{n:06d}",
        count=rows,
    )
    return "".join(simfile.write_file(header, body)).encode()


def with_row(content: bytes, number: int, old: str, new: str) -> bytes:
    lines = content.decode().splitlines(keepends=True)
    index = 13 + number - 1
    assert old in lines[index]
    lines[index] = lines[index].replace(old, new, 1)
    return "".join(lines).encode()


def put_batch(client, headers, content: bytes, batch: str = "B-0001"):
    return client.put(f"{BATCHES}/{batch}", data=content, headers={**headers, **TEXT})


def batch_sims(client, headers, batch: str = "B-0001") -> tuple[int, list[dict]]:
    response = client.get(f"{SIMS}?batchNumber={batch}&limit=1000", headers=headers)
    return int(response.headers["X-Total-Count"]), conforms(response, "mvne", "listSims")


def sim_count(runtime) -> int:
    with runtime.store.read() as conn:
        return conn.execute(select(func.count()).select_from(sim_table)).scalar_one()


# --- loading a batch ---------------------------------------------------------------------------


def test_first_load_creates_the_batch_and_its_sims_available_and_unmapped(client, alpha):
    content = vendor_file(quantity=3)
    response = put_batch(client, alpha, content)
    batch = conforms(response, "mvne", "loadSimBatch")
    assert response.status_code == 201 and response.headers["Location"] == batch["href"]
    assert batch["href"].endswith(f"{BATCHES}/B-0001")
    assert batch["customer"] == "mvno-alpha" and batch["profileType"] == "UICC"
    assert batch["quantity"] == 3 and batch["firstIccid"] == FIRST_ICCID
    assert batch["lastIccid"] == simfile.iccid_at(FIRST_ICCID, 2)
    assert (batch["firstImsi"], batch["lastImsi"]) == (FIRST_IMSI, "001010000000102")
    assert batch["sha256"] == hashlib.sha256(content).hexdigest()
    total, sims = batch_sims(client, alpha)
    assert total == 3
    for sim in sims:
        assert sim["resourceStatus"] == "available" and sim["profileType"] == "physical"
        assert sim["batchNumber"] == "B-0001" and sim["mapping"] is None
    got = client.get(f"{BATCHES}/B-0001", headers=alpha)
    assert conforms(got, "mvne", "getSimBatch") == batch
    listed = client.get(BATCHES, headers=alpha)
    assert conforms(listed, "mvne", "listSimBatches") == [batch]
    assert listed.headers["X-Total-Count"] == "1"


def test_esim_batch_keeps_matching_ids_and_activation_codes(client, alpha):
    response = put_batch(client, alpha, vendor_file("E-0001", 2, profile_type="eSIM"), "E-0001")
    assert conforms(response, "mvne", "loadSimBatch")["profileType"] == "eSIM"
    _, sims = batch_sims(client, alpha, "E-0001")
    assert [sim["matchingId"] for sim in sims] == ["E-0001-000001", "E-0001-000002"]
    assert sims[0]["activationCode"] == "LPA:1$smdp.handoff.example$E-0001-000001"
    assert {sim["esimProfileState"] for sim in sims} == {"available"}
    assert {sim["profileType"] for sim in sims} == {"esim"}


def test_same_file_twice_answers_the_stored_batch_and_loads_nothing_twice(client, runtime, alpha):
    content = vendor_file(quantity=5)
    first = put_batch(client, alpha, content)
    before = sim_count(runtime)
    again = put_batch(client, alpha, content)
    assert again.status_code == 200
    assert conforms(again, "mvne", "loadSimBatch") == first.get_json()
    assert sim_count(runtime) == before and batch_sims(client, alpha)[0] == 5
    actions = [
        entry["action"]
        for entry in client.get("/__admin/audit?entityId=B-0001").get_json()
        if entry["entityType"] == "simBatch"
    ]
    assert sorted(actions) == ["simBatch.loaded", "simBatch.redelivered"]


def test_different_file_under_a_loaded_batch_number_is_a_conflict(client, alpha):
    assert put_batch(client, alpha, vendor_file(quantity=3)).status_code == 201
    other = vendor_file(quantity=4)
    response = put_batch(client, alpha, other)
    assert response.status_code == 409
    assert conforms(response, "mvne", "loadSimBatch")["code"] == "BATCH_NUMBER_REUSED"
    assert batch_sims(client, alpha)[0] == 3


def test_batch_number_of_the_url_must_be_the_files(client, alpha):
    response = put_batch(client, alpha, vendor_file("B-0002"), "B-0001")
    problem = conforms(response, "mvne", "loadSimBatch")
    assert response.status_code == 422 and problem["code"] == "FILE_MALFORMED"
    assert problem["field"] == "Batch"


def test_file_of_another_customer_is_forbidden(client, alpha):
    response = put_batch(client, alpha, vendor_file(customer="mvno-bravo"))
    problem = conforms(response, "mvne", "loadSimBatch")
    assert response.status_code == 403 and problem["code"] == "CUSTOMER_MISMATCH"


@pytest.mark.parametrize(
    ("change", "code", "row"),
    [
        (lambda c: vendor_file(quantity=3, rows=4), "QUANTITY_MISMATCH", 4),
        (lambda c: vendor_file(quantity=3, rows=2), "QUANTITY_MISMATCH", 2),
        (
            lambda c: with_row(
                c, 2, simfile.iccid_at(FIRST_ICCID, 1), simfile.iccid_at(FIRST_ICCID, 1)[:-1]
            ),
            "ICCID_CHECK_DIGIT",
            2,
        ),
        (lambda c: with_row(c, 3, "001010000000102", "0010100000001020"), "IMSI_INVALID", 3),
        (
            lambda c: vendor_file(first_iccid=simfile.iccid_at(FIRST_ICCID, 1)).replace(
                f"Ser_Nb: {simfile.iccid_at(FIRST_ICCID, 1)}".encode(),
                f"Ser_Nb: {FIRST_ICCID}".encode(),
            ),
            "RANGE_BROKEN",
            1,
        ),
        (lambda c: with_row(c, 2, "*" * 32, REAL_KI), "SECRET_IN_FILE", 2),
        (lambda c: with_row(c, 2, " 0002 ", " "), "FILE_MALFORMED", 2),
    ],
    ids=["surplus", "short", "check-digit", "long-imsi", "off-by-one", "ki", "fields"],
)
def test_each_refusal_names_its_row_and_loads_nothing(client, runtime, alpha, change, code, row):
    before = sim_count(runtime)
    response = put_batch(client, alpha, change(vendor_file(quantity=3)))
    problem = conforms(response, "mvne", "loadSimBatch")
    assert response.status_code == 422 and problem["code"] == code
    assert problem["row"] == row
    assert f"Row {row} " in problem["detail"] or f"has {row} rows" in problem["detail"]
    assert sim_count(runtime) == before
    assert client.get(f"{BATCHES}/B-0001", headers=alpha).status_code == 404


def test_bad_last_row_of_a_file_of_several_chunks_leaves_no_sim_loaded(client, runtime, alpha):
    quantity = inventory.CHUNK_ROWS * 2 + 7
    content = vendor_file(quantity=quantity)
    last = simfile.iccid_at(FIRST_ICCID, quantity - 1)
    wrong = last[:-1] + str((int(last[-1]) + 1) % 10)
    broken = content.replace(last.encode(), wrong.encode())
    before = sim_count(runtime)
    response = put_batch(client, alpha, broken)
    problem = conforms(response, "mvne", "loadSimBatch")
    assert problem["code"] == "ICCID_CHECK_DIGIT" and problem["row"] == quantity
    assert sim_count(runtime) == before
    assert batch_sims(client, alpha)[0] == 0
    # Delivered again, corrected, it loads whole.
    assert put_batch(client, alpha, content).status_code == 201
    assert batch_sims(client, alpha)[0] == quantity


def test_connection_lost_part_way_leaves_no_sim_and_the_file_sent_again_loads_whole(
    client, runtime, alpha
):
    quantity = inventory.CHUNK_ROWS * 2 + 7
    content = vendor_file(quantity=quantity)
    before = sim_count(runtime)
    # The body ends two thirds in, short of its Content-Length: the sender went away.
    cut = client.put(
        f"{BATCHES}/B-0001",
        input_stream=io.BytesIO(content[: len(content) * 2 // 3]),
        headers={**alpha, **TEXT},
        environ_overrides={"CONTENT_LENGTH": str(len(content))},
    )
    assert cut.status_code == 400 and conforms(cut, "mvne", "loadSimBatch")
    assert sim_count(runtime) == before
    assert client.get(f"{BATCHES}/B-0001", headers=alpha).status_code == 404
    assert put_batch(client, alpha, content).status_code == 201
    assert batch_sims(client, alpha)[0] == quantity


def test_identifiers_already_in_the_inventory_are_refused_at_their_row(
    client, runtime, alpha, bravo
):
    assert put_batch(client, alpha, vendor_file(quantity=5)).status_code == 201
    # Bravo's batch starts inside Alpha's: its row 1 is Alpha's row 4.
    overlapping = vendor_file(
        "B-0002",
        quantity=5,
        customer="mvno-bravo",
        first_iccid=simfile.iccid_at(FIRST_ICCID, 3),
        first_imsi="001010000000900",
    )
    response = put_batch(client, bravo, overlapping, "B-0002")
    problem = conforms(response, "mvne", "loadSimBatch")
    assert problem["code"] == "ICCID_IN_USE" and problem["row"] == 1 and problem["field"] == "ICCID"
    assert "mvno-alpha" not in problem["detail"]
    imsi_taken = vendor_file(
        "B-0003",
        quantity=5,
        first_iccid=simfile.iccid_at(FIRST_ICCID, 100),
        first_imsi="001010000000098",
    )
    problem = put_batch(client, alpha, imsi_taken, "B-0003").get_json()
    assert problem["code"] == "ICCID_IN_USE" and problem["row"] == 3 and problem["field"] == "IMSI"
    seeded = first_sims(client, alpha)[0]
    pool = vendor_file("B-0004", quantity=1, first_iccid=seeded, first_imsi="001010000000500")
    problem = put_batch(client, alpha, pool, "B-0004").get_json()
    assert problem["code"] == "ICCID_IN_USE" and problem["row"] == 1


def test_matching_id_of_another_profile_is_refused(client, alpha):
    first = vendor_file("E-0001", 2, profile_type="eSIM")
    assert put_batch(client, alpha, first, "E-0001").status_code == 201
    second = vendor_file(
        "E-0002",
        2,
        profile_type="eSIM",
        first_iccid=simfile.iccid_at(FIRST_ICCID, 10),
        first_imsi="001010000000200",
    ).replace(b"E-0002-000002", b"E-0001-000001")
    problem = put_batch(client, alpha, second, "E-0002").get_json()
    assert problem["code"] == "MATCHING_ID_IN_USE" and problem["row"] == 2


def test_body_must_be_utf8_text_and_present(client, alpha):
    content = vendor_file()
    wrong_type = client.put(
        f"{BATCHES}/B-0001", data=content, headers={**alpha, "Content-Type": "application/json"}
    )
    assert conforms(wrong_type, "mvne", "loadSimBatch")["code"] == "UNSUPPORTED_MEDIA_TYPE"
    latin = client.put(
        f"{BATCHES}/B-0001",
        data=content,
        headers={**alpha, "Content-Type": "text/plain; charset=iso-8859-1"},
    )
    assert latin.status_code == 415
    empty = client.put(f"{BATCHES}/B-0001", data=b"", headers={**alpha, **TEXT})
    assert empty.status_code == 400 and conforms(empty, "mvne", "loadSimBatch")["field"] == "(body)"


def test_announced_size_past_the_limit_is_refused_before_reading(client, alpha):
    response = client.put(
        f"{BATCHES}/B-0001",
        input_stream=io.BytesIO(b"never read"),
        headers={**alpha, **TEXT},
        environ_overrides={"CONTENT_LENGTH": str(16 * 1024 * 1024 + 1)},
    )
    problem = conforms(response, "mvne", "loadSimBatch")
    assert response.status_code == 413 and problem["code"] == "PAYLOAD_TOO_LARGE"


def test_loading_needs_the_capability(client, alpha):
    client.put(
        "/__admin/partners/mvno-alpha/capabilities/LOAD_INVENTORY", json={"status": "suspended"}
    )
    response = put_batch(client, alpha, vendor_file())
    assert conforms(response, "mvne", "loadSimBatch")["code"] == "CAPABILITY_SUSPENDED"


# --- streamed, never whole ------------------------------------------------------------------


class CountingStream(io.BytesIO):
    """A request body that records how much each read asked for."""

    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        return super().read(size)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        self.reads.append(len(buffer))
        return super().readinto(buffer)


def test_request_body_is_read_a_block_at_a_time(client, alpha):
    content = vendor_file(quantity=3000)
    stream = CountingStream(content)
    response = client.put(
        f"{BATCHES}/B-0001",
        input_stream=stream,
        headers={**alpha, **TEXT},
        environ_overrides={"CONTENT_LENGTH": str(len(content))},
    )
    assert response.status_code == 201, response.get_json()
    assert len(stream.reads) > len(content) // BodyStream.BLOCK_BYTES
    assert max(stream.reads) <= BodyStream.BLOCK_BYTES
    entry = client.get("/__admin/journal?operationId=loadSimBatch").get_json()[0]
    assert entry["requestBody"] is None and entry["extra"]["requestBodyBytes"] == len(content)


def test_body_stream_yields_lines_as_sent_and_stops_at_its_limit():
    content = b"a\r\nbb\n\nccc"
    stream = BodyStream(io.BytesIO(content[4:]), limit=len(content), first_block=content[:4])
    assert list(stream) == [b"a\r\n", b"bb\n", b"\n", b"ccc"]
    with pytest.raises(PayloadTooLarge):
        list(BodyStream(io.BytesIO(b"x" * 100), limit=50, first_block=b"y"))
    endless = b"z" * (BodyStream.BLOCK_BYTES * 3 + 5)
    pieces = list(
        BodyStream(io.BytesIO(endless[10:]), limit=len(endless), first_block=endless[:10])
    )
    assert b"".join(pieces) == endless and max(map(len, pieces)) < BodyStream.BLOCK_BYTES * 2


def test_loader_inserts_each_chunk_before_reading_the_rest(runtime):
    """Fed a generator, the load has SIMs in the store while most of the file is unread."""
    quantity = inventory.CHUNK_ROWS * 3
    lines = vendor_file(quantity=quantity).splitlines(keepends=True)
    seen_while_reading: list[int] = []

    with runtime.store.write() as conn:

        def source() -> Iterator[bytes]:
            for index, line in enumerate(lines):
                if index == 13 + inventory.CHUNK_ROWS + 1:
                    seen_while_reading.append(
                        conn.execute(
                            select(func.count())
                            .select_from(sim_table)
                            .where(sim_table.c.batch_number == "B-0001")
                        ).scalar_one()
                    )
                yield line

        batch, loaded = inventory.load_batch(
            conn,
            partner=get_partner(conn, "mvno-alpha"),
            batch_number="B-0001",
            lines=source(),
            correlation_id=None,
            now=runtime.clock.now(conn),
        )
    assert loaded and batch.quantity == quantity
    assert seen_while_reading == [inventory.CHUNK_ROWS]


# --- the ICCID mapping handoff --------------------------------------------------------------


@pytest.fixture
def loaded(client, alpha) -> list[str]:
    """Alpha's batch B-0001 of three SIMs; their ICCIDs."""
    assert put_batch(client, alpha, vendor_file(quantity=3)).status_code == 201
    return [simfile.iccid_at(FIRST_ICCID, offset) for offset in range(3)]


def test_mapping_is_created_then_repeated_then_refused_for_another_account(client, alpha, loaded):
    iccid = loaded[0]
    body = {"accountId": "acc-1", "shipmentId": "shp-9", "subscriberName": "Ada Lovelace"}
    first = client.put(f"{MAPPINGS}/{iccid}", json=body, headers=alpha)
    mapping = conforms(first, "mvne", "mapIccid")
    assert first.status_code == 201 and first.headers["Location"] == mapping["href"]
    assert (mapping["accountId"], mapping["shipmentId"]) == ("acc-1", "shp-9")
    assert mapping["batchNumber"] == "B-0001" and mapping["resourceStatus"] == "available"
    repeat = client.put(f"{MAPPINGS}/{iccid}", json={"accountId": "acc-1"}, headers=alpha)
    assert repeat.status_code == 200
    assert conforms(repeat, "mvne", "mapIccid") == mapping  # a repeat changes nothing
    other = client.put(f"{MAPPINGS}/{iccid}", json={"accountId": "acc-2"}, headers=alpha)
    assert other.status_code == 409
    assert conforms(other, "mvne", "mapIccid")["code"] == "ICCID_MAPPED_TO_OTHER_ACCOUNT"
    sim = client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()
    assert sim["mapping"] == {
        "accountId": "acc-1",
        "shipmentId": "shp-9",
        "mappedAt": mapping["mappedAt"],
    }
    got = client.get(f"{MAPPINGS}/{iccid}", headers=alpha)
    assert conforms(got, "mvne", "getIccidMapping") == mapping
    actions = [
        entry["action"] for entry in client.get(f"/__admin/audit?entityId={iccid}").get_json()
    ]
    assert sorted(actions) == ["iccid.mapped", "iccid.mappingRepeated"]


def test_unknown_and_unmapped_iccids_are_not_found(client, alpha, loaded):
    unknown = simfile.iccid_at(FIRST_ICCID, 500)
    response = client.put(f"{MAPPINGS}/{unknown}", json={"accountId": "acc-1"}, headers=alpha)
    assert conforms(response, "mvne", "mapIccid")["code"] == "ICCID_NOT_IN_INVENTORY"
    response = client.get(f"{MAPPINGS}/{loaded[1]}", headers=alpha)
    assert conforms(response, "mvne", "getIccidMapping")["code"] == "ICCID_NOT_MAPPED"
    response = client.delete(f"{MAPPINGS}/{loaded[1]}", headers=alpha)
    assert conforms(response, "mvne", "unmapIccid")["code"] == "ICCID_NOT_MAPPED"


def test_unmapping_returns_the_sim_to_stock(client, alpha, loaded):
    client.put(f"{MAPPINGS}/{loaded[0]}", json={"accountId": "acc-1"}, headers=alpha)
    response = client.delete(f"{MAPPINGS}/{loaded[0]}", headers=alpha)
    assert response.status_code == 204 and conforms(response, "mvne", "unmapIccid") is None
    assert client.get(f"{SIMS}/{loaded[0]}", headers=alpha).get_json()["mapping"] is None
    again = client.put(f"{MAPPINGS}/{loaded[0]}", json={"accountId": "acc-2"}, headers=alpha)
    assert again.status_code == 201


def test_another_partner_sees_neither_the_batch_nor_its_iccids(client, alpha, bravo, loaded):
    assert (
        conforms(client.get(f"{BATCHES}/B-0001", headers=bravo), "mvne", "getSimBatch")["code"]
        == "BATCH_NOT_FOUND"
    )
    assert client.get(BATCHES, headers=bravo).get_json() == []
    assert batch_sims(client, bravo)[0] == 0
    client.put(f"{MAPPINGS}/{loaded[0]}", json={"accountId": "acc-1"}, headers=alpha)
    for response in (
        client.put(f"{MAPPINGS}/{loaded[1]}", json={"accountId": "acc-b"}, headers=bravo),
        client.get(f"{MAPPINGS}/{loaded[0]}", headers=bravo),
        client.delete(f"{MAPPINGS}/{loaded[0]}", headers=bravo),
    ):
        assert response.status_code == 404
        assert response.get_json()["code"] == "ICCID_NOT_IN_INVENTORY"
    # Bravo loading the same batch number is its own batch, not Alpha's.
    bravo_file = vendor_file(
        customer="mvno-bravo",
        first_iccid=simfile.iccid_at(FIRST_ICCID, 50),
        first_imsi="001010000000300",
    )
    assert put_batch(client, bravo, bravo_file).status_code == 201
    assert client.get(f"{MAPPINGS}/{loaded[0]}", headers=alpha).status_code == 200


# --- activation of batch SIMs ---------------------------------------------------------------


def activation(client, headers, iccid: str, external_id: str, account: str | None = None):
    body = order_body(iccid, external_id)
    if account is not None:
        body["billingAccount"] = {"id": account}
    return client.post(ORDERS, json=body, headers=headers)


def test_unmapped_batch_sim_is_refused_until_its_mapping_arrives(client, runtime, alpha, loaded):
    refused = activation(client, alpha, loaded[0], "shop-1")
    problem = conforms(refused, "mvne", "createProductOrder")
    assert refused.status_code == 422 and problem["code"] == "ICCID_UNMAPPED"
    assert "batch B-0001" in problem["detail"] and "no account mapping" in problem["detail"]
    assert client.get(f"{SIMS}/{loaded[0]}", headers=alpha).get_json()["resourceStatus"] == (
        "available"
    )
    client.put(f"{MAPPINGS}/{loaded[0]}", json={"accountId": "acc-1"}, headers=alpha)
    accepted = activation(client, alpha, loaded[0], "shop-2")
    assert accepted.status_code == 201, accepted.get_json()
    settle(runtime)
    settle(runtime, 5)
    order = client.get(f"{ORDERS}/{accepted.get_json()['id']}", headers=alpha).get_json()
    assert order["state"] == "completed"
    sim = client.get(f"{SIMS}/{loaded[0]}", headers=alpha).get_json()
    assert sim["resourceStatus"] == "active" and sim["mapping"]["accountId"] == "acc-1"
    mapped_active = client.put(
        f"{MAPPINGS}/{loaded[0]}", json={"accountId": "acc-1"}, headers=alpha
    )
    assert mapped_active.status_code == 200
    unmap_active = client.delete(f"{MAPPINGS}/{loaded[0]}", headers=alpha)
    assert conforms(unmap_active, "mvne", "unmapIccid")["code"] == "SIM_NOT_AVAILABLE"


def test_sim_mapped_to_another_account_than_the_order_names_is_refused(client, alpha, loaded):
    client.put(f"{MAPPINGS}/{loaded[0]}", json={"accountId": "acc-1"}, headers=alpha)
    refused = activation(client, alpha, loaded[0], "shop-1", account="acc-2")
    problem = conforms(refused, "mvne", "createProductOrder")
    assert refused.status_code == 422 and problem["code"] == "ICCID_BELONGS_TO_OTHER_ACCOUNT"
    assert problem["field"] == "billingAccount.id"
    accepted = activation(client, alpha, loaded[0], "shop-2", account="acc-1")
    order = conforms(accepted, "mvne", "createProductOrder")
    assert order["billingAccount"] == {"id": "acc-1"}


def test_seeded_sims_need_no_mapping(client, alpha):
    iccid = first_sims(client, alpha)[0]
    sim = client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()
    assert sim["batchNumber"] is None and sim["mapping"] is None
    assert activation(client, alpha, iccid, "shop-1", account="any-account").status_code == 201


def test_mapping_an_active_sim_is_refused(client, runtime, alpha):
    iccid = first_sims(client, alpha)[0]
    assert activation(client, alpha, iccid, "shop-1").status_code == 201
    settle(runtime)
    settle(runtime, 5)
    response = client.put(f"{MAPPINGS}/{iccid}", json={"accountId": "acc-1"}, headers=alpha)
    assert conforms(response, "mvne", "mapIccid")["code"] == "SIM_NOT_AVAILABLE"


def test_esim_profile_is_allocated_when_mapped_and_released_when_activated(client, runtime, alpha):
    put_batch(client, alpha, vendor_file("E-0001", 1, profile_type="eSIM"), "E-0001")
    iccid = FIRST_ICCID
    client.put(f"{MAPPINGS}/{iccid}", json={"accountId": "acc-1"}, headers=alpha)
    assert client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()["esimProfileState"] == (
        "allocated"
    )
    assert activation(client, alpha, iccid, "shop-1").status_code == 201
    settle(runtime)
    settle(runtime, 5)
    sim = conforms(client.get(f"{SIMS}/{iccid}", headers=alpha), "mvne", "getSim")
    assert sim["resourceStatus"] == "active" and sim["esimProfileState"] == "released"


# --- secrets ---------------------------------------------------------------------------------


def test_a_ki_in_a_refused_file_is_kept_nowhere(client, runtime, alpha):
    content = with_row(vendor_file(quantity=3), 2, "*" * 32, REAL_KI)
    response = put_batch(client, alpha, content)
    assert response.status_code == 422 and REAL_KI not in response.get_data(as_text=True)
    runtime.journal.flush()
    journal = client.get("/__admin/journal?limit=1000").get_data(as_text=True)
    assert "loadSimBatch" in journal and REAL_KI not in journal
    with runtime.store.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)).all():
                assert REAL_KI not in repr(tuple(row)), table.name
    if runtime.store.is_sqlite:
        database = Path(runtime.store.url.database or "")
        for path in (database, Path(f"{database}-wal")):
            if path.exists():
                assert REAL_KI.encode() not in path.read_bytes(), path


# --- an older store ---------------------------------------------------------------------------


def test_store_of_an_earlier_version_gains_the_new_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url)
    with old.engine.begin() as conn:
        # mvne_sim as the previous version created it, with one SIM in it.
        conn.execute(
            text(
                "CREATE TABLE mvne_sim (iccid VARCHAR(20) PRIMARY KEY, partner_id VARCHAR(64) "
                "NOT NULL, imsi VARCHAR(15) NOT NULL UNIQUE, status VARCHAR(12) NOT NULL, "
                "profile_type VARCHAR(10) NOT NULL, product_id VARCHAR(40), updated_at FLOAT "
                "NOT NULL)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO mvne_sim VALUES ('{FIRST_ICCID}', 'p', '{FIRST_IMSI}', "
                "'available', 'physical', NULL, 1.0)"
            )
        )
    old.dispose()
    store = Store(url)
    store.create_all()
    with store.read() as conn:
        sim = conn.execute(select(sim_table)).one()
    assert sim.iccid == FIRST_ICCID and sim.batch_number is None and sim.mapped_account_id is None
    store.dispose()


def test_reference_partner_kept_from_an_earlier_version_gains_the_new_capability(
    client, runtime, alpha
):
    with runtime.store.write() as conn:
        conn.execute(
            capabilities.delete().where(
                capabilities.c.partner_id == "mvno-alpha",
                capabilities.c.capability == "LOAD_INVENTORY",
            )
        )
    reset_state(runtime, "mvne")
    with runtime.store.read() as conn:
        assert get_partner(conn, "mvno-alpha").capabilities["LOAD_INVENTORY"] == "granted"
