"""The EdgePop resource as pydantic models: the single source of truth for its schema.

The CRD's OpenAPI schema is generated from these classes (see :mod:`pop_operator.crd`),
and the operator parses every EdgePop it handles with them, so the API server and the
operator can never disagree on what a field means or which values it may take.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from pop.contract import Engine, LogLevel

GROUP = "edgepop.io"
VERSION = "v1alpha1"
KIND = "EdgePop"
PLURAL = "edgepops"
SINGULAR = "edgepop"
SHORT_NAMES = ("epop",)
API_VERSION = f"{GROUP}/{VERSION}"

# A region name becomes part of object and DNS names (`<edgepop>-<region>-headless`), so it
# must be a DNS-1035 label and short enough that every derived name stays within 63 chars.
REGION_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
REGION_NAME_MAX = 24
EDGEPOP_NAME_MAX = 24

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$"


def _check_quantity(value: str | int) -> str | int:
    if isinstance(value, str) and not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    if isinstance(value, int) and value < 0:
        raise ValueError("a quantity must not be negative")
    return value


Quantity = Annotated[
    str | int,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SecretKeyRef(_Model):
    """A key of a Secret in the EdgePop's namespace. The value is never copied anywhere."""

    name: str = Field(min_length=1, max_length=253, description="Secret name.")
    key: str = Field(min_length=1, max_length=253, description="Key inside the Secret.")


class Origin(_Model):
    """The origin database the POPs replicate."""

    url: str = Field(
        pattern=r"^(libsql|https?)://[^\s/?#@]+(/[^\s?#]*)?$",
        description="Origin URL (libsql://, https:// or http://), without credentials.",
    )
    auth_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the origin's auth token."
    )


class Storage(_Model):
    """The volume that holds a POP's replica file."""

    size: str = Field(
        default="1Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$",
        description="Requested volume size.",
    )
    storage_class_name: str | None = Field(
        default=None, min_length=1, description="StorageClass; the cluster default when unset."
    )


class Resources(_Model):
    """Compute resources of a POP container."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class Region(_Model):
    """One region: a StatefulSet of POPs with their own volumes."""

    name: str = Field(
        pattern=REGION_NAME_PATTERN,
        max_length=REGION_NAME_MAX,
        description="Region name, a DNS label (lower case letters, digits, '-').",
    )
    replicas: int = Field(default=1, ge=0, le=100, description="Number of POPs.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the POPs must run on."
    )
    storage: Storage = Field(default_factory=Storage)
    resources: Resources = Field(default_factory=Resources)


class Redis(_Model):
    """Redis pub/sub that makes every POP sync as soon as one sees a write."""

    url_secret_ref: SecretKeyRef = Field(description="Secret key holding the Redis URL.")
    channel: str = Field(
        default="sync", min_length=1, max_length=128, description="Pub/sub channel."
    )


class Sync(_Model):
    """How POPs keep their replicas fresh."""

    interval_seconds: int = Field(
        default=60, ge=1, le=86400, description="Seconds between background syncs."
    )
    max_lag_seconds: int = Field(
        default=300,
        ge=1,
        description="A region whose last successful sync is older than this gets a sync.",
    )
    redis: Redis | None = None


class Monitoring(_Model):
    """Prometheus scrape wiring."""

    service_monitor: bool = Field(
        default=True,
        description="Create a ServiceMonitor when its CRD exists; scrape annotations otherwise.",
    )


class EdgePopSpec(_Model):
    """Desired state: one origin database, served by POPs in every listed region."""

    origin: Origin
    engine: Engine = Field(default="libsql", description="Replica engine.")
    client_auth_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the token clients must present to a POP."
    )
    client_jwt_keys_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding Ed25519 public keys (PEM, or URL-safe base64); "
        "clients may then present Turso JWTs signed by them (claim a=ro reads only).",
    )
    image: str = Field(min_length=1, description="POP container image.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    log_level: LogLevel = "info"
    regions: list[Region] = Field(
        min_length=1,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    sync: Sync = Field(default_factory=Sync)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    data_retention: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="Retain keeps the volumes of a removed region or EdgePop; Delete removes them.",
    )


ConditionType = Literal["Ready", "Progressing", "Degraded"]


class Condition(_Model):
    """A status condition, in the shape of metav1.Condition."""

    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class RegionStatus(_Model):
    """What the StatefulSet of one region reports."""

    name: str
    replicas: int = Field(default=0, ge=0)
    ready_replicas: int = Field(default=0, ge=0)
    updated_replicas: int = Field(default=0, ge=0)
    sync_lag_seconds: float | None = None


class SyncRecord(_Model):
    """A sync the operator published on Redis."""

    reason: Literal["operator", "lagging"]
    value: str = ""
    published_at: str
    receivers: int = Field(default=0, ge=0)


class EdgePopStatus(_Model):
    """Observed state, written by the operator only."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    regions: list[RegionStatus] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    region_count: int = Field(default=0, ge=0)
    ready_replicas: str = Field(default="", description="Ready/desired POPs, e.g. 3/4.")
    last_sync: SyncRecord | None = None


def parse_spec(raw: Any) -> EdgePopSpec:
    """Validate a spec as the API server hands it over (camelCase keys)."""
    return EdgePopSpec.model_validate(raw)


def parse_status(raw: Any) -> EdgePopStatus:
    return EdgePopStatus.model_validate(raw or {})
