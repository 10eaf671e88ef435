"""Third-party backends plug in through the ``dq.backends`` entry-point group."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from tests.support.scratch_plugin import ScratchBackend

from dq_metadata.errors import MisconfiguredError
from dq_metadata.scope import Scope
from dq_registries.wiring.config import load_config, settings_from_mapping
from dq_registries.wiring.container import build_container
from dq_registries.wiring.context import DQContext
from dq_registries.wiring.plugins import BackendRegistry
from dq_stores import DocumentBackend
from dq_stores.testing import DocumentBackendConformance

MODULE = "tests.support.scratch_plugin"
CONTRACT = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}


def registry(**points: str) -> BackendRegistry:
    return BackendRegistry.discover(
        [EntryPoint(name, f"{MODULE}:{attr}", "dq.backends") for name, attr in points.items()]
    )


class TestScratchPluginConformance(DocumentBackendConformance):
    """The shipped conformance kit, run on the plug-in exactly as its author would."""

    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        plugin = registry(scratch="PLUGIN").get("scratch")
        return functools.partial(plugin.backend, directory=tmp_path)


def test_the_configuration_names_a_plugin_and_the_container_opens_it(tmp_path: Path) -> None:
    config = {"default_backend": "scratch", "plugins": {"scratch": {"directory": str(tmp_path)}}}
    backends = registry(scratch="PLUGIN")
    container = build_container(config, backends=backends)
    assert isinstance(container.contracts_backend(), ScratchBackend)
    with DQContext.from_container(container, Scope("acme", "prod")) as dq:
        dq.contracts.publish(CONTRACT, actor="test")
    container.shutdown_resources()
    assert (tmp_path / "scratch").is_dir()
    again = build_container(config, backends=backends)
    with DQContext.from_container(again, Scope("acme", "prod")) as dq:
        assert dq.contracts.get("orders").version == "1.0.0"
    again.shutdown_resources()


def test_plugin_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DQ_DEFAULT_BACKEND", "scratch")
    monkeypatch.setenv("DQ_PLUGINS__SCRATCH__DIRECTORY", str(tmp_path))
    settings = load_config(backends=registry(scratch="PLUGIN"))
    assert settings.section("scratch") == {"directory": tmp_path}


def test_an_unregistered_name_is_refused_with_the_registered_ones() -> None:
    with pytest.raises(MisconfiguredError, match=r"default_backend: unknown backend 'scratch'"):
        settings_from_mapping({"default_backend": "scratch"})


def test_a_plugin_section_is_validated_by_the_plugin_model(tmp_path: Path) -> None:
    with pytest.raises(MisconfiguredError, match=r"plugins\.scratch\.directory: Field required"):
        settings_from_mapping({"default_backend": "scratch"}, backends=registry(scratch="PLUGIN"))
    with pytest.raises(MisconfiguredError, match=r"plugins\.scratch\.colour: Extra inputs"):
        settings_from_mapping(
            {
                "default_backend": "scratch",
                "plugins": {"scratch": {"directory": str(tmp_path), "colour": "red"}},
            },
            backends=registry(scratch="PLUGIN"),
        )


def test_a_plugin_without_results_needs_another_results_backend(tmp_path: Path) -> None:
    backends = registry(docs="DOCUMENTS_ONLY")
    section = {"plugins": {"docs": {"directory": str(tmp_path)}}}
    with pytest.raises(MisconfiguredError, match=r"default_backend 'docs' keeps no result objects"):
        settings_from_mapping({"default_backend": "docs", **section}, backends=backends)
    # results that outlive the process: an explicit directory (memory would lose them)
    results = {"stores": {"results": "filesystem"}, "filesystem": {"root": str(tmp_path / "r")}}
    chosen = settings_from_mapping(
        {"default_backend": "docs", **results, **section}, backends=backends
    )
    assert chosen.stores.results == "filesystem"


def test_broken_or_clashing_entry_points_are_misconfigurations() -> None:
    with pytest.raises(
        MisconfiguredError, match=r"is a object, not a dq_registries\.wiring\.plugins"
    ):
        registry(odd="NOT_A_PLUGIN").get("odd")
    with pytest.raises(MisconfiguredError, match="two backend plug-ins are named 'postgres'"):
        registry(postgres="PLUGIN")
    with pytest.raises(MisconfiguredError, match="must match"):
        registry(**{"Bad-Name": "PLUGIN"})


def test_the_built_ins_are_registered_as_entry_points_too() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split('[project.entry-points."dq.backends"]', 1)[1].split("\n\n", 1)[0]
    points = [
        EntryPoint(*(part.strip().strip('"') for part in line.split("=")), "dq.backends")
        for line in section.strip().splitlines()
    ]
    assert BackendRegistry.discover(points).names() == BackendRegistry.discover([]).names()
    assert {p.name for p in points} == {"memory", "filesystem", "postgres", "sqlite", "azure_blob"}
