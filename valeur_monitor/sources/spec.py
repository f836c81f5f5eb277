"""The source mapping file schema (pydantic, unknown keys refused)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[a-z0-9][a-z0-9_-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AuthSpec(Strict):
    """How the ingest route checks the sender; the secret itself comes from the settings."""

    kind: Literal["zendesk_signature", "hub_signature", "shared_secret", "basic", "none"]
    header: str | None = None          # shared_secret: the header carrying the secret
    max_skew: str = "5m"               # zendesk_signature: accepted age of the timestamp


class IdentitySpec(Strict):
    unknown: Literal["dead_letter", "derive"] = "dead_letter"
    region: str | None = None          # default country for national phone numbers (ISO 3166)


class RememberSpec(Strict):
    key: str
    values: dict[str, str]


class EmitSpec(Strict):
    type: str
    id: str | None = None
    time: str
    customer: Any                      # {kind: expr} or a list of them, tried in order
    ref: str | None = None
    channel: str | None = None
    team: str | None = None
    data: dict[str, str] = Field(default_factory=dict)


class MappingSpec(Strict):
    name: str = Field(pattern=NAME)
    description: str | None = None
    each: dict[str, str] = Field(default_factory=dict)
    when: str | None = None
    recall: str | None = None
    remember: RememberSpec | None = None
    emit: EmitSpec | None = None


class SourceSpec(Strict):
    version: Literal[1]
    source: str = Field(pattern=NAME)
    title: str | None = None
    description: str | None = None
    format: Literal["json", "queue_log"] = "json"
    auth: AuthSpec
    identity: IdentitySpec = IdentitySpec()
    unmatched: Literal["ignore", "dead_letter"] = "ignore"
    memory: int = Field(default=100_000, ge=0)     # remembered keys kept (least recent dropped)
    maps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    mappings: list[Any]
