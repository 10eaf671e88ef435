"""Hostile configurations a user can write that must fail closed, naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata.errors import MisconfiguredError
from dq_registries.wiring.config import load_config, settings_from_mapping


@pytest.fixture(autouse=True)
def _no_outer_dq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DQ_"):
            monkeypatch.delenv(name)


def refused(data: dict[str, object]) -> str:
    with pytest.raises(MisconfiguredError) as info:
        settings_from_mapping(data)
    message = str(info.value)
    assert "\n" not in message
    return message


@given(root=st.text(alphabet=" \t", max_size=4))
def test_a_blank_filesystem_root_is_refused_not_the_current_directory(root: str) -> None:
    # Path("") is "." : an empty root silently wrote documents into whatever directory
    # the process ran in (and "  " into a directory named by two spaces).
    assert "filesystem.root" in refused({"filesystem": {"root": root}})


def test_a_blank_filesystem_root_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DQ_FILESYSTEM__ROOT", "")
    with pytest.raises(MisconfiguredError, match=r"filesystem\.root"):
        load_config()


@pytest.mark.parametrize("documents", ["filesystem", "sqlite"])
def test_results_in_memory_for_runs_kept_elsewhere_are_refused(documents: str) -> None:
    # The runs outlive the process; results kept in its memory would not: every run
    # finished with large results would reference an object gone at exit.
    data: dict[str, object] = {
        "default_backend": documents,
        "stores": {"results": "memory"},
        "filesystem": {"root": "/srv/dq"},
    }
    if documents == "sqlite":
        data = data | {"sqlite": {"url": "sqlite:////srv/dq.db"}}
        del data["filesystem"]
    message = refused(data)
    assert "stores.results" in message
    assert f"stores.job_runs={documents}" in message


def test_results_in_memory_with_runs_in_memory_stay_allowed() -> None:
    settings = settings_from_mapping({"default_backend": "memory"})
    assert settings.stores.results == "memory"


def test_a_home_relative_filesystem_root_means_the_home_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # "~/dq" was kept literally: documents went to ./~/dq under the current directory.
    monkeypatch.setenv("HOME", str(tmp_path))
    chosen = settings_from_mapping({"filesystem": {"root": "~/dq"}})
    assert chosen.filesystem.root == tmp_path / "dq"
    monkeypatch.setenv("DQ_HOME", "~/dq-home")
    assert settings_from_mapping({}).filesystem.root == tmp_path / "dq-home"


def test_an_unknown_default_backend_is_reported_once() -> None:
    # Each store filled from default_backend repeated the same problem (7 times).
    message = refused({"default_backend": "postgress"})
    assert message.count("unknown backend 'postgress'") == 1
    assert "default_backend: unknown backend 'postgress' (did you mean 'postgres'?)" in message
    both = refused({"default_backend": "postgress", "stores": {"reports": "sqlit"}})
    assert "stores.reports: unknown backend 'sqlit'" in both


@pytest.mark.parametrize(
    ("name", "value"),
    [("DQ_CONTRACTS__ACTIVE_STATUSES", "active,production"), ("DQ_PLUGINS", "{mongo")],
)
def test_a_malformed_list_or_mapping_variable_is_named_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    # The error said 'error parsing value for field "contracts" from source
    # "EnvSettingsSource"': neither the variable nor what it should hold.
    monkeypatch.setenv(name, value)
    with pytest.raises(MisconfiguredError) as info:
        load_config()
    message = str(info.value)
    assert name in message
    assert "JSON" in message
    assert "\n" not in message
