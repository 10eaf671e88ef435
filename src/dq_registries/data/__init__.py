"""Sample data shipped with the package (used by ``dq quickstart`` and the examples)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from dq_registries.yaml12 import load_yaml

__all__ = ["orders_contract"]


def orders_contract() -> dict[str, Any]:
    """The sample ``orders`` ODCS v3 contract (version 1.0.0, status active) as a dict."""
    text = resources.files(__name__).joinpath("orders.odcs.yaml").read_text("utf-8")
    data: dict[str, Any] = load_yaml(text, source="orders.odcs.yaml")
    return data
