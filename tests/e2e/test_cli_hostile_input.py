"""Hostile input through the CLI: one ``error: ...`` line and a documented exit code.

Undecodable bytes, lone surrogates, deep nesting and Ctrl-C at any moment
(start-up included) never print a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    config = {"default_backend": "filesystem", "filesystem": {"root": str(tmp_path / "s")}}
    (tmp_path / "dq.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}


def _command(workspace: Path, *args: str) -> list[str]:
    config = str(workspace / "dq.yaml")
    return [sys.executable, "-m", "dq_registries.cli", *args, "--config", config]


def dq(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(workspace, *args),
        cwd=workspace, env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _contract(**extra: object) -> dict[str, object]:
    return {"apiVersion": "v3.1.0", "kind": "DataContract", "id": "orders",
            "version": "1.0.0", "status": "active", **extra}  # fmt: skip


def _assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_file_of_invalid_utf8_is_one_error_line(workspace: Path) -> None:
    (workspace / "latin1.yaml").write_bytes("id: caf\xe9\n".encode("latin-1"))

    for args in (["contracts", "publish"], ["jobs", "save"], ["actions", "save"]):
        _assert_one_error_line(dq(workspace, *args, "latin1.yaml"), "UTF-8")


def test_a_lone_surrogate_in_a_contract_is_one_error_line(workspace: Path) -> None:
    (workspace / "c.json").write_text(json.dumps(_contract(name="bad \ud83d text")))

    _assert_one_error_line(dq(workspace, "contracts", "publish", "c.json"), "name", "surrogate")
    assert dq(workspace, "contracts", "list", "--json").stdout.count('"id"') == 0


def test_a_lone_surrogate_in_an_id_argument_is_one_error_line(workspace: Path) -> None:
    result = subprocess.run(
        [*_command(workspace, "contracts", "get"), "\udcff"],
        cwd=workspace, env=_env(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode in (1, 2), result.stderr
    assert b"Traceback" not in result.stderr
    assert result.stderr.startswith(b"error: ") or b"Usage" in result.stderr


@pytest.mark.parametrize("depth", [100, 1000, 3000])
def test_deep_nesting_is_one_error_line(workspace: Path, depth: int) -> None:
    profile = {"id": "p", "name": "p", "action_type": "custom", "handler": "h"}
    deep = '{"n":' * depth + '"leaf"' + "}" * depth
    profile["params"] = "DEEP"
    (workspace / "p.json").write_text(json.dumps(profile).replace('"DEEP"', deep))
    contract = json.dumps(_contract(name="DEEP")).replace('"DEEP"', deep)
    (workspace / "c.json").write_text(contract)

    _assert_one_error_line(dq(workspace, "actions", "save", "p.json"), "nest")
    _assert_one_error_line(dq(workspace, "contracts", "publish", "c.json"))


def _wait_until_loading_native_modules(pid: int, timeout: float = 30.0) -> None:
    """Wait until the child maps a native module (pydantic-core: inside ``main``'s guard)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "pydantic_core" in Path(f"/proc/{pid}/maps").read_text():
                return
        except OSError:
            return
        time.sleep(0.002)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
@pytest.mark.parametrize("delay", [None, 0.0, 0.05, 0.15, 0.3, 0.6])
def test_ctrl_c_at_any_moment_is_error_interrupted_and_exit_130(
    workspace: Path, delay: float | None
) -> None:
    """``None``: at once (usually before Python installs its handler: killed, silent);
    otherwise that long after start-up reached dq's own imports (load-independent)."""
    (workspace / "c.json").write_text(json.dumps(_contract()))
    proc = subprocess.Popen(
        _command(workspace, "contracts", "publish", "c.json"),
        cwd=workspace, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if delay is not None:
        _wait_until_loading_native_modules(proc.pid)
        time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    if delay is None and proc.returncode == -signal.SIGINT:
        return  # before Python ran any code
    assert "Traceback" not in err
    if proc.returncode == 0:  # finished before the signal arrived
        return
    # 130 after the message, or (CPython's own choice when the interrupt lands while C
    # code runs Python code) ended by SIGINT, with or without the message: a shell
    # reports all of them as 130. Never a traceback, never another exit code.
    if proc.returncode == -signal.SIGINT:
        assert err in ("", "error: interrupted\n")
        return
    assert (proc.returncode, err) == (130, "error: interrupted\n")


@pytest.mark.parametrize(
    ("kind", "name", "body", "fragment"),
    [
        ("contracts", "c.json", json.dumps(_contract(n="BIG")).replace('"BIG"', "9" * 5000), "integer"),
        ("contracts", "c.yaml", yaml.safe_dump(_contract()) + "n: " + "9" * 5000 + "\n", "integer"),
        ("actions", "p.yaml", "id: p\nname: p\naction_type: custom\nhandler: h\nparams: {n: " + "9" * 5000 + "}\n", "integer"),
        ("contracts", "d.json", json.dumps(_contract())[:-1] + ', "status": "draft"}', "duplicate key"),
        ("contracts", "n.json", json.dumps(_contract(n="NAN")).replace('"NAN"', "NaN"), "NaN"),
    ],
)  # fmt: skip
def test_unreadable_numbers_and_duplicate_json_keys_are_one_error_line(
    workspace: Path, kind: str, name: str, body: str, fragment: str
) -> None:
    (workspace / name).write_text(body)
    verb = "publish" if kind == "contracts" else "save"

    _assert_one_error_line(dq(workspace, kind, verb, name), fragment)
    assert dq(workspace, kind, "list", "--json").stdout.count('"id"') == 0


def test_a_yaml_alias_bomb_is_one_error_line_quickly(workspace: Path) -> None:
    lines = ["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    (workspace / "bomb.yaml").write_text("\n".join(lines) + "\n")

    started = time.monotonic()
    _assert_one_error_line(dq(workspace, "contracts", "publish", "bomb.yaml"), "alias")
    assert time.monotonic() - started < 30


# Two moments of the interpreter's shutdown, once ``main`` has ended: an ``atexit``
# callback (CPython's SIGINT handler still installed), and a finaliser run while the
# modules are torn down (after CPython restored SIGINT's default action).
_LATE = {
    "atexit": "import atexit\natexit.register(late)\n",
    "finaliser": "class Late:\n    def __del__(self):\n        late()\nkeep = Late()\n",
}
_LATE_MAIN = """
import sys, time
def late():
    sys.stderr.write("late\\n")
    sys.stderr.flush()
    time.sleep(1.5)  # the test's SIGINT lands here
{hook}
from dq_registries.cli import main
sys.argv[0] = "dq"
main()
"""


@pytest.mark.parametrize("moment", sorted(_LATE))
@pytest.mark.parametrize(
    ("args", "code"),
    [(("contracts", "list", "--json"), 0), (("contracts", "publish", "missing.json"), 1)],
)
def test_ctrl_c_once_the_command_has_ended_changes_nothing(
    workspace: Path, args: tuple[str, ...], code: int, moment: str
) -> None:
    """A Ctrl-C during the interpreter's shutdown neither prints a traceback nor ends
    the process by SIGINT: the finished command's output and exit code stand."""
    config = str(workspace / "dq.yaml")
    program = _LATE_MAIN.format(hook=_LATE[moment])
    proc = subprocess.Popen(
        [sys.executable, "-c", program, *args, "--config", config],
        cwd=workspace, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    lines = []
    while (line := proc.stderr.readline()) != "late\n":
        assert line, "".join(lines)
        lines.append(line)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)

    assert (proc.returncode, err) == (code, ""), err
    if code == 0:
        assert json.loads(out)["items"] == []
    else:
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: "), lines
