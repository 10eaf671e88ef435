"""Configuration that would silently fall back is refused, with the key named on one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata.errors import MisconfiguredError
from dq_registries.wiring.config import DQSettings, load_config, load_config_with_sources
from dq_registries.wiring.config import settings_from_mapping as settings
from dq_registries.wiring.config_env import (
    NON_SETTING_VARIABLES,
    check_environment,
    connection_summary,
    effective_values,
    setting_variables,
)

PG_URL = "postgresql+psycopg://dq:s3cr3t-pw@db.internal:5432/dq"


@pytest.fixture(autouse=True)
def _no_outer_dq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DQ_"):
            monkeypatch.delenv(name)


def refused(data: dict[str, object]) -> str:
    with pytest.raises(MisconfiguredError) as info:
        settings(data)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"postgres": {"url": PG_URL}}, "postgres.url"),
        ({"postgres": {"pool_size": 3}}, "postgres.pool_size"),
        ({"sqlite": {"url": "sqlite:///x.db"}}, "sqlite.url"),
        ({"azure_blob": {"container": "dqc"}}, "azure_blob.container"),
        ({"filesystem": {"root": "/srv/dq"}, "default_backend": "memory"}, "filesystem.root"),
    ],
)
def test_settings_of_a_backend_no_store_uses_are_refused(
    section: dict[str, object], key: str
) -> None:
    message = refused(section)
    backend = key.split(".", maxsplit=1)[0]
    assert f"{key}: is set but no store uses {backend}" in message
    assert f"default_backend: {backend}" in message
    assert "stores.<name>" in message


def test_backend_settings_are_fine_once_a_store_uses_the_backend() -> None:
    chosen = settings(
        {"stores": {"job_runs": "sqlite", "reports": "sqlite"}, "sqlite": {"url": "sqlite:///x.db"}}
    )
    assert chosen.stores.job_runs == "sqlite"


def test_an_env_var_for_an_unused_backend_fails_instead_of_reading_dot_dq(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DQ_POSTGRES__URL", PG_URL)
    with pytest.raises(MisconfiguredError, match=r"postgres\.url: is set but no store uses"):
        load_config()


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("DQ_DEFAULT_BACKEN", "DQ_DEFAULT_BACKEND"),
        ("DQ_POSTGRES__UR", "DQ_POSTGRES__URL"),
        ("DQ_STORES__RESULT", "DQ_STORES__RESULTS"),
        ("DQ_HOMEE", "DQ_HOME"),
    ],
)
def test_an_unknown_dq_variable_names_the_nearest_valid_one(
    monkeypatch: pytest.MonkeyPatch, typo: str, meant: str
) -> None:
    monkeypatch.setenv(typo, "postgres")
    with pytest.raises(MisconfiguredError) as info:
        load_config()
    assert f"unknown environment variable {typo} (did you mean {meant}?)" in str(info.value)


@given(
    st.sampled_from(setting_variables(DQSettings)).flatmap(
        lambda name: st.tuples(st.just(name), st.integers(len("DQ_"), len(name) - 1))
    )
)
def test_any_one_letter_deletion_of_a_setting_variable_is_refused(case: tuple[str, int]) -> None:
    name, cut = case
    typo = name[:cut] + name[cut + 1 :]
    valid = set(setting_variables(DQSettings)) | NON_SETTING_VARIABLES
    if typo in valid or typo.startswith(("DQ_TEST_", "DQ_BENCH_", "DQ_PLUGINS__")):
        return
    with pytest.raises(MisconfiguredError, match=f"unknown environment variable {typo} "):
        check_environment({typo: "x"}, DQSettings)


def test_non_setting_variables_of_the_project_are_allowed() -> None:
    environ = dict.fromkeys(
        [*NON_SETTING_VARIABLES, "DQ_TEST_POSTGRES_URL", "DQ_BENCH_AZURE_CONNECTION_STRING"], "x"
    )
    check_environment({**environ, "dq_tenant": "acme", "OTHER": "y"}, DQSettings)


def test_split_document_groups_are_refused_naming_the_keys() -> None:
    message = refused(
        {
            "default_backend": "memory",
            "stores": {"contracts": "sqlite"},
            "sqlite": {"url": "sqlite:///x"},
        }
    )
    assert "stores.contracts/job_definitions/action_profiles: must use one backend" in message
    assert "stores.contracts=sqlite, stores.job_definitions=memory" in message
    message = refused(
        {
            "default_backend": "memory",
            "stores": {"reports": "sqlite"},
            "sqlite": {"url": "sqlite:///x"},
        }
    )
    assert "stores.job_runs/reports: must use one backend" in message


def test_sql_results_stay_in_the_database_and_the_filesystem_needs_an_explicit_root() -> None:
    message = refused(
        {
            "default_backend": "postgres",
            "postgres": {"url": PG_URL},
            "stores": {"results": "filesystem"},
        }
    )
    assert "filesystem.root: required because stores.results uses filesystem" in message
    chosen = settings(
        {
            "default_backend": "postgres",
            "postgres": {"url": PG_URL},
            "stores": {"results": "filesystem"},
            "filesystem": {"root": "/srv/dq-results"},
        }
    )
    assert (chosen.stores.results, chosen.filesystem.root) == (
        "filesystem",
        Path("/srv/dq-results"),
    )


def test_unknown_backend_names_suggest_the_nearest_one() -> None:
    message = refused({"default_backend": "postgre"})
    assert "default_backend: unknown backend 'postgre' (did you mean 'postgres'?)" in message


def test_config_sources_name_file_environment_and_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "dq.yaml"
    path.write_text(f"default_backend: postgres\npostgres: {{url: '{PG_URL}'}}\n")
    monkeypatch.setenv("DQ_POSTGRES__POOL_SIZE", "7")
    loaded = load_config_with_sources(path)
    assert loaded.sources["default_backend"] == f"file {path}"
    assert loaded.sources["postgres.pool_size"] == "environment DQ_POSTGRES__POOL_SIZE"
    assert loaded.sources["tenant"] == "default"
    assert loaded.sources["stores.results"] == "default (default_backend)"
    values = effective_values(loaded.settings)
    assert values["postgres.url"] == "postgresql+psycopg://dq:***@db.internal:5432/dq"
    assert values["stores.results"] == "postgres"
    assert values["filesystem.root"] == ".dq"  # the filesystem default is visible
    summary = connection_summary(loaded.settings)
    assert "results: postgres" in summary
    assert "s3cr3t" not in summary + repr(values)
