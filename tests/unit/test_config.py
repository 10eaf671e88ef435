"""Configuration: sources and precedence, filled store choices, named errors, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dq_metadata.errors import MisconfiguredError
from dq_registries.wiring.config import STORE_NAMES, DQSettings, load_config, settings_from_mapping

PG_URL = "postgresql+psycopg://dq:s3cr3t-pw@db.internal:5432/dq"
AZ_CONN = "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=T0pS3cretKey==;"


@pytest.fixture(autouse=True)
def _no_outer_dq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own DQ_ variables must not leak into these tests.
    import os

    for name in list(os.environ):
        if name.startswith("DQ_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "dq.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_defaults_put_every_store_on_the_filesystem() -> None:
    settings = load_config()
    assert settings.default_backend == "filesystem"
    assert {getattr(settings.stores, n) for n in (*STORE_NAMES, "results")} == {"filesystem"}
    assert settings.filesystem.root == Path(".dq")
    assert (settings.tenant, settings.environment) == ("default", "dev")
    assert settings.contracts.active_statuses == ("active",)
    assert settings.results.inline_limit_bytes == 256 * 1024


def test_filesystem_root_defaults_to_dq_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DQ_HOME", str(tmp_path))
    assert load_config().filesystem.root == tmp_path


def test_a_yaml_file_is_read_and_per_store_overrides_win_over_the_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "default_backend": "memory",
            "stores": {"job_runs": "filesystem", "reports": "filesystem"},
            "filesystem": {"root": str(tmp_path / "store")},
            "contracts": {"active_statuses": ["active", "production"]},
        },
    )
    settings = load_config(path)
    assert settings.stores.job_runs == "filesystem"
    assert settings.stores.contracts == "memory"
    # results live with the runs that reference them, not in the process's memory
    assert settings.stores.results == "filesystem"
    assert settings.filesystem.root == tmp_path / "store"
    assert settings.contracts.active_statuses == ("active", "production")


@pytest.mark.parametrize(
    ("backend", "section"),
    [("postgres", {"url": PG_URL}), ("sqlite", {"url": "sqlite:///dq.sqlite3"})],
)
def test_a_sql_default_keeps_results_in_the_same_database(
    backend: str, section: dict[str, str]
) -> None:
    settings = settings_from_mapping({"default_backend": backend, backend: section})
    assert settings.stores.contracts == backend
    assert settings.stores.results == backend


def test_env_vars_are_read_with_double_underscore_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQ_DEFAULT_BACKEND", "postgres")
    monkeypatch.setenv("DQ_POSTGRES__URL", PG_URL)
    monkeypatch.setenv("DQ_POSTGRES__POOL_SIZE", "12")
    monkeypatch.setenv("DQ_STORES__RESULTS", "azure_blob")
    monkeypatch.setenv("DQ_AZURE_BLOB__CONTAINER", "dq-results")
    monkeypatch.setenv("DQ_AZURE_BLOB__CONNECTION_STRING", AZ_CONN)
    settings = load_config()
    assert settings.stores.job_definitions == "postgres"
    assert settings.stores.results == "azure_blob"
    assert settings.postgres.pool_size == 12
    assert settings.sql_url() == PG_URL


def test_overrides_beat_env_which_beats_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(
        tmp_path, {"tenant": "from-file", "environment": "file-env", "default_backend": "memory"}
    )
    monkeypatch.setenv("DQ_TENANT", "from-env")
    monkeypatch.setenv("DQ_ENVIRONMENT", "env-env")
    settings = load_config(path, overrides={"environment": "from-overrides"})
    assert settings.tenant == "from-env"
    assert settings.environment == "from-overrides"
    assert settings.default_backend == "memory"


def test_a_dict_config_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQ_DEFAULT_BACKEND", "postgres")
    assert settings_from_mapping({"default_backend": "memory"}).default_backend == "memory"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"stores": {"results": "postgres"}}, "postgres.url: required because stores.results"),
        ({"stores": {"results": "nosql"}}, "stores.results: unknown backend 'nosql'"),
        ({"stores": {"contrats": "memory"}}, "stores.contrats:"),
        ({"default_backend": "mongo"}, "default_backend:"),
        ({"postgres": {"pool_size": 0}}, "postgres.pool_size:"),
        ({"results": {"inline_limit_bytes": -1}}, "results.inline_limit_bytes:"),
        ({"contracts": {"active_statuses": []}}, "contracts.active_statuses:"),
        ({"tenant": "Not A Tenant"}, "tenant:"),
        ({"filesystem": {"durability": "none"}}, "filesystem.durability:"),
        ({"default_backend": "postgres"}, "postgres.url: required because stores.contracts"),
        (
            {"stores": {"reports": "sqlite"}},
            "sqlite.url: required because stores.reports uses sqlite",
        ),
        ({"default_backend": "sqlite", "sqlite": {"url": "postgresql://x"}}, "sqlite.url: must be"),
        (
            {"default_backend": "azure_blob", "azure_blob": {"account_url": "https://a"}},
            "azure_blob.container:",
        ),
        (
            {"stores": {"results": "azure_blob"}, "azure_blob": {"container": "dqc"}},
            "azure_blob: set exactly one",
        ),
    ],
)
def test_bad_configuration_names_the_key(data: dict[str, object], named: str) -> None:
    with pytest.raises(MisconfiguredError) as info:
        settings_from_mapping(data)
    assert named in str(info.value)


def test_azure_with_both_credentials_is_a_contradiction() -> None:
    with pytest.raises(MisconfiguredError, match=r"azure_blob: set exactly one .*both are set"):
        settings_from_mapping(
            {
                "default_backend": "azure_blob",
                "azure_blob": {
                    "container": "dqc",
                    "connection_string": AZ_CONN,
                    "account_url": "https://a",
                },
            }
        )


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(MisconfiguredError) as info:
        settings_from_mapping({"stores": {"results": "sqlite", "contracts": "nope"}})
    assert "stores.results" in str(info.value)
    assert "stores.contracts" in str(info.value)


def test_secrets_never_show_in_repr_or_errors() -> None:
    settings = settings_from_mapping(
        {
            "default_backend": "postgres",
            "postgres": {"url": PG_URL},
            "stores": {"results": "azure_blob"},
            "azure_blob": {"container": "dqc", "connection_string": AZ_CONN},
        }
    )
    shown = repr(settings) + str(settings) + repr(settings.model_dump())
    assert "s3cr3t-pw" not in shown
    assert "T0pS3cretKey" not in shown
    with pytest.raises(MisconfiguredError) as info:
        settings_from_mapping(
            {"default_backend": "postgres", "postgres": {"url": "mysql://u:s3cr3t-pw@h/db"}}
        )
    assert "s3cr3t-pw" not in str(info.value)
    with pytest.raises(MisconfiguredError) as info:
        settings_from_mapping({"postgres": {"url": PG_URL, "pool_size": "many"}})
    assert "s3cr3t-pw" not in str(info.value)
    assert "postgres.pool_size" in str(info.value)


def test_container_config_reveals_secrets_for_wiring_only() -> None:
    settings = settings_from_mapping({"default_backend": "postgres", "postgres": {"url": PG_URL}})
    assert settings.container_config()["backends"]["postgres"]["url"] == PG_URL


def test_sql_url_is_the_database_in_use() -> None:
    settings = settings_from_mapping(
        {
            "stores": {"job_runs": "sqlite", "reports": "sqlite"},
            "sqlite": {"url": "sqlite:///x.db"},
        }
    )
    assert settings.sql_url() == "sqlite:///x.db"
    pg = settings_from_mapping({"default_backend": "postgres", "postgres": {"url": PG_URL}})
    assert pg.sql_url() == PG_URL


def test_sql_url_without_a_database_is_a_misconfiguration() -> None:
    with pytest.raises(MisconfiguredError, match=r"default_backend .*postgres or sqlite"):
        load_config().sql_url()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stores: [unclosed", "not valid YAML at line 1"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_unreadable_config_files_are_misconfigurations(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "dq.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MisconfiguredError, match=message):
        load_config(path)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MisconfiguredError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "dq.yaml"
    path.write_text("", encoding="utf-8")
    assert load_config(path) == load_config()


def test_malformed_json_in_an_env_var_is_a_misconfiguration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DQ_STORES", "{not json")
    with pytest.raises(MisconfiguredError, match="environment"):
        load_config()


def test_settings_are_immutable() -> None:
    settings = load_config()
    with pytest.raises(Exception, match="frozen"):
        settings.tenant = "other"  # type: ignore[misc]
    assert isinstance(settings, DQSettings)
