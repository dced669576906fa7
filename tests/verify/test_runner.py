"""The document a verification runs: the contract's own links, the hub's where it has none,
and nothing that points at an operation no credential can exercise."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from verify_support import TWO_SCHEMES

from simulators.verify.contract import Contract, ContractError, Credentials, load
from simulators.verify.runner import _document

HUB_READ = {
    "get": {
        "operationId": "getListener",
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "responses": {"200": {"description": "the listener"}},
    }
}


def contract_of(tmp_path: Path, document: dict[str, Any]) -> Contract:
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load("mvne", path)


@pytest.fixture
def document() -> dict[str, Any]:
    document = copy.deepcopy(TWO_SCHEMES)
    document["paths"]["/hub/{id}"] = HUB_READ
    return document


def hub_links(document: dict[str, Any]) -> dict[str, Any]:
    return document["paths"]["/hub"]["post"]["responses"]["201"].get("links", {})


def test_a_hub_without_links_gets_register_then_read(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    links = hub_links(_document(contract_of(tmp_path, document), set()))
    assert links == {
        "ReadListener": {"operationId": "getListener", "parameters": {"id": "$response.body#/id"}}
    }


def test_a_hub_link_the_contract_declares_is_not_added_twice(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    declared = {"GetIt": {"operationId": "getListener", "parameters": {"id": "$response.body#/id"}}}
    document["paths"]["/hub"]["post"]["responses"]["201"]["links"] = declared
    assert hub_links(_document(contract_of(tmp_path, document), set())) == declared


def test_operations_without_a_credential_leave_the_run_with_the_links_to_them(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    created = document["paths"]["/orders"]["post"]["responses"]["201"]
    created["links"] = {
        "Read": {"operationId": "getOrder", "parameters": {"id": "$response.body#/id"}},
        "Report": {"operationId": "getReport"},
    }
    run = _document(contract_of(tmp_path, document), {"GET /report"})
    assert "get" not in run["paths"]["/report"]
    assert list(run["paths"]["/orders"]["post"]["responses"]["201"]["links"]) == ["Read"]
    # The contract itself is left as it was.
    assert "Report" in created["links"]


def test_a_plain_key_stands_for_every_scheme_not_named(tmp_path: Path) -> None:
    contract = contract_of(tmp_path, TWO_SCHEMES)
    keys = Credentials.parse(["staffKey=s", "p=="], contract, "--key")
    # `p==` is a key with base64 padding, not a scheme named `p`.
    assert (keys.get("partnerKey"), keys.get("staffKey")) == ("p==", "s")


def test_two_plain_keys_are_bad_input(tmp_path: Path) -> None:
    contract = contract_of(tmp_path, TWO_SCHEMES)
    with pytest.raises(ContractError, match="given twice without a scheme"):
        Credentials.parse(["a", "b"], contract, "--other-key")
