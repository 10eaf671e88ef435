"""``dq contracts search`` and ``dq contracts reindex`` through the ``dq`` app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dq_metadata.scope import Scope
from dq_registries.cli import app
from dq_stores.documents import ANY
from dq_stores.filesystem import FilesystemBackend
from dq_stores.typed import ContractHeadStore

EXAMPLES = Path(__file__).parents[1] / "data" / "odcs"


class Dq:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.config = tmp_path / "dq.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "tenant": "acme",
                    "environment": "dev",
                    "filesystem": {"root": str(tmp_path / "store")},
                }
            )
        )
        self.runner = CliRunner(
            env={"DQ_HOME": str(tmp_path / "h"), "DQ_CONFIG": None, "COLUMNS": "200"}
        )

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, ["contracts", *args, "--config", str(self.config)])
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def publish(self, document: dict[str, Any]) -> None:
        path = self.tmp / f"{document['id']}-{document['version']}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        self("publish", str(path), "--actor", "alice")


def contract(
    cid: str, version: str = "1.0.0", purpose: str = "Orders of customers"
) -> dict[str, Any]:
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": cid, "version": version,
        "status": "active", "name": f"{cid} contract", "description": {"purpose": purpose},
        "schema": [{"name": cid, "properties": [{"name": "customer_email", "logicalType": "string"}]}],
    }  # fmt: skip


@pytest.fixture
def dq(tmp_path: Path) -> Dq:
    return Dq(tmp_path)


def test_search_json_and_table(dq: Dq) -> None:
    dq.publish(contract("orders"))
    dq.publish(contract("orders", "1.1.0", "Orders and refunds of customers"))
    dq.publish(contract("refunds", purpose="Money back"))
    out = dq.json("search", "customer email")
    hits = [(h["id"], h["version"]) for h in out["hits"]]
    assert hits == [("orders", "1.1.0"), ("refunds", "1.0.0")]  # one row per contract
    assert out["hits"][0]["summary"] == "Orders and refunds of customers"
    assert out["next_token"] is None
    assert [h["id"] for h in dq.json("search", "refund")["hits"]] == ["refunds", "orders"]
    table = dq("search", "refunds").stdout
    assert "refunds contract" in table
    assert "Money back" in table


def test_search_pages_with_the_printed_token(dq: Dq) -> None:
    for i in range(3):
        dq.publish(contract(f"c{i}"))
    first = dq.json("search", "customers", "--limit", "2")
    assert len(first["hits"]) == 2
    assert first["next_token"]
    assert f"--page-token {first['next_token']}" in dq("search", "customers", "--limit", "2").stdout
    second = dq.json("search", "customers", "--limit", "2", "--page-token", first["next_token"])
    assert [h["id"] for h in first["hits"] + second["hits"]] == ["c0", "c1", "c2"]
    assert second["next_token"] is None


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["search", "  "], "text"),
        (["search", "a b c d e f g h i"], "text"),
        (["search", "x", "--limit", "0"], "limit"),
        (["search", "x", "--page-token", "nonsense"], "page_token"),
    ],
)
def test_bad_search_input_is_a_clear_error(dq: Dq, args: list[str], where: str) -> None:
    dq.publish(contract("orders"))
    result = dq(*args, code=2)
    assert where in result.stderr
    assert "Traceback" not in result.stderr


def test_reindex_makes_old_contracts_findable(dq: Dq, tmp_path: Path) -> None:
    dq.publish(contract("orders"))
    with FilesystemBackend(tmp_path / "store") as backend:  # a head from before search
        heads = ContractHeadStore(backend)
        old = heads.get(Scope("acme", "dev"), "orders").item
        heads.put(Scope("acme", "dev"), old.model_copy(update={"search": None}), ANY)
    assert dq.json("search", "orders")["hits"] == []
    assert dq.json("reindex") == {"contracts": 1, "updated": 1}
    assert [h["id"] for h in dq.json("search", "orders")["hits"]] == ["orders"]
    assert dq.json("reindex") == {"contracts": 1, "updated": 0}
    assert "updated" in dq("reindex").stdout


def test_tables_escape_terminal_control_characters_from_contracts(dq: Dq, tmp_path: Path) -> None:
    # A contract's name and description reach the terminal through search hits and
    # show/list rows: an ESC or a bidi override in them must not drive the terminal.
    evil = contract("evil", purpose="zapword \x1b]0;pwned\x07 \u202egnp.exe")
    evil["name"] = "evil\x1b[31mRED\x9b2J\u2066x"
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(evil))
    dq("publish", str(path), "--actor", "alice")
    for args in (["search", "zapword"], ["show", "evil"], ["list"]):
        out = dq(*args).stdout
        assert not any(c in out for c in "\x1b\x07\x9b\u202e\u2066"), (args, out)
    out = dq("search", "zapword").stdout
    assert "evil\\x1b[31mRED\\x9b2J\\u2066x" in out
    assert dq.json("search", "zapword")["hits"][0]["name"] == evil["name"]  # JSON: exact
