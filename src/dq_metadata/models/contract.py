"""Data contracts: ODCS v3-shaped documents plus the registry's publication record.

The ODCS part keeps every field it is given (``extra="allow"``), so a document
imported from YAML exports back unchanged; only the fields the platform reasons
about are typed.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_serializer,
    field_validator,
    model_validator,
)

from dq_metadata.models.base import (
    DQModel,
    Identifier,
    IndexedName,
    NonEmptyStr,
    UtcDatetime,
    refuse_non_json,
)

__all__ = [
    "ODCS_API_VERSIONS",
    "ContractHead",
    "ContractSearchTokens",
    "ContractVersion",
    "DataContract",
    "ForcedPublish",
    "LifecycleEvent",
    "SchemaObject",
    "SchemaProperty",
]


#: ODCS versions a contract may declare, oldest first; each has its official JSON Schema.
ODCS_API_VERSIONS = ("v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0", "v3.2.0")


class _OdcsModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _extra_values_are_json(self) -> Self:
        # extra fields keep whatever they are given: only exact JSON may be kept
        refuse_non_json(self)
        return self


class SchemaProperty(_OdcsModel):
    """An ODCS property (a column or nested field)."""

    name: str | None = None
    logicalType: str | None = None
    physicalType: str | None = None
    required: bool | None = None
    unique: bool | None = None
    primaryKey: bool | None = None
    primaryKeyPosition: int | None = None
    classification: str | None = None
    logicalTypeOptions: dict[str, Any] | None = None
    properties: list[SchemaProperty] | None = None
    items: SchemaProperty | None = None


class SchemaObject(_OdcsModel):
    """An ODCS schema object: one dataset (table, view, topic, file…) the contract governs.

    ``name`` is indexed (it finds the contract by dataset): no NUL, ≤ 512 bytes of UTF-8.
    """

    name: IndexedName | None = None
    physicalName: str | None = None
    logicalType: str | None = None
    physicalType: str | None = None
    properties: list[SchemaProperty] | None = None


class DataContract(_OdcsModel):
    """An ODCS v3 data contract document.

    ``apiVersion`` is one of :data:`ODCS_API_VERSIONS` and is kept as declared, so a
    document exports under the version it was written for.
    """

    apiVersion: str = "v3.1.0"
    kind: str = "DataContract"
    id: Identifier
    version: NonEmptyStr
    status: NonEmptyStr
    name: str | None = None
    schema_: list[SchemaObject] | None = Field(default=None, alias="schema")
    # The ODCS document as it was when it passed the JSON Schema (set by the registry's
    # parser): an unchanged contract need not be checked again.
    _odcs_checked: dict[str, Any] | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # Equal contracts are equal whether or not one of them went through the schema
        # check: the check's cache is not part of the value.
        if not isinstance(other, DataContract):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.__dict__ == other.__dict__
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model

    @field_validator("apiVersion")
    @classmethod
    def _known_api_version(cls, value: str) -> str:
        if value not in ODCS_API_VERSIONS:
            raise ValueError(
                f"ODCS apiVersion {value!r} is not supported; use one of "
                + ", ".join(ODCS_API_VERSIONS)
            )
        return value

    def dataset_names(self) -> list[str]:
        """The datasets this contract governs: the names of its schema objects."""
        return sorted({obj.name for obj in self.schema_ or [] if obj.name})

    def to_odcs(self) -> dict[str, Any]:
        """The ODCS document as a plain dict, exactly the fields that were set.

        ``apiVersion`` and ``kind`` are required by the ODCS schema, so their defaults
        are written even when the document was built without them.
        """
        body = self.model_dump(by_alias=True, exclude_unset=True, mode="json")
        if "apiVersion" in body and "kind" in body:
            return body
        return {"apiVersion": self.apiVersion, "kind": self.kind, **body}


class LifecycleEvent(DQModel):
    """One status change of a published contract version: who, when, why."""

    from_status: str | None
    to_status: NonEmptyStr
    actor: NonEmptyStr
    at: UtcDatetime
    reason: str | None = None


class ForcedPublish(DQModel):
    """Record of a publish that bypassed the breaking-change rule."""

    actor: NonEmptyStr
    at: UtcDatetime
    reason: str | None = None
    changes: list[dict[str, Any]] = Field(default_factory=list)


class ContractSearchTokens(DQModel):
    """What finds a contract by text: the search tokens of its highest version.

    ``title`` from names, ids, tags and domain; ``body`` from descriptions and
    property names (see ``dq_stores.search.search_fields``, which makes them).
    """

    title: list[str] = Field(default_factory=list)
    body: list[str] = Field(default_factory=list)


class ContractHead(DQModel):
    """Per contract id: the highest version ever published.

    Publishing moves it forward with an expected revision, so two concurrent
    publishes of one contract are serialised and versions only ever increase.
    It also carries what search shows and finds of that version: ``name``, a
    short ``summary`` and its ``search`` tokens (``None`` on heads written before
    contract search: ``ctx.contracts.reindex_search()`` fills them in).
    """

    schema_version: Literal[1] = 1
    contract_id: Identifier
    latest_version: NonEmptyStr
    updated_at: UtcDatetime
    name: str | None = None
    summary: str | None = None
    search: ContractSearchTokens | None = None


class ContractVersion(DQModel):
    """What the contract store keeps per (contract id, version)."""

    schema_version: Literal[1] = 1
    contract: DataContract
    published_by: NonEmptyStr
    published_at: UtcDatetime
    lifecycle: list[LifecycleEvent] = Field(default_factory=list)
    forced: ForcedPublish | None = None

    @field_serializer("contract")
    def _odcs_only(self, contract: DataContract) -> dict[str, Any]:
        # Only the fields the document set, so it re-validates and exports unchanged.
        return contract.to_odcs()

    @property
    def id(self) -> str:
        return self.contract.id

    @property
    def version(self) -> str:
        return self.contract.version

    @property
    def status(self) -> str:
        return self.contract.status
