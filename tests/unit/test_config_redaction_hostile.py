"""No secret reaches `dq config show` or the `--verbose` line, wherever a user puts it.

Passwords and tokens travel in URL user-info, in query parameters (``?password=``,
an Azure SAS ``&sig=``) and in connection strings; each of them is redacted in
:func:`effective_values` and :func:`connection_summary`, while where the store is
(scheme, host, path, harmless parameters) stays visible.
"""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.scratch_plugin import ScratchBackend

from dq_registries.wiring.config import settings_from_mapping
from dq_registries.wiring.config_env import connection_summary, effective_values
from dq_registries.wiring.plugins import BackendPlugin, BackendRegistry

SECRETS = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=24)


@pytest.fixture(autouse=True)
def _no_outer_dq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DQ_"):
            monkeypatch.delenv(name)


def shown(data: dict[str, object]) -> str:
    settings = settings_from_mapping(data)
    return repr(effective_values(settings)) + connection_summary(settings)


def configs(secret: str) -> list[dict[str, object]]:
    azure = {"container": "dq-data"}
    return [
        {"default_backend": "postgres", "postgres": {"url": f"postgresql://dq:{secret}@db/dq"}},
        {
            "default_backend": "postgres",
            "postgres": {"url": f"postgresql://dq@db/dq?sslmode=require&password={secret}"},
        },
        {"default_backend": "sqlite", "sqlite": {"url": f"sqlite:////srv/dq.db?password={secret}"}},
        {
            "default_backend": "azure_blob",
            "azure_blob": azure
            | {"account_url": f"https://acct.blob.core.windows.net/?sv=2022-11-02&sig={secret}"},
        },
        {
            "default_backend": "azure_blob",
            "azure_blob": azure
            | {
                "connection_string": "DefaultEndpointsProtocol=https;AccountName=acct;"
                f"AccountKey={secret};EndpointSuffix=core.windows.net"
            },
        },
        {
            "default_backend": "azure_blob",
            "azure_blob": azure
            | {
                "connection_string": "BlobEndpoint=https://acct.blob.core.windows.net/;"
                f"SharedAccessSignature=sv=2022-11-02&sig={secret}"
            },
        },
    ]


@given(secret=SECRETS)
def test_no_secret_is_shown_wherever_it_is_put(secret: str) -> None:
    for data in configs(secret):
        assert secret not in shown(data), data


def test_redaction_keeps_where_the_store_is() -> None:
    values = effective_values(
        settings_from_mapping(
            {
                "default_backend": "azure_blob",
                "azure_blob": {
                    "container": "dq-data",
                    "account_url": "https://acct.blob.core.windows.net/?sv=2022-11-02&sig=XYZ",
                },
            }
        )
    )
    assert values["azure_blob.account_url"] == (
        "https://acct.blob.core.windows.net/?sv=2022-11-02&sig=***"
    )
    sqlite = effective_values(
        settings_from_mapping(
            {"default_backend": "sqlite", "sqlite": {"url": "sqlite:////srv/dq.db?password=XYZ"}}
        )
    )
    assert sqlite["sqlite.url"] == "sqlite:////srv/dq.db?password=***"


#: A third-party backend without a settings model: its section is free-form.
LOOSE = BackendPlugin(backend=ScratchBackend)


@given(secret=SECRETS)
def test_no_secret_of_a_plugin_section_is_shown(secret: str) -> None:
    backends = BackendRegistry.discover([EntryPoint("loose", f"{__name__}:LOOSE", "dq.backends")])
    section = {
        "directory": "/srv/dq",
        "passphrase": secret,
        "pwd": secret,
        "hosts": [f"mongodb://dq:{secret}@h1", "mongodb://h2"],
        "dsn": f"loose://h/db?sig={secret}",
        "auth": {"client_secret": secret},
        "replicas": [{"host": "h3", "password": secret}],
    }
    settings = settings_from_mapping(
        {
            "default_backend": "loose",
            "plugins": {"loose": section},
            "stores": {"results": "filesystem"},
            "filesystem": {"root": "/srv/dq-results"},
        },
        backends=backends,
    )
    values = effective_values(settings)
    assert secret not in repr(values) + connection_summary(settings)
    assert values["plugins.loose.directory"] == "/srv/dq"


@given(secret=SECRETS)
def test_repr_and_str_of_the_settings_hide_every_secret(secret: str) -> None:
    # e.g. an account_url carrying a SAS, which is a plain str field, printed by a
    # debugger, a log line or an f-string of the settings object
    for data in configs(secret):
        settings = settings_from_mapping(data)
        section = settings.azure_blob
        assert secret not in repr(settings) + str(settings) + repr(section) + str(section)
    backends = BackendRegistry.discover([EntryPoint("loose", f"{__name__}:LOOSE", "dq.backends")])
    settings = settings_from_mapping(
        {
            "default_backend": "loose",
            "plugins": {"loose": {"directory": "/srv/dq", "auth": {"client_secret": secret}}},
            "stores": {"results": "filesystem"},
            "filesystem": {"root": "/srv/dq-results"},
        },
        backends=backends,
    )
    assert secret not in repr(settings) + str(settings)
    assert "/srv/dq" in repr(settings)
