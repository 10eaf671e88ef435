"""The ``DQ_…`` environment namespace: which variables are settings, which are not, and
where each effective value came from.

Every ``DQ_…`` variable must either map to a setting (``DQ_POSTGRES__URL``) or be
one of :data:`NON_SETTING_VARIABLES` / :data:`NON_SETTING_PREFIXES`; anything else
is a typo and fails with the nearest valid name, instead of being ignored.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

from dq_metadata.errors import MisconfiguredError
from dq_registries.wiring.defaults import DQ_HOME_ENV
from dq_stores._redact import redact

if TYPE_CHECKING:
    from dq_registries.wiring.config import DQSettings

__all__ = [
    "NON_SETTING_PREFIXES",
    "NON_SETTING_VARIABLES",
    "check_environment",
    "effective_values",
    "malformed_env_message",
    "redact_setting",
    "redact_url",
    "setting_variables",
    "sources_of",
]

PREFIX = "DQ_"

#: ``DQ_…`` variables that are not settings but are read elsewhere.
NON_SETTING_VARIABLES = frozenset(
    {
        DQ_HOME_ENV,  # root of the filesystem default (defaults.default_root)
        "DQ_CONFIG",  # the CLI's --config
        "DQ_DB_URL",  # `dq db --url`
        "DQ_FS_NATIVE",  # 0: the filesystem get's pure-Python path (dq_stores.filesystem._accel)
        "DQ_QUICKSTART_DIR",  # `dq quickstart`'s working directory
        "DQ_REQUIRE_BACKENDS",  # test suite: fail instead of skipping backend tests
    }
)
#: Prefixes of ``DQ_…`` variables owned by the test suite and the benchmarks.
NON_SETTING_PREFIXES = ("DQ_TEST_", "DQ_BENCH_")
_PLUGINS = "DQ_PLUGINS__"
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|credential|connection_string|sig|auth|key$")
#: A query parameter whose name says it holds a secret (``?password=``, a SAS ``&sig=``).
_QUERY_SECRET = re.compile(
    r"(?i)([?&;][^=&#;?]*(?:pass|pwd|secret|token|sig|key|credential|auth)[^=&#;?]*=)[^&#;]*"
)


def setting_variables(model: type[BaseModel]) -> list[str]:
    """Every environment variable that names a setting of ``model`` (upper case)."""
    names: list[str] = []
    for field, info in model.model_fields.items():
        names.append(f"{PREFIX}{field.upper()}")
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{PREFIX}{field.upper()}__{sub.upper()}" for sub in annotation.model_fields]
    return names


def check_environment(environ: Mapping[str, str], model: type[BaseModel]) -> None:
    """Refuse ``DQ_…`` variables that are neither settings nor known non-settings.

    Raises:
        MisconfiguredError: one line per unknown variable, with the nearest valid name.
    """
    valid = setting_variables(model)
    allowed = set(valid) | NON_SETTING_VARIABLES
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in allowed:
            continue
        if upper.startswith((*NON_SETTING_PREFIXES, _PLUGINS)):
            continue
        close = difflib.get_close_matches(upper, [*valid, *NON_SETTING_VARIABLES], n=1)
        hint = f"did you mean {close[0]}?" if close else "not a dq setting"
        problems.append(f"unknown environment variable {name} ({hint})")
    if problems:
        raise MisconfiguredError(
            "; ".join(problems) + ": unset it, or see `dq config show` for the valid keys"
        )


def malformed_env_message(error: str, environ: Mapping[str, str]) -> str:
    """Name the variables behind pydantic-settings' "error parsing value for field X"."""
    match = re.search(r'field "([^"]+)"', error)
    prefix = f"DQ_{match[1].upper()}" if match else "DQ_"
    names = sorted(
        name for name in environ if name.upper() == prefix or name.upper().startswith(prefix + "__")
    )
    return (
        f"invalid configuration in the environment: {' or '.join(names) or prefix} must "
        "hold JSON for a list or mapping, e.g. DQ_CONTRACTS__ACTIVE_STATUSES='[\"active\"]'"
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= _flatten(value, dotted + ".")
        else:
            flat[dotted] = value
    return flat


def redact_setting(key: str, value: Any) -> Any:
    """``value`` of the setting ``key`` (dotted) as shown to people: secrets masked."""
    return _redact(key, value)


def _redact(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if key.endswith(".url") and "://" in secret:  # where it points, not how it logs in
            return redact(secret)
        return "***" if secret else ""
    if isinstance(value, str):
        if key.startswith("plugins.") and _SECRET_KEY.search(key.rsplit(".", 1)[-1]):
            return "***"
        return redact_url(value)  # e.g. an account_url carrying a SAS
    if isinstance(value, (tuple, list)):
        return [_redact(key, item) for item in value]
    if isinstance(value, Mapping):  # e.g. a mapping inside a plug-in's list
        return {str(k): _redact(f"{key}.{k}", v) for k, v in value.items()}
    return value if isinstance(value, (int, float, bool, list)) or value is None else str(value)


def redact_url(value: str) -> str:
    """``value`` with a URL's password and secret query parameters replaced by ``***``
    (the library-wide :func:`dq_stores._redact.redact`, plus the plug-in names
    ``pwd``/``auth``/``sig`` a third-party section may use)."""
    value = redact(value)
    return _QUERY_SECRET.sub(r"\1***", value) if "?" in value else value


def effective_values(settings: DQSettings) -> dict[str, Any]:
    """Every effective setting as ``dotted.key → value``, secrets redacted."""
    data = {name: getattr(settings, name) for name in type(settings).model_fields}
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, BaseModel):
            for sub in type(value).model_fields:
                flat[f"{name}.{sub}"] = getattr(value, sub)
        elif isinstance(value, Mapping):
            flat |= {f"{name}.{k}": v for k, v in _flatten(value).items()}
        else:
            flat[name] = value
    return {key: _redact(key, value) for key, value in flat.items()}


def _env_name(key: str, environ: Mapping[str, str]) -> str:
    present = {name.upper() for name in environ}
    parts = key.split(".")
    for cut in range(len(parts), 0, -1):
        name = PREFIX + "__".join(parts[:cut]).upper()
        if name in present:
            return name
    return PREFIX + "__".join(parts).upper()


def sources_of(
    settings: DQSettings,
    layers: Sequence[tuple[str, Mapping[str, Any]]],
    environ: Mapping[str, str],
) -> dict[str, str]:
    """``dotted.key → source`` for :func:`effective_values`' keys.

    ``layers``: (label, raw data) from highest to lowest precedence; the label
    ``"environment"`` is refined to the variable's name.
    """
    flat_layers = [(label, _flatten(data)) for label, data in layers]
    sources: dict[str, str] = {}
    for key in effective_values(settings):
        for label, flat in flat_layers:
            if key in flat:
                sources[key] = (
                    f"environment {_env_name(key, environ)}" if label == "environment" else label
                )
                break
        else:
            sources[key] = _default_source(key, environ, settings)
    return sources


def _default_source(key: str, environ: Mapping[str, str], settings: DQSettings) -> str:
    if key == "stores.results" and settings.stores.job_runs != settings.default_backend:
        return "default (stores.job_runs)"
    if key.startswith("stores."):
        return "default (default_backend)"
    if key == "filesystem.root":
        return f"default (${DQ_HOME_ENV})" if environ.get(DQ_HOME_ENV, "").strip() else "default"
    return "default"


def connection_summary(settings: DQSettings) -> str:
    """One line naming each store's backend and where it is (secrets redacted).

    E.g. ``contracts, job_definitions, action_profiles: postgres; job_runs, reports:
    postgres; results: postgres (postgres.url=postgresql+psycopg://dq:***@db/dq)``.
    """
    from dq_registries.wiring.config import DOCUMENT_GROUPS

    values = effective_values(settings)
    parts = [
        ", ".join(group) + ": " + str(getattr(settings.stores, group[0]))
        for group in DOCUMENT_GROUPS
    ]
    parts.append(f"results: {settings.stores.results}")
    where = [
        f"{key}={value}"
        for key, value in values.items()
        if key.split(".")[0] in settings.backends_in_use()
        and key.rsplit(".", 1)[-1] in {"root", "url", "container", "account_url"}
        and value not in (None, "")
    ]
    return "; ".join(parts) + (f" ({', '.join(where)})" if where else "")
