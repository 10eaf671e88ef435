"""``dq contracts`` through the mounted ``dq`` app, on a temporary filesystem root."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dq_registries.cli import app

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
        # DQ_HOME and DQ_CONFIG pointing elsewhere must not matter.
        self.runner = CliRunner(
            env={"DQ_HOME": str(tmp_path / "wrong"), "DQ_CONFIG": None, "COLUMNS": "200"}
        )

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, ["contracts", *args, "--config", str(self.config)])
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def write(self, name: str, document: dict[str, Any]) -> str:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return str(path)


@pytest.fixture
def dq(tmp_path: Path) -> Dq:
    return Dq(tmp_path)


def contract(version: str, *, drop_amount: bool = False, status: str = "active") -> dict[str, Any]:
    props = [{"name": "order_id", "logicalType": "string", "required": True}]
    if not drop_amount:
        props.append({"name": "amount", "logicalType": "number"})
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "orders", "version": version,
        "status": status, "schema": [{"name": "orders", "properties": props}],
    }  # fmt: skip


def test_publish_then_show_latest_list_and_history(dq: Dq) -> None:
    published = dq.json("publish", dq.write("v1.yaml", contract("1.0.0")), "--actor", "alice")
    assert published["created"] is True
    assert published["version"]["contract"]["version"] == "1.0.0"

    assert dq.json("latest", "orders")["contract"]["version"] == "1.0.0"
    assert dq.json("show", "orders", "--version", "1.0.0")["published_by"] == "alice"
    listing = dq.json("list", "--dataset", "orders")
    assert [i["contract"]["version"] for i in listing["items"]] == ["1.0.0"]
    assert dq.json("history", "orders", "1.0.0")[0]["actor"] == "alice"
    assert "orders" in dq("list").stdout  # the table for people
    assert (dq.tmp / "store").is_dir()
    assert not (dq.tmp / "wrong").exists()


def test_publishing_the_same_file_twice_is_a_no_op(dq: Dq) -> None:
    path = dq.write("v1.yaml", contract("1.0.0"))
    dq("publish", path)

    assert dq.json("publish", path)["created"] is False
    assert "already published" in dq("publish", path).stdout


def test_a_breaking_change_is_refused_with_one_line_and_exit_1(dq: Dq) -> None:
    dq("publish", dq.write("v1.yaml", contract("1.0.0")))
    broken = dq.write("v11.yaml", contract("1.1.0", drop_amount=True))

    result = dq("publish", broken, code=1)

    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert "schema[orders].properties[amount]" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_force_needs_a_reason_and_is_recorded(dq: Dq) -> None:
    dq("publish", dq.write("v1.yaml", contract("1.0.0")))
    broken = dq.write("v11.yaml", contract("1.1.0", drop_amount=True))

    assert dq("publish", broken, "--force", code=2).stderr.startswith("error: --force needs")
    result = dq.json("publish", broken, "--force", "--reason", "agreed", "--actor", "bob")

    assert result["version"]["forced"]["actor"] == "bob"
    assert result["version"]["forced"]["reason"] == "agreed"


def test_diff_by_versions_and_by_files(dq: Dq) -> None:
    old, new = (
        dq.write("a.yaml", contract("1.0.0")),
        dq.write("b.yaml", contract("2.0.0", drop_amount=True)),
    )
    dq("publish", old)
    dq("publish", new)

    by_version = dq.json("diff", "orders", "1.0.0", "2.0.0")
    by_file = dq.json("diff", old, new)

    assert by_version == by_file
    assert [(c["kind"], c["severity"]) for c in by_version] == [("field_removed", "error")]
    assert dq("diff", old, new, "--fail-on-breaking", code=1).stderr.startswith("error: 1 breaking")


def test_lifecycle_commands_and_their_errors(dq: Dq) -> None:
    dq("publish", dq.write("v1.yaml", contract("1.0.0", status="draft")))

    dq("activate", "orders", "1.0.0", "--actor", "bob", "--reason", "reviewed")
    assert "illegal status transition" in dq("retire", "orders", "1.0.0", code=1).stderr
    dq("deprecate", "orders", "1.0.0")
    retired = dq.json("retire", "orders", "1.0.0", "--actor", "carol")

    assert retired["contract"]["status"] == "retired"
    events = dq.json("history", "orders", "1.0.0")
    assert [e["to_status"] for e in events] == ["draft", "active", "deprecated", "retired"]


def test_export_writes_odcs_that_round_trips(dq: Dq, tmp_path: Path) -> None:
    source = EXAMPLES / "all-full-example.odcs.yaml"
    dq("publish", str(source))
    contract_id = "53581432-6c55-4ba2-a65f-72344a91553a"

    as_json = json.loads(dq("export", contract_id, "1.1.0", "--format", "json").stdout)
    dq("export", contract_id, "1.1.0", "-o", str(tmp_path / "out.yaml"))

    original = dq.json("show", contract_id)["contract"]
    assert as_json == original
    assert yaml.safe_load((tmp_path / "out.yaml").read_text())["schema"] == original["schema"]
    assert dq("export", contract_id, "1.1.0", "--format", "xml", code=2).stderr.startswith("error:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "missing"), "no contract 'missing'"),
        (("latest", "nothing"), "governs dataset 'nothing'"),
        (("publish", "/nonexistent/file.yaml"), "file not found"),
    ],
)
def test_bad_input_is_one_error_line(dq: Dq, args: tuple[str, ...], message: str) -> None:
    result = dq(*args, code=1)

    assert result.stderr.startswith("error: ")
    assert message in result.stderr


def test_an_invalid_document_names_the_json_path(dq: Dq) -> None:
    bad = contract("1.0.0")
    bad["schema"][0]["properties"][0]["required"] = "yes"

    result = dq("publish", dq.write("bad.yaml", bad), code=1)

    assert "$.schema[0].properties[0].required" in result.stderr


def test_a_non_semver_version_is_refused(dq: Dq) -> None:
    result = dq("publish", dq.write("bad.yaml", contract("v1.x")), code=1)

    assert "version" in result.stderr
    assert "semver" in result.stderr
